//! An HTTPS git server as a Debian admin sets one up: nginx terminating TLS with a certificate
//! signed by a private CA made in the test (`openssl`), and `git http-backend` behind it through
//! `fcgiwrap`. Optionally, `…/info/lfs/` is passed on to the in-test LFS server ([`super::lfs`]),
//! so git-lfs meets the same certificate.
//!
//! nginx binds its port itself: the harness picks a free port and retries with another if
//! nginx finds it taken meanwhile.

use super::{ChildEnv, HttpGitServer, TestEnv, append_log, git_exec_path, kill_group, path_str};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private CA and a server certificate for 127.0.0.1 signed by it.
pub struct TestCa {
    /// The CA's certificate (PEM): what clients must be told to trust.
    pub ca_file: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// The certificate the server presents, all signed by the test's CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCertificate {
    /// For 127.0.0.1 and localhost, valid now.
    Valid,
    /// For another host name only (`other.example`), valid now.
    ForAnotherHost,
    /// For 127.0.0.1, valid only in January 2020.
    Expired,
    /// For 127.0.0.1, valid only from January 2099.
    NotYetValid,
}

impl TestCa {
    /// Makes the CA and the server certificate in `dir` with the `openssl` command.
    pub fn create(env: &TestEnv, dir: &Path) -> TestCa {
        TestCa::create_with(env, dir, ServerCertificate::Valid)
    }

    /// [`create`](Self::create) with a server certificate of the given kind.
    pub fn create_with(env: &TestEnv, dir: &Path, kind: ServerCertificate) -> TestCa {
        std::fs::create_dir_all(dir).expect("create the CA directory");
        let openssl = |args: &[&str]| {
            let out = env
                .cmd("openssl")
                .current_dir(dir)
                .args(args)
                .output()
                .expect("run openssl");
            super::assert_success(&out, &format!("openssl {}", args.join(" ")));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
                &["-subj", "/CN=git-push-mirror test CA"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        let names = match kind {
            ServerCertificate::ForAnotherHost => "DNS:other.example",
            _ => "IP:127.0.0.1,DNS:localhost",
        };
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "subjectAltName={names}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write the server certificate's extensions");
        let subject = match kind {
            ServerCertificate::ForAnotherHost => "/CN=other.example",
            _ => "/CN=127.0.0.1",
        };
        openssl(
            &[
                &["req"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr", "-subj", subject],
            ]
            .concat(),
        );
        let dates = match kind {
            ServerCertificate::Expired => Some(("20200101000000Z", "20200102000000Z")),
            ServerCertificate::NotYetValid => Some(("20990101000000Z", "20990102000000Z")),
            _ => None,
        };
        match dates {
            None => openssl(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ]),
            // `openssl x509` signs from now on; `openssl ca` takes any validity period.
            Some((start, end)) => {
                std::fs::create_dir_all(dir.join("issued")).expect("create the CA's database directory");
                std::fs::write(dir.join("index.txt"), "").expect("create the CA's database");
                std::fs::write(dir.join("serial"), "1000\n").expect("create the CA's serial file");
                std::fs::write(
                    dir.join("ca.cnf"),
                    "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = issued\n\
                     serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
                     [any]\ncommonName = supplied\n",
                )
                .expect("write the CA's configuration");
                openssl(&[
                    "ca",
                    "-batch",
                    "-config",
                    "ca.cnf",
                    "-cert",
                    "ca.pem",
                    "-keyfile",
                    "ca.key",
                    "-in",
                    "server.csr",
                    "-out",
                    "server.pem",
                    "-startdate",
                    start,
                    "-enddate",
                    end,
                    "-extfile",
                    "server.ext",
                ]);
            }
        }
        TestCa {
            ca_file: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }

    /// The server's certificate (PEM), for 127.0.0.1 and localhost.
    pub fn server_cert(&self) -> &Path {
        &self.server_cert
    }

    /// The server's private key (PEM, PKCS#8).
    pub fn server_key(&self) -> &Path {
        &self.server_key
    }
}

/// A running nginx + fcgiwrap pair serving the repositories under a directory over HTTPS
/// (receive-pack enabled, no authentication). Drop stops both.
pub struct HttpsGitServer {
    port: u16,
    ca: TestCa,
    dir: PathBuf,
    nginx: Child,
    fcgiwrap: Child,
}

/// A program in PATH or in the sbin directories Debian installs servers into.
fn find_program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("{name} is not installed (Debian: apt install {name})"))
}

impl HttpsGitServer {
    /// Whether nginx, fcgiwrap, openssl and `git http-backend` are installed.
    pub fn available() -> Result<(), String> {
        for program in ["nginx", "fcgiwrap", "openssl"] {
            find_program(program)?;
        }
        git_exec_path("git-http-backend").map(drop)
    }

    /// Serves `project_root` over HTTPS with a certificate from a new CA (in `<env root>/tls`);
    /// `lfs`, if given, answers `…/info/lfs/` behind the same TLS.
    pub fn start(env: &TestEnv, project_root: &Path, lfs: Option<&HttpGitServer>) -> HttpsGitServer {
        HttpsGitServer::start_limited(env, project_root, lfs, "0")
    }

    /// [`start`](Self::start) presenting a certificate of the given kind, signed by the CA.
    pub fn start_with_certificate(env: &TestEnv, project_root: &Path, kind: ServerCertificate) -> HttpsGitServer {
        HttpsGitServer::start_inner(env, project_root, None, "0", kind)
    }

    /// [`start`](Self::start) with nginx refusing request bodies over `max_body` (its
    /// `client_max_body_size`: `"2m"`; `"0"` for no limit) with `413 Request Entity Too Large`,
    /// as proxies in front of forges do.
    pub fn start_limited(
        env: &TestEnv,
        project_root: &Path,
        lfs: Option<&HttpGitServer>,
        max_body: &str,
    ) -> HttpsGitServer {
        HttpsGitServer::start_inner(env, project_root, lfs, max_body, ServerCertificate::Valid)
    }

    fn start_inner(
        env: &TestEnv,
        project_root: &Path,
        lfs: Option<&HttpGitServer>,
        max_body: &str,
        kind: ServerCertificate,
    ) -> HttpsGitServer {
        let dir = env.path("tls");
        let ca = TestCa::create_with(env, &dir.join("ca"), kind);
        for sub in ["tmp", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create nginx's directories");
        }
        let socket = dir.join("fcgiwrap.sock");
        let fcgiwrap = start_fcgiwrap(&dir, &socket);
        let backend = git_exec_path("git-http-backend").unwrap_or_else(|e| panic!("{e}"));
        let root = project_root
            .canonicalize()
            .unwrap_or_else(|e| panic!("HTTPS project root {}: {e}", project_root.display()));
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = nginx_conf(&dir, port, &ca, &socket, &backend, &root, lfs)
                .replace("client_max_body_size 0;", &format!("client_max_body_size {max_body};"));
            std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
            let mut nginx = start_nginx(&dir);
            match wait_listening(&mut nginx, port) {
                Ok(()) => {
                    return HttpsGitServer {
                        port,
                        ca,
                        dir,
                        nginx,
                        fcgiwrap,
                    };
                }
                Err(e) => {
                    kill_group(&mut nginx);
                    last_error = e;
                }
            }
        }
        panic!(
            "nginx did not start: {last_error}\n{}",
            std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
        );
    }

    /// `https://127.0.0.1:PORT/<repo_rel>`.
    pub fn url(&self, repo_rel: &str) -> String {
        format!("https://127.0.0.1:{}/{}", self.port, repo_rel.trim_start_matches('/'))
    }

    /// The CA certificate (PEM) the server's certificate chains to.
    pub fn ca_file(&self) -> &Path {
        &self.ca.ca_file
    }

    /// nginx's error log and fcgiwrap's stderr (git http-backend's too).
    pub fn logs(&self) -> String {
        ["logs/error.log", "logs/fcgiwrap.log"]
            .iter()
            .map(|log| std::fs::read_to_string(self.dir.join(log)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for HttpsGitServer {
    fn drop(&mut self) {
        kill_group(&mut self.nginx);
        kill_group(&mut self.fcgiwrap);
    }
}

/// A port that was free a moment ago (nginx binds it itself).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("listener address").port()
}

/// A child in a process group of its own, with no inherited git variables.
fn server_command(program: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(program);
    ChildEnv::isolated_server().apply(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(append_log(log))
        .process_group(0);
    cmd
}

fn start_fcgiwrap(dir: &Path, socket: &Path) -> Child {
    let program = find_program("fcgiwrap").unwrap_or_else(|e| panic!("{e}"));
    let mut child = server_command(&program, &dir.join("logs/fcgiwrap.log"))
        .args(["-f", "-c", "4", "-s", &format!("unix:{}", path_str(socket))])
        .spawn()
        .expect("start fcgiwrap");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            kill_group(&mut child);
            panic!("fcgiwrap did not create {}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn start_nginx(dir: &Path) -> Child {
    let program = find_program("nginx").unwrap_or_else(|e| panic!("{e}"));
    server_command(&program, &dir.join("logs/nginx.stderr"))
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("logs/error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .spawn()
        .expect("start nginx")
}

/// Waits until nginx accepts connections on `port`, or says why it exited.
fn wait_listening(nginx: &mut Child, port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = nginx.try_wait() {
            return Err(format!("nginx exited with {status}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nginx is not listening on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One foreground nginx process (no master, no privilege drop), everything under `dir`.
fn nginx_conf(
    dir: &Path,
    port: u16,
    ca: &TestCa,
    socket: &Path,
    backend: &Path,
    root: &Path,
    lfs: Option<&HttpGitServer>,
) -> String {
    let d = path_str(dir);
    let lfs_location = match lfs {
        Some(server) => format!(
            "        location ~ /info/lfs/ {{\n            proxy_pass http://127.0.0.1:{};\n        }}\n",
            server.port()
        ),
        None => String::new(),
    };
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         \x20   access_log {d}/logs/access.log;\n\
         \x20   client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n    scgi_temp_path {d}/tmp/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port} ssl;\n\
         \x20       ssl_certificate {cert};\n        ssl_certificate_key {key};\n\
         \x20       client_max_body_size 0;\n\
         {lfs_location}\
         \x20       location / {{\n\
         \x20           fastcgi_pass unix:{socket};\n\
         \x20           fastcgi_param SCRIPT_FILENAME {backend};\n\
         \x20           fastcgi_param GIT_PROJECT_ROOT {root};\n\
         \x20           fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n\
         \x20           fastcgi_param REMOTE_USER mirror;\n\
         \x20           fastcgi_param PATH_INFO $uri;\n\
         \x20           fastcgi_param QUERY_STRING $query_string;\n\
         \x20           fastcgi_param REQUEST_METHOD $request_method;\n\
         \x20           fastcgi_param CONTENT_TYPE $content_type;\n\
         \x20           fastcgi_param CONTENT_LENGTH $content_length;\n\
         \x20           fastcgi_param GIT_PROTOCOL $http_git_protocol;\n\
         \x20           fastcgi_param HOME {d};\n\
         \x20           fastcgi_param PATH /usr/local/bin:/usr/bin:/bin;\n\
         \x20           fastcgi_param GIT_CONFIG_NOSYSTEM 1;\n\
         \x20           fastcgi_param GIT_CONFIG_GLOBAL /dev/null;\n\
         \x20           fastcgi_param GIT_CONFIG_COUNT 2;\n\
         \x20           fastcgi_param GIT_CONFIG_KEY_0 gc.auto;\n\
         \x20           fastcgi_param GIT_CONFIG_VALUE_0 0;\n\
         \x20           fastcgi_param GIT_CONFIG_KEY_1 maintenance.auto;\n\
         \x20           fastcgi_param GIT_CONFIG_VALUE_1 false;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        cert = path_str(&ca.server_cert),
        key = path_str(&ca.server_key),
        socket = path_str(socket),
        backend = path_str(backend),
        root = path_str(root),
    )
}
