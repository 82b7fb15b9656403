//! OpenAI Chat Completions (`POST /v1/chat/completions`, plain and SSE) and
//! the OpenAI model list (`GET /v1/models`).

use serde_json::{Value, json};

use super::{ApiError, Content, Ctx, Dialect, Reply, Usage, content_text, pieces, plan, slices};
use crate::stream::{Framing, GARBAGE, StreamPlan, sse, sse_raw};

/// Models listed by `GET /v1/models`.
pub(crate) const MODELS: &[&str] = &["gpt-4o", "gpt-4o-mini", "o3-mini", "text-embedding-3-small"];

pub(crate) fn models() -> Reply {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_715_367_049, "owned_by": "mock-upstream"}))
        .collect();
    Reply::json(200, &json!({"object": "list", "data": data}))
}

/// The usage object, also used by streams with `include_usage`.
fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_total(),
        "completion_tokens": u.output_total(),
        "total_tokens": u.prompt_total() + u.output_total(),
        "prompt_tokens_details": {"cached_tokens": u.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

/// The last message, when it is the user's: its text.
fn last_user_text(body: &Value) -> Option<String> {
    let last = body.get("messages")?.as_array()?.last()?;
    if last.get("role")?.as_str()? != "user" {
        return None;
    }
    content_text(last.get("content")?)
}

fn first_tool(body: &Value) -> Option<&str> {
    body.get("tools")?
        .as_array()?
        .first()?
        .get("function")?
        .get("name")?
        .as_str()
}

pub(crate) fn chat_completions(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = ctx.json()?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(400, "you must provide a model parameter"))?;
    let user = last_user_text(body);
    let (content, usage) = plan(
        ctx.behaviour,
        model,
        body,
        first_tool(body),
        user.as_deref(),
    );
    let id = crate::ids::id("chatcmpl-", 29);
    let created = crate::ids::unix_now();

    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let (message, finish) = match &content {
            Content::Text(t) => (
                json!({"role": "assistant", "content": t, "refusal": null, "annotations": []}),
                "stop",
            ),
            Content::Tool(c) => (
                json!({"role": "assistant", "content": null, "tool_calls": [{
                    "id": crate::ids::id("call_", 24),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments}
                }], "refusal": null, "annotations": []}),
                "tool_calls",
            ),
        };
        return Ok(Reply::json(
            200,
            &json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
                "usage": usage_json(&usage),
                "service_tier": "default",
                "system_fingerprint": "fp_mock0001"
            }),
        ));
    }

    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    // Every chunk shares this frame; with include_usage, OpenAI sends
    // `"usage": null` on each chunk until the final usage chunk.
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock0001",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage && let Some(map) = c.as_object_mut() {
            map.insert("usage".into(), Value::Null);
        }
        sse(None, &c)
    };

    let mut events = Vec::new();
    let finish = match &content {
        Content::Text(t) => {
            events.push(chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ));
            for p in pieces(t, 1) {
                events.push(chunk(json!({"content": p}), Value::Null));
            }
            "stop"
        }
        Content::Tool(c) => {
            events.push(chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{
                    "index": 0,
                    "id": crate::ids::id("call_", 24),
                    "type": "function",
                    "function": {"name": c.name, "arguments": ""}
                }], "refusal": null}),
                Value::Null,
            ));
            for p in slices(&c.arguments, 8) {
                events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                    Value::Null,
                ));
            }
            "tool_calls"
        }
    };
    events.push(chunk(json!({}), json!(finish)));
    if include_usage {
        events.push(sse(
            None,
            &json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_mock0001",
                "choices": [],
                "usage": usage_json(&usage)
            }),
        ));
    }
    events.push(sse_raw(None, "[DONE]"));

    let error = ApiError::for_stream(ctx.behaviour, Dialect::OpenAi);
    Ok(Reply::Stream(StreamPlan {
        framing: Framing::Sse,
        events,
        end_marker: true,
        error_event: sse(None, &error.envelope(Dialect::OpenAi)),
        malformed_event: sse_raw(None, GARBAGE),
    }))
}
