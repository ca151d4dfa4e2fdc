//! The temporary files of a sync and the log are unreadable by other users, watched while the sync
//! runs.

use super::*;

/// Paths seen, with their mode, owner and whether they are directories.
type Seen = BTreeMap<PathBuf, (u32, u32, bool)>;

/// Everything under `dir`, with its metadata (root sees into every directory).
fn walk(dir: &Path, seen: &mut Seen) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        seen.insert(entry.path(), (meta.mode(), meta.uid(), meta.is_dir()));
        if meta.is_dir() {
            walk(&entry.path(), seen);
        }
    }
}

/// What another user tries while polling the temporary directory: list and read everything
/// she sees, and the files our temporary directories are known to hold.
const POLLER: &str = r#"tmp=$1; stop=$2
while [ ! -e "$stop" ]; do
  for d in "$tmp"/* "$tmp"/*/*; do
    [ -e "$d" ] || continue
    echo "SEEN $d"
    if [ -d "$d" ]; then
      ls -a "$d" >/dev/null 2>&1 && echo "LISTED $d"
      for f in packets credentials config HEAD packed-refs objects/info/alternates rejected.0; do
        timeout 1 cat "$d/$f" >/dev/null 2>&1 && echo "READ $d/$f"
      done
    elif timeout 1 cat "$d" >/dev/null 2>&1; then
      echo "READ $d"
    fi
  done
done
"#;

#[test]
fn temporary_files_of_a_sync_and_the_log_are_unreadable_by_other_users() {
    if !prerequisites() {
        return;
    }
    let mut env = TestEnv::new();
    let _reaper = Reaper::new(&env);
    // A temporary root like /tmp: everyone may create entries in it, the sticky bit set.
    let tmp = env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    set_mode(&tmp, 0o1777);
    env.set_env("TMPDIR", &tmp);
    let eve = TestUser::with_home(&env);
    let token = format!("tmptoken{}", std::process::id());
    let mirror = env.bare_repo("srv/mirror.git");
    let server = HttpGitServer::start(&env, &env.path("srv"), USER, &token);
    let token_file = secret_file(&env, "token", &token, 0o600);
    let upstream = env.bare_repo("upstream.git");
    gpm_ok(
        &env,
        &[
            "add",
            path_str(&upstream),
            "backup",
            &server.url("mirror.git"),
            "--username",
            USER,
            "--password-file",
            path_str(&token_file),
        ],
    );
    let work = env.clone_work(&upstream, "work");

    let stop = env.path("stop-polling");
    let polled = eve.home.join("polled.txt");
    let poller = eve
        .command("sh")
        .args(["-c", &format!("{POLLER}\n"), "sh", path_str(&tmp), path_str(&stop)])
        .stdout(std::fs::File::create(&polled).unwrap())
        .spawn()
        .unwrap();
    let ours: std::sync::Arc<std::sync::Mutex<Seen>> = Default::default();
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (ours, watching, tmp) = (ours.clone(), watching.clone(), tmp.clone());
        std::thread::spawn(move || {
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                let mut seen = BTreeMap::new();
                walk(&tmp, &mut seen);
                ours.lock().unwrap().extend(seen);
            }
        })
    };
    for round in 0..3 {
        env.commit(&work, "a.txt", &format!("round {round}"), &format!("round {round}"));
        env.git(&work, &["tag", &format!("v{round}")]);
        env.git(&work, &["push", "--quiet", "origin", "main", "--tags"]);
        let out = gpm_output(&env, &["sync", path_str(&upstream)]);
        assert_success(&out, "sync");
    }
    assert_eq!(env.refs(&mirror), env.refs(&upstream), "the syncs pushed");
    // The worker, for its log file.
    gpm_ok(&env, &["run", "--wait"]);
    std::fs::write(&stop, "").unwrap();
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    let mut poller = poller;
    wait_until("the poller stops", Duration::from_secs(30), || {
        matches!(poller.try_wait(), Ok(Some(_)))
    });

    let seen = ours.lock().unwrap().clone();
    let made: Vec<&PathBuf> = seen
        .keys()
        .filter(|path| path.parent() == Some(tmp.as_path()))
        .filter(|path| path_str(path).contains("git-push-mirror-"))
        .collect();
    assert!(
        made.iter().any(|p| path_str(p).contains("git-push-mirror-cred."))
            && made.iter().any(|p| path_str(p).contains("git-push-mirror-trace.")),
        "the watcher saw the sync's temporary directories: {seen:#?}"
    );
    for (path, (mode, uid, is_dir)) in &seen {
        assert_eq!(*uid, 0, "{} is ours", path.display());
        let expected = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(
            mode & 0o7777,
            expected,
            "{} has mode {:o}",
            path.display(),
            mode & 0o7777
        );
    }
    let polled = std::fs::read_to_string(&polled).unwrap();
    assert!(
        polled
            .lines()
            .any(|l| l.starts_with("SEEN ") && l.contains("git-push-mirror-")),
        "the other user saw our temporary directories (else this proves nothing): {polled:.2000}"
    );
    let read: Vec<&str> = polled
        .lines()
        .filter(|l| l.starts_with("LISTED ") || l.starts_with("READ "))
        .collect();
    assert!(read.is_empty(), "the other user read: {read:?}");

    let log = std::fs::metadata(state_base(&env).join("git-push-mirror.log")).unwrap();
    assert_eq!(log.mode() & 0o037, 0, "the log file has mode {:o}", log.mode() & 0o7777);
    let read_log = eve
        .command("cat")
        .arg(state_base(&env).join("git-push-mirror.log"))
        .output()
        .unwrap();
    assert!(!read_log.status.success(), "the other user read the log");
}
