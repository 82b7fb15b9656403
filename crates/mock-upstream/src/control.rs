//! The control API under `/_mock/`: stats, the request log, behaviour rules
//! and reset. Control requests are never counted, logged or subjected to
//! behaviours, so tests can always observe the mock.

use serde_json::{Value, json};

use crate::rules::RuleSpec;
use crate::server::State;

/// Answer one control request: `(status, JSON body)`.
pub(crate) fn handle(
    state: &State,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let sub = path.strip_prefix("/_mock").unwrap_or(path);
    match (method, sub) {
        ("GET", "/stats") => (200, to_json(&state.stats.snapshot())),
        ("GET", "/requests") => {
            let limit = crate::http1::query_param(query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(usize::MAX);
            (200, to_json(&state.log.last(limit)))
        }
        ("GET", "/rules") => (200, to_json(&state.rules.list())),
        ("POST", "/rules") => match serde_json::from_slice::<RuleSpec>(body) {
            Ok(spec) => (200, json!({"id": state.rules.add(spec)})),
            Err(e) => error(400, &format!("invalid rule: {e}")),
        },
        ("DELETE", "/rules") => {
            state.rules.clear();
            (200, json!({"cleared": true}))
        }
        ("POST", "/reset") => {
            state.rules.clear();
            state.stats.reset();
            state.log.clear();
            (200, json!({"reset": true}))
        }
        ("DELETE", rule) if rule.starts_with("/rules/") => {
            let id = rule.trim_start_matches("/rules/").parse::<u64>().ok();
            match id {
                Some(id) if state.rules.remove(id) => (200, json!({"deleted": id})),
                _ => error(
                    404,
                    &format!("no rule {}", rule.trim_start_matches("/rules/")),
                ),
            }
        }
        _ => error(404, &format!("unknown control endpoint: {method} {path}")),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn error(status: u16, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "code": null}}),
    )
}
