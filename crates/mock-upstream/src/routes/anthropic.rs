//! Anthropic Messages (`POST /v1/messages`, plain and SSE), token counting
//! (`POST /v1/messages/count_tokens`) and the Anthropic flavour of
//! `GET /v1/models` (chosen when an `anthropic-version` header is sent).

use serde_json::{Value, json};

use super::{ApiError, Content, Ctx, Dialect, Reply, input_tokens, pieces, plan, slices};
use crate::stream::{Framing, GARBAGE, StreamPlan, sse, sse_raw};

const MODELS: &[(&str, &str)] = &[
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ("claude-opus-4-1", "Claude Opus 4.1"),
];

pub(crate) fn models() -> Reply {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, name)| {
            json!({"type": "model", "id": id, "display_name": name, "created_at": "2025-09-29T00:00:00Z"})
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "data": data,
            "has_more": false,
            "first_id": MODELS.first().map(|m| m.0),
            "last_id": MODELS.last().map(|m| m.0)
        }),
    )
}

pub(crate) fn count_tokens(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = ctx.json()?;
    Ok(Reply::json(
        200,
        &json!({"input_tokens": input_tokens(body)}),
    ))
}

/// The user's text when the last message is the user's and is not a
/// `tool_result` turn.
fn last_user_text(body: &Value) -> Option<String> {
    let last = body.get("messages")?.as_array()?.last()?;
    if last.get("role")?.as_str()? != "user" {
        return None;
    }
    match last.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => {
            let mut out = String::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_result") => return None,
                    Some("text") => {
                        out.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    _ => {}
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn first_tool(body: &Value) -> Option<&str> {
    body.get("tools")?
        .as_array()?
        .first()?
        .get("name")?
        .as_str()
}

pub(crate) fn messages(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = ctx.json()?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(400, "model: Field required"))?;
    let user = last_user_text(body);
    let (content, usage) = plan(
        ctx.behaviour,
        model,
        body,
        first_tool(body),
        user.as_deref(),
    );
    let id = crate::ids::id("msg_01", 22);
    let (block, stop_reason) = match &content {
        Content::Text(t) => (json!({"type": "text", "text": t}), "end_turn"),
        Content::Tool(c) => (
            json!({"type": "tool_use", "id": crate::ids::id("toolu_01", 22), "name": c.name, "input": c.args}),
            "tool_use",
        ),
    };
    // Anthropic's input_tokens excludes cache reads and writes; reasoning
    // ("thinking") is billed as output.
    let usage_json = |output: u64| {
        json!({
            "input_tokens": usage.input,
            "cache_creation_input_tokens": usage.cache_write,
            "cache_read_input_tokens": usage.cache_read,
            "output_tokens": output
        })
    };

    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return Ok(Reply::json(
            200,
            &json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [block],
                "stop_reason": stop_reason,
                "stop_sequence": null,
                "usage": usage_json(usage.output_total())
            }),
        ));
    }

    let mut events = Vec::new();
    events.push(sse(
        Some("message_start"),
        &json!({"type": "message_start", "message": {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage_json(1)
        }}),
    ));
    let start_block = match &content {
        Content::Text(_) => json!({"type": "text", "text": ""}),
        Content::Tool(_) => {
            let mut b = block.clone();
            if let Some(map) = b.as_object_mut() {
                map.insert("input".into(), json!({}));
            }
            b
        }
    };
    events.push(sse(
        Some("content_block_start"),
        &json!({"type": "content_block_start", "index": 0, "content_block": start_block}),
    ));
    events.push(sse(Some("ping"), &json!({"type": "ping"})));
    let deltas: Vec<Value> = match &content {
        Content::Text(t) => pieces(t, 1)
            .into_iter()
            .map(|p| json!({"type": "text_delta", "text": p}))
            .collect(),
        Content::Tool(c) => slices(&c.arguments, 8)
            .into_iter()
            .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
            .collect(),
    };
    for delta in deltas {
        events.push(sse(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    events.push(sse(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(sse(
        Some("message_delta"),
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": usage.output_total()}
        }),
    ));
    events.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));

    // A mid-stream error carries no request_id, unlike the HTTP error body.
    let mut error =
        ApiError::for_stream(ctx.behaviour, Dialect::Anthropic).envelope(Dialect::Anthropic);
    if let Some(map) = error.as_object_mut() {
        map.remove("request_id");
    }
    Ok(Reply::Stream(StreamPlan {
        framing: Framing::Sse,
        events,
        end_marker: true,
        error_event: sse(Some("error"), &error),
        malformed_event: sse_raw(Some("content_block_delta"), GARBAGE),
    }))
}
