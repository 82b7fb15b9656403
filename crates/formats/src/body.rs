//! What a 2xx body (or the first stream event) really is: the answer, an error object wearing a
//! success status, an HTML page from a proxy or a wrong base URL, or garbage.
//!
//! The reference accepted 200-with-error bodies on the non-stream path (spec §11.1 #12); every
//! 2xx body goes through [`inspect_json_body`] so both paths classify the same way.
//! Format-neutral: the error-object test covers the OpenAI, Anthropic, Gemini and vLLM shapes.

use serde_json::Value;
use switchyard_core::outcome::ErrorBody;

use crate::error_body::error_body_from_json;

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
