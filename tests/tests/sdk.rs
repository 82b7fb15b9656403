//! The official Python SDKs, unchanged, against the real gateway: `openai` (Chat Completions and
//! the Responses API), `anthropic` (Messages) and `google-genai` (Gemini), each asking for one
//! response and streaming (through the SDK's accumulating helper and, where the SDK has one, the
//! plain `stream=True` call), for a text answer and for a function call, served by a mock upstream
//! of the same format and of each other format (the gateway converting both ways). Each SDK must
//! also raise its own not-found error for an unknown model and its authentication error for a
//! wrong key (which proves the gateway's error envelopes parse), and list and look up models;
//! the Anthropic SDK counts tokens.
//!
//! 1. One gateway (SQLite), one mock upstream, one provider per upstream format, each serving its
//!    own model (`m-openai` only by the OpenAI chat endpoint, `m-claude` only by the Anthropic
//!    one…), so a case reaches exactly the upstream format it names; the global
//!    `format_conversion` setting is on.
//! 2. `python3 tests/sdk/client_<sdk>.py` runs the cases of one SDK (one process per SDK, the
//!    four in parallel: importing an SDK costs more than its calls), the cases in the environment
//!    (see `tests/sdk/sdk_common.py`). For each case the script makes the call, checks what the
//!    SDK returned and prints a JSON summary line; it exits non-zero when any case failed.
//! 3. Here: the summary against what the mock sent (the text or the function call, the finish
//!    reason, the tokens) and the gateway's record of the request (`completed`, the same tokens,
//!    the upstream format that served it). Every case is checked before the test fails, and the
//!    pass/fail matrix is printed.
//!
//! Without Python or the three SDKs the test says so and passes, unless `CI` is set.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use switchyard_tests::{
    Gateway, KeySpec, Mock, ProviderSpec, add_model, add_provider, eventually, gateway_key,
    put_setting, python_modules, send, sqlite_gateway,
};

/// An upstream format the mock serves, with the provider and the model that reach only it.
#[derive(Debug)]
struct Upstream {
    /// Short name in the matrix.
    name: &'static str,
    /// The endpoint's `api_format`.
    api_format: &'static str,
    /// The model served only by this format's provider (also its upstream model name, which the
    /// mock repeats in its reply).
    model: &'static str,
}

const UPSTREAMS: [Upstream; 4] = [
    Upstream {
        name: "openai",
        api_format: "OPENAI",
        model: "m-openai",
    },
    Upstream {
        name: "responses",
        api_format: "OPENAI_CLI",
        model: "m-responses",
    },
    Upstream {
        name: "claude",
        api_format: "CLAUDE",
        model: "m-claude",
    },
    Upstream {
        name: "gemini",
        api_format: "GEMINI",
        model: "m-gemini",
    },
];

/// A client SDK and the front door it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sdk {
    /// `openai`: `chat.completions.create` / `.stream`.
    Chat,
    /// `openai`: `responses.create` / `.stream`.
    Responses,
    /// `anthropic`: `messages.create` / `.stream`.
    Anthropic,
    /// `google-genai`: `models.generate_content` / `generate_content_stream`.
    Gemini,
}

const SDKS: [Sdk; 4] = [Sdk::Chat, Sdk::Responses, Sdk::Anthropic, Sdk::Gemini];

impl Sdk {
    fn label(self) -> &'static str {
        match self {
            Sdk::Chat => "openai chat",
            Sdk::Responses => "openai responses",
            Sdk::Anthropic => "anthropic",
            Sdk::Gemini => "google-genai",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Sdk::Chat | Sdk::Responses => "client_openai.py",
            Sdk::Anthropic => "client_anthropic.py",
            Sdk::Gemini => "client_gemini.py",
        }
    }

    /// The front door's format, as an endpoint names it (to tell same-format cases apart).
    fn api_format(self) -> &'static str {
        match self {
            Sdk::Chat => "OPENAI",
            Sdk::Responses => "OPENAI_CLI",
            Sdk::Anthropic => "CLAUDE",
            Sdk::Gemini => "GEMINI",
        }
    }

    /// The stream modes the SDK has: `0` one response, `1` the accumulating helper, `raw`
    /// `stream=True` read event by event (google-genai has one way to stream).
    fn streams(self) -> &'static [&'static str] {
        match self {
            Sdk::Gemini => &["0", "1"],
            _ => &["0", "1", "raw"],
        }
    }

    /// The exception class, HTTP status and parsed error code (or type, or status) the SDK must
    /// report for an error case.
    fn expected_error(self, kind: Kind) -> (&'static str, u16, &'static str) {
        match (self, kind) {
            (Sdk::Chat | Sdk::Responses, Kind::NotFound) => {
                ("openai.NotFoundError", 404, "model_not_found")
            }
            (Sdk::Chat | Sdk::Responses, _) => {
                ("openai.AuthenticationError", 401, "invalid_api_key")
            }
            (Sdk::Anthropic, Kind::NotFound) => ("anthropic.NotFoundError", 404, "not_found_error"),
            (Sdk::Anthropic, _) => ("anthropic.AuthenticationError", 401, "authentication_error"),
            (Sdk::Gemini, Kind::NotFound) => ("errors.ClientError", 404, "NOT_FOUND"),
            (Sdk::Gemini, _) => ("errors.ClientError", 401, "UNAUTHENTICATED"),
        }
    }
}

/// What a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A served model: a text answer.
    Ok,
    /// A served model, offered a function the mock calls: the call.
    Tool,
    /// An unknown model: the SDK's 404 error.
    NotFound,
    /// A wrong key: the SDK's 401 error.
    Unauthorized,
    /// The SDK's model list and lookup.
    Models,
    /// Anthropic's token counter.
    CountTokens,
}

impl Kind {
    fn env(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Tool => "tool",
            Kind::NotFound => "not_found",
            Kind::Unauthorized => "unauthorized",
            Kind::Models => "models",
            Kind::CountTokens => "count_tokens",
        }
    }
}

/// The prompt of text cases (`PROMPT` in `sdk_common.py`).
const PROMPT: &str = "Say hello.";
/// The function of tool cases (`TOOL_NAME` in `sdk_common.py`).
const TOOL_NAME: &str = "get_weather";
/// A model no provider serves.
const UNKNOWN_MODEL: &str = "no-such-model";

/// The arguments the mock calls a function with (`routes::plan` in mock-upstream).
fn mock_tool_arguments() -> Value {
    json!({"location": "Paris, France", "unit": "celsius"})
}

/// One case: one call (or error, or listing) through one SDK.
#[derive(Debug)]
struct Case {
    sdk: Sdk,
    /// The upstream format that must serve it (`Ok` and `Tool`).
    upstream: Option<&'static Upstream>,
    model: &'static str,
    stream: &'static str,
    kind: Kind,
}

impl Case {
    /// A call served by `upstream`.
    fn served(sdk: Sdk, upstream: &'static Upstream, stream: &'static str, kind: Kind) -> Case {
        Case {
            sdk,
            upstream: Some(upstream),
            model: upstream.model,
            stream,
            kind,
        }
    }

    /// A case no upstream answers.
    fn gateway(sdk: Sdk, model: &'static str, stream: &'static str, kind: Kind) -> Case {
        Case {
            sdk,
            upstream: None,
            model,
            stream,
            kind,
        }
    }

    fn name(&self) -> String {
        let target = match self.upstream {
            Some(u) if u.api_format == self.sdk.api_format() => {
                format!("{} upstream (same format)", u.name)
            }
            Some(u) => format!("{} upstream (converted)", u.name),
            None => self.model.to_owned(),
        };
        format!(
            "{} {} stream={} → {target}",
            self.sdk.label(),
            self.kind.env(),
            self.stream
        )
    }
}

/// What a case's Python run left behind.
#[derive(Debug)]
struct Ran {
    /// The process's exit code (shared by the cases of one process).
    exit: Option<i32>,
    /// The case's summary line (`Null` when the process printed none for it).
    summary: Value,
    /// The process's stderr (every traceback of its cases).
    stderr: String,
}

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk")
}

/// Runs the cases of one SDK in one `python3` process (the imports cost more than the calls);
/// one `Ran` per case, in order.
fn run_script(sdk: Sdk, cases: &[&Case], base_url: &str, key: &str) -> Vec<Ran> {
    let specs: Vec<Value> = cases
        .iter()
        .map(|c| json!({"model": c.model, "stream": c.stream, "case": c.kind.env()}))
        .collect();
    let mut cmd = Command::new("python3");
    cmd.arg(sdk_dir().join(sdk.script()))
        .current_dir(sdk_dir())
        .stdin(Stdio::null());
    // Nothing from the caller's environment may redirect the SDKs (their own base URL and key
    // variables, Vertex AI mode) or send 127.0.0.1 through a proxy.
    for (name, _) in std::env::vars() {
        let upper = name.to_ascii_uppercase();
        if ["OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_"]
            .iter()
            .any(|p| upper.starts_with(p))
            || upper.ends_with("_PROXY")
        {
            cmd.env_remove(&name);
        }
    }
    cmd.env("SWITCHYARD_URL", base_url)
        .env("SWITCHYARD_KEY", key)
        .env("SDK_CASES", Value::Array(specs).to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    match sdk {
        Sdk::Chat => {
            cmd.env("SDK_API", "chat");
        }
        Sdk::Responses => {
            cmd.env("SDK_API", "responses");
        }
        Sdk::Anthropic | Sdk::Gemini => {}
    }
    let out = cmd.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut summaries = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok());
    cases
        .iter()
        .map(|_| Ran {
            exit: out.status.code(),
            summary: summaries.next().unwrap_or(Value::Null),
            stderr: if stdout.trim().is_empty() {
                format!("{stderr}\n(nothing on stdout)")
            } else {
                stderr.clone()
            },
        })
        .collect()
}

/// Runs every case, one process per SDK, the processes in parallel; results in case order.
async fn run_all(cases: Vec<Case>, base_url: String, key: String) -> Vec<(Case, Ran)> {
    tokio::task::spawn_blocking(move || {
        let mut runs: Vec<Option<Ran>> = cases.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = SDKS
                .iter()
                .map(|&sdk| {
                    let (indices, mine): (Vec<usize>, Vec<&Case>) = cases
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.sdk == sdk)
                        .unzip();
                    let (base_url, key) = (&base_url, &key);
                    scope.spawn(move || (indices, run_script(sdk, &mine, base_url, key)))
                })
                .collect();
            for worker in workers {
                let (indices, ran) = worker.join().expect("a Python runner thread");
                for (i, r) in indices.into_iter().zip(ran) {
                    runs[i] = Some(r);
                }
            }
        });
        cases
            .into_iter()
            .zip(runs)
            .map(|(case, ran)| (case, ran.expect("every case ran")))
            .collect()
    })
    .await
    .expect("the Python runs")
}

/// The mock's reply text for a model (`routes::plan` in mock-upstream).
fn mock_text(model: &str) -> String {
    format!("Hello from the mock upstream! This is {model} answering your request.")
}

/// The mock's token count of a text: a token per 4 bytes, at least 1.
fn mock_tokens(text: &str) -> u64 {
    u64::try_from(text.len() / 4).unwrap_or(u64::MAX).max(1)
}

/// The last lines of a traceback: enough to see what failed.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a case failed in Python (its checks, or the SDK raised), if it did.
fn run_failure(case: &Case, ran: &Ran) -> Option<String> {
    let s = &ran.summary;
    if s.is_null() {
        return Some(format!(
            "no summary (python exit {:?}); stderr (tail):\n{}",
            ran.exit,
            tail(&ran.stderr, 15)
        ));
    }
    if s["model"] != case.model || s["stream"] != case.stream || s["case"] != case.kind.env() {
        return Some(format!("the summary is another case's: {s}"));
    }
    if s["ok"] == true {
        return None;
    }
    let e = &s["error"];
    let traceback: Vec<&str> = e["traceback"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Some(format!(
        "python: {} (HTTP {}): {}\n  gateway answered: {}\n  traceback (tail): {}",
        e["class"].as_str().unwrap_or("?"),
        e["http_status"],
        e["message"].as_str().unwrap_or("?"),
        e["body"].as_str().unwrap_or("(no body)"),
        tail(&traceback.join("\n"), 2).trim()
    ))
}

/// The gateway's trace of a request once its usage row is final (`None` after 10 s).
async fn settled_trace(gw: &Gateway, request_id: &str) -> Option<Value> {
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
}

/// What the SDK must have reported for a served case, after the mock's answer: the finish
/// reason, the output tokens, and for a text case the text.
fn expected_answer(case: &Case, upstream: &Upstream) -> (&'static str, u64, Option<String>) {
    if case.kind == Kind::Tool {
        let finish = match case.sdk {
            Sdk::Chat => "tool_calls",
            Sdk::Responses => "completed",
            Sdk::Anthropic => "tool_use",
            Sdk::Gemini => "STOP",
        };
        let tokens = mock_tokens(&format!("{TOOL_NAME}{}", mock_tool_arguments()));
        return (finish, tokens, None);
    }
    let finish = match case.sdk {
        Sdk::Chat => "stop",
        Sdk::Responses => "completed",
        Sdk::Anthropic => "end_turn",
        Sdk::Gemini => "STOP",
    };
    let text = mock_text(upstream.model);
    (finish, mock_tokens(&text), Some(text))
}

/// The problems of a served case: the SDK's result against what the mock sent, and the
/// gateway's record of the request.
async fn check_served(gw: &Gateway, case: &Case, ran: &Ran) -> Vec<String> {
    let upstream = case.upstream.expect("a served case has an upstream");
    let s = &ran.summary;
    let mut problems = Vec::new();
    let (finish, output_tokens, text) = expected_answer(case, upstream);
    match &text {
        Some(text) if s["text"] != text.as_str() => {
            problems.push(format!("text {} != the mock's {text:?}", s["text"]));
        }
        Some(_) => {}
        None => {
            if s["tool_name"] != TOOL_NAME || s["tool_arguments"] != mock_tool_arguments() {
                problems.push(format!(
                    "called {} with {}, the mock called {TOOL_NAME} with {}",
                    s["tool_name"],
                    s["tool_arguments"],
                    mock_tool_arguments()
                ));
            }
        }
    }
    if s["finish_reason"] != finish {
        problems.push(format!(
            "finish reason {}, expected {finish}",
            s["finish_reason"]
        ));
    }
    if s["output_tokens"] != output_tokens {
        problems.push(format!(
            "output tokens {} != the mock's {output_tokens}",
            s["output_tokens"]
        ));
    }
    if s["input_tokens"] != mock_tokens(PROMPT) && case.kind == Kind::Ok {
        problems.push(format!(
            "input tokens {} != the mock's {}",
            s["input_tokens"],
            mock_tokens(PROMPT)
        ));
    }
    let Some(id) = s["request_id"].as_str() else {
        problems.push(format!("no x-request-id seen (summary {s})"));
        return problems;
    };
    let Some(trace) = settled_trace(gw, id).await else {
        problems.push(format!("no settled record of request {id}"));
        return problems;
    };
    let usage = &trace["usage"];
    let record = |what: &str| format!("record of {id}: {what} (usage {usage})");
    if usage["status"] != "completed" || usage["status_code"] != 200 {
        problems.push(record(&format!(
            "status {} {}, error {}",
            usage["status"], usage["status_code"], usage["error_message"]
        )));
    }
    if usage["is_stream"] != (case.stream != "0") {
        problems.push(record("is_stream is wrong"));
    }
    if usage["input_tokens"] != s["input_tokens"] {
        problems.push(record("input tokens differ from the SDK's"));
    }
    if usage["output_tokens"] != output_tokens {
        problems.push(record(&format!("output tokens != {output_tokens}")));
    }
    let served = trace["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == "success")
        .map(|a| a["api_format"].clone())
        .collect::<Vec<_>>();
    if served != [json!(upstream.api_format)] {
        problems.push(format!(
            "record of {id}: served by {served:?}, expected one {} attempt; attempts {}",
            upstream.api_format, trace["attempts"]
        ));
    }
    problems
}

/// The problems of a model-list or token-count case.
fn check_gateway_answer(case: &Case, ran: &Ran) -> Vec<String> {
    let s = &ran.summary;
    let mut problems = Vec::new();
    match case.kind {
        Kind::Models => {
            let mut all: Vec<&str> = UPSTREAMS.iter().map(|u| u.model).collect();
            all.sort_unstable();
            if s["models"] != json!(all) {
                problems.push(format!("listed {}, expected {all:?}", s["models"]));
            }
            if s["retrieved"] != case.model {
                problems.push(format!("looked up {}", s["retrieved"]));
            }
        }
        Kind::CountTokens => {
            // The mock counts the prompt's text the same way for a count as for a call.
            if s["input_tokens"] != mock_tokens(PROMPT) {
                problems.push(format!(
                    "counted {} tokens, the mock's count is {}",
                    s["input_tokens"],
                    mock_tokens(PROMPT)
                ));
            }
        }
        _ => problems.push(format!("not a gateway-answered case: {case:?}")),
    }
    problems
}

/// The problems of an error case: the SDK's exception, status and parsed code.
fn check_error(case: &Case, ran: &Ran) -> Vec<String> {
    let (class, status, code) = case.sdk.expected_error(case.kind);
    let s = &ran.summary;
    let mut problems = Vec::new();
    if !s["error_class"]
        .as_str()
        .is_some_and(|c| c.ends_with(class))
    {
        problems.push(format!("raised {}, expected {class}", s["error_class"]));
    }
    if s["status"] != status {
        problems.push(format!("status {}, expected {status}", s["status"]));
    }
    if s["error_code"] != code {
        problems.push(format!("error code {}, expected {code}", s["error_code"]));
    }
    problems
}

/// The matrix of served cases: one row per SDK, stream mode and kind, one column per upstream
/// format, then the error cases; the other cases below it.
fn matrix(results: &[(Case, Result<(), String>)]) -> String {
    let verdict = |r: &Result<(), String>| if r.is_ok() { "ok" } else { "FAIL" };
    let mut out = format!("{:<32}", "sdk / case / stream");
    for u in &UPSTREAMS {
        out.push_str(&format!("{:<11}", u.name));
    }
    out.push_str("not_found  unauthorized\n");
    for sdk in SDKS {
        for kind in [Kind::Ok, Kind::Tool] {
            for &stream in sdk.streams() {
                let row = format!("{} {} {stream}", sdk.label(), kind.env());
                out.push_str(&format!("{row:<32}"));
                let cell = |pick: &dyn Fn(&Case) -> bool| {
                    results
                        .iter()
                        .find(|(c, _)| c.sdk == sdk && c.stream == stream && pick(c))
                        .map_or("-", |(_, r)| verdict(r))
                };
                for u in &UPSTREAMS {
                    let cell =
                        cell(&|c| c.kind == kind && c.upstream.is_some_and(|cu| cu.name == u.name));
                    out.push_str(&format!("{cell:<11}"));
                }
                let errors = |k: Kind| cell(&|c| kind == Kind::Ok && c.kind == k);
                out.push_str(&format!(
                    "{:<11}{}\n",
                    errors(Kind::NotFound),
                    errors(Kind::Unauthorized)
                ));
            }
        }
    }
    for (case, result) in results {
        if matches!(case.kind, Kind::Models | Kind::CountTokens) {
            out.push_str(&format!(
                "{} {} ({}): {}\n",
                case.sdk.label(),
                case.kind.env(),
                case.model,
                verdict(result)
            ));
        }
    }
    out
}

/// Every case: each SDK × stream mode × upstream format, for text and for a tool call; the
/// two errors in each stream mode but `raw` (they are answered before any stream starts); the
/// model lists (the Responses API has none of its own) and Anthropic's token counter.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for sdk in SDKS {
        for &stream in sdk.streams() {
            for kind in [Kind::Ok, Kind::Tool] {
                cases.extend(UPSTREAMS.iter().map(|u| Case::served(sdk, u, stream, kind)));
            }
            if stream != "raw" {
                for kind in [Kind::NotFound, Kind::Unauthorized] {
                    cases.push(Case::gateway(sdk, UNKNOWN_MODEL, stream, kind));
                }
            }
        }
        if sdk != Sdk::Responses {
            cases.push(Case::gateway(sdk, "m-claude", "0", Kind::Models));
        }
    }
    // Counted by an Anthropic-format upstream, the only kind that can.
    cases.push(Case::gateway(
        Sdk::Anthropic,
        "m-claude",
        "0",
        Kind::CountTokens,
    ));
    cases
}

#[tokio::test]
async fn the_official_python_sdks_work_against_every_front_door_and_upstream_format() {
    if !python_modules(&["openai", "anthropic", "google.genai"]) {
        return;
    }
    let (gw, _db) = sqlite_gateway(&[]).await;
    let mock = Mock::start("sdk");
    for upstream in &UPSTREAMS {
        let spec = ProviderSpec::new(&format!("up-{}", upstream.name), 1, mock.url())
            .endpoint(json!({"api_format": upstream.api_format, "max_retries": 0}))
            .key(KeySpec::new(
                &format!("key-{}", upstream.name),
                &format!("sk-sdk-{}-0123456789", upstream.name),
            ));
        let (provider, _) = add_provider(&gw, &spec).await;
        add_model(&gw, upstream.model, &[&provider]).await;
    }
    put_setting(&gw, "format_conversion", json!(true)).await;
    let key = gateway_key(&gw).await;

    let started = std::time::Instant::now();
    let runs = run_all(cases(), gw.url(""), key).await;
    eprintln!(
        "{} SDK runs in {:.1} s",
        runs.len(),
        started.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    let mut summaries = Vec::new();
    for (case, ran) in runs {
        let problems = match run_failure(&case, &ran) {
            Some(failure) => vec![failure],
            None => match case.kind {
                Kind::Ok | Kind::Tool => check_served(&gw, &case, &ran).await,
                Kind::NotFound | Kind::Unauthorized => check_error(&case, &ran),
                Kind::Models | Kind::CountTokens => check_gateway_answer(&case, &ran),
            },
        };
        let result = if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n  "))
        };
        results.push((case, result));
        summaries.push(ran.summary);
    }
    eprintln!("\n{}", matrix(&results));
    let mut failed_ids = Vec::new();
    let failures: Vec<String> = results
        .iter()
        .zip(&summaries)
        .filter_map(|((case, r), summary)| {
            let e = r.as_ref().err()?;
            failed_ids.extend(summary["request_id"].as_str().map(str::to_owned));
            Some(format!("- {}:\n  {e}", case.name()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} SDK cases failed:\n{}\n\ngateway warnings and the failed requests' log lines:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n"),
        gateway_log(&gw, &failed_ids)
    );
}

/// The gateway's WARN and ERROR lines and the lines naming one of `request_ids` (the debug log
/// of a whole run is too long to read), the last 60.
fn gateway_log(gw: &Gateway, request_ids: &[String]) -> String {
    let logs = gw.process.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| {
            l.contains(" WARN ")
                || l.contains(" ERROR ")
                || request_ids.iter().any(|id| l.contains(id.as_str()))
        })
        .collect();
    tail(&lines.join("\n"), 60)
}
