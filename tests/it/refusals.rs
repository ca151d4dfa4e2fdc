//! Mirrors that refuse whole pushes and say why, reproduced with git's own knobs on real
//! servers (file:// and smart HTTP): a `pre-receive` hook refusing a protected branch with a
//! GH006-style message, two refused refs among forty, `receive.fsckObjects` with a corrupt
//! object, a cap on refs per push, a server that offers no `report-status`, and a hook that
//! echoes the credentials it was sent. Every acceptable ref lands in the same update; only the
//! refused ones are reported, with the mirror's own words, and never with a secret.

use crate::support::binary::*;
use crate::support::{HttpGitServer, Sshd, TestEnv, path_str, require_or_skip, wait_until};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const USER: &str = "mirror-bot";
const PASSWORD: &str = "s3cret-refusal-token";

/// Retries soon, never lingers: a `run` does what is due and leaves, like cron's. A refusal by
/// the mirror's rules is a permanent failure, retried after `permanent_retry`: soon here too.
const FAST_RETRY: &str = "worker_linger = \"0s\"\n\
                          [retry]\ninitial = \"50ms\"\nmax = \"100ms\"\nfail_after = 3\njitter = false\n\
                          permanent_retry = \"100ms\"\n";

/// How the mirror is reached.
#[derive(Clone, Copy, Debug)]
enum Transport {
    File,
    Http,
    Ssh,
}

/// An upstream with refs, a bare mirror (served over `transport`) and the mirror added as `backup`.
struct Mirrored {
    upstream: PathBuf,
    mirror: PathBuf,
    _server: Option<HttpGitServer>,
    _sshd: Option<Sshd>,
}

impl Mirrored {
    fn new(env: &TestEnv, transport: Transport) -> Option<Mirrored> {
        write_global_config(env, FAST_RETRY);
        let upstream = env.bare_repo("upstream.git");
        let mirror = env.bare_repo("srv/mirror.git");
        let mut sshd = None;
        let (url, server, flags): (String, _, Vec<String>) = match transport {
            Transport::File => (format!("file://{}", path_str(&mirror)), None, Vec::new()),
            Transport::Ssh => {
                if !require_or_skip("sshd", Sshd::available()) {
                    return None;
                }
                let server = Sshd::start(env);
                let (url, flags) = (server.url(&mirror), ssh_mirror_flags(env, &server));
                sshd = Some(server);
                (url, None, flags)
            }
            Transport::Http => {
                if !require_or_skip("git http-backend", HttpGitServer::available()) {
                    return None;
                }
                let server = HttpGitServer::start(env, &env.path("srv"), USER, PASSWORD);
                let secret = secret_file(env, "token", PASSWORD, 0o600);
                let flags = vec![
                    "--username".to_string(),
                    USER.to_string(),
                    "--password-file".to_string(),
                    path_str(&secret).to_string(),
                ];
                (server.url("mirror.git"), Some(server), flags)
            }
        };
        let mut args = vec!["add", path_str(&upstream), "backup", url.as_str()];
        args.extend(flags.iter().map(String::as_str));
        gpm_ok(env, &args);
        Some(Mirrored {
            upstream,
            mirror,
            _server: server,
            _sshd: sshd,
        })
    }

    fn sync(&self, env: &TestEnv) -> std::process::Output {
        gpm_output(env, &["sync", path_str(&self.upstream)])
    }

    fn status(&self, env: &TestEnv) -> Value {
        let out = gpm_output(env, &["status", "--json", path_str(&self.upstream)]);
        let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}"));
        all.into_iter().next().expect("one mirror")
    }

    fn server(&self) -> &HttpGitServer {
        self._server.as_ref().expect("an HTTP mirror")
    }
}

/// Commits on `branches` of `upstream` (each from the previous one) and lightweight `tags` on
/// the last; returns nothing, the refs are read back with `env.refs`.
fn populate(env: &TestEnv, upstream: &Path, branches: &[&str], tags: &[&str]) {
    let work = env.clone_work(upstream, "populate");
    env.commit(&work, "base.txt", "base", "base");
    env.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    for (i, branch) in branches.iter().enumerate() {
        env.commit(&work, &format!("f{i}.txt"), branch, &format!("on {branch}"));
        env.git(
            &work,
            &["push", "--quiet", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
    }
    for tag in tags {
        env.git(&work, &["tag", tag]);
        env.git(&work, &["push", "--quiet", "origin", &format!("refs/tags/{tag}")]);
    }
}

/// How a refusing hook explains itself.
#[derive(Clone, Copy)]
enum Words {
    /// GitHub's GH006 names the branch.
    NamingTheRef,
    /// GitLab's protected-branch message does not.
    Anonymous,
}

/// A `pre-receive` hook that logs each push it sees (`push <refs>`) in `pushes.log` and refuses
/// the whole push, GitHub-style, when it carries one of `protected`.
fn protect(mirror: &Path, protected: &[&str]) -> PathBuf {
    protect_saying(mirror, protected, Words::NamingTheRef)
}

fn protect_saying(mirror: &Path, protected: &[&str], words: Words) -> PathBuf {
    let say = match words {
        Words::NamingTheRef => {
            "  echo \"GH006: Protected branch update failed for $r.\"\n  \
             echo 'error: Changes must be made through a pull request.'\n"
        }
        Words::Anonymous => "  echo 'You are not allowed to push code to protected branches on this project.'\n",
    };
    let log = mirror.join("pushes.log");
    let cases: String = protected
        .iter()
        .map(|r| format!("    {r}) bad=\"$bad {r}\" ;;\n"))
        .collect();
    write_hook(
        mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\nbad=''\nn=0\nwhile read old new ref; do\n  n=$((n+1))\n  case \"$ref\" in\n{cases}  esac\ndone\n\
             echo \"push $n\" >> '{log}'\n\
             for r in $bad; do\n{say}  exit 1\ndone\nexit 0\n",
            log = log.display()
        ),
    );
    log
}

fn without(refs: &BTreeMap<String, String>, names: &[&str]) -> BTreeMap<String, String> {
    refs.iter()
        .filter(|(name, _)| !names.contains(&name.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn rejected_refs(status: &Value) -> Vec<(String, String)> {
    status["rejected_refs"]
        .as_array()
        .expect("rejected_refs is a list")
        .iter()
        .map(|r| {
            (
                r["ref"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn a_protected_branch_does_not_block_the_rest(transport: Transport) {
    let env = TestEnv::new();
    let Some(m) = Mirrored::new(&env, transport) else {
        return;
    };
    populate(
        &env,
        &m.upstream,
        &["feature/a", "feature/b", "release/1.0", "topic"],
        &["v1", "v2"],
    );
    let pushes = protect(&m.mirror, &["refs/heads/release/1.0"]);
    let upstream = env.refs(&m.upstream);

    let out = m.sync(&env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "sync exits 1\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(env.refs(&m.mirror), without(&upstream, &["refs/heads/release/1.0"]));
    let table = stdout(&out);
    assert!(
        table.contains("refs/heads/release/1.0") && table.contains("rejected") && table.contains("GH006"),
        "the sync table shows the refusal and the mirror's words:\n{table}"
    );

    let status = m.status(&env);
    let rejected = rejected_refs(&status);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0, "refs/heads/release/1.0");
    assert!(
        rejected[0].1.contains("pre-receive hook declined")
            && rejected[0]
                .1
                .contains("GH006: Protected branch update failed for refs/heads/release/1.0.")
            && rejected[0].1.contains("Changes must be made through a pull request."),
        "{}",
        rejected[0].1
    );
    assert!(status["last_error"].as_str().unwrap().contains("GH006"), "{status}");
    // A refusal by the mirror's rules needs a person: failed at once.
    assert_eq!(status["update_status"], "failed", "{status}");
    assert_eq!(status["failure_class"], "permanent", "{status}");
    // The mirror named the ref: the refused push, the six others, the named one alone.
    assert_eq!(lines_in(&pushes), 3);
    let human = stdout(&gpm_output(&env, &["status", path_str(&m.upstream)]));
    assert!(
        human.contains("rejected_refs (1):") && human.contains("GH006"),
        "{human}"
    );
    let metrics = stdout(&gpm_output(&env, &["metrics", path_str(&m.upstream)]));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("git_push_mirror_mirror_rejected_refs{") && l.ends_with(" 1")),
        "{metrics}"
    );

    // Cron's runs retry (the refused ref alone) and log the mirror's words.
    let log_file = state_base(&env).join("git-push-mirror.log");
    wait_until("a run logs the refusal", CONVERGE, || {
        gpm_output(&env, &["run", "--wait"]);
        std::fs::read_to_string(&log_file).is_ok_and(|log| log.contains("GH006: Protected branch update failed"))
    });
    assert_eq!(env.refs(&m.mirror), without(&upstream, &["refs/heads/release/1.0"]));

    // The admin lifts the protection: the next due run delivers the ref and clears the report.
    std::fs::remove_file(m.mirror.join("hooks/pre-receive")).unwrap();
    wait_until("a run delivers the ref", CONVERGE, || {
        gpm_output(&env, &["run", "--wait"]);
        env.refs(&m.mirror) == upstream
    });
    let status = m.status(&env);
    assert_eq!(status["update_status"], "finished", "{status}");
    assert!(rejected_refs(&status).is_empty(), "{status}");
}

#[test]
fn a_protected_branch_does_not_block_the_rest_over_file() {
    a_protected_branch_does_not_block_the_rest(Transport::File);
}

#[test]
fn a_protected_branch_does_not_block_the_rest_over_smart_http() {
    a_protected_branch_does_not_block_the_rest(Transport::Http);
}

#[test]
fn a_protected_branch_does_not_block_the_rest_over_ssh() {
    a_protected_branch_does_not_block_the_rest(Transport::Ssh);
}

#[test]
fn two_refused_refs_among_forty_cost_a_logarithmic_number_of_pushes() {
    let env = TestEnv::new();
    let m = Mirrored::new(&env, Transport::File).unwrap();
    let branches: Vec<String> = (0..39).map(|i| format!("b{i:02}")).collect();
    let names: Vec<&str> = branches.iter().map(String::as_str).collect();
    populate(&env, &m.upstream, &names, &[]);
    let pushes = protect_saying(&m.mirror, &["refs/heads/b07", "refs/heads/b30"], Words::Anonymous);
    let upstream = env.refs(&m.upstream);
    assert_eq!(upstream.len(), 40);

    let out = m.sync(&env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        env.refs(&m.mirror),
        without(&upstream, &["refs/heads/b07", "refs/heads/b30"])
    );
    let refused: Vec<String> = rejected_refs(&m.status(&env)).into_iter().map(|(r, _)| r).collect();
    assert_eq!(refused, ["refs/heads/b07", "refs/heads/b30"]);
    // k = 2 bad refs among n = 40: at most 1 + 2·k·⌈log₂ n⌉ = 25 pushes reach the hook.
    let made = lines_in(&pushes);
    assert!(made <= 25, "{made} pushes");
    assert!(made > 1, "the push was split");
}

#[test]
fn a_corrupt_object_refused_by_fsck_is_isolated_with_fsck_s_words() {
    let env = TestEnv::new();
    let m = Mirrored::new(&env, Transport::File).unwrap();
    populate(&env, &m.upstream, &["feature/a", "feature/b"], &["v1"]);
    env.git(&m.mirror, &["config", "receive.fsckObjects", "true"]);
    // A commit whose author line has no closing `>`: git stores it, fsck refuses it.
    let tree = env.git(&m.upstream, &["rev-parse", "main^{tree}"]);
    let parent = env.git(&m.upstream, &["rev-parse", "main"]);
    let text = format!(
        "tree {}\nparent {}\nauthor Bad <bad 1700000000 +0000\ncommitter C <c@example.com> 1700000000 +0000\n\nbad\n",
        tree.trim(),
        parent.trim()
    );
    let bad = env.git_with_input(
        &m.upstream,
        &["hash-object", "-t", "commit", "-w", "--literally", "--stdin"],
        &text,
    );
    env.git(&m.upstream, &["update-ref", "refs/heads/broken", bad.trim()]);
    let upstream = env.refs(&m.upstream);

    let out = m.sync(&env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(env.refs(&m.mirror), without(&upstream, &["refs/heads/broken"]));
    let rejected = rejected_refs(&m.status(&env));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0, "refs/heads/broken");
    assert!(
        rejected[0].1.contains("unpacker error") && rejected[0].1.contains("badEmail"),
        "fsck's own words: {}",
        rejected[0].1
    );
}

#[test]
fn a_cap_on_refs_per_push_is_met_by_smaller_pushes() {
    let env = TestEnv::new();
    let m = Mirrored::new(&env, Transport::File).unwrap();
    let branches: Vec<String> = (0..11).map(|i| format!("b{i:02}")).collect();
    let names: Vec<&str> = branches.iter().map(String::as_str).collect();
    populate(&env, &m.upstream, &names, &["t1", "t2", "t3", "t4"]);
    let log = m.mirror.join("pushes.log");
    write_hook(
        &m.mirror,
        "pre-receive",
        &format!(
            "#!/bin/sh\nn=$(wc -l)\necho \"push $n\" >> '{}'\nif [ \"$n\" -gt 3 ]; then\n  \
             echo \"error: pushes of more than 3 refs are not allowed ($n refs)\"\n  exit 1\nfi\n",
            log.display()
        ),
    );
    let upstream = env.refs(&m.upstream);

    let out = m.sync(&env);
    assert!(
        out.status.success(),
        "everything lands\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(env.refs(&m.mirror), upstream);
    assert!(rejected_refs(&m.status(&env)).is_empty());
    let sizes: Vec<usize> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("push ").trim().parse().unwrap())
        .collect();
    assert!(sizes.iter().any(|n| *n > 3), "the first push was refused: {sizes:?}");
    let landed: usize = sizes.iter().filter(|n| **n <= 3).sum();
    assert_eq!(
        landed,
        upstream.len(),
        "each ref landed once, in pushes of 3 at most: {sizes:?}"
    );

    // An admin who knows the cap sets it, and no push is refused any more.
    let other = env.bare_repo("srv/other.git");
    std::fs::copy(m.mirror.join("hooks/pre-receive"), other.join("hooks/pre-receive")).unwrap();
    let url = format!("file://{}", path_str(&other));
    gpm_ok(
        &env,
        &["add", path_str(&m.upstream), "capped", &url, "--max-refs-per-push", "3"],
    );
    std::fs::remove_file(&log).unwrap();
    let out = gpm_output(&env, &["sync", path_str(&m.upstream), "--mirror", "capped"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(env.refs(&other), upstream);
    let sizes = std::fs::read_to_string(&log).unwrap();
    assert!(
        sizes.lines().all(|l| l != "push 4" && !l.ends_with(|c: char| c > '3')),
        "{sizes}"
    );
}

#[test]
fn a_mirror_without_report_status_is_checked_by_looking_at_it() {
    let env = TestEnv::new();
    let Some(m) = Mirrored::new(&env, Transport::Http) else {
        return;
    };
    populate(&env, &m.upstream, &["feature/a", "release/1.0"], &["v1"]);
    m.server().hide_report_status();
    protect(&m.mirror, &["refs/heads/release/1.0"]);
    let upstream = env.refs(&m.upstream);

    // git reports every ref as pushed; the mirror took none of them (its hook refused the push).
    let out = m.sync(&env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(env.refs(&m.mirror).is_empty());
    let status = m.status(&env);
    let rejected = rejected_refs(&status);
    assert_eq!(rejected.len(), upstream.len(), "{status}");
    assert!(
        rejected.iter().all(|(_, why)| why.contains("did not confirm")),
        "{rejected:?}"
    );
    assert_ne!(status["update_status"], "finished");

    // Without the hook the pushes land, and looking at the mirror confirms them.
    std::fs::remove_file(m.mirror.join("hooks/pre-receive")).unwrap();
    let out = m.sync(&env);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(env.refs(&m.mirror), upstream);
    assert!(rejected_refs(&m.status(&env)).is_empty());
}

#[test]
fn the_mirror_s_words_never_carry_the_password() {
    let env = TestEnv::new();
    let Some(m) = Mirrored::new(&env, Transport::Http) else {
        return;
    };
    populate(&env, &m.upstream, &["feature/a"], &[]);
    m.server().pass_authorization_to_cgi();
    // A careless hook: it prints the credentials it was sent, as a header, decoded, in a URL,
    // and its whole environment, then refuses the push.
    write_hook(
        &m.mirror,
        "pre-receive",
        "#!/bin/sh\ncat >/dev/null\n\
         creds=$(printf %s \"$HTTP_AUTHORIZATION\" | sed 's/^Basic //' | base64 -d)\n\
         echo \"Authorization: $HTTP_AUTHORIZATION\"\n\
         echo \"token ${HTTP_AUTHORIZATION#Basic } refused\"\n\
         echo \"you sent $creds\"\n\
         echo \"push to http://$creds@mirror.example.com/mirror.git refused\"\n\
         env\n\
         echo 'GH006: refused by policy'\n\
         exit 1\n",
    );
    let out = m.sync(&env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let status = m.status(&env);
    let error = status["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains("Authorization: Basic *****"),
        "the words are kept, redacted: {error}"
    );
    assert!(error.contains("*****"), "{error}");
    let encoded = crate::support::basic_credentials(USER, PASSWORD);
    for text in [
        stdout(&out),
        stderr(&out),
        error.clone(),
        status.to_string(),
        stdout(&gpm_output(&env, &["status", path_str(&m.upstream)])),
    ] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(&encoded),
            "a secret leaked:\n{text}"
        );
    }
    assert_secret_nowhere(&env, &m.upstream, PASSWORD);
    assert_secret_nowhere(&env, &m.upstream, &encoded);
}
