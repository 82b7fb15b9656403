//! What a 2xx body (or the first stream event) really is: the answer, an error object wearing a
//! success status, an HTML page from a proxy or a wrong base URL, or garbage.
//!
//! The reference accepted 200-with-error bodies on the non-stream path (spec §11.1 #12); every
//! 2xx body goes through [`inspect_json_body`] so both paths classify the same way.
//! Format-neutral: the error-object test covers the OpenAI, Anthropic, Gemini and vLLM shapes.

use serde_json::{Map, Value};
use switchyard_core::outcome::ErrorBody;

use crate::error_body::error_body_from_json;
use crate::shape::{JsonStr, Shape};

/// The verdict on a body that was expected to be JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyKind {
    /// A JSON document that is not an error object: the answer.
    Json(Value),
    /// A JSON error object (see [`is_error_object`]), parsed.
    ErrorObject(ErrorBody),
    /// An HTML page (see [`looks_like_html`]).
    Html,
    /// Not JSON at all (including an empty body).
    Malformed,
}

/// Classifies a body that should be JSON.
#[must_use]
pub fn inspect_json_body(raw: &[u8]) -> BodyKind {
    if looks_like_html(raw) {
        return BodyKind::Html;
    }
    match serde_json::from_slice::<Value>(raw) {
        Ok(value) if is_error_object(&value) => {
            BodyKind::ErrorObject(error_body_from_json(&value, raw))
        }
        Ok(value) => BodyKind::Json(value),
        Err(_) => BodyKind::Malformed,
    }
}

/// [`inspect_json_body`] for an answer relayed as it came: a plain answer object is
/// [`BodyKind::Json`] of only its top-level `id`, `usage` and `usageMetadata` — all the gateway
/// reads of such an answer — read without building the rest of its tree. Anything else (HTML,
/// an error object, not an object, one of those fields of an unexpected type) is inspected whole.
#[must_use]
pub fn inspect_relayed_body(raw: &[u8]) -> BodyKind {
    match answer_summary(raw) {
        Some(summary) => BodyKind::Json(summary),
        None => inspect_json_body(raw),
    }
}

/// The top-level fields of an answer that [`inspect_relayed_body`] keeps or checks.
#[derive(serde::Deserialize)]
struct AnswerView<'a> {
    #[serde(default)]
    error: Option<Shape>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    object: Option<JsonStr<'a>>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default, rename = "usageMetadata")]
    usage_metadata: Option<Value>,
}

fn answer_summary(raw: &[u8]) -> Option<Value> {
    // A derived struct also reads a JSON array, field by field: only objects may take this way
    // (a byte-order mark or HTML never starts with `{`).
    let start = raw.iter().position(|b| !b.is_ascii_whitespace())?;
    if raw[start] != b'{' {
        return None;
    }
    let view: AnswerView<'_> = serde_json::from_slice(raw).ok()?;
    if may_be_error(
        view.error,
        view.kind.as_ref().map(JsonStr::as_str),
        view.object.as_ref().map(JsonStr::as_str),
    ) {
        return None;
    }
    let mut summary = Map::new();
    for (name, value) in [
        ("id", view.id),
        ("usage", view.usage),
        ("usageMetadata", view.usage_metadata),
    ] {
        if let Some(value) = value {
            summary.insert(name.to_owned(), value);
        }
    }
    Some(Value::Object(summary))
}

/// For a typed view of an object, which reads the fields [`is_error_object`] looks at without
/// their contents: whether they may make it an error object (`error` present and not `null`,
/// `type` or `object` `"error"`). Such a body is for the JSON tree to decide.
pub(crate) fn may_be_error(error: Option<Shape>, kind: Option<&str>, object: Option<&str>) -> bool {
    error.is_some() || kind == Some("error") || object == Some("error")
}

/// True when the body, after leading whitespace (and a byte-order mark), starts with
/// `<!doctype` or `<html`, in any case: a proxy's error page or a web site behind a wrong base
/// URL, never an API answer.
#[must_use]
pub fn looks_like_html(raw: &[u8]) -> bool {
    let start = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let start = match start.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(pos) => &start[pos..],
        None => return false,
    };
    [&b"<!doctype"[..], &b"<html"[..]].iter().any(|prefix| {
        start
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    })
}

/// True when a parsed body is an error object rather than an answer: an object with a top-level
/// `error` that is neither `null` nor `false` (some servers always send `"error": null`), or
/// `"type": "error"` (Anthropic, OpenAI Responses events), or `"object": "error"` (vLLM); or an
/// array whose first element is one (Gemini's non-SSE stream).
#[must_use]
pub fn is_error_object(value: &Value) -> bool {
    match value {
        Value::Object(object) => {
            object
                .get("error")
                .is_some_and(|e| !matches!(e, Value::Null | Value::Bool(false)))
                || object.get("type").and_then(Value::as_str) == Some("error")
                || object.get("object").and_then(Value::as_str) == Some("error")
        }
        Value::Array(items) => items
            .first()
            .is_some_and(|first| first.is_object() && is_error_object(first)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn relayed_answers_summarised_read_as_inspected_whole() {
        use crate::convert::usage_from_response;
        use crate::dialect::Dialect;
        let answers = [
            (
                Dialect::Chat,
                r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":13,"prompt_tokens_details":{"cached_tokens":2}}}"#,
            ),
            (
                Dialect::Chat,
                r#"  {"choices":[],"usage":null,"error":null}"#,
            ),
            (
                Dialect::Responses,
                r#"{"id":"resp_1","object":"response","output":[],"usage":{"input_tokens":5,"output_tokens":7}}"#,
            ),
            (
                Dialect::Messages,
                r#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":1}}"#,
            ),
            (
                Dialect::Gemini,
                r#"{"candidates":[],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2}}"#,
            ),
        ];
        for (dialect, raw) in answers {
            let (BodyKind::Json(summary), BodyKind::Json(whole)) = (
                inspect_relayed_body(raw.as_bytes()),
                inspect_json_body(raw.as_bytes()),
            ) else {
                panic!("not an answer: {raw}");
            };
            assert!(summary.get("choices").is_none(), "{raw}");
            assert_eq!(
                usage_from_response(dialect, &summary),
                usage_from_response(dialect, &whole),
                "{raw}"
            );
            assert_eq!(summary.get("id"), whole.get("id"), "{raw}");
        }
        for raw in [
            r#"{"error":{"message":"busy","type":"server_error"}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
            r#"{"object":"error","message":"bad","code":400}"#,
            r#"{"error":false,"id":"x"}"#,
            r#"{"type":7}"#,
            r#"[{"error":{"message":"x"}}]"#,
            "[]",
            "<html><body>502</body></html>",
            "\u{feff}{}",
            "",
            "{",
        ] {
            assert_eq!(
                inspect_relayed_body(raw.as_bytes()),
                inspect_json_body(raw.as_bytes()),
                "{raw}"
            );
        }
    }

    #[test]
    fn html_detection() {
        for page in [
            "<!DOCTYPE html><html><head><title>Just a moment...</title>",
            "\r\n  \t<html>\r\n<head><title>502 Bad Gateway</title></head>",
            "<HTML><BODY>Forbidden</BODY></HTML>",
            "\u{feff}<!doctype html>",
            "<!DocType html>",
        ] {
            assert!(looks_like_html(page.as_bytes()), "{page:?}");
            assert_eq!(inspect_json_body(page.as_bytes()), BodyKind::Html);
        }
        for not_page in [
            "",
            "   ",
            "<htm",
            "<xml/>",
            r#"{"html":"<html>"}"#,
            "x<html>",
            "<!doc",
        ] {
            assert!(!looks_like_html(not_page.as_bytes()), "{not_page:?}");
        }
    }

    #[test]
    fn ordinary_answer_is_json() {
        let raw = br#"{"id":"chatcmpl-9","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"error":null}"#;
        match inspect_json_body(raw) {
            BodyKind::Json(value) => assert_eq!(value["id"], "chatcmpl-9"),
            other => panic!("expected Json, got {other:?}"),
        }
        assert_eq!(
            inspect_json_body(br#"{"ok":true,"error":false}"#),
            BodyKind::Json(json!({"ok": true, "error": false}))
        );
    }

    #[test]
    fn error_objects_in_a_2xx_body() {
        let cases: [(&[u8], &str); 5] = [
            (
                br#"{"error":{"message":"upstream overloaded","type":"server_error"}}"#,
                "upstream overloaded",
            ),
            (
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "Overloaded",
            ),
            (br#"{"error":"quota exhausted"}"#, "quota exhausted"),
            (
                br#"{"object":"error","message":"bad","type":"BadRequestError","code":400}"#,
                "bad",
            ),
            (
                br#"[{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}]"#,
                "Internal error encountered.",
            ),
        ];
        for (raw, message) in cases {
            match inspect_json_body(raw) {
                BodyKind::ErrorObject(body) => assert_eq!(body.message, message),
                other => panic!("expected ErrorObject for {raw:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed() {
        for raw in [&b""[..], b"data: {}", b"{\"a\":", b"\xFF\xFE"] {
            assert_eq!(inspect_json_body(raw), BodyKind::Malformed, "{raw:?}");
        }
    }

    #[test]
    fn error_object_test() {
        assert!(!is_error_object(&json!({"error": null})));
        assert!(is_error_object(&json!({"error": {}})));
        assert!(!is_error_object(&json!({"type": "message"})));
        assert!(!is_error_object(&json!([])));
        assert!(!is_error_object(&json!(["error"])));
        assert!(!is_error_object(&json!("error")));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = inspect_json_body(&bytes);
        }
    }
}
