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

/// A `mock-upstream` process.
#[derive(Debug)]
pub struct Mock {
    /// The process (its `url` is the base URL).
    pub process: Process,
}

impl Mock {
    /// Starts a mock upstream named `name` on a free port.
    pub fn start(name: &str) -> Mock {
        let mut cmd = Command::new(binary("mock-upstream"));
        cmd.args(["--listen", "127.0.0.1:0", "--name", name]);
        Mock {
            process: Process::spawn(cmd, "mock-upstream listening on "),
        }
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        &self.process.url
    }

    /// Adds a behaviour rule (`{"key"?, "path_prefix"?, "model"?, "times"?, "behaviour": {…}}`);
    /// returns its id.
    pub async fn rule(&self, rule: serde_json::Value) -> u64 {
        let (status, body) = send(
            client()
                .post(format!("{}/_mock/rules", self.url()))
                .json(&rule),
        )
        .await;
        assert_eq!(status, 200, "mock rule refused: {body}");
        body["id"].as_u64().expect("rule id")
    }

    /// Removes every rule.
    pub async fn clear_rules(&self) {
        let (status, _) = send(client().delete(format!("{}/_mock/rules", self.url()))).await;
        assert_eq!(status, 200);
    }

    /// Clears rules, stats and the request log.
    pub async fn reset(&self) {
        let (status, _) = send(client().post(format!("{}/_mock/reset", self.url()))).await;
        assert_eq!(status, 200);
    }

    /// `GET /_mock/stats`.
    pub async fn stats(&self) -> serde_json::Value {
        send(client().get(format!("{}/_mock/stats", self.url())))
            .await
            .1
    }

    /// Requests seen with credential `key`.
    pub async fn count_for(&self, key: &str) -> u64 {
        self.stats().await["by_key"][key].as_u64().unwrap_or(0)
    }

    /// The last `limit` requests received.
    pub async fn requests(&self, limit: usize) -> Vec<serde_json::Value> {
        let (_, body) =
            send(client().get(format!("{}/_mock/requests?limit={limit}", self.url()))).await;
        body.as_array().cloned().unwrap_or_default()
    }
}

/// One upstream credential to create.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Key name.
    pub name: String,
    /// The credential the mock sees (rules match on it).
    pub secret: String,
    /// Extra fields for the provider-key body (`max_concurrent`, `cache_ttl_minutes`, …).
    pub extra: serde_json::Value,
}

impl KeySpec {
    /// A key with defaults.
    pub fn new(name: &str, secret: &str) -> KeySpec {
        KeySpec {
            name: name.into(),
            secret: secret.into(),
            extra: serde_json::json!({}),
        }
    }

    /// With extra provider-key fields.
    pub fn with(mut self, extra: serde_json::Value) -> KeySpec {
        self.extra = extra;
        self
    }
}

/// One provider to create: name, priority, base URL, endpoint extras and keys.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Provider name.
    pub name: String,
    /// Lower is preferred.
    pub priority: i32,
    /// Endpoint base URL (a mock's URL, optionally with a `/_b/…` prefix).
    pub base_url: String,
    /// Extra endpoint fields (`max_retries`, timeouts, `max_concurrent`).
    pub endpoint: serde_json::Value,
    /// Its keys.
    pub keys: Vec<KeySpec>,
}

/// Ids of what [`setup`] created.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The gateway key plaintext for requests.
    pub gateway_key: String,
    /// The model name to request.
    pub model: String,
    /// Provider ids by name.
    pub providers: std::collections::HashMap<String, String>,
    /// Provider key ids by key name.
    pub keys: std::collections::HashMap<String, String>,
}

/// Creates a model `model` served by every provider in `providers` (OpenAI format), a user and
/// a gateway key, through the admin API.
pub async fn setup(gw: &Gateway, model: &str, providers: &[ProviderSpec]) -> Setup {
    use serde_json::json;
    let post = |path: &str, body: serde_json::Value| {
        let request = gw.admin(reqwest::Method::POST, path).json(&body);
        async move {
            let (status, answer) = send(request).await;
            assert_eq!(status, 201, "POST {body}: {answer}");
            answer
        }
    };
    let global = post(
        "/global-models",
        json!({"name": model, "pricing": {"tiers": [{"input_price_per_1m": 1.0, "output_price_per_1m": 2.0}]}}),
    )
    .await;
    let mut ids = std::collections::HashMap::new();
    let mut keys = std::collections::HashMap::new();
    for spec in providers {
        let provider = post(
            "/providers",
            json!({"name": spec.name, "priority": spec.priority}),
        )
        .await;
        let pid = provider["id"].as_str().expect("id").to_owned();
        let mut endpoint =
            json!({"provider_id": pid, "api_format": "OPENAI", "base_url": spec.base_url});
        if let (Some(target), Some(extra)) = (endpoint.as_object_mut(), spec.endpoint.as_object()) {
            target.extend(extra.clone());
        }
        let endpoint = post("/endpoints", endpoint).await;
        for key in &spec.keys {
            let mut body =
                json!({"endpoint_id": endpoint["id"], "name": key.name, "api_key": key.secret});
            if let (Some(target), Some(extra)) = (body.as_object_mut(), key.extra.as_object()) {
                target.extend(extra.clone());
            }
            let created = post("/provider-keys", body).await;
            keys.insert(
                key.name.clone(),
                created["id"].as_str().expect("id").to_owned(),
            );
        }
        post(
            "/provider-models",
            json!({"provider_id": pid, "global_model_id": global["id"], "provider_model_name": model}),
        )
        .await;
        ids.insert(spec.name.clone(), pid);
    }
    let user = post(
        "/users",
        json!({"name": format!("user-{}", uuid::Uuid::new_v4().simple())}),
    )
    .await;
    let key = post(
        "/gateway-keys",
        json!({"user_id": user["id"], "name": "tests"}),
    )
    .await;
    Setup {
        gateway_key: key["key"].as_str().expect("plaintext").to_owned(),
        model: model.to_owned(),
        providers: ids,
        keys,
    }
}

/// A chat completion request with the gateway key; returns status, headers and body text.
pub async fn chat(
    gw: &Gateway,
    key: &str,
    body: serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    (status, headers, text)
}

/// A minimal chat body.
pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello."}]})
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The trace of a request (waits for the batched records to land).
pub async fn trace(gw: &Gateway, request_id: &str) -> serde_json::Value {
    eventually(Duration::from_secs(10), || async {
        let (status, body) = send(gw.admin(
            reqwest::Method::GET,
            &format!("/requests/{request_id}/trace"),
        ))
        .await;
        let settled = body["usage"]["status"]
            .as_str()
            .is_some_and(|s| s == "completed" || s == "failed");
        (status == 200 && settled).then_some(body)
    })
    .await
    .unwrap_or_else(|| panic!("no settled trace for request {request_id}"))
}

// ---- Request-path helpers (failover and streaming tests) ----

impl ProviderSpec {
    /// A provider whose one OpenAI endpoint is `base_url`, with default endpoint fields and no
    /// keys yet.
    pub fn new(name: &str, priority: i32, base_url: &str) -> ProviderSpec {
        ProviderSpec {
            name: name.into(),
            priority,
            base_url: base_url.into(),
            endpoint: serde_json::json!({}),
            keys: Vec::new(),
        }
    }

    /// With extra endpoint fields (`max_retries`, `header_timeout_secs`, …).
    pub fn endpoint(mut self, extra: serde_json::Value) -> ProviderSpec {
        self.endpoint = extra;
        self
    }

    /// With one more key.
    pub fn key(mut self, key: KeySpec) -> ProviderSpec {
        self.keys.push(key);
        self
    }
}

/// A gateway on a fresh SQLite database with extra environment; keep the database alive as
/// long as the gateway.
pub async fn sqlite_gateway(env: &[(&'static str, &str)]) -> (Gateway, TestDb) {
    let database = db::sqlite().await;
    let gateway = Gateway::start_with(
        &database.url,
        GatewayOptions {
            env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            ..GatewayOptions::default()
        },
    );
    (gateway, database)
}

/// `http://127.0.0.1:PORT` where nothing listens (the port was bound, then freed).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The gateway's request id of a response (`x-request-id`).
pub fn request_id(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id on the response")
        .to_owned()
}

/// The `data:` payloads of an SSE body, one per event, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("data:")
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                })
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// Sends a chat completion request and returns the response unread (to read a stream chunk by
/// chunk or drop it early).
pub async fn chat_response(gw: &Gateway, key: &str, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

/// The gateway's in-flight count of a provider key (`GET /admin/slots`); 0 when not listed.
pub async fn slot_in_flight(gw: &Gateway, key_id: &str) -> u64 {
    let (status, body) = send(gw.admin(reqwest::Method::GET, "/slots")).await;
    assert_eq!(status, 200, "GET /admin/slots: {body}");
    body["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["key_id"] == key_id)
        .and_then(|k| k["in_flight"].as_u64())
        .unwrap_or(0)
}

/// Whether the key's in-flight slot count reaches `count` within 5 s (slots are released
/// after the answer, so a test waits for them rather than reading once).
pub async fn slots_reach(gw: &Gateway, key_id: &str, count: u64) -> bool {
    eventually(Duration::from_secs(5), || async {
        (slot_in_flight(gw, key_id).await == count).then_some(())
    })
    .await
    .is_some()
}

/// The attempt rows of a trace that were really sent upstream (not skipped).
pub fn tried(trace: &serde_json::Value) -> Vec<serde_json::Value> {
    trace["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] != "skipped")
        .cloned()
        .collect()
}

// ---- Routing-state helpers (affinity, slots, breaker and soak tests) ----

/// Creates one more user with a gateway key (another client); returns the key's plaintext.
pub async fn gateway_key(gw: &Gateway) -> String {
    use serde_json::json;
    let (status, user) = send(
        gw.admin(reqwest::Method::POST, "/users")
            .json(&json!({"name": format!("user-{}", uuid::Uuid::new_v4().simple())})),
    )
    .await;
    assert_eq!(status, 201, "POST /users: {user}");
    let (status, key) = send(
        gw.admin(reqwest::Method::POST, "/gateway-keys")
            .json(&json!({"user_id": user["id"], "name": "client"})),
    )
    .await;
    assert_eq!(status, 201, "POST /gateway-keys: {key}");
    key["key"].as_str().expect("plaintext").to_owned()
}

/// Creates a global model `name` served by each provider in `provider_ids` under the same
/// upstream name (mock rules can then match on it).
pub async fn add_model(gw: &Gateway, name: &str, provider_ids: &[&str]) {
    use serde_json::json;
    let (status, global) = send(gw.admin(reqwest::Method::POST, "/global-models").json(
        &json!({"name": name, "pricing": {"tiers": [{"input_price_per_1m": 1.0, "output_price_per_1m": 2.0}]}}),
    ))
    .await;
    assert_eq!(status, 201, "POST /global-models: {global}");
    for pid in provider_ids {
        let (status, body) = send(gw.admin(reqwest::Method::POST, "/provider-models").json(
            &json!({"provider_id": pid, "global_model_id": global["id"], "provider_model_name": name}),
        ))
        .await;
        assert_eq!(status, 201, "POST /provider-models: {body}");
    }
}

/// `GET /admin{path}`, which must answer 200.
pub async fn admin_get(gw: &Gateway, path: &str) -> serde_json::Value {
    let (status, body) = send(gw.admin(reqwest::Method::GET, path)).await;
    assert_eq!(status, 200, "GET /admin{path}: {body}");
    body
}

/// A key's entry in `GET /admin/health` (`circuit`, `window`, `error_rate`…); `Null` while the
/// health monitor has not seen the key.
pub async fn key_health(gw: &Gateway, key_id: &str) -> serde_json::Value {
    admin_get(gw, "/health").await["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["key_id"] == key_id)
        .cloned()
        .unwrap_or_default()
}

/// A key's entry in `GET /admin/slots` (`in_flight`, `learned_limit`, `adaptive`…); `Null` while
/// the key has never been asked for a slot.
pub async fn key_slots(gw: &Gateway, key_id: &str) -> serde_json::Value {
    admin_get(gw, "/slots").await["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["key_id"] == key_id)
        .cloned()
        .unwrap_or_default()
}

/// `GET /status` (admin token).
pub async fn gateway_status(gw: &Gateway) -> serde_json::Value {
    let (status, body) = send(client().get(gw.url("/status")).bearer_auth(&gw.admin_token)).await;
    assert_eq!(status, 200, "GET /status: {body}");
    body
}

/// `candidate:retry:status:error_type:status_code` of every attempt row of a trace, in order
/// (`-` for a missing value), for compact assertions.
pub fn attempt_rows(trace: &serde_json::Value) -> Vec<String> {
    trace["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}:{}:{}:{}:{}",
                a["candidate_index"],
                a["retry_index"],
                a["status"].as_str().unwrap_or("?"),
                a["error_type"].as_str().unwrap_or("-"),
                a["status_code"]
                    .as_i64()
                    .map_or_else(|| "-".to_owned(), |c| c.to_string())
            )
        })
        .collect()
}

/// The credential of the `role` ("primary" or "fallback") key of test case `case`.
pub fn secret(role: &str, case: &str) -> String {
    format!("sk-{role}-{case}-SECRET-0123456789abcdef")
}

/// A primary (priority 1) and a fallback (priority 2) provider for one test case, each with one
/// key whose credential is `secret(role, case)` and no cache affinity (so every request starts
/// from the primary).
pub fn pair(
    case: &str,
    primary_url: &str,
    endpoint: serde_json::Value,
    fallback_url: &str,
) -> [ProviderSpec; 2] {
    let key = |role: &str| {
        KeySpec::new(&format!("{role}-{case}"), &secret(role, case))
            .with(serde_json::json!({"cache_ttl_minutes": 0}))
    };
    [
        ProviderSpec::new(&format!("primary-{case}"), 1, primary_url)
            .endpoint(endpoint)
            .key(key("primary")),
        ProviderSpec::new(&format!("fallback-{case}"), 2, fallback_url).key(key("fallback")),
    ]
}

// ---- Cross-format and SDK helpers ----

/// Creates one provider from `spec` through the admin API: the provider, its one endpoint (OpenAI
/// format unless `spec.endpoint` sets `api_format`) and its keys, and no models. Returns the
/// provider id and the key ids by key name.
pub async fn add_provider(
    gw: &Gateway,
    spec: &ProviderSpec,
) -> (String, std::collections::HashMap<String, String>) {
    use serde_json::json;
    let post = |path: &str, body: serde_json::Value| {
        let request = gw.admin(reqwest::Method::POST, path).json(&body);
        async move {
            let (status, answer) = send(request).await;
            assert_eq!(status, 201, "POST {body}: {answer}");
            answer
        }
    };
    let provider = post(
        "/providers",
        json!({"name": spec.name, "priority": spec.priority}),
    )
    .await;
    let pid = provider["id"].as_str().expect("provider id").to_owned();
    let mut endpoint =
        json!({"provider_id": pid, "api_format": "OPENAI", "base_url": spec.base_url});
    if let (Some(target), Some(extra)) = (endpoint.as_object_mut(), spec.endpoint.as_object()) {
        target.extend(extra.clone());
    }
    let endpoint = post("/endpoints", endpoint).await;
    let mut keys = std::collections::HashMap::new();
    for key in &spec.keys {
        let mut body =
            json!({"endpoint_id": endpoint["id"], "name": key.name, "api_key": key.secret});
        if let (Some(target), Some(extra)) = (body.as_object_mut(), key.extra.as_object()) {
            target.extend(extra.clone());
        }
        let created = post("/provider-keys", body).await;
        keys.insert(
            key.name.clone(),
            created["id"].as_str().expect("key id").to_owned(),
        );
    }
    (pid, keys)
}

/// `PUT /admin/settings/{key}` with `{"value": value}`, which must answer 200.
pub async fn put_setting(gw: &Gateway, key: &str, value: serde_json::Value) {
    let (status, body) = send(
        gw.admin(reqwest::Method::PUT, &format!("/settings/{key}"))
            .json(&serde_json::json!({ "value": value })),
    )
    .await;
    assert_eq!(status, 200, "PUT /admin/settings/{key}: {body}");
}

/// Whether `python3` can import every module in `modules`. When it cannot, says why and returns
/// `false` (the caller skips), unless `CI` is set, where a missing module is a failure.
pub fn python_modules(modules: &[&str]) -> bool {
    let probe = Command::new("python3")
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .stdin(Stdio::null())
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => return true,
        // The traceback's last line names the missing module.
        Ok(out) => String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("python3 failed")
            .to_owned(),
        Err(e) => format!("python3 could not be run: {e}"),
    };
    assert!(
        !db::services_required(),
        "Python modules {modules:?} are required (CI is set): {why}"
    );
    eprintln!("skipping: Python modules {modules:?} are not importable: {why}");
    false
}
