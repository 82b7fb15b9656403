#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code"
)]
//! Golden tests of cross-format conversion, for every ordered pair of distinct dialects and each
//! direction the gateway uses it in:
//!
//! - `golden/request/{client}_to_{upstream}[_variant].json`: a client body in the first dialect,
//!   parsed by that dialect's `parse_request` (Gemini: the model and the action come from the
//!   fixture's `path`, as from the URL), decoded into the neutral model and encoded for an
//!   upstream of the second dialect named `upstream-model`.
//! - `golden/response/{upstream}_to_{client}.json`: a whole upstream answer in the first dialect,
//!   converted with [`convert::convert_response`] for a client of the second.
//! - `golden/stream/{upstream}_to_{client}.json`: a recorded-style upstream SSE stream in the first
//!   dialect (its raw lines, joined with `\n`), parsed with [`SseParser`], pushed event by event
//!   through [`StreamConverter`] (`include_usage` on) and finished; the frames are parsed back and
//!   compared as a list of `{event, data}` (`data` as JSON when it is JSON).
//!
//! Each fixture holds its `input` and the `expected` output; a conversion that is refused is
//! recorded as `{"unsupported": "<the refusal>"}`. A fixture whose expected output is known to be
//! wrong for the target provider says so in `known_issue`: it records the codec's current output,
//! so that the suite stays green and a fix shows up as a reviewed change of that fixture.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite every `expected` from the current output (`note`,
//! `known_issue`, `path` and `input` are kept), then review the diff: a golden file is only as
//! good as the reading it got.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Map, Value, json};
use switchyard_formats::anthropic::messages;
use switchyard_formats::convert::{self, StreamConverter};
use switchyard_formats::gemini::generate;
use switchyard_formats::openai::{chat, responses};
use switchyard_formats::{ClientRequest, Dialect, SseEvent, SseParser};

/// The upstream model name every converted request is encoded with.
const UPSTREAM_MODEL: &str = "upstream-model";

/// The fixture-name spelling of a dialect.
fn slug(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Chat => "chat",
        Dialect::Responses => "responses",
        Dialect::Messages => "messages",
        Dialect::Gemini => "gemini",
    }
}

fn dialect_of(slug: &str) -> Dialect {
    Dialect::ALL
        .into_iter()
        .find(|dialect| self::slug(*dialect) == slug)
        .unwrap_or_else(|| panic!("unknown dialect {slug:?} in a fixture name"))
}

/// `chat_to_gemini_sampling` → (Chat, Gemini).
fn pair_of(name: &str) -> (Dialect, Dialect) {
    let (from, rest) = name
        .split_once("_to_")
        .unwrap_or_else(|| panic!("fixture name {name:?} is not {{from}}_to_{{to}}[_variant]"));
    let to = Dialect::ALL
        .into_iter()
        .map(slug)
        .find(|slug| rest == *slug || rest.starts_with(&format!("{slug}_")))
        .unwrap_or_else(|| panic!("fixture name {name:?} names no target dialect"));
    (dialect_of(from), dialect_of(to))
}

fn golden_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(kind)
}

fn fixture_path(kind: &str, name: &str) -> PathBuf {
    golden_dir(kind).join(format!("{name}.json"))
}

fn load(kind: &str, name: &str) -> Map<String, Value> {
    let path = fixture_path(kind, name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Value::Object(fixture)) => fixture,
        Ok(_) => panic!("{} is not a JSON object", path.display()),
        Err(e) => panic!("{} is not JSON: {e}", path.display()),
    }
}

fn update_requested() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1")
}

/// Compares `actual` with the fixture's `expected`, or rewrites `expected` under `UPDATE_GOLDEN=1`.
fn check(kind: &str, name: &str, fixture: &Map<String, Value>, actual: &Value) {
    let path = fixture_path(kind, name);
    if update_requested() {
        std::fs::write(&path, render(fixture, actual))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let expected = fixture.get("expected").unwrap_or(&Value::Null);
    assert!(
        !expected.is_null(),
        "{} has no expected output yet: run with UPDATE_GOLDEN=1 and review it",
        path.display()
    );
    if expected != actual {
        panic!(
            "{kind} {name}: output differs from {} at {}\n--- actual ---\n{}\n\
             (run with UPDATE_GOLDEN=1 to accept the new output after reviewing it)",
            path.display(),
            first_difference(expected, actual, "$").unwrap_or_default(),
            serde_json::to_string_pretty(actual).expect("JSON"),
        );
    }
}

/// The fixture file: `note`, `known_issue`, `path`, `input` as they were, then `expected`, in
/// that order.
fn render(fixture: &Map<String, Value>, expected: &Value) -> String {
    let mut out = String::from("{\n");
    let mut fields: Vec<(&str, &Value)> = ["note", "known_issue", "path", "input"]
        .into_iter()
        .filter_map(|key| fixture.get(key).map(|value| (key, value)))
        .collect();
    fields.push(("expected", expected));
    for (i, (key, value)) in fields.iter().enumerate() {
        let pretty = serde_json::to_string_pretty(value).expect("JSON");
        let comma = if i + 1 < fields.len() { "," } else { "" };
        writeln!(out, "  {key:?}: {}{comma}", pretty.replace('\n', "\n  ")).expect("String");
    }
    out.push_str("}\n");
    out
}

/// Where two values first differ, as a JSON path with both sides.
fn first_difference(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            keys.into_iter().find_map(|key| {
                let (e, a) = (e.get(key), a.get(key));
                match (e, a) {
                    (Some(e), Some(a)) => first_difference(e, a, &format!("{path}.{key}")),
                    _ => Some(format!("{path}.{key}: expected {e:?}, actual {a:?}")),
                }
            })
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (e, a))| first_difference(e, a, &format!("{path}[{i}]"))),
        _ if expected == actual => None,
        _ => Some(format!("{path}: expected {expected}, actual {actual}")),
    }
}

/// A refusal as it is recorded in a fixture.
fn refused(what: &impl std::fmt::Display) -> Value {
    json!({ "unsupported": what.to_string() })
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("conversion output is JSON")
}

// ---------------------------------------------------------------------------------------------
// The three directions.

/// The client's body through its dialect's front door, as the HTTP layer would do it.
fn parse_client(dialect: Dialect, fixture: &Map<String, Value>) -> ClientRequest {
    let raw = serde_json::to_vec(&fixture["input"]).expect("JSON");
    let parsed = match dialect {
        Dialect::Chat => chat::parse_request(raw.clone()),
        Dialect::Responses => responses::parse_request(raw.clone()),
        Dialect::Messages => messages::parse_request(raw.clone()),
        Dialect::Gemini => {
            let path = fixture
                .get("path")
                .and_then(Value::as_str)
                .expect("a Gemini request fixture names its URL path");
            let (model, stream) = generate::parse_path(path).expect("a generation path");
            generate::parse_request(raw.clone(), &model, stream)
        }
    };
    parsed.unwrap_or_else(|e| panic!("the {dialect} front door rejects the input: {e}"))
}

fn request_output(from: Dialect, to: Dialect, fixture: &Map<String, Value>) -> Value {
    let client = parse_client(from, fixture);
    assert_eq!(client.dialect, from);
    match convert::decode_request(&client)
        .and_then(|neutral| convert::encode_request(&neutral, to, UPSTREAM_MODEL))
    {
        Ok(body) => json_of(&body),
        Err(refusal) => refused(&refusal),
    }
}

fn response_output(from: Dialect, to: Dialect, fixture: &Map<String, Value>) -> Value {
    match convert::convert_response(from, to, &fixture["input"], 0) {
        Ok(body) => json_of(&body),
        Err(refusal) => refused(&refusal),
    }
}

/// The raw stream: a string, or its lines (joined with `\n`, which keeps fixtures readable).
fn raw_stream(input: &Value) -> String {
    match input {
        Value::String(text) => text.clone(),
        Value::Array(lines) => {
            let lines: Vec<&str> = lines
                .iter()
                .map(|line| line.as_str().expect("stream lines are strings"))
                .collect();
            let mut text = lines.join("\n");
            text.push('\n');
            text
        }
        other => panic!("a stream input is a string or a list of lines, not {other}"),
    }
}

fn parse_sse(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = parser.push(bytes);
    events.extend(parser.finish());
    assert_eq!(parser.pending_bytes(), 0);
    assert_eq!(parser.oversized_events(), 0);
    events
}

fn stream_output(from: Dialect, to: Dialect, fixture: &Map<String, Value>) -> Value {
    let upstream = parse_sse(raw_stream(&fixture["input"]).as_bytes());
    assert!(!upstream.is_empty(), "the input stream has no events");
    let mut converter = StreamConverter::new(from, to, true, 0);
    let mut frames = Vec::new();
    for event in &upstream {
        frames.extend(converter.push(event));
    }
    frames.extend(converter.finish());
    assert!(converter.finish().is_empty(), "finish() must be idempotent");

    let mut out = Vec::new();
    let mut whole = Vec::new();
    for frame in &frames {
        whole.extend_from_slice(frame);
        let events = parse_sse(frame);
        let [event] = events.as_slice() else {
            panic!(
                "a frame must hold exactly one event, not {}: {:?}",
                events.len(),
                String::from_utf8_lossy(frame)
            );
        };
        let data =
            serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
        let mut item = Map::new();
        if let Some(name) = &event.event {
            item.insert("event".into(), json!(name));
        }
        item.insert("data".into(), data);
        out.push(Value::Object(item));
    }
    // The frames concatenated are the same events: nothing leaks from one frame into the next.
    let again: Vec<(Option<String>, String)> = parse_sse(&whole)
        .into_iter()
        .map(|event| (event.event, event.data))
        .collect();
    let each: Vec<(Option<String>, String)> = frames
        .iter()
        .flat_map(|frame| parse_sse(frame))
        .map(|event| (event.event, event.data))
        .collect();
    assert_eq!(again, each);
    Value::Array(out)
}

fn run(kind: &str, name: &str) {
    let (from, to) = pair_of(name);
    assert_ne!(from, to, "{name}: a conversion is between two dialects");
    let fixture = load(kind, name);
    let actual = match kind {
        "request" => request_output(from, to, &fixture),
        "response" => response_output(from, to, &fixture),
        "stream" => stream_output(from, to, &fixture),
        other => panic!("unknown fixture kind {other}"),
    };
    check(kind, name, &fixture, &actual);
}

// ---------------------------------------------------------------------------------------------
// The cases: one test per fixture.

macro_rules! golden {
    ($kind:ident: $($name:ident),+ $(,)?) => {
        mod $kind {
            /// Every fixture of this kind, by name.
            pub(super) const NAMES: &[&str] = &[$(stringify!($name)),+];
            $(
                #[test]
                fn $name() {
                    super::run(stringify!($kind), stringify!($name));
                }
            )+
        }
    };
}

golden!(request:
    chat_to_responses, chat_to_messages, chat_to_gemini,
    responses_to_chat, responses_to_messages, responses_to_gemini,
    messages_to_chat, messages_to_responses, messages_to_gemini,
    gemini_to_chat, gemini_to_responses, gemini_to_messages,
    chat_to_responses_sampling, chat_to_messages_sampling, chat_to_gemini_sampling,
    responses_to_chat_sampling, responses_to_messages_sampling, responses_to_gemini_sampling,
    messages_to_chat_sampling, messages_to_responses_sampling, messages_to_gemini_sampling,
    gemini_to_chat_sampling, gemini_to_responses_sampling, gemini_to_messages_sampling,
    chat_to_responses_stop, messages_to_chat_top_k, chat_to_messages_temperature,
    chat_to_messages_budget,
);

golden!(response:
    chat_to_responses, chat_to_messages, chat_to_gemini,
    responses_to_chat, responses_to_messages, responses_to_gemini,
    messages_to_chat, messages_to_responses, messages_to_gemini,
    gemini_to_chat, gemini_to_responses, gemini_to_messages,
);

golden!(stream:
    chat_to_responses, chat_to_messages, chat_to_gemini,
    responses_to_chat, responses_to_messages, responses_to_gemini,
    messages_to_chat, messages_to_responses, messages_to_gemini,
    gemini_to_chat, gemini_to_responses, gemini_to_messages,
);

/// Every ordered pair of distinct dialects has a fixture of each kind, and every fixture on disk
/// is run by a test above (a fixture nobody runs would rot silently).
#[test]
fn every_pair_is_covered_and_every_fixture_is_run() {
    for (kind, names) in [
        ("request", request::NAMES),
        ("response", response::NAMES),
        ("stream", stream::NAMES),
    ] {
        let listed: BTreeSet<String> = names.iter().map(|name| (*name).to_owned()).collect();
        for from in Dialect::ALL {
            for to in Dialect::ALL.into_iter().filter(|to| *to != from) {
                let name = format!("{}_to_{}", slug(from), slug(to));
                assert!(listed.contains(&name), "no {kind} case {name}");
            }
        }
        let on_disk: BTreeSet<String> = std::fs::read_dir(golden_dir(kind))
            .expect("the golden directory exists")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| {
                path.file_stem()
                    .and_then(|stem| stem.to_str())
                    .expect("UTF-8 file name")
                    .to_owned()
            })
            .collect();
        assert_eq!(on_disk, listed, "{kind} fixtures on disk vs. tests");
    }
}
