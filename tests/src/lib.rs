//! Harness for end-to-end tests: the real `switchyard` and `mock-upstream` binaries, started as
//! processes on port 0 and driven over real sockets.
//!
//! The binaries are the ones `cargo test --workspace` builds next to this crate's test
//! executables (the packages that own them have integration tests, so cargo builds them first).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use switchyard_store::testing::{self as db, TestDb};

/// Installs the project's TLS crypto provider (ring) once per test process; reqwest refuses to
/// build a client without one.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A plain HTTP client for tests.
pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::new()
}

/// Path of a workspace binary built by the same `cargo test` run.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the binaries are built",
        path.display()
    );
    path
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `switchyard ARGS` to completion with the given environment (no inherited
/// `SWITCHYARD__` variables).
pub fn run_switchyard(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(binary("switchyard"));
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHYARD") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run switchyard");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running process whose stdout announced a URL and whose stderr is captured.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Base URL it listens on.
    pub url: String,
    /// Everything printed to stdout before the URL line.
    pub stdout_head: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    /// Spawns `cmd` and waits for a stdout line starting with `marker` followed by the URL.
    pub fn spawn(mut cmd: Command, marker: &str) -> Process {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn process");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let out = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = marker.to_owned();
        std::thread::spawn(move || {
            let mut head = Vec::new();
            let mut lines = BufReader::new(out).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(&wanted) {
                    let _ = tx.send(Ok((url.trim().to_owned(), head.clone())));
                    break;
                }
                head.push(line);
            }
            let _ = tx.send(Err(head));
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines.map_while(Result::ok) {}
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok((url, stdout_head))) => Process {
                child,
                url,
                stdout_head,
                stderr,
            },
            other => {
                let _ = child.kill();
                let log = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("process did not announce `{marker}`: {other:?}\nstderr:\n{log}");
            }
        }
    }

    /// What the process wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process ignored SIGTERM for 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway process on its own data directory and the given database.
#[derive(Debug)]
pub struct Gateway {
    /// The process.
    pub process: Process,
    /// The admin token it was configured with.
    pub admin_token: String,
    /// Its data directory.
    pub data_dir: tempfile::TempDir,
}

/// Options for [`Gateway::start_with`].
#[derive(Debug, Default)]
pub struct GatewayOptions<'a> {
    /// Configure no admin token (the gateway generates one).
    pub generate_admin_token: bool,
    /// Extra environment.
    pub env: Vec<(&'a str, String)>,
    /// Reuse this data directory.
    pub data_dir: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts a gateway on `database_url` with a known admin token and debug logs.
    pub fn start(database_url: &str) -> Gateway {
        Self::start_with(database_url, GatewayOptions::default())
    }

    /// Starts a gateway with options.
    pub fn start_with(database_url: &str, options: GatewayOptions<'_>) -> Gateway {
        let data_dir = options
            .data_dir
            .unwrap_or_else(|| tempfile::tempdir().expect("data dir"));
        let admin_token = format!("test-admin-{}", uuid::Uuid::new_v4().simple());
        let mut cmd = Command::new(binary("switchyard"));
        cmd.arg("serve").current_dir(data_dir.path());
        for (name, _) in std::env::vars() {
            if name.starts_with("SWITCHYARD") || name == "RUST_LOG" {
                cmd.env_remove(name);
            }
        }
        cmd.env("SWITCHYARD__SERVER__LISTEN", "127.0.0.1:0")
            .env("SWITCHYARD__SERVER__WORKERS", "2")
            .env("SWITCHYARD__SERVER__SHUTDOWN_TIMEOUT_SECS", "5")
            .env("SWITCHYARD__DATA_DIR", data_dir.path())
            .env("SWITCHYARD__DATABASE__URL", database_url)
            .env("RUST_LOG", "debug");
        if !options.generate_admin_token {
            cmd.env("SWITCHYARD__ADMIN__TOKEN", &admin_token);
        }
        for (k, v) in options.env {
            cmd.env(k, v);
        }
        let process = Process::spawn(cmd, "switchyard listening on ");
        Gateway {
            process,
            admin_token,
            data_dir,
        }
    }

    /// `url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.url)
    }

    /// An admin request builder with the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, self.url(&format!("/admin{path}")))
            .bearer_auth(&self.admin_token)
    }
}

/// Sends a request and returns status and JSON body (`Null` for an empty body).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, json)
}
