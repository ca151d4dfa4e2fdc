//! The `git-push-mirror` binary: everything lives in the library; see `cli::main`.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    look_up_users_in_etc_passwd_only();
    git_push_mirror::cli::main()
}

/// glibc gives each thread that allocates an arena of its own and keeps what each arena grew
/// to: a worker that reads 50,000 refs on one thread and pushes them on another peaked at 77 MiB
/// against a 34 MB live heap. One arena serves our few allocating threads (BENCHMARKS.md, P7:
/// 47 MiB, no slower).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc tunable; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// The static binary (docs/install.md: "A static binary") carries its own glibc, which must never load
/// the NSS modules of the system's C library: `libnss_systemd.so.2`, named by Debian's default
/// `passwd: files systemd`, crashed it (SIGSEGV in the hook, before it spooled) for a user
/// missing from /etc/passwd and no `$HOME`. It looks users up in /etc/passwd alone, with the
/// `files` service glibc has built in, as a musl program does. Only the home directory is ever
/// looked up, and only when `$HOME` is unset.
#[cfg(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static"))]
fn look_up_users_in_etc_passwd_only() {
    unsafe extern "C" {
        /// glibc's <nss.h>: overrides the service line of one database of nsswitch.conf.
        fn __nss_configure_lookup(database: *const libc::c_char, services: *const libc::c_char) -> libc::c_int;
    }
    // SAFETY: both arguments are NUL-terminated literals; called before any other thread exists.
    unsafe { __nss_configure_lookup(c"passwd".as_ptr(), c"files".as_ptr()) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static")))]
fn look_up_users_in_etc_passwd_only() {}
