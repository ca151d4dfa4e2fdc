//! A clock of the test's own for the binary under test: libfaketime (Debian's `faketime`
//! package) preloaded into the command, its offset read from a file on every call, so a test
//! can set the clock a year ahead, a day back, or move it while a worker runs. The monotonic
//! clock is left real, as a jump of the wall clock leaves it. Git's children never see it: the
//! binary gives them a clean environment (no `LD_PRELOAD`), so only the binary's clock moves.

use super::TestEnv;
use std::path::PathBuf;
use std::process::Command;

/// The wall clock of the commands [`FakeClock::apply`] is given, offset by what the file says.
pub struct FakeClock {
    library: PathBuf,
    offset_file: PathBuf,
}

/// Where Debian's multiarch layout puts libfaketime's multi-threaded library.
fn find_library() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
        .find(|path| path.is_file())
}

impl FakeClock {
    /// Whether libfaketime is installed (`apt-get install faketime`).
    pub fn available() -> Result<(), String> {
        find_library()
            .map(drop)
            .ok_or_else(|| "libfaketime (Debian package faketime) is not installed".to_string())
    }

    /// A clock at the real time, until [`Self::set`] moves it.
    pub fn new(env: &TestEnv) -> FakeClock {
        let clock = FakeClock {
            library: find_library().expect("libfaketime (checked with FakeClock::available)"),
            offset_file: env.path("faketime.offset"),
        };
        clock.set("+0");
        clock
    }

    /// Moves the clock to the real time plus `offset`, in libfaketime's words: `"+365d"`,
    /// `"-1d"`, `"+0"`. Commands already running see it at their next look at the clock.
    pub fn set(&self, offset: &str) {
        let tmp = self.offset_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset}\n")).expect("write the fake clock's offset");
        std::fs::rename(&tmp, &self.offset_file).expect("move the fake clock's offset in place");
    }

    /// Runs `cmd` on this clock.
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("LD_PRELOAD", &self.library)
            .env("FAKETIME_TIMESTAMP_FILE", &self.offset_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    }
}
