//! Google Gemini (`POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent` as SSE with `alt=sse` or as a streamed JSON
//! array without it, and `:countTokens`).

use serde_json::{Value, json};

use super::{
    ApiError, Content, Ctx, Dialect, GeminiAction, Reply, Usage, input_tokens, pieces, plan, tokens,
};
use crate::stream::{Framing, GARBAGE, StreamPlan};

/// The user's text when the last content is the user's and carries no
/// `functionResponse`.
fn last_user_text(body: &Value) -> Option<String> {
    let last = body.get("contents")?.as_array()?.last()?;
    if last
        .get("role")
        .and_then(Value::as_str)
        .is_some_and(|r| r != "user")
    {
        return None;
    }
    let mut out = String::new();
    for part in last.get("parts")?.as_array()? {
        if part.get("functionResponse").is_some() || part.get("function_response").is_some() {
            return None;
        }
        out.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
    }
    Some(out)
}

fn first_tool(body: &Value) -> Option<&str> {
    body.get("tools")?.as_array()?.iter().find_map(|t| {
        t.get("functionDeclarations")
            .or_else(|| t.get("function_declarations"))?
            .as_array()?
            .first()?
            .get("name")?
            .as_str()
    })
}

/// `usageMetadata` with `candidates` output tokens so far. Gemini counts
/// cached tokens inside `promptTokenCount` and thoughts outside
/// `candidatesTokenCount`.
fn usage_json(u: &Usage, candidates: u64) -> Value {
    let prompt = u.prompt_total();
    json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + u.reasoning,
        "cachedContentTokenCount": u.cache_read,
        "thoughtsTokenCount": u.reasoning,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
    })
}

/// Gemini's SSE frames end in CRLF CRLF; parsers must cope with that.
fn sse_crlf(data: &Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    let _ = serde_json::to_writer(&mut out, data);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

pub(crate) fn handle(ctx: &Ctx<'_>, model: &str, action: GeminiAction) -> Result<Reply, ApiError> {
    let body = ctx.json()?;
    if action == GeminiAction::CountTokens {
        let n = input_tokens(body);
        return Ok(Reply::json(
            200,
            &json!({"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}),
        ));
    }
    let user = last_user_text(body);
    let (content, usage) = plan(
        ctx.behaviour,
        model,
        body,
        first_tool(body),
        user.as_deref(),
    );
    let response_id = crate::ids::id("", 22);
    let candidate = |parts: Value, finish: bool| {
        let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if finish && let Some(map) = c.as_object_mut() {
            map.insert("finishReason".into(), json!("STOP"));
        }
        c
    };
    let response = |parts: Value, finish: bool, candidates: u64| {
        json!({
            "candidates": [candidate(parts, finish)],
            "usageMetadata": usage_json(&usage, candidates),
            "modelVersion": model,
            "responseId": response_id
        })
    };

    if action == GeminiAction::Generate {
        let part = match &content {
            Content::Text(t) => json!({"text": t}),
            Content::Tool(c) => json!({"functionCall": {"name": c.name, "args": c.args}}),
        };
        return Ok(Reply::json(
            200,
            &response(json!([part]), true, usage.output),
        ));
    }

    // Streaming: usageMetadata on every chunk, candidatesTokenCount growing
    // with the text sent so far, finishReason on the last chunk.
    let chunks: Vec<Value> = match &content {
        Content::Text(t) => {
            let mut parts = pieces(t, 3);
            if parts.is_empty() {
                parts.push("");
            }
            let last = parts.len() - 1;
            let mut sent = 0;
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    sent += p.len();
                    let so_far = if i == last {
                        usage.output
                    } else {
                        tokens(sent)
                    };
                    response(json!([{"text": p}]), i == last, so_far)
                })
                .collect()
        }
        Content::Tool(c) => vec![response(
            json!([{"functionCall": {"name": c.name, "args": c.args}}]),
            true,
            usage.output,
        )],
    };
    let error = ApiError::for_stream(ctx.behaviour, Dialect::Gemini).envelope(Dialect::Gemini);
    let sse = crate::http1::query_param(ctx.query, "alt").as_deref() == Some("sse");
    let plan = if sse {
        StreamPlan {
            framing: Framing::Sse,
            events: chunks.iter().map(sse_crlf).collect(),
            end_marker: true,
            error_event: sse_crlf(&error),
            malformed_event: format!("data: {GARBAGE}\r\n\r\n").into_bytes(),
        }
    } else {
        StreamPlan {
            framing: Framing::JsonArray,
            events: chunks
                .iter()
                .map(|c| serde_json::to_vec(c).unwrap_or_default())
                .collect(),
            end_marker: true,
            error_event: serde_json::to_vec(&error).unwrap_or_default(),
            malformed_event: GARBAGE.as_bytes().to_vec(),
        }
    };
    Ok(Reply::Stream(plan))
}
