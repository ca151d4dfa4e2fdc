//! A forge on 127.0.0.1 over HTTPS (`forge_server.py` beside this file): GitHub's, GitLab's or
//! Gitea's REST API for creating a repository and setting its default branch, and smart HTTP git
//! (`git http-backend`) for the repositories it holds. It validates every request it receives and
//! every answer it sends against the forge's own API description (JSON Schema with Python's
//! `jsonschema`, Debian's `python3-jsonschema`), and logs each request; [`ForgeServer::requests`]
//! reads the log and [`ForgeServer::assert_contract_kept`] fails on any violation.
//!
//! The descriptions are in `$GIT_PUSH_MIRROR_FORGE_API`, else `../shared/forge-api/` beside the
//! repository: where neither is there (a clone outside CI), tests that need them skip, saying so;
//! under `CI=true` they fail (see [`super::require_or_skip`]).

use super::{TestCa, TestEnv, append_log, kill_group};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The forges the server can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForgeKind {
    Github,
    Gitlab,
    Gitea,
}

impl ForgeKind {
    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
        }
    }

    fn description(self) -> &'static str {
        match self {
            ForgeKind::Github => "github.openapi.json",
            ForgeKind::Gitlab => "gitlab.openapi.json",
            ForgeKind::Gitea => "gitea.swagger.json",
        }
    }
}

/// How the forge is set up.
pub struct ForgeSetup<'a> {
    pub kind: ForgeKind,
    /// The token's own account.
    pub login: &'a str,
    /// Organizations (GitLab: groups) that exist.
    pub orgs: &'a [&'a str],
    /// The first N creates of one repository wait for each other (two workers racing).
    pub race: usize,
}

/// A running forge; dropping it stops it.
pub struct ForgeServer {
    child: Child,
    port: u16,
    kind: ForgeKind,
    repos: PathBuf,
    log: PathBuf,
    /// The API token (also the git password).
    pub token: String,
}

impl ForgeServer {
    /// Where the forges' API descriptions are.
    pub fn descriptions() -> Result<PathBuf, String> {
        let dir = match std::env::var_os("GIT_PUSH_MIRROR_FORGE_API") {
            Some(dir) => PathBuf::from(dir),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/forge-api"),
        };
        if dir.join("github.openapi.json").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "the forges' API descriptions are not in {} (set GIT_PUSH_MIRROR_FORGE_API to their folder)",
                dir.display()
            ))
        }
    }

    /// A python3 that can import jsonschema.
    fn python() -> Result<String, String> {
        super::python_importing("jsonschema", "apt install python3-jsonschema")
    }

    /// Whether the descriptions, python3 with jsonschema and openssl are there.
    pub fn available() -> Result<(), String> {
        ForgeServer::descriptions()?;
        ForgeServer::python()?;
        Ok(())
    }

    /// Starts the forge with a certificate of `ca`, its repositories under `<env root>/forge-NAME`.
    pub fn start(env: &TestEnv, ca: &TestCa, setup: &ForgeSetup<'_>) -> ForgeServer {
        let python = ForgeServer::python().expect("python3 with jsonschema");
        let spec = ForgeServer::descriptions()
            .expect("the forges' API descriptions")
            .join(setup.kind.description());
        let dir = env.path(format!("forge-{}", setup.kind.name()));
        let repos = dir.join("repos");
        std::fs::create_dir_all(&repos).expect("create the forge's repositories");
        let log = dir.join("requests.jsonl");
        let port_file = dir.join("port");
        // Unique per test (the temporary root's random name), and given in a file: a token in the
        // server's own argv would be seen by the tests that watch every argv for it.
        let unique: String = env
            .root()
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect()
            })
            .unwrap_or_default();
        let token = format!("{}-api-token-{unique}", setup.kind.name());
        let token_file = dir.join("token");
        std::fs::write(&token_file, &token).expect("write the forge's token");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/forge_server.py");
        let mut child = env
            .cmd(&python)
            .arg(&script)
            .args(["--kind", setup.kind.name()])
            .arg("--spec")
            .arg(&spec)
            .arg("--repos")
            .arg(&repos)
            .arg("--cert")
            .arg(ca.server_cert())
            .arg("--key")
            .arg(ca.server_key())
            .arg("--token-file")
            .arg(&token_file)
            .args(["--login", setup.login])
            .args(["--orgs", &setup.orgs.join(",")])
            .arg("--log")
            .arg(&log)
            .arg("--port-file")
            .arg(&port_file)
            .args(["--race", &setup.race.to_string()])
            .stdout(Stdio::null())
            .stderr(append_log(&dir.join("server.log")))
            .process_group(0)
            .spawn()
            .expect("start the forge server");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().expect("a port number");
            }
            if child.try_wait().ok().flatten().is_some() || Instant::now() >= deadline {
                kill_group(&mut child);
                panic!(
                    "the forge server did not start: {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        ForgeServer {
            child,
            port,
            kind: setup.kind,
            repos,
            log,
            token,
        }
    }

    /// `https://127.0.0.1:PORT/FULL.git`, as people clone it.
    pub fn url(&self, full: &str) -> String {
        format!("https://127.0.0.1:{}/{full}.git", self.port)
    }

    /// The API's base, where it is not derived from the URL (GitHub's `api.github.com`).
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}/ghapi", self.port)
    }

    /// A repository the forge holds.
    pub fn repo(&self, full: &str) -> PathBuf {
        self.repos.join(format!("{full}.git"))
    }

    pub fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// Every request, as the server logged it (API calls: `method`, `path`, `operation`, `body`,
    /// `status`, `answer`, `violations`; git: `git`, `path`, `status`).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line in the forge's log"))
            .collect()
    }

    /// The API calls of one operation (`POST /user/repos`), answered with `status`.
    pub fn calls(&self, method: &str, operation: &str) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == method && r["operation"] == operation)
            .collect()
    }

    /// Fails the test on any request or answer the forge's description does not allow.
    pub fn assert_contract_kept(&self) {
        let requests = self.requests();
        assert!(
            requests.iter().any(|r| r.get("operation").is_some()),
            "no API call reached the forge: {requests:#?}"
        );
        let violations: Vec<&serde_json::Value> = requests.iter().filter(|r| r.get("violations").is_some()).collect();
        assert!(
            violations.is_empty(),
            "requests or answers the {} API description does not allow: {violations:#?}",
            self.kind.name()
        );
    }

    /// The repository's HEAD on the forge (`develop`).
    pub fn head(&self, env: &TestEnv, full: &str) -> String {
        env.git(&self.repo(full), &["symbolic-ref", "--short", "HEAD"])
    }
}

impl Drop for ForgeServer {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
