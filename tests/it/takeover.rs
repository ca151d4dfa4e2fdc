//! Two hosts on one spool and state directory, as two UTS namespaces (each with a host name of
//! its own, the name claims and locks carry). One host's worker dies in the middle of a drain —
//! killed with SIGKILL holding claimed spool entries, killed in the middle of an update, or
//! stopped (SIGSTOP: a hung host that still holds its locks) — and the other takes over its
//! claims and locks once they go unrenewed for `claim_timeout`, finishes the work, and every
//! mirror ends exactly equal to its repository, with never two pushes to one mirror at once.

use crate::support::binary::*;
use crate::support::{TestEnv, path_str, require_or_skip, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPOS: usize = 3;

fn uts_namespaces() -> Result<(), String> {
    let out = Command::new("unshare")
        .args([
            "--uts",
            "sh",
            "-c",
            "hostname gpm-probe && test \"$(hostname)\" = gpm-probe",
        ])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("unshare --uts (needs root): {}", stderr(&out)))
    }
}

/// `git-push-mirror args` on the host `host`: a UTS namespace of its own, named so. `unshare`
/// and `sh` exec the binary: the child's pid is the worker's.
fn on_host(env: &TestEnv, host: &str, args: &[&str]) -> Command {
    let mut cmd = env.cmd("unshare");
    cmd.args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", host])
        .arg(env!("CARGO_BIN_EXE_git-push-mirror"))
        .args(args);
    cmd
}

fn run_on(env: &TestEnv, host: &str, failpoint: Option<&str>) -> Output {
    let mut cmd = on_host(env, host, &["run", "--wait"]);
    if let Some(failpoint) = failpoint {
        cmd.env("GIT_PUSH_MIRROR_FAILPOINT", failpoint);
    }
    output_within(&mut cmd, CONVERGE, &format!("run on {host}"))
}

fn killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(libc::SIGKILL)
}

/// The repositories, each with a hook that only spools (no worker: the test starts them on the
/// host it chooses) and a file:// mirror whose pre-receive hook notes any push that starts while
/// another is in it, and can be told to hold a push (while `hold` exists; `held` says it is held).
struct Fleet {
    setups: Vec<Setup>,
    overlaps: PathBuf,
    hold: PathBuf,
    held: PathBuf,
}

impl Fleet {
    fn new(env: &TestEnv) -> Fleet {
        let (overlaps, hold, held) = (env.path("overlaps.log"), env.path("hold"), env.path("held"));
        let setups: Vec<Setup> = (0..REPOS)
            .map(|i| Setup::spooling_only(env, &format!("r{i}")))
            .collect();
        for (i, setup) in setups.iter().enumerate() {
            let inflight = env.path(format!("inflight-{i}"));
            write_hook(
                &setup.mirror,
                "pre-receive",
                &format!(
                    "#!/bin/sh\nmkdir '{inflight}' 2>/dev/null || echo overlap >> '{overlaps}'\n\
                     if [ -e '{hold}' ]; then touch '{held}'; while [ -e '{hold}' ]; do sleep 0.05; done; fi\n\
                     sleep 0.05\nrmdir '{inflight}' 2>/dev/null\nexit 0\n",
                    inflight = path_str(&inflight),
                    overlaps = path_str(&overlaps),
                    hold = path_str(&hold),
                    held = path_str(&held),
                ),
            );
        }
        Fleet {
            setups,
            overlaps,
            hold,
            held,
        }
    }

    /// A new commit on a new branch and on main in every repository, spooled by its hook.
    fn push_round(&self, env: &TestEnv, round: &str) {
        for setup in &self.setups {
            env.commit(&setup.work, "f.txt", round, &format!("round {round}"));
            setup.push(env, &["HEAD:refs/heads/main", &format!("HEAD:refs/heads/{round}")]);
        }
    }

    fn assert_exact(&self, env: &TestEnv, when: &str) {
        for (i, setup) in self.setups.iter().enumerate() {
            assert_eq!(
                env.refs(&setup.mirror),
                env.refs(&setup.upstream),
                "{when}: mirror {i} differs from its repository"
            );
        }
        assert!(spool_files(env, "new").is_empty(), "{when}: entries left in spool/new");
        assert!(
            spool_files(env, "claimed").is_empty(),
            "{when}: entries left in spool/claimed"
        );
        assert!(!self.overlaps.exists(), "{when}: two pushes to one mirror overlapped");
    }
}

/// The host names of the claim directories holding entries.
fn claim_hosts(env: &TestEnv) -> Vec<String> {
    spool_files(env, "claimed")
        .iter()
        .filter_map(|entry| entry.parent()?.file_name()?.to_str())
        .map(|owner| owner.split('.').next().unwrap_or("").to_string())
        .collect()
}

/// What the workers logged since the last call (their log file).
fn log_since(env: &TestEnv, read: &mut usize) -> String {
    let log = std::fs::read_to_string(state_base(env).join("git-push-mirror.log")).unwrap_or_default();
    let new = log.get(*read..).unwrap_or("").to_string();
    *read = log.len();
    new
}

fn wait_for(path: &Path, what: &str) {
    wait_until(what, CONVERGE, || path.exists());
}

#[test]
fn a_dead_or_hung_hosts_claims_and_locks_are_taken_over_and_every_mirror_ends_exact() {
    if !require_or_skip("two hosts as UTS namespaces (root, unshare)", uts_namespaces()) {
        return;
    }
    let env = TestEnv::new();
    let mut read = 0;
    write_global_config(&env, "claim_timeout = \"2s\"\nworker_linger = \"5s\"\n");
    let fleet = Fleet::new(&env);
    fleet.push_round(&env, "first");
    let first = run_on(&env, "hosta", None);
    assert!(first.status.success(), "{}", stderr(&first));
    fleet.assert_exact(&env, "the first sync");

    // 1. Host A is killed with a spool entry claimed: host B finds a claim of another host it
    //    may not take yet, drains the rest, and takes the claim over once it went unrenewed for
    //    claim_timeout (lingering for it).
    fleet.push_round(&env, "claimed");
    let a = run_on(&env, "hosta", Some("ingest.after_claim"));
    assert!(killed(&a), "host A was to die holding a claim: {a:?}");
    assert_eq!(claim_hosts(&env), vec!["hosta".to_string()], "host A's claim is left");
    log_since(&env, &mut read);
    let b = run_on(&env, "hostb", None);
    assert!(b.status.success(), "{}", stderr(&b));
    let logged = log_since(&env, &mut read);
    assert!(
        logged.contains("took over 1 spool entries claimed by a worker that stopped renewing"),
        "host B says it took the claim over: {logged}"
    );
    fleet.assert_exact(&env, "after host B took over host A's claim");

    // 2. Host A is killed in the middle of an update (git pushed, the outcome not recorded):
    //    host B finds the update interrupted and reconciles the mirror in full.
    fleet.push_round(&env, "mid-update");
    let a = run_on(&env, "hosta", Some("push.after_git"));
    assert!(killed(&a), "host A was to die in the middle of an update: {a:?}");
    log_since(&env, &mut read);
    let b = run_on(&env, "hostb", None);
    assert!(b.status.success(), "{}", stderr(&b));
    let logged = log_since(&env, &mut read);
    assert!(logged.contains("the previous update was interrupted"), "{logged}");
    fleet.assert_exact(&env, "after host B recovered host A's interrupted update");

    // 3. Host A hangs (SIGSTOP) in the middle of an update, holding the spool's worker lock and
    //    the mirror's lock: its locks stay taken (the kernel releases a dead process's, not a
    //    stopped one's) until claim_timeout passes without renewal; then host B takes both over
    //    and finishes. When host A wakes up, it finds its locks taken over and exits at once.
    fleet.push_round(&env, "hung");
    std::fs::write(&fleet.hold, "").unwrap();
    let a = Running::start(&mut on_host(&env, "hosta", &["run", "--wait"]), "host A");
    wait_for(&fleet.held, "host A's push to reach the mirror");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(a.child.id() as libc::pid_t, libc::SIGSTOP) };
    // Its git finishes the push it was in (a cut-off host's git may); then it is quiet.
    std::fs::remove_file(&fleet.hold).unwrap();
    wait_until("host A's push to end", CONVERGE, || {
        (0..REPOS).all(|i| !env.path(format!("inflight-{i}")).exists())
    });
    log_since(&env, &mut read);
    let b = run_on(&env, "hostb", None);
    let taken = log_since(&env, &mut read);
    // SAFETY: as above.
    unsafe { libc::kill(a.child.id() as libc::pid_t, libc::SIGCONT) };
    let a = a.finish_within(CONVERGE);
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(
        taken.contains("worker.lock") && taken.contains("taking over") && taken.contains("from hosta."),
        "host B took the worker lock over from host A: {taken}"
    );
    assert!(
        taken.contains(".lock from hosta.") && taken.matches("taking over").count() >= 2,
        "host B took the mirror's lock over too: {taken}"
    );
    assert_eq!(
        a.status.code(),
        Some(3),
        "host A exits once it finds its locks taken over: {}",
        stderr(&a)
    );
    let woke = log_since(&env, &mut read);
    assert!(woke.contains("was taken over by another host"), "{woke}");
    fleet.assert_exact(&env, "after host B took over the hung host A's locks");
    // And nothing is left for a later run: it pushes nothing.
    let again = run_on(&env, "hostb", None);
    assert!(again.status.success(), "{}", stderr(&again));
    fleet.assert_exact(&env, "a run after the takeovers");
}
