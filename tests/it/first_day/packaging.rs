//! What the package and its examples ship: cron lines, the metrics job, systemd units and timer,
//! logrotate and the Debian package.

use super::*;

// 3 ---------------------------------------------------------------------------------------------

/// A global configuration whose mirrors fail for good after one failed update.
fn fail_fast_config(env: &TestEnv) {
    write_global_config(
        env,
        "worker_linger = \"0s\"\n[defaults]\ndelay = \"0s\"\n[retry]\ninitial = \"1m\"\nfail_after = 1\n",
    );
}

/// The example cron line for `metrics`, uncommented, with the binary and output file given.
fn cron_metrics_command(output: &Path) -> String {
    let cron = fs::read_to_string(source("examples/cron.d/git-push-mirror")).unwrap();
    let line = cron
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .find(|l| l.contains(" metrics "))
        .expect("a metrics line in the cron example");
    // minute hour day month weekday user command…
    let command: Vec<&str> = line.split_whitespace().skip(6).collect();
    let command = command.join(" ");
    let guarded = "test -x /usr/bin/git-push-mirror && /usr/bin/git-push-mirror ";
    assert!(command.starts_with(guarded), "{command}");
    let default_file = "/var/lib/prometheus/node-exporter/git-push-mirror.prom";
    assert!(command.contains(default_file), "{command}");
    command
        .replace("/usr/bin/git-push-mirror", BIN)
        .replace(default_file, path_str(output))
}

#[test]
fn every_cron_line_first_checks_the_binary_is_there() {
    let cron = fs::read_to_string(source("examples/cron.d/git-push-mirror")).unwrap();
    // The commented-out jobs: `#` then five time fields and a user.
    let jobs: Vec<&str> = cron
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|f| f.starts_with(['*', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']))
        })
        .collect();
    assert_eq!(jobs.len(), 3, "{cron}");
    for job in &jobs {
        let command: Vec<&str> = job.split_whitespace().skip(6).collect();
        let program = command.iter().find(|w| w.ends_with("/git-push-mirror")).unwrap();
        assert_eq!(command[..3], ["test", "-x", *program], "not guarded: {job}");
    }
    // Run as cron would after the package is removed: nothing on stdout or stderr (no mail).
    let env = TestEnv::new();
    let line = jobs[0].split_whitespace().skip(6).collect::<Vec<_>>().join(" ");
    let gone = env.path("removed/git-push-mirror");
    let out = env
        .cmd("sh")
        .args(["-c", &line.replace("/usr/bin/git-push-mirror", path_str(&gone))])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn metrics_that_cannot_be_written_exit_2_and_the_shipped_examples_let_it_show() {
    let env = TestEnv::new();
    fail_fast_config(&env);
    let upstream = env.bare_repo("app.git");
    gpm_ok(&env, &["add", path_str(&upstream), "gone", "/nonexistent/mirror.git"]);
    let work = env.clone_work(&upstream, "work");
    env.commit(&work, "a.txt", "one", "first");
    env.git(&work, &["push", "--quiet", "origin", "main"]);
    let failed_run = gpm_output(&env, &["run"]);
    assert_exit(&failed_run, 1, "run with a mirror that cannot be reached");
    let written = env.path("textfile/git-push-mirror.prom");
    fs::create_dir_all(written.parent().unwrap()).unwrap();

    // A failed mirror: exit 1, the file is written.
    let out = gpm_output(&env, &["metrics", "--output", path_str(&written)]);
    assert_exit(&out, 1, "metrics with a failed mirror");
    assert!(
        fs::read_to_string(&written)
            .unwrap()
            .contains("git_push_mirror_mirror_update_status")
    );

    // No such directory, or a file where the directory should be: exit 2, saying why.
    fs::write(env.path("not-a-dir"), "").unwrap();
    for target in [env.path("missing/dir/x.prom"), env.path("not-a-dir/x.prom")] {
        let out = gpm_output(&env, &["metrics", "--output", path_str(&target)]);
        assert_exit(&out, 2, "metrics into a directory that cannot take the file");
        assert!(
            stderr(&out).contains(&format!("writing {}", target.display()))
                && stderr(&out).contains("must be able to create files in its directory"),
            "{}",
            stderr(&out)
        );
    }

    // The cron example: a failed mirror is silent (metrics carry it), an unwritten file is not
    // (cron mails stderr).
    let cron = |output: &Path| {
        env.cmd("sh")
            .arg("-c")
            .arg(cron_metrics_command(output))
            .output()
            .unwrap()
    };
    let quiet = cron(&written);
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "exit 1 must not mail anyone: {}",
        stderr(&quiet)
    );
    let loud = cron(&env.path("missing/x.prom"));
    assert!(
        stderr(&loud).contains("writing"),
        "an unwritten file must reach cron's mail"
    );

    // The systemd example: exit 1 is a success of the unit, exit 2 is not.
    let unit = fs::read_to_string(source("examples/systemd/git-push-mirror-metrics@.service")).unwrap();
    let success: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SuccessExitStatus="))
        .flat_map(str::split_whitespace)
        .collect();
    assert_eq!(success, ["1"], "{unit}");
    assert!(!unit.contains("|| true") && !unit.contains("ExecStart=-"), "{unit}");

    // docs/operations.md ("Monitoring") says who must be able to write the directory.
    let readme = fs::read_to_string(source("docs/operations.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(readme.contains("must be able to create files in the textfile directory"));
}

// 9 ---------------------------------------------------------------------------------------------

/// Whether `systemd-analyze` runs here (package systemd).
fn systemd_analyze() -> Result<(), String> {
    Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("systemd-analyze: {e} (install systemd)"))
        .map(drop)
}

#[test]
fn the_timer_runs_on_a_calendar_and_logrotate_works_without_a_git_user() {
    // The timer: Persistent= only works with OnCalendar=, and the expression is valid.
    let timer = fs::read_to_string(source("examples/systemd/git-push-mirror-run@.timer")).unwrap();
    let calendar = timer.lines().find_map(|l| l.strip_prefix("OnCalendar="));
    assert!(
        !timer.contains("Persistent=true") || calendar.is_some(),
        "Persistent=true without OnCalendar: {timer}"
    );
    if require_or_skip("systemd-analyze", systemd_analyze()) {
        let parsed = Command::new("systemd-analyze")
            .args(["calendar", calendar.unwrap()])
            .output()
            .unwrap();
        assert!(parsed.status.success(), "{}", stderr(&parsed));
    }

    // logrotate: the shipped file, pointed at a temporary log, rotates for real with no `git` user.
    let logrotate = Command::new("logrotate")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("logrotate: {e} (install logrotate)"))
        .map(drop);
    if !require_or_skip("logrotate", logrotate) {
        return;
    }
    let env = TestEnv::new();
    let dir = env.path("log");
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("git-push-mirror.log");
    fs::write(&log, "a line\n").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).unwrap();
    let example = fs::read_to_string(source("examples/logrotate.d/git-push-mirror")).unwrap();
    let conf = env.path("logrotate.conf");
    fs::write(
        &conf,
        example.replace("/var/log/git-push-mirror/git-push-mirror.log", path_str(&log)),
    )
    .unwrap();
    let state = env.path("logrotate.state");
    let rotated = env
        .cmd("logrotate")
        .args(["--verbose", "--force", "--state", path_str(&state), path_str(&conf)])
        .output()
        .unwrap();
    assert!(rotated.status.success(), "logrotate: {}", stderr(&rotated));
    assert!(!stderr(&rotated).contains("error"), "{}", stderr(&rotated));
    assert_eq!(
        fs::read_to_string(dir.join("git-push-mirror.log.1")).unwrap(),
        "a line\n"
    );
    let fresh = fs::metadata(&log).expect("the new log file was created");
    assert_eq!(
        fresh.permissions().mode() & 0o777,
        0o640,
        "same mode as the rotated file"
    );
}

/// The units are templates whose instance is the user they run as (the package makes no user), and
/// `systemd-analyze verify` finds nothing wrong with them (an unknown key would be a warning).
#[test]
fn the_systemd_units_run_as_their_instances_user_and_verify_cleanly() {
    let dir = source("examples/systemd");
    let mut units: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    units.sort();
    assert_eq!(
        units,
        [
            "git-push-mirror-metrics@.service",
            "git-push-mirror-metrics@.timer",
            "git-push-mirror-run@.service",
            "git-push-mirror-run@.timer"
        ]
    );
    for unit in units.iter().filter(|u| u.ends_with(".service")) {
        let text = fs::read_to_string(dir.join(unit)).unwrap();
        let users: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("User=") || l.starts_with("Group="))
            .collect();
        assert_eq!(users, ["User=%i"], "{unit}");
    }
    if !require_or_skip("systemd-analyze", systemd_analyze()) {
        return;
    }
    // Verified as installed, with this build standing in for /usr/bin/git-push-mirror (verify
    // checks the program exists) and `git` as the instance (which need not exist here).
    let env = TestEnv::new();
    let copy = env.path("units");
    fs::create_dir_all(&copy).unwrap();
    let mut instances = Vec::new();
    for unit in &units {
        let text = fs::read_to_string(dir.join(unit)).unwrap();
        fs::write(copy.join(unit), text.replace("/usr/bin/git-push-mirror", BIN)).unwrap();
        instances.push(copy.join(unit.replace("@.", "@git.")));
    }
    let out = env
        .cmd("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&instances)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

// 10 --------------------------------------------------------------------------------------------

#[test]
fn the_debian_package_ships_everything_in_its_place_and_the_quickstart_runs_an_installed_binary() {
    let env = TestEnv::new();
    let manifest: toml::Table = toml::from_str(&fs::read_to_string(source("Cargo.toml")).unwrap()).unwrap();
    let deb = manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]");
    assert!(
        deb.get("maintainer-scripts").is_none() && deb.get("systemd-units").is_none(),
        "nothing enabled"
    );
    assert!(deb["depends"].as_str().unwrap().contains("git"));

    // The generated assets, from this binary, into a scratch directory.
    let generated = env.path("deb-assets");
    let out = env
        .cmd(source("packaging/deb-assets.sh"))
        .args([BIN, path_str(&generated)])
        .output()
        .unwrap();
    crate::support::assert_success(&out, "packaging/deb-assets.sh");

    let mut destinations = Vec::new();
    for asset in deb["assets"].as_array().unwrap() {
        let asset = asset.as_array().unwrap();
        let (src, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        destinations.push(dest.to_string());
        if src == "target/release/git-push-mirror" {
            assert_eq!(dest, "usr/bin/");
            continue;
        }
        let src = match src.strip_prefix("target/deb-assets/") {
            Some(rest) => generated.join(rest),
            None => source(src),
        };
        let (dir, pattern) = (src.parent().unwrap(), src.file_name().unwrap().to_str().unwrap());
        let matches = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .filter(|e| match pattern.split_once('*') {
                Some((head, tail)) => {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(head) && name.ends_with(tail)
                }
                None => e.file_name() == pattern,
            })
            .count();
        assert!(matches > 0, "asset {} matches nothing", src.display());
    }
    for standard in [
        "usr/bin/",
        "usr/share/man/man1/",
        "usr/share/man/man5/",
        "usr/share/bash-completion/completions/git-push-mirror",
        "usr/share/zsh/vendor-completions/",
        "usr/share/fish/vendor_completions.d/",
        "usr/share/doc/git-push-mirror/examples/",
        "usr/lib/systemd/system/",
        "etc/cron.d/",
        "etc/logrotate.d/",
    ] {
        assert!(destinations.iter().any(|d| d == standard), "nothing goes to {standard}");
    }
    assert!(generated.join("man/git-push-mirror-add.1").is_file());
    let config_page = fs::read_to_string(generated.join("man5/git-push-mirror.toml.5")).unwrap();
    assert!(config_page.contains(".TH git-push-mirror.toml 5"), "{config_page}");
    let main_page = fs::read_to_string(generated.join("man/git-push-mirror.1")).unwrap();
    for page in [&config_page, &main_page] {
        assert!(
            page.contains(".SH FILES") && page.contains("/etc/git\\-push\\-mirror/config.toml"),
            "{page}"
        );
    }
    let fish = fs::read_to_string(generated.join("completions/git-push-mirror.fish")).unwrap();
    assert!(fish.contains("forget"), "completions cover every subcommand");

    // The cron file the package puts in /etc/cron.d runs nothing until it is uncommented.
    let cron = fs::read_to_string(source("examples/cron.d/git-push-mirror")).unwrap();
    let active: Vec<&str> = cron
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert!(active.is_empty(), "active cron lines: {active:?}");

    // The quickstart, against an installed binary (no build), and it says what it does first.
    let quickstart = fs::read_to_string(source("examples/quickstart.sh")).unwrap();
    let build = quickstart.find("cargo build").unwrap();
    assert!(quickstart[..build].contains("echo \"==> building"));
    assert!(
        !quickstart.contains("--quiet --manifest-path"),
        "the build shows its progress"
    );
    let ran = env
        .cmd("bash")
        .arg(source("examples/quickstart.sh"))
        .env("GIT_PUSH_MIRROR_BIN", BIN)
        .env("TMPDIR", env.root())
        .output()
        .unwrap();
    crate::support::assert_success(&ran, "examples/quickstart.sh");
    let said = stdout(&ran);
    assert!(
        said.contains(&format!("==> using {BIN}")) && said.contains("mirror.git had the push"),
        "{said}"
    );
    assert!(said.contains("update_status: finished"), "{said}");
}

/// `packaging/build-deb.sh` says what it misses before its long release build, not after.
#[test]
fn build_deb_checks_for_cargo_deb_and_dpkg_dev_before_building() {
    let env = TestEnv::new();
    // A PATH with `dirname` and a `cargo` that knows no `deb` and logs what it is asked.
    let bin = env.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let log = env.path("cargo.log");
    fs::write(
        bin.join("cargo"),
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" = deb ] && exit 101\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(bin.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
    let dirname = Command::new("sh").args(["-c", "command -v dirname"]).output().unwrap();
    std::os::unix::fs::symlink(String::from_utf8_lossy(&dirname.stdout).trim(), bin.join("dirname")).unwrap();
    let out = env
        .cmd(source("packaging/build-deb.sh"))
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = stderr(&out);
    assert!(
        said.contains("missing: cargo-deb (cargo install cargo-deb --locked) dpkg-dev (apt-get install dpkg-dev)"),
        "{said}"
    );
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "deb --version\n",
        "nothing was built"
    );
}
