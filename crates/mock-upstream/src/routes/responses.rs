//! OpenAI Responses API (`POST /v1/responses`): the `response` object and
//! its typed, sequence-numbered SSE event stream.

use serde_json::{Value, json};

use super::{ApiError, Content, Ctx, Dialect, Reply, Usage, content_text, pieces, plan, slices};
use crate::stream::{Framing, GARBAGE, StreamPlan, sse, sse_raw};

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_total(),
        "input_tokens_details": {"cached_tokens": u.cache_read},
        "output_tokens": u.output_total(),
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.prompt_total() + u.output_total()
    })
}

/// The user's text when the last input item is a user message (a plain
/// string `input` is one).
fn last_user_text(body: &Value) -> Option<String> {
    match body.get("input")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let last = items.last()?;
            if last.get("role").and_then(Value::as_str) != Some("user") {
                return None;
            }
            content_text(last.get("content")?)
        }
        _ => None,
    }
}

/// Responses function tools are flat: `{"type":"function","name":…}`.
fn first_tool(body: &Value) -> Option<&str> {
    body.get("tools")?
        .as_array()?
        .iter()
        .find(|t| t.get("type").and_then(Value::as_str) == Some("function"))?
        .get("name")?
        .as_str()
}

/// The fixed parts of a `response` object.
struct Shell<'a> {
    id: String,
    created: i64,
    model: &'a str,
    body: &'a Value,
}

impl Shell<'_> {
    fn object(&self, status: &str, output: Value, usage: Value) -> Value {
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": null,
            "instructions": self.body.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": self.body.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "service_tier": "default",
            "store": true,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": self.body.get("tools").cloned().unwrap_or_else(|| json!([])),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": null,
            "metadata": {}
        })
    }
}

/// Builds the event list, numbering events as it goes.
struct Events {
    list: Vec<Vec<u8>>,
}

impl Events {
    fn push(&mut self, ty: &str, mut data: Value) {
        if let Some(map) = data.as_object_mut() {
            map.insert("type".into(), json!(ty));
            map.insert("sequence_number".into(), json!(self.list.len()));
        }
        self.list.push(sse(Some(ty), &data));
    }
}

pub(crate) fn create(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = ctx.json()?;
    let model = body.get("model").and_then(Value::as_str).ok_or_else(|| {
        let mut e = ApiError::new(400, "Missing required parameter: 'model'.");
        e.code = Some("missing_required_parameter".into());
        e.param = Some("model".into());
        e
    })?;
    let user = last_user_text(body);
    let (content, usage) = plan(
        ctx.behaviour,
        model,
        body,
        first_tool(body),
        user.as_deref(),
    );
    let shell = Shell {
        id: crate::ids::id("resp_", 48),
        created: crate::ids::unix_now(),
        model,
        body,
    };
    let (item_id, done_item) = match &content {
        Content::Text(t) => {
            let id = crate::ids::id("msg_", 48);
            let item = json!({
                "type": "message",
                "id": id,
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": t, "annotations": []}]
            });
            (id, item)
        }
        Content::Tool(c) => {
            let id = crate::ids::id("fc_", 48);
            let item = json!({
                "type": "function_call",
                "id": id,
                "call_id": crate::ids::id("call_", 24),
                "name": c.name,
                "arguments": c.arguments,
                "status": "completed"
            });
            (id, item)
        }
    };

    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return Ok(Reply::json(
            200,
            &shell.object("completed", json!([done_item]), usage_json(&usage)),
        ));
    }

    let mut ev = Events { list: Vec::new() };
    let pending = shell.object("in_progress", json!([]), Value::Null);
    ev.push("response.created", json!({"response": pending}));
    ev.push("response.in_progress", json!({"response": pending}));
    match &content {
        Content::Text(t) => {
            ev.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": {
                    "type": "message", "id": item_id, "status": "in_progress",
                    "role": "assistant", "content": []
                }}),
            );
            let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
            ev.push(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part("")}),
            );
            for p in pieces(t, 1) {
                ev.push(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}),
                );
            }
            ev.push(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": t, "logprobs": []}),
            );
            ev.push(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part(t)}),
            );
        }
        Content::Tool(c) => {
            let mut added = done_item.clone();
            if let Some(map) = added.as_object_mut() {
                map.insert("arguments".into(), json!(""));
                map.insert("status".into(), json!("in_progress"));
            }
            ev.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": added}),
            );
            for p in slices(&c.arguments, 8) {
                ev.push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": p}),
                );
            }
            ev.push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": 0, "arguments": c.arguments}),
            );
        }
    }
    ev.push(
        "response.output_item.done",
        json!({"output_index": 0, "item": done_item}),
    );
    ev.push(
        "response.completed",
        json!({"response": shell.object("completed", json!([done_item]), usage_json(&usage))}),
    );

    // The error event is flat in this API and numbered like the event it
    // replaces.
    let error = ApiError::for_stream(ctx.behaviour, Dialect::OpenAi);
    let at = usize::try_from(ctx.behaviour.after_events.unwrap_or(0))
        .unwrap_or(usize::MAX)
        .min(ev.list.len());
    let error_event = sse(
        Some("error"),
        &json!({
            "type": "error",
            "code": error.openai_code().unwrap_or(error.openai_type()),
            "message": error.message,
            "param": error.param,
            "sequence_number": at
        }),
    );
    Ok(Reply::Stream(StreamPlan {
        framing: Framing::Sse,
        events: ev.list,
        end_marker: true,
        error_event,
        malformed_event: sse_raw(Some("response.output_text.delta"), GARBAGE),
    }))
}
