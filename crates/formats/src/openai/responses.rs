//! The OpenAI Responses front door (`POST /v1/responses`, what Codex and the `openai` SDK's
//! `client.responses.create` send): request validation, usage extraction, stream-event
//! classification and the dialect's in-band stream error.
//!
//! Invariants:
//! - The client's body is kept whole: validation is deliberately shallow, checking only what the
//!   gateway itself relies on (`model`, `stream`) or what would make every upstream fail (no
//!   `input`). Everything else is the upstream's business, so new Responses parameters pass
//!   through without a gateway release.
//! - [`Usage`] coming out of here is normalised: Responses' `input_tokens` is the whole prompt,
//!   including `input_tokens_details.cached_tokens` (moved to `cache_read_tokens`) and
//!   `input_tokens_details.cache_write_tokens` (moved to `cache_creation_tokens`);
//!   `output_tokens` already includes `output_tokens_details.reasoning_tokens`.
//! - A stream is typed: every event names itself (`event: response.output_text.delta`) and
//!   repeats the name in its data's `type`. The `event:` line wins; the data's `type` is read
//!   when a server omits the line. The stream ends with `response.completed` or
//!   `response.incomplete` (a legitimate end, e.g. `max_output_tokens`), both carrying the
//!   whole response and its usage; `response.failed` and `error` are in-band errors.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::body::is_error_object;
use crate::dialect::{ClientRequest, Dialect, token_count};
pub use crate::dialect::{RequestError, StreamEvent};
use crate::error_body::{error_body_from_json, parse_error_body};
use crate::request_body::RequestBody;
use crate::sse::SseEvent;
use crate::usage::Usage;
use crate::validate::{Kind, array_items, kind, optional_body_bool, required_string};

/// A validated Responses request.
pub type ResponsesRequest = ClientRequest;

/// Parses and validates a Responses request body.
///
/// # Errors
/// A [`RequestError`] naming the first field that is wrong; for a body that is not JSON the
/// field is empty and the message is the parser's (with line and column).
pub fn parse_request(raw: impl Into<Bytes>) -> Result<ResponsesRequest, RequestError> {
    let body = RequestBody::parse(raw.into())?;
    let model = required_string(&body, "model")?;

    validate_input(body.raw("input"))?;

    // OpenAI documents `stream` as "boolean or null": null means absent.
    let stream = optional_body_bool(&body, "stream", "stream")?.unwrap_or(false);

    Ok(ResponsesRequest {
        dialect: Dialect::Responses,
        model,
        stream,
        include_usage: false,
        body,
    })
}

/// `input` is one user text (a string) or a non-empty list of items, each an object. What an
/// item holds is left to the upstream: item types keep being added.
fn validate_input(input: Option<&str>) -> Result<(), RequestError> {
    let input = match input {
        None | Some("null") => return Err(RequestError::new("input", "is required")),
        Some(text) => text,
    };
    if kind(input) == Kind::String {
        return Ok(());
    }
    let Some(items) = array_items(input) else {
        return Err(RequestError::new(
            "input",
            "must be a string or an array of items",
        ));
    };
    if items.is_empty() {
        return Err(RequestError::new("input", "must not be empty"));
    }
    match items
        .iter()
        .position(|item| kind(item.get()) != Kind::Object)
    {
        Some(i) => Err(RequestError::new(
            format!("input[{i}]"),
            "must be an object",
        )),
        None => Ok(()),
    }
}

/// Extracts normalised usage from a Responses `response` object (its `usage`). For a stream,
/// pass the `response` inside `response.completed` / `response.incomplete`. `None` when there
/// is no usage object or it holds neither token count (`usage` is `null` while in progress).
///
/// `input_tokens` includes `input_tokens_details.cached_tokens` and (newer models)
/// `input_tokens_details.cache_write_tokens`, so `input_tokens = input_tokens - cached - written`,
/// `cache_read_tokens = cached` and `cache_creation_tokens = written` (0 when not reported).
/// `output_tokens` already includes `output_tokens_details.reasoning_tokens`.
#[must_use]
pub fn usage_from_response(body: &Value) -> Option<Usage> {
    let usage = body.get("usage")?.as_object()?;
    let input = token_count(usage.get("input_tokens"));
    let output = token_count(usage.get("output_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    let details = usage.get("input_tokens_details");
    let cached = token_count(details.and_then(|d| d.get("cached_tokens"))).unwrap_or(0);
    let written = token_count(details.and_then(|d| d.get("cache_write_tokens"))).unwrap_or(0);
    let reasoning = token_count(
        usage
            .get("output_tokens_details")
            .and_then(|d| d.get("reasoning_tokens")),
    )
    .unwrap_or(0);
    Some(Usage {
        // A server reporting more cached than input tokens is wrong; never underflow for it.
        input_tokens: input
            .unwrap_or(0)
            .saturating_sub(cached)
            .saturating_sub(written),
        output_tokens: output.unwrap_or(0),
        cache_read_tokens: cached,
        cache_creation_tokens: written,
        reasoning_tokens: reasoning,
    })
}

/// Classifies one SSE event of a Responses stream.
#[must_use]
pub fn classify_stream_event(ev: &SseEvent) -> StreamEvent {
    let data = ev.data.trim();
    let named = ev.event.as_deref().filter(|name| !name.is_empty());
    // Not part of the Responses protocol, but compatible servers ported from chat send it.
    if data == "[DONE]" {
        return StreamEvent::Done { usage: None };
    }
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        if named == Some("error") {
            return StreamEvent::Error(parse_error_body(data.as_bytes()));
        }
        return StreamEvent::Malformed;
    };
    let Some(object) = value.as_object() else {
        return StreamEvent::Malformed;
    };
    let kind = named.or_else(|| object.get("type").and_then(Value::as_str));
    match kind {
        Some("response.completed" | "response.incomplete") => StreamEvent::Done {
            usage: object.get("response").and_then(usage_from_response),
        },
        Some("response.failed") => {
            // The reason is in `response.error` ({code, message}); without it, the whole
            // event still says something.
            let failed = object
                .get("response")
                .filter(|response| response.get("error").is_some_and(|e| !e.is_null()))
                .unwrap_or(&value);
            StreamEvent::Error(error_body_from_json(failed, data.as_bytes()))
        }
        Some("error") => StreamEvent::Error(error_body_from_json(&value, data.as_bytes())),
        _ if is_error_object(&value) => {
            StreamEvent::Error(error_body_from_json(&value, data.as_bytes()))
        }
        Some(kind) => StreamEvent::Chunk {
            usage: None,
            finished: false,
            content: carries_output(kind, object),
            usage_only: false,
        },
        None => StreamEvent::Malformed,
    }
}

/// An event that brings output: an output item (a message, a function call, a reasoning
/// item…) or a non-empty delta of any kind. Matching every `*.delta` rather than a list keeps
/// new kinds of output (`reasoning_text`, `refusal`, `audio`…) recognised without a change here.
fn carries_output(kind: &str, event: &Map<String, Value>) -> bool {
    match kind {
        "response.output_item.added" | "response.output_item.done" => {
            event.get("item").is_some_and(Value::is_object)
        }
        _ if kind.ends_with(".delta") => match event.get("delta") {
            Some(Value::String(delta)) => !delta.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use crate::test_support::{err, rejection};
    use serde_json::json;

    fn request_error(raw: &str) -> (String, String) {
        rejection(parse_request(raw.to_owned()))
    }

    /// What Codex sends, trimmed: instructions, typed items, tools, reasoning, no storage.
    const CODEX: &str = r#"{
        "model": "gpt-5-codex",
        "instructions": "You are Codex, a coding agent.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files"}]},
            {"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"ls\"]}", "call_id": "call_1"},
            {"type": "function_call_output", "call_id": "call_1", "output": "Cargo.toml\nsrc"}
        ],
        "tools": [{"type": "function", "name": "shell", "description": "Runs a command", "strict": false,
            "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a1b2-c3d4",
        "x_vendor_flag": {"deep": [1, 2, 3]}
    }"#;

    #[test]
    fn valid_request_keeps_the_whole_body() {
        let req = parse_request(CODEX.as_bytes()).expect("valid");
        assert_eq!(req.dialect, Dialect::Responses);
        assert_eq!(req.model, "gpt-5-codex");
        assert!(req.stream);
        assert!(!req.include_usage);
        assert_eq!(
            req.body.to_map().expect("a tree")["x_vendor_flag"],
            json!({"deep": [1, 2, 3]})
        );
        assert_eq!(
            req.body.to_map().expect("a tree")["prompt_cache_key"],
            json!("0199a1b2-c3d4")
        );
        assert_eq!(req.body.len(), 12);
    }

    #[test]
    fn string_input_and_stream_flags() {
        let req = parse_request(r#"{"model":"gpt-4.1","input":"Tell me a joke"}"#)
            .expect("a string input is one user turn");
        assert!(!req.stream);
        let req = parse_request(r#"{"model":"m","input":"","stream":null}"#)
            .expect("null means absent; an empty string is the upstream's business");
        assert!(!req.stream);
        let req = parse_request(
            r#"{"model":"m","input":[{"role":"user","content":"x"}],"stream":false}"#,
        )
        .expect("valid");
        assert!(!req.stream && !req.include_usage);
    }

    #[test]
    fn each_failing_field() {
        let cases = [
            ("", err("", "EOF while parsing a value at line 1 column 0")),
            (
                "{\"model\": \"m\",\n \"input\": [}",
                err("", "expected value at line 2 column 12"),
            ),
            ("[1]", err("", "the request body must be a JSON object")),
            (r#"{"input":"x"}"#, err("model", "is required")),
            (r#"{"model":null,"input":"x"}"#, err("model", "is required")),
            (
                r#"{"model":" ","input":"x"}"#,
                err("model", "must not be empty"),
            ),
            (
                r#"{"model":["m"],"input":"x"}"#,
                err("model", "must be a string"),
            ),
            (r#"{"model":"m"}"#, err("input", "is required")),
            (r#"{"model":"m","input":null}"#, err("input", "is required")),
            (
                r#"{"model":"m","input":[]}"#,
                err("input", "must not be empty"),
            ),
            (
                r#"{"model":"m","input":{"role":"user"}}"#,
                err("input", "must be a string or an array of items"),
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":"x"},"hi"]}"#,
                err("input[1]", "must be an object"),
            ),
            (
                r#"{"model":"m","input":"x","stream":"yes"}"#,
                err("stream", "must be a boolean"),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(request_error(raw), expected, "{raw}");
        }
    }

    #[test]
    fn usage_moves_cached_tokens_out_of_input() {
        let response = json!({
            "id": "resp_68af0c",
            "object": "response",
            "status": "completed",
            "usage": {
                "input_tokens": 5120,
                "input_tokens_details": {"cached_tokens": 4864},
                "output_tokens": 913,
                "output_tokens_details": {"reasoning_tokens": 768},
                "total_tokens": 6033
            }
        });
        assert_eq!(
            usage_from_response(&response),
            Some(Usage {
                input_tokens: 256,
                output_tokens: 913,
                cache_read_tokens: 4864,
                cache_creation_tokens: 0,
                reasoning_tokens: 768,
            })
        );
    }

    #[test]
    fn usage_moves_cache_writes_out_of_input() {
        // Newer models also report what the request wrote to the cache (with its retention).
        let response = json!({"usage": {
            "input_tokens": 9000,
            "input_tokens_details": {"cached_tokens": 6000, "cache_write_tokens": 2500,
                "cache_write_tokens_details": {"ttl_30m_tokens": 2500, "ttl_12h_tokens": 0}},
            "output_tokens": 120,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 9120
        }});
        let usage = usage_from_response(&response).expect("usage");
        assert_eq!(
            usage,
            Usage {
                input_tokens: 500,
                output_tokens: 120,
                cache_read_tokens: 6000,
                cache_creation_tokens: 2500,
                reasoning_tokens: 0,
            }
        );
        assert_eq!(usage.total_input_tokens(), 9000);
    }

    #[test]
    fn usage_variants() {
        assert_eq!(
            usage_from_response(&json!({"usage": {"input_tokens": 36, "output_tokens": 87,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123}})),
            Some(Usage {
                input_tokens: 36,
                output_tokens: 87,
                ..Usage::default()
            })
        );
        // Compatible servers omit the details, send floats, or more cached than input.
        let odd = json!({"usage": {"input_tokens": 10.0, "output_tokens": 2,
            "input_tokens_details": {"cached_tokens": 50}}});
        let usage = usage_from_response(&odd).expect("usage");
        assert_eq!(
            (
                usage.input_tokens,
                usage.cache_read_tokens,
                usage.output_tokens
            ),
            (0, 50, 2)
        );
        let only_output = json!({"usage": {"output_tokens": 7}});
        assert_eq!(
            usage_from_response(&only_output).map(|u| (u.input_tokens, u.output_tokens)),
            Some((0, 7))
        );
        for none in [
            json!({}),
            json!({"usage": null}),
            json!({"usage": {}}),
            json!({"usage": {"total_tokens": 3}}),
            json!({"usage": "lots"}),
            // Chat's names are not Responses'.
            json!({"usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
        ] {
            assert_eq!(usage_from_response(&none), None, "{none}");
        }
    }

    fn chunk(content: bool) -> StreamEvent {
        StreamEvent::Chunk {
            usage: None,
            finished: false,
            content,
            usage_only: false,
        }
    }

    /// A text answer as api.openai.com streams it (ids shortened, shell trimmed).
    const RECORDED: &str = concat!(
        "event: response.created\n",
        r#"data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1756000000,"status":"in_progress","model":"gpt-5-mini-2025-08-07","output":[],"usage":null}}"#,
        "\n\n",
        "event: response.in_progress\n",
        r#"data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","created_at":1756000000,"status":"in_progress","model":"gpt-5-mini-2025-08-07","output":[],"usage":null}}"#,
        "\n\n",
        "event: response.output_item.added\n",
        r#"data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}"#,
        "\n\n",
        "event: response.reasoning_summary_part.added\n",
        r#"data: {"type":"response.reasoning_summary_part.added","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}"#,
        "\n\n",
        "event: response.reasoning_summary_text.delta\n",
        r#"data: {"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"**Greeting**"}"#,
        "\n\n",
        "event: response.output_item.done\n",
        r#"data: {"type":"response.output_item.done","sequence_number":5,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"**Greeting**"}]}}"#,
        "\n\n",
        "event: response.output_item.added\n",
        r#"data: {"type":"response.output_item.added","sequence_number":6,"output_index":1,"item":{"id":"msg_1","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#,
        "\n\n",
        "event: response.content_part.added\n",
        r#"data: {"type":"response.content_part.added","sequence_number":7,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#,
        "\n\n",
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","sequence_number":8,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hi","logprobs":[],"obfuscation":"x8f"}"#,
        "\n\n",
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","sequence_number":9,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"","logprobs":[]}"#,
        "\n\n",
        "event: response.output_text.done\n",
        r#"data: {"type":"response.output_text.done","sequence_number":10,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Hi","logprobs":[]}"#,
        "\n\n",
        "event: response.content_part.done\n",
        r#"data: {"type":"response.content_part.done","sequence_number":11,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":"Hi"}}"#,
        "\n\n",
        "event: response.output_item.done\n",
        r#"data: {"type":"response.output_item.done","sequence_number":12,"output_index":1,"item":{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hi"}],"role":"assistant"}}"#,
        "\n\n",
        "event: response.completed\n",
        r#"data: {"type":"response.completed","sequence_number":13,"response":{"id":"resp_1","object":"response","created_at":1756000000,"status":"completed","model":"gpt-5-mini-2025-08-07","output":[],"usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},"output_tokens":75,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":1275}}}"#,
        "\n\n",
    );

    #[test]
    fn classify_a_recorded_stream() {
        let events = SseParser::default().push(RECORDED.as_bytes());
        let classified: Vec<StreamEvent> = events.iter().map(classify_stream_event).collect();
        let usage = Usage {
            input_tokens: 176,
            output_tokens: 75,
            cache_read_tokens: 1024,
            cache_creation_tokens: 0,
            reasoning_tokens: 64,
        };
        assert_eq!(
            classified,
            vec![
                chunk(false), // created
                chunk(false), // in_progress
                chunk(true),  // reasoning item added
                chunk(false), // summary part added
                chunk(true),  // summary delta
                chunk(true),  // reasoning item done
                chunk(true),  // message item added
                chunk(false), // content part added
                chunk(true),  // "Hi"
                chunk(false), // empty delta
                chunk(false), // text done
                chunk(false), // content part done
                chunk(true),  // message item done
                StreamEvent::Done { usage: Some(usage) },
            ]
        );
    }

    #[test]
    fn classify_without_event_lines_reads_the_data_type() {
        let event = |data: &str| SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        };
        assert_eq!(
            classify_stream_event(&event(
                r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"ci"}"#
            )),
            chunk(true)
        );
        assert_eq!(
            classify_stream_event(&event(
                r#"{"type":"response.reasoning_text.delta","item_id":"rs_1","output_index":0,"content_index":0,"delta":"First"}"#
            )),
            chunk(true)
        );
        assert_eq!(
            classify_stream_event(&event(
                r#"{"type":"response.output_text.annotation.added","annotation":{}}"#
            )),
            chunk(false),
            "unknown types are chunks that say nothing"
        );
        assert_eq!(
            classify_stream_event(&event(
                r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":20,"output_tokens":16}}}"#
            )),
            StreamEvent::Done {
                usage: Some(Usage {
                    input_tokens: 20,
                    output_tokens: 16,
                    ..Usage::default()
                })
            },
            "a truncated answer is a legitimate end"
        );
        // The `event:` line wins over the data's type.
        let named = SseEvent {
            event: Some("response.completed".into()),
            data: r#"{"response":{"usage":null}}"#.into(),
            id: None,
        };
        assert_eq!(
            classify_stream_event(&named),
            StreamEvent::Done { usage: None }
        );
    }

    #[test]
    fn classify_errors() {
        let flat = SseEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","code":"rate_limit_exceeded","message":"Rate limit reached for gpt-5 on tokens per min (TPM).","param":null,"sequence_number":4}"#.into(),
            id: None,
        };
        match classify_stream_event(&flat) {
            StreamEvent::Error(body) => {
                assert_eq!(body.reason.as_deref(), Some("rate_limit_exceeded"));
                assert!(body.message.starts_with("Rate limit reached"));
                assert_eq!(body.error_type, None);
                assert_eq!(body.raw, flat.data);
            }
            other => panic!("expected Error, got {other:?}"),
        }
        let failed = SseEvent {
            event: Some("response.failed".into()),
            data: r#"{"type":"response.failed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"failed","error":{"code":"server_error","message":"The model produced invalid content."},"usage":null}}"#.into(),
            id: None,
        };
        match classify_stream_event(&failed) {
            StreamEvent::Error(body) => {
                assert_eq!(body.reason.as_deref(), Some("server_error"));
                assert_eq!(body.message, "The model produced invalid content.");
            }
            other => panic!("expected Error, got {other:?}"),
        }
        // A failure without its error object still is one, with the event as its message.
        let bare = SseEvent {
            event: None,
            data: r#"{"type":"response.failed","response":{"error":null}}"#.into(),
            id: None,
        };
        match classify_stream_event(&bare) {
            StreamEvent::Error(body) => assert_eq!(body.message, bare.data),
            other => panic!("expected Error, got {other:?}"),
        }
        // Chat-style error objects from compatible servers, and a plain-text error event.
        let chat_style = SseEvent {
            event: None,
            data: r#"{"error":{"message":"overloaded","type":"server_error","code":null}}"#.into(),
            id: None,
        };
        match classify_stream_event(&chat_style) {
            StreamEvent::Error(body) => {
                assert_eq!(body.error_type.as_deref(), Some("server_error"));
            }
            other => panic!("expected Error, got {other:?}"),
        }
        let text = SseEvent {
            event: Some("error".into()),
            data: "upstream timed out".into(),
            id: None,
        };
        match classify_stream_event(&text) {
            StreamEvent::Error(body) => assert_eq!(body.message, "upstream timed out"),
            other => panic!("expected Error, got {other:?}"),
        }
    }

    #[test]
    fn classify_done_marker_and_malformed() {
        let event = |data: &str| SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        };
        assert_eq!(
            classify_stream_event(&event(" [DONE] ")),
            StreamEvent::Done { usage: None }
        );
        // The mock upstream's garbage event, and other things that are not events.
        let garbage = SseEvent {
            event: Some("response.output_text.delta".into()),
            data: "{\"this is not\": json, malformed by mock-upstream".into(),
            id: None,
        };
        assert_eq!(classify_stream_event(&garbage), StreamEvent::Malformed);
        for bad in ["", "42", r#""text""#, "[1]", r#"{"delta":"x"}"#] {
            assert_eq!(
                classify_stream_event(&event(bad)),
                StreamEvent::Malformed,
                "{bad}"
            );
        }
    }
}
