//! The Anthropic Messages codec: requests, answers and streams to and from the neutral model in
//! [`crate::ir`].
//!
//! Requests (client → neutral), refused or ignored:
//! - Ignored, because they do not change the answer: `model` (the gateway picks the upstream's),
//!   `metadata`, `service_tier`, every `cache_control` (top level, system, blocks, tools), a
//!   `caller` of `{"type":"direct"}` on `tool_use`, `display: "summarized"` (the default) on
//!   `thinking`, empty `citations` on text blocks, `disable_parallel_tool_use: false` (the
//!   default).
//! - `strict` on a tool is carried as [`ir::Tool::strict`]: `true` asks for the tool's input to
//!   follow its `input_schema` exactly; `false`, `null` and absence become `false`; anything
//!   else is refused.
//! - `tool_choice.disable_parallel_tool_use: true` becomes
//!   [`ir::Request::parallel_tool_calls`] `Some(false)` (at most one tool call per turn).
//! - Refused ([`Unsupported`], naming the field): any other unknown field (`container`,
//!   `inference_geo`, `mcp_servers`, `context_management`…), server tools (a `tools[]` entry with
//!   a `type` other than `custom`), block types the model has no place for (`document`,
//!   `search_result`, `redacted_thinking`, `server_tool_use`, the `*_tool_result` blocks of
//!   server tools…), image sources other than `base64` and `url` (`file`), non-empty
//!   `citations`, `thinking.display: "omitted"`, `output_config.effort` other than
//!   `low`/`medium`/`high` or without adaptive thinking.
//! - `thinking: {type: enabled, budget_tokens}` becomes a budget; `{type: adaptive}` becomes the
//!   effort of `output_config.effort` (Anthropic's default, `high`, when absent); `{type:
//!   disabled}` is the dialect's default and becomes no reasoning at all.
//! - `output_config.format` (`json_schema`) becomes a JSON-schema response format named
//!   [`SCHEMA_NAME`] (Anthropic schemas have no name).
//!
//! Requests (neutral → upstream):
//! - `max_tokens` is required by Anthropic: absent, it is [`DEFAULT_MAX_TOKENS`] (a bound every
//!   Claude model accepts) plus the thinking budget when thinking is on.
//! - Reasoning: a budget is used as is, an effort goes through
//!   [`ir::Reasoning::budget_for_effort`]; a zero budget or effort `none` means no thinking.
//!   Anthropic wants `1024 <= budget < max_tokens`: a smaller budget is raised to 1024, a budget
//!   that does not fit under an explicit `max_tokens` is lowered to `max_tokens - 1`, and if even
//!   1024 does not fit the request is refused. With thinking on, Anthropic also refuses
//!   `temperature`, `top_k`, `top_p` below 0.95 and forced tool use: those are refused here
//!   with a clear reason instead of a 400 from the upstream.
//! - `temperature` above 1 is refused (Anthropic's range is 0–1, OpenAI's 0–2).
//! - One tool call per turn ([`ir::Request::parallel_tool_calls`] `Some(false)`) becomes
//!   `disable_parallel_tool_use: true` in `tool_choice` when there are tools, in a `{"type":
//!   "auto"}` choice (Anthropic's default) when the request has no tool choice. Not with a
//!   `none` choice: Anthropic forbids the flag there, and a turn without calls keeps the
//!   promise anyway. `Some(true)` is Anthropic's default and sends nothing.
//! - Thinking parts without a signature Anthropic issued ([`ir::Thinking::source`]) are
//!   dropped: Anthropic rejects unsigned thinking blocks and foreign signatures ("Invalid
//!   signature in thinking block"), and documents thinking from earlier turns as optional.
//!   Signatures are read with [`crate::signature::unwrap`]; an answer or stream for the client
//!   marks another provider's signature with its issuer ([`crate::signature`]). Empty text parts are dropped
//!   (Anthropic rejects empty text blocks), and a turn left empty is dropped (consecutive turns
//!   of one role are merged by Anthropic anyway).
//! - Parts a role cannot carry (an image or tool result from the assistant, a tool call or
//!   thinking from the user) and `json_object` response formats are refused.
//! - [`ir::Tool::strict`] is sent as `"strict": true` on the tool only when set, so a strict
//!   OpenAI function tool stays strict; otherwise the key is left out (Anthropic's default).
//! - The `strict` of [`ir::ResponseFormat::JsonSchema`] is not sent: `output_config.format` has
//!   no such flag, and decoding one sets it to false.
//!
//! Answers: ids are kept as they are (empty → `msg_gw`, model empty → `unknown`). Stop reasons:
//! `refusal` ↔ content filter, `model_context_window_exceeded` → max tokens, `pause_turn` kept as
//! "other". An answer with tool calls and a natural end is reported as `tool_use` (agent loops
//! check it). Citations on answer text are dropped (the text is whole without them);
//! `redacted_thinking` and server-tool blocks in an answer are refused. Images and tool results
//! cannot be part of an Anthropic answer and are left out by the encoder.
//!
//! Usage is normalised by [`super::messages::usage_from_usage_object`]; Anthropic's counts are
//! already additive, so encoding writes the neutral counts back as they are.
//!
//! Streams: the decoder tracks what each content block index is and numbers tool calls from 0.
//! A stream cannot be refused halfway, so blocks the neutral model has no place for
//! (`redacted_thinking`, server tools and their results) and `citations_delta` are skipped
//! there. The encoder opens and closes content blocks with consecutive indexes (the SDK appends blocks
//! in order and addresses them by index), writes the `event:` line of every event (the SDK
//! dispatches on it), and puts the final usage — input and cache counts included, since usage
//! from other dialects arrives at the end — in `message_delta`.

use crate::json_field::{
    boolean as as_bool, number as as_f64, object as as_object, unsigned as as_u64,
};
use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::messages::usage_from_response;
use crate::dialect::Dialect;
use crate::ir::{self, Delta, Unsupported};
use crate::signature;
use crate::sse::{self, SseEvent};
use crate::usage::Usage;

/// `max_tokens` sent when the neutral request has none (Anthropic requires it). 4096 is the
/// largest value every Claude model accepts.
pub const DEFAULT_MAX_TOKENS: u64 = 4_096;

/// Anthropic's smallest thinking budget.
pub const MIN_THINKING_BUDGET: u64 = 1_024;

/// The name given to a decoded `output_config.format` schema (Anthropic schemas are unnamed).
pub const SCHEMA_NAME: &str = "response";

/// Id of a stream whose deltas did not start with [`Delta::Start`].
const FALLBACK_ID: &str = "msg_gw";

/// Model of a stream whose deltas did not start with [`Delta::Start`].
const FALLBACK_MODEL: &str = "unknown";

// ---------------------------------------------------------------------------------------------
// Requests: client body → neutral.

/// Client body (Anthropic Messages) → neutral request. Refuses any field or part the neutral
/// model cannot carry, naming it; ignores only the fields listed in the module documentation.
///
/// # Errors
/// [`Unsupported`] naming the first field or part that cannot be carried.
pub fn decode_request(body: &Map<String, Value>) -> Result<ir::Request, Unsupported> {
    let mut req = ir::Request::default();
    let mut thinking = None;
    let mut output_config = None;
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "metadata" | "service_tier" | "cache_control" => {}
            "messages" => req.messages = decode_messages(value)?,
            "system" => req.system = decode_system(value)?,
            "max_tokens" => req.max_tokens = Some(as_u64(value, key)?),
            "temperature" => req.temperature = Some(as_f64(value, key)?),
            "top_p" => req.top_p = Some(as_f64(value, key)?),
            "top_k" => req.top_k = Some(as_u64(value, key)?),
            "stop_sequences" => req.stop = as_strings(value, key)?,
            "stream" => req.stream = as_bool(value, key)?,
            "tools" => req.tools = decode_tools(value)?,
            "tool_choice" => {
                let (choice, parallel_tool_calls) = decode_tool_choice(value)?;
                req.tool_choice = Some(choice);
                req.parallel_tool_calls = parallel_tool_calls;
            }
            "thinking" => thinking = Some(value),
            "output_config" => output_config = Some(as_object(value, key)?),
            other => return Err(Unsupported::new(other)),
        }
    }
    let effort = match output_config {
        Some(config) => decode_output_config(config, &mut req)?,
        None => None,
    };
    req.reasoning = decode_thinking(thinking, effort)?;
    Ok(req)
}

fn decode_system(value: &Value) -> Result<Vec<String>, Unsupported> {
    match value {
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(
                |(i, block)| match decode_block(block, &format!("system[{i}]"))? {
                    ir::Part::Text(text) => Ok(text),
                    _ => Err(Unsupported::new(format!(
                        "system[{i}] ({})",
                        block_type(block)
                    ))),
                },
            )
            .collect(),
        _ => Err(Unsupported::new("system (neither text nor blocks)")),
    }
}

fn decode_messages(value: &Value) -> Result<Vec<ir::Message>, Unsupported> {
    let messages = value
        .as_array()
        .ok_or_else(|| Unsupported::new("messages (not an array)"))?;
    messages
        .iter()
        .enumerate()
        .map(|(i, message)| decode_message(message, &format!("messages[{i}]")))
        .collect()
}

fn decode_message(message: &Value, path: &str) -> Result<ir::Message, Unsupported> {
    let message = as_object(message, path)?;
    check_keys(message, &["role", "content"], path)?;
    let role = match message.get("role").and_then(Value::as_str) {
        Some("user") => ir::Role::User,
        Some("assistant") => ir::Role::Assistant,
        Some(other) => return Err(Unsupported::new(format!("{path}.role ({other})"))),
        None => return Err(Unsupported::new(format!("{path}.role (missing)"))),
    };
    let content = decode_content(message.get("content"), &format!("{path}.content"))?;
    Ok(ir::Message { role, content })
}

/// A `content` that is a string (one text part) or an array of blocks.
fn decode_content(content: Option<&Value>, path: &str) -> Result<Vec<ir::Part>, Unsupported> {
    match content {
        Some(Value::String(text)) => Ok(vec![ir::Part::Text(text.clone())]),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(j, block)| decode_block(block, &format!("{path}[{j}]")))
            .collect(),
        Some(_) => Err(Unsupported::new(format!(
            "{path} (neither text nor blocks)"
        ))),
        None => Err(Unsupported::new(format!("{path} (missing)"))),
    }
}

fn block_type(block: &Value) -> &str {
    block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("untyped")
}

/// One content block of a request. `path` names it in refusals (`messages[1].content[0]`).
fn decode_block(block: &Value, path: &str) -> Result<ir::Part, Unsupported> {
    let object = as_object(block, path)?;
    match block_type(block) {
        "text" => {
            check_keys(
                object,
                &["type", "text", "cache_control", "citations"],
                path,
            )?;
            match object.get("citations") {
                None | Some(Value::Null) => {}
                Some(Value::Array(list)) if list.is_empty() => {}
                Some(_) => return Err(Unsupported::new(format!("{path}.citations"))),
            }
            Ok(ir::Part::Text(str_field(object, "text", path)?.to_owned()))
        }
        "image" => {
            check_keys(object, &["type", "source", "cache_control"], path)?;
            Ok(ir::Part::Image(decode_image_source(
                object.get("source"),
                &format!("{path}.source"),
            )?))
        }
        "tool_use" => {
            check_keys(
                object,
                &["type", "id", "name", "input", "cache_control", "caller"],
                path,
            )?;
            if let Some(caller) = object.get("caller").filter(|c| !c.is_null())
                && caller.get("type").and_then(Value::as_str) != Some("direct")
            {
                return Err(Unsupported::new(format!("{path}.caller")));
            }
            Ok(ir::Part::ToolCall(ir::ToolCall {
                id: str_field(object, "id", path)?.to_owned(),
                name: str_field(object, "name", path)?.to_owned(),
                arguments: object.get("input").cloned().unwrap_or_else(|| json!({})),
            }))
        }
        "tool_result" => decode_tool_result(object, path),
        "thinking" => {
            check_keys(
                object,
                &["type", "thinking", "signature", "cache_control"],
                path,
            )?;
            let signature = object
                .get("signature")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            Ok(ir::Part::Thinking(signature::thinking(
                str_field(object, "thinking", path)?.to_owned(),
                signature,
                Dialect::Messages,
            )))
        }
        other => Err(Unsupported::new(format!("{path} ({other})"))),
    }
}

fn decode_tool_result(object: &Map<String, Value>, path: &str) -> Result<ir::Part, Unsupported> {
    check_keys(
        object,
        &[
            "type",
            "tool_use_id",
            "content",
            "is_error",
            "cache_control",
        ],
        path,
    )?;
    let content = match object.get("content") {
        None | Some(Value::Null) => Vec::new(),
        content => decode_content(content, &format!("{path}.content"))?,
    };
    if let Some((j, _)) = content
        .iter()
        .enumerate()
        .find(|(_, part)| !matches!(part, ir::Part::Text(_) | ir::Part::Image(_)))
    {
        let inner = object
            .get("content")
            .and_then(|c| c.get(j))
            .map_or("untyped", block_type);
        return Err(Unsupported::new(format!("{path}.content[{j}] ({inner})")));
    }
    let is_error = match object.get("is_error") {
        None | Some(Value::Null) => false,
        Some(flag) => as_bool(flag, &format!("{path}.is_error"))?,
    };
    Ok(ir::Part::ToolResult(ir::ToolResult {
        call_id: str_field(object, "tool_use_id", path)?.to_owned(),
        content,
        is_error,
    }))
}

fn decode_image_source(source: Option<&Value>, path: &str) -> Result<ir::Image, Unsupported> {
    let source = as_object(source.unwrap_or(&Value::Null), path)?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(ir::Image::Base64 {
            media_type: str_field(source, "media_type", path)?.to_owned(),
            data: str_field(source, "data", path)?.to_owned(),
        }),
        Some("url") => Ok(ir::Image::Url(str_field(source, "url", path)?.to_owned())),
        Some(other) => Err(Unsupported::new(format!("{path} ({other})"))),
        None => Err(Unsupported::new(format!("{path} (untyped)"))),
    }
}

fn decode_tools(value: &Value) -> Result<Vec<ir::Tool>, Unsupported> {
    let tools = value
        .as_array()
        .ok_or_else(|| Unsupported::new("tools (not an array)"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| decode_tool(tool, &format!("tools[{i}]")))
        .collect()
}

/// One client tool (`custom`, typed or not); server tools are refused.
fn decode_tool(tool: &Value, path: &str) -> Result<ir::Tool, Unsupported> {
    let object = as_object(tool, path)?;
    match object.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind == "custom" => {}
        Some(kind) => {
            let kind = kind.as_str().unwrap_or("untyped");
            return Err(Unsupported::new(format!("{path} (server tool {kind})")));
        }
    }
    check_keys(
        object,
        &[
            "type",
            "name",
            "description",
            "input_schema",
            "strict",
            "cache_control",
        ],
        path,
    )?;
    Ok(ir::Tool {
        name: str_field(object, "name", path)?.to_owned(),
        description: object
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters: object.get("input_schema").cloned().unwrap_or(Value::Null),
        strict: decode_strict(object, path)?,
    })
}

/// A tool's `strict` switch: `true` asks for the tool's input to follow its schema exactly;
/// `false`, `null` and absence are Anthropic's default (not asked). Anything else is refused
/// rather than guessed, as the OpenAI decoders do.
fn decode_strict(tool: &Map<String, Value>, path: &str) -> Result<bool, Unsupported> {
    match tool.get("strict") {
        None | Some(Value::Null) => Ok(false),
        Some(value) => as_bool(value, &format!("{path}.strict")),
    }
}

/// The tool choice and the parallel-call setting Anthropic keeps inside it:
/// `disable_parallel_tool_use: true` is `Some(false)`; `false` (Anthropic's default) and absence
/// are `None`.
fn decode_tool_choice(value: &Value) -> Result<(ir::ToolChoice, Option<bool>), Unsupported> {
    let object = as_object(value, "tool_choice")?;
    check_keys(
        object,
        &["type", "name", "disable_parallel_tool_use"],
        "tool_choice",
    )?;
    let parallel_tool_calls = match object.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => None,
        Some(disable) => {
            as_bool(disable, "tool_choice.disable_parallel_tool_use")?.then_some(false)
        }
    };
    let choice = match object.get("type").and_then(Value::as_str) {
        Some("auto") => ir::ToolChoice::Auto,
        Some("any") => ir::ToolChoice::Required,
        Some("none") => ir::ToolChoice::None,
        Some("tool") => ir::ToolChoice::Tool(str_field(object, "name", "tool_choice")?.to_owned()),
        Some(other) => return Err(Unsupported::new(format!("tool_choice ({other})"))),
        None => return Err(Unsupported::new("tool_choice (untyped)")),
    };
    Ok((choice, parallel_tool_calls))
}

/// Reads `output_config`: its `format` goes into `req`, its effort is returned for
/// [`decode_thinking`] (it only means something with adaptive thinking).
fn decode_output_config(
    config: &Map<String, Value>,
    req: &mut ir::Request,
) -> Result<Option<String>, Unsupported> {
    check_keys(config, &["effort", "format"], "output_config")?;
    match config.get("format") {
        None | Some(Value::Null) => {}
        Some(format) => {
            let format = as_object(format, "output_config.format")?;
            if format.get("type").and_then(Value::as_str) != Some("json_schema") {
                return Err(Unsupported::new("output_config.format (not json_schema)"));
            }
            check_keys(format, &["type", "schema"], "output_config.format")?;
            req.response_format = Some(ir::ResponseFormat::JsonSchema {
                name: SCHEMA_NAME.to_owned(),
                schema: format.get("schema").cloned().unwrap_or_else(|| json!({})),
                // Anthropic's format has no strict switch.
                strict: false,
            });
        }
    }
    match config.get("effort") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(effort)) if matches!(effort.as_str(), "low" | "medium" | "high") => {
            Ok(Some(effort.clone()))
        }
        Some(effort) => Err(Unsupported::new(format!(
            "output_config.effort ({})",
            effort.as_str().unwrap_or("not a string")
        ))),
    }
}

fn decode_thinking(
    thinking: Option<&Value>,
    effort: Option<String>,
) -> Result<Option<ir::Reasoning>, Unsupported> {
    let Some(thinking) = thinking else {
        return match effort {
            None => Ok(None),
            Some(_) => Err(Unsupported::new(
                "output_config.effort (without adaptive thinking)",
            )),
        };
    };
    let object = as_object(thinking, "thinking")?;
    check_keys(object, &["type", "budget_tokens", "display"], "thinking")?;
    match object.get("display").and_then(Value::as_str) {
        None | Some("summarized") => {}
        Some(other) => return Err(Unsupported::new(format!("thinking.display ({other})"))),
    }
    let kind = object.get("type").and_then(Value::as_str);
    if effort.is_some() && kind != Some("adaptive") {
        return Err(Unsupported::new(
            "output_config.effort (without adaptive thinking)",
        ));
    }
    match kind {
        Some("enabled") => Ok(Some(ir::Reasoning {
            effort: None,
            budget_tokens: Some(as_u64(
                object.get("budget_tokens").unwrap_or(&Value::Null),
                "thinking.budget_tokens",
            )?),
        })),
        Some("adaptive") => Ok(Some(ir::Reasoning {
            // Anthropic's default effort is `high`.
            effort: Some(effort.unwrap_or_else(|| "high".to_owned())),
            budget_tokens: None,
        })),
        Some("disabled") => Ok(None),
        Some(other) => Err(Unsupported::new(format!("thinking ({other})"))),
        None => Err(Unsupported::new("thinking (untyped)")),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: neutral → upstream body.

/// Neutral request → body for an Anthropic upstream, with `model` as the upstream model name.
///
/// # Errors
/// [`Unsupported`] for anything Anthropic cannot express (see the module documentation).
pub fn encode_request(req: &ir::Request, model: &str) -> Result<Map<String, Value>, Unsupported> {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let (max_tokens, budget) = limits(req)?;
    body.insert("max_tokens".into(), json!(max_tokens));
    if let Some(budget) = budget {
        check_thinking_compatible(req)?;
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    match req.system.as_slice() {
        [] => {}
        [one] => {
            body.insert("system".into(), json!(one));
        }
        many => {
            let blocks: Vec<Value> = many.iter().map(|t| text_block(t)).collect();
            body.insert("system".into(), Value::Array(blocks));
        }
    }
    body.insert("messages".into(), encode_messages(&req.messages)?);
    if !req.tools.is_empty() {
        body.insert(
            "tools".into(),
            req.tools.iter().map(encode_tool).collect::<Vec<_>>().into(),
        );
    }
    if let Some(choice) = encode_tool_choice(req) {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(temperature) = req.temperature {
        if temperature > 1.0 {
            return Err(Unsupported::new(format!(
                "temperature {temperature} (Anthropic accepts 0 to 1)"
            )));
        }
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = req.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(top_k) = req.top_k {
        body.insert("top_k".into(), json!(top_k));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if req.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    match &req.response_format {
        None => {}
        Some(ir::ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert(
                "output_config".into(),
                json!({"format": {"type": "json_schema", "schema": schema}}),
            );
        }
        Some(ir::ResponseFormat::JsonObject) => {
            return Err(Unsupported::new(
                "response_format json_object (Anthropic needs a schema)",
            ));
        }
    }
    Ok(body)
}

/// `max_tokens` and the thinking budget (`None`: no thinking), fitted to Anthropic's rules (see
/// the module documentation).
fn limits(req: &ir::Request) -> Result<(u64, Option<u64>), Unsupported> {
    let wanted = match &req.reasoning {
        None => None,
        Some(reasoning) => thinking_budget(reasoning)?,
    };
    let Some(wanted) = wanted else {
        return Ok((req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS), None));
    };
    let wanted = wanted.max(MIN_THINKING_BUDGET);
    match req.max_tokens {
        None => Ok((wanted.saturating_add(DEFAULT_MAX_TOKENS), Some(wanted))),
        Some(max) if wanted < max => Ok((max, Some(wanted))),
        Some(max) if max > MIN_THINKING_BUDGET => Ok((max, Some(max - 1))),
        Some(max) => Err(Unsupported::new(format!(
            "reasoning with max_tokens {max} (Anthropic needs a thinking budget of at least \
             {MIN_THINKING_BUDGET} below max_tokens)"
        ))),
    }
}

/// The budget a reasoning setting asks for; `None` when it asks for no thinking (budget 0,
/// effort `none`, or neither set, which leaves the dialect's default: off).
fn thinking_budget(reasoning: &ir::Reasoning) -> Result<Option<u64>, Unsupported> {
    if let Some(budget) = reasoning.budget_tokens {
        return Ok((budget > 0).then_some(budget));
    }
    match reasoning.effort.as_deref() {
        None | Some("none") => Ok(None),
        Some(effort) => ir::Reasoning::budget_for_effort(effort)
            .map(Some)
            .ok_or_else(|| Unsupported::new(format!("reasoning effort {effort}"))),
    }
}

/// Anthropic refuses these sampling settings together with thinking.
fn check_thinking_compatible(req: &ir::Request) -> Result<(), Unsupported> {
    if req
        .temperature
        .is_some_and(|t| (t - 1.0).abs() > f64::EPSILON)
    {
        return Err(Unsupported::new(
            "temperature with reasoning (Anthropic thinking requires temperature 1)",
        ));
    }
    if req.top_k.is_some() {
        return Err(Unsupported::new(
            "top_k with reasoning (Anthropic thinking does not allow it)",
        ));
    }
    if req.top_p.is_some_and(|p| p < 0.95) {
        return Err(Unsupported::new(
            "top_p below 0.95 with reasoning (Anthropic thinking does not allow it)",
        ));
    }
    if matches!(
        req.tool_choice,
        Some(ir::ToolChoice::Required | ir::ToolChoice::Tool(_))
    ) {
        return Err(Unsupported::new(
            "forced tool use with reasoning (Anthropic thinking allows only auto or none)",
        ));
    }
    Ok(())
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn encode_messages(messages: &[ir::Message]) -> Result<Value, Unsupported> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let mut blocks = Vec::with_capacity(message.content.len());
        for (j, part) in message.content.iter().enumerate() {
            let part_path = format!("{path}.content[{j}]");
            if let Some(block) = encode_part(message.role, part, &part_path)? {
                blocks.push(block);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let role = match message.role {
            ir::Role::User => "user",
            ir::Role::Assistant => "assistant",
        };
        out.push(json!({"role": role, "content": compact_content(blocks)}));
    }
    Ok(Value::Array(out))
}

/// One text block is sent as a plain string (the shorthand every compatible server reads);
/// anything else as blocks.
fn compact_content(mut blocks: Vec<Value>) -> Value {
    if blocks.len() == 1
        && blocks[0].get("type").and_then(Value::as_str) == Some("text")
        && let Some(Value::String(text)) = blocks[0].get_mut("text")
    {
        return Value::String(std::mem::take(text));
    }
    Value::Array(blocks)
}

/// One part as a block, `None` when it is dropped (empty text, unsigned thinking).
fn encode_part(role: ir::Role, part: &ir::Part, path: &str) -> Result<Option<Value>, Unsupported> {
    let refuse = |what: &str| Err(Unsupported::new(format!("{path} ({what})")));
    match (role, part) {
        (_, ir::Part::Text(text)) if text.is_empty() => Ok(None),
        (_, ir::Part::Text(text)) => Ok(Some(text_block(text))),
        (ir::Role::User, ir::Part::Image(image)) => Ok(Some(encode_image(image))),
        (ir::Role::Assistant, ir::Part::Image(_)) => refuse("image from the assistant"),
        (ir::Role::Assistant, ir::Part::ToolCall(call)) => {
            let input = match &call.arguments {
                Value::Null => json!({}),
                Value::Object(_) => call.arguments.clone(),
                _ => return refuse("tool call arguments that are not a JSON object"),
            };
            Ok(Some(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": input,
            })))
        }
        (ir::Role::User, ir::Part::ToolCall(_)) => refuse("tool call from the user"),
        (ir::Role::User, ir::Part::ToolResult(result)) => {
            encode_tool_result(result, path).map(Some)
        }
        (ir::Role::Assistant, ir::Part::ToolResult(_)) => refuse("tool result from the assistant"),
        (ir::Role::Assistant, ir::Part::Thinking(thinking)) => Ok(signature::for_upstream(
            thinking.source,
            thinking.signature.as_deref(),
            Dialect::Messages,
        )
        .map(|signature| {
            json!({
                "type": "thinking",
                "thinking": thinking.text,
                "signature": signature,
            })
        })),
        (ir::Role::User, ir::Part::Thinking(_)) => refuse("thinking from the user"),
    }
}

fn encode_image(image: &ir::Image) -> Value {
    let source = match image {
        ir::Image::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ir::Image::Url(url) => json!({"type": "url", "url": url}),
    };
    json!({"type": "image", "source": source})
}

fn encode_tool_result(result: &ir::ToolResult, path: &str) -> Result<Value, Unsupported> {
    let mut blocks = Vec::with_capacity(result.content.len());
    for (k, part) in result.content.iter().enumerate() {
        match part {
            ir::Part::Text(text) if text.is_empty() => {}
            ir::Part::Text(text) => blocks.push(text_block(text)),
            ir::Part::Image(image) => blocks.push(encode_image(image)),
            _ => {
                return Err(Unsupported::new(format!(
                    "{path}.content[{k}] (neither text nor image in a tool result)"
                )));
            }
        }
    }
    let mut block = Map::new();
    block.insert("type".into(), json!("tool_result"));
    block.insert("tool_use_id".into(), json!(result.call_id));
    if !blocks.is_empty() {
        block.insert("content".into(), compact_content(blocks));
    }
    if result.is_error {
        block.insert("is_error".into(), Value::Bool(true));
    }
    Ok(Value::Object(block))
}

fn encode_tool(tool: &ir::Tool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(tool.name));
    if let Some(description) = &tool.description {
        out.insert("description".into(), json!(description));
    }
    // Anthropic requires an object schema; a tool without parameters takes none.
    let schema = match &tool.parameters {
        Value::Null => json!({"type": "object", "properties": {}}),
        schema => schema.clone(),
    };
    out.insert("input_schema".into(), schema);
    // Only when asked: absence is Anthropic's default, and leaving it out keeps requests
    // without strict tools exactly as they were.
    if tool.strict {
        out.insert("strict".into(), json!(true));
    }
    Value::Object(out)
}

/// `tool_choice`, carrying Anthropic's switch for one tool call per turn when the request asks
/// for it and has tools; `None` when neither a choice nor the switch is to be sent.
fn encode_tool_choice(req: &ir::Request) -> Option<Value> {
    let one_call = req.parallel_tool_calls == Some(false) && !req.tools.is_empty();
    let mut choice = Map::new();
    match &req.tool_choice {
        // The switch lives in `tool_choice`: `auto` is Anthropic's default choice.
        None if one_call => {
            choice.insert("type".into(), json!("auto"));
        }
        None => return None,
        Some(ir::ToolChoice::Auto) => {
            choice.insert("type".into(), json!("auto"));
        }
        // Anthropic forbids the switch on `none`, and a turn without calls keeps it anyway.
        Some(ir::ToolChoice::None) => return Some(json!({"type": "none"})),
        Some(ir::ToolChoice::Required) => {
            choice.insert("type".into(), json!("any"));
        }
        Some(ir::ToolChoice::Tool(name)) => {
            choice.insert("type".into(), json!("tool"));
            choice.insert("name".into(), json!(name));
        }
    }
    if one_call {
        choice.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
    Some(Value::Object(choice))
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// Upstream non-streamed answer (an Anthropic message object) → neutral answer, usage normalised.
///
/// # Errors
/// [`Unsupported`] when the body is not a message object or holds a block the neutral model
/// cannot carry (`redacted_thinking`, server-tool blocks).
pub fn decode_response(body: &Value) -> Result<ir::Response, Unsupported> {
    let object = as_object(body, "response")?;
    let blocks = object
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported::new("content (missing)"))?;
    let content = blocks
        .iter()
        .enumerate()
        .map(|(i, block)| decode_answer_block(block, &format!("content[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ir::Response {
        id: string_or_empty(object.get("id")),
        model: string_or_empty(object.get("model")),
        content,
        stop_reason: object
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(decode_stop_reason),
        usage: usage_from_response(body).unwrap_or_default(),
    })
}

/// A block of an answer. Unlike request blocks, unknown keys are not refused: answers gain
/// informational fields, and a refusal here would throw away an answer already paid for.
fn decode_answer_block(block: &Value, path: &str) -> Result<ir::Part, Unsupported> {
    let object = as_object(block, path)?;
    match block_type(block) {
        "text" => Ok(ir::Part::Text(str_field(object, "text", path)?.to_owned())),
        "thinking" => Ok(ir::Part::Thinking(signature::thinking(
            str_field(object, "thinking", path)?.to_owned(),
            object
                .get("signature")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty()),
            Dialect::Messages,
        ))),
        "tool_use" => Ok(ir::Part::ToolCall(ir::ToolCall {
            id: str_field(object, "id", path)?.to_owned(),
            name: str_field(object, "name", path)?.to_owned(),
            arguments: object.get("input").cloned().unwrap_or_else(|| json!({})),
        })),
        other => Err(Unsupported::new(format!("{path} ({other})"))),
    }
}

fn decode_stop_reason(reason: &str) -> ir::StopReason {
    match reason {
        "end_turn" => ir::StopReason::EndTurn,
        // Both mean "no room left"; clients of other dialects know only the first.
        "max_tokens" | "model_context_window_exceeded" => ir::StopReason::MaxTokens,
        "stop_sequence" => ir::StopReason::StopSequence,
        "tool_use" => ir::StopReason::ToolUse,
        "refusal" => ir::StopReason::ContentFilter,
        other => ir::StopReason::Other(other.to_owned()),
    }
}

/// Anthropic's `stop_reason`. Without one, or with a natural end while tools were called, it is
/// derived from the content: agent loops wait for `tool_use` before running tools.
fn encode_stop_reason(reason: Option<&ir::StopReason>, tool_calls: bool) -> String {
    let natural = if tool_calls { "tool_use" } else { "end_turn" };
    match reason {
        None | Some(ir::StopReason::EndTurn) => natural,
        Some(ir::StopReason::MaxTokens) => "max_tokens",
        Some(ir::StopReason::StopSequence) => "stop_sequence",
        Some(ir::StopReason::ToolUse) => "tool_use",
        Some(ir::StopReason::ContentFilter) => "refusal",
        Some(ir::StopReason::Other(other)) => match other.as_str() {
            known @ ("pause_turn" | "model_context_window_exceeded") => known,
            _ => natural,
        },
    }
    .to_owned()
}

/// Anthropic's `usage` object for normalised counts (already Anthropic's additive convention).
fn encode_usage(usage: &Usage) -> Value {
    let mut out = json!({
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    });
    if usage.reasoning_tokens > 0
        && let Some(map) = out.as_object_mut()
    {
        map.insert(
            "output_tokens_details".into(),
            json!({"thinking_tokens": usage.reasoning_tokens}),
        );
    }
    out
}

/// Neutral answer → the message object an Anthropic client expects.
#[must_use]
pub fn encode_response(resp: &ir::Response) -> Value {
    let content: Vec<Value> = resp.content.iter().filter_map(encode_answer_part).collect();
    let tool_calls = resp
        .content
        .iter()
        .any(|p| matches!(p, ir::Part::ToolCall(_)));
    json!({
        "id": non_empty(&resp.id, FALLBACK_ID),
        "type": "message",
        "role": "assistant",
        "model": non_empty(&resp.model, FALLBACK_MODEL),
        "content": content,
        "stop_reason": encode_stop_reason(resp.stop_reason.as_ref(), tool_calls),
        "stop_sequence": null,
        "usage": encode_usage(&resp.usage),
    })
}

/// A part of an answer as a block; images and tool results have no place in an Anthropic
/// answer and are left out.
fn encode_answer_part(part: &ir::Part) -> Option<Value> {
    match part {
        ir::Part::Text(text) => Some(text_block(text)),
        ir::Part::Thinking(thinking) => Some(json!({
            "type": "thinking",
            "thinking": thinking.text,
            "signature": thinking.signature.as_deref().map_or_else(String::new, |signature| {
                signature::for_client(thinking.source, signature, Dialect::Messages)
            }),
        })),
        ir::Part::ToolCall(call) => Some(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": if call.arguments.is_null() { json!({}) } else { call.arguments.clone() },
        })),
        ir::Part::Image(_) | ir::Part::ToolResult(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Streams: upstream events → neutral deltas.

/// What a content block of the upstream stream is, by its index.
#[derive(Debug, Clone, PartialEq)]
enum UpstreamBlock {
    Text,
    Thinking,
    Tool {
        /// Ordinal of the call in this answer.
        ordinal: usize,
        /// The `input` of `content_block_start`: used when no `input_json_delta` follows.
        initial: Value,
        /// An argument fragment was already passed on.
        sent: bool,
    },
    /// A block the neutral model has no place for (`redacted_thinking`, server tools).
    Ignored,
}

/// Upstream Anthropic stream events → neutral deltas. Stateful: it remembers what each block
/// index is and numbers tool calls from 0.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    blocks: BTreeMap<u64, UpstreamBlock>,
    tool_calls: usize,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The deltas one upstream event stands for (none for `ping`, `message_stop`, errors and
    /// anything that is not a JSON event: the relay classifies those with
    /// [`super::messages::classify_stream_event`]).
    pub fn push(&mut self, event: &SseEvent) -> Vec<Delta> {
        let Ok(value) = serde_json::from_str::<Value>(event.data.trim()) else {
            return Vec::new();
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref());
        match kind {
            Some("message_start") => message_start(value.get("message").unwrap_or(&Value::Null)),
            Some("content_block_start") => self.block_start(&value),
            Some("content_block_delta") => self.block_delta(&value),
            Some("content_block_stop") => self.block_stop(&value),
            Some("message_delta") => message_delta(&value),
            _ => Vec::new(),
        }
    }

    fn block_start(&mut self, event: &Value) -> Vec<Delta> {
        let index = event_index(event);
        let block = event.get("content_block").unwrap_or(&Value::Null);
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let mut out = Vec::new();
        let kind = match block_type(block) {
            "text" => {
                out.extend(text("text").map(Delta::Text));
                UpstreamBlock::Text
            }
            "thinking" => {
                out.extend(text("thinking").map(Delta::Thinking));
                out.extend(text("signature").map(|raw| signature::delta(&raw, Dialect::Messages)));
                UpstreamBlock::Thinking
            }
            "tool_use" => {
                let ordinal = self.tool_calls;
                self.tool_calls += 1;
                out.push(Delta::ToolCallStart {
                    index: ordinal,
                    id: string_or_empty(block.get("id")),
                    name: string_or_empty(block.get("name")),
                });
                UpstreamBlock::Tool {
                    ordinal,
                    initial: block.get("input").cloned().unwrap_or_else(|| json!({})),
                    sent: false,
                }
            }
            _ => UpstreamBlock::Ignored,
        };
        self.blocks.insert(index, kind);
        out
    }

    fn block_delta(&mut self, event: &Value) -> Vec<Delta> {
        let index = event_index(event);
        let delta = event.get("delta").unwrap_or(&Value::Null);
        let field = |key: &str| {
            delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        // Deltas of ignored blocks (a server tool's input) are not the answer's.
        if self.blocks.get(&index) == Some(&UpstreamBlock::Ignored) {
            return Vec::new();
        }
        let found = match block_type(delta) {
            "text_delta" => field("text").map(Delta::Text),
            "thinking_delta" => field("thinking").map(Delta::Thinking),
            "signature_delta" => {
                field("signature").map(|raw| signature::delta(&raw, Dialect::Messages))
            }
            "input_json_delta" => match (self.blocks.get_mut(&index), field("partial_json")) {
                (Some(UpstreamBlock::Tool { ordinal, sent, .. }), Some(fragment)) => {
                    *sent = true;
                    Some(Delta::ToolCallArguments {
                        index: *ordinal,
                        fragment,
                    })
                }
                _ => None,
            },
            // citations_delta and anything newer: not carried by the neutral model.
            _ => None,
        };
        found.into_iter().collect()
    }

    fn block_stop(&mut self, event: &Value) -> Vec<Delta> {
        match self.blocks.get(&event_index(event)) {
            // No fragment came: the input given at the start is the whole input. Passing it on
            // (even `{}`) leaves every consumer with valid JSON arguments.
            Some(UpstreamBlock::Tool {
                ordinal,
                initial,
                sent: false,
            }) => vec![Delta::ToolCallArguments {
                index: *ordinal,
                fragment: initial.to_string(),
            }],
            _ => Vec::new(),
        }
    }
}

fn event_index(event: &Value) -> u64 {
    event.get("index").and_then(Value::as_u64).unwrap_or(0)
}

fn message_start(message: &Value) -> Vec<Delta> {
    let mut out = vec![Delta::Start {
        id: string_or_empty(message.get("id")),
        model: string_or_empty(message.get("model")),
    }];
    out.extend(usage_from_response(message).map(Delta::Usage));
    out
}

fn message_delta(event: &Value) -> Vec<Delta> {
    let mut out: Vec<Delta> = usage_from_response(event)
        .map(Delta::Usage)
        .into_iter()
        .collect();
    if let Some(reason) = event
        .get("delta")
        .and_then(|d| d.get("stop_reason"))
        .and_then(Value::as_str)
    {
        out.push(Delta::Stop(decode_stop_reason(reason)));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Streams: neutral deltas → client events.

/// The kind of the content block the encoder has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Thinking,
    Tool(usize),
}

/// Neutral deltas → Anthropic SSE frames for a client. Keeps the block bookkeeping: one block
/// open at a time, indexes from 0 in order, every block closed before `message_delta`.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    /// `message_start` was sent.
    started: bool,
    /// `message_stop` was sent; later deltas are ignored.
    finished: bool,
    /// The open block: its index and kind.
    open: Option<(usize, OpenKind)>,
    /// Index of the next block.
    next_index: usize,
    /// Block index of each tool call, by ordinal.
    tool_blocks: BTreeMap<usize, usize>,
    /// Usage so far (merged).
    usage: Usage,
    /// The stop reason, once known.
    stop: Option<ir::StopReason>,
}

impl StreamEncoder {
    /// An encoder for a new stream (`include_usage` is OpenAI chat's and ignored here: Anthropic
    /// streams always carry usage).
    #[must_use]
    pub fn new(_include_usage: bool) -> Self {
        Self::default()
    }

    /// The frames for one delta (possibly none: usage and the stop reason wait for
    /// [`StreamEncoder::finish`]).
    pub fn push(&mut self, delta: &Delta) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        let mut out = Vec::new();
        match delta {
            Delta::Start { id, model } => {
                if !self.started {
                    out.push(self.message_start(id, model));
                }
            }
            Delta::Text(text) if !text.is_empty() => {
                let index = self.ensure_block(OpenKind::Text, &mut out);
                out.push(block_delta(
                    index,
                    json!({"type": "text_delta", "text": text}),
                ));
            }
            Delta::Thinking(text) if !text.is_empty() => {
                let index = self.ensure_block(OpenKind::Thinking, &mut out);
                out.push(block_delta(
                    index,
                    json!({"type": "thinking_delta", "thinking": text}),
                ));
            }
            Delta::ThinkingSignature { source, signature } if !signature.is_empty() => {
                let index = self.ensure_block(OpenKind::Thinking, &mut out);
                let signature = signature::for_client(*source, signature, Dialect::Messages);
                out.push(block_delta(
                    index,
                    json!({"type": "signature_delta", "signature": signature}),
                ));
            }
            Delta::ToolCallStart { index, id, name } => {
                self.open_tool(*index, id, name, &mut out);
            }
            Delta::ToolCallArguments { index, fragment } if !fragment.is_empty() => {
                let block = match self.tool_blocks.get(index) {
                    // Usually the open block; a closed one still gets its fragments (the SDK
                    // accumulates by index), so interleaved calls lose nothing.
                    Some(block) => *block,
                    // Arguments of a call never started: start it so they are not lost.
                    None => self.open_tool(*index, &format!("toolu_gw_{index}"), "", &mut out),
                };
                out.push(block_delta(
                    block,
                    json!({"type": "input_json_delta", "partial_json": fragment}),
                ));
            }
            Delta::Usage(usage) => self.usage.merge_stream(usage),
            Delta::Stop(reason) => self.stop = Some(reason.clone()),
            // Empty text, thinking, signature or argument fragments say nothing.
            Delta::Text(_)
            | Delta::Thinking(_)
            | Delta::ThinkingSignature { .. }
            | Delta::ToolCallArguments { .. } => {}
        }
        out
    }

    /// The answer is complete: closes the open block and sends `message_delta` (stop reason and
    /// final usage) and `message_stop`. Idempotent.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.ensure_started(&mut out);
        self.close_block(&mut out);
        self.finished = true;
        let stop = encode_stop_reason(self.stop.as_ref(), !self.tool_blocks.is_empty());
        out.push(frame(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": encode_usage(&self.usage),
            }),
        ));
        out.push(frame("message_stop", json!({"type": "message_stop"})));
        out
    }

    fn message_start(&mut self, id: &str, model: &str) -> Bytes {
        self.started = true;
        let mut usage = encode_usage(&self.usage);
        // What is known so far: the SDK starts its running totals from here.
        if let Some(map) = usage.as_object_mut() {
            map.remove("output_tokens_details");
        }
        frame(
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": non_empty(id, FALLBACK_ID),
                    "type": "message",
                    "role": "assistant",
                    "model": non_empty(model, FALLBACK_MODEL),
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": usage,
                }
            }),
        )
    }

    /// Synthesises `message_start` for deltas that did not begin with [`Delta::Start`].
    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            let start = self.message_start(FALLBACK_ID, FALLBACK_MODEL);
            out.push(start);
        }
    }

    /// The index of an open block of `kind`, opening one (and closing the current one) if
    /// needed.
    fn ensure_block(&mut self, kind: OpenKind, out: &mut Vec<Bytes>) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
        {
            return index;
        }
        let content_block = match kind {
            OpenKind::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            // Tool blocks are opened by `open_tool`, never here.
            OpenKind::Text | OpenKind::Tool(_) => json!({"type": "text", "text": ""}),
        };
        self.open_block(kind, content_block, out)
    }

    fn open_tool(&mut self, ordinal: usize, id: &str, name: &str, out: &mut Vec<Bytes>) -> usize {
        let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
        let index = self.open_block(OpenKind::Tool(ordinal), block, out);
        self.tool_blocks.insert(ordinal, index);
        index
    }

    fn open_block(&mut self, kind: OpenKind, content_block: Value, out: &mut Vec<Bytes>) -> usize {
        self.ensure_started(out);
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": content_block}),
        ));
        index
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(frame(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }
}

fn block_delta(index: usize, delta: Value) -> Bytes {
    frame(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

/// One event with its `event:` line, which the Anthropic SDKs dispatch on.
fn frame(name: &str, data: Value) -> Bytes {
    sse::encode(Some(name), &data.to_string())
}

// ---------------------------------------------------------------------------------------------
// Small readers.

fn non_empty<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

fn string_or_empty(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn str_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, Unsupported> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Unsupported::new(format!("{path}.{key} (not a string)")))
}

fn as_strings(value: &Value, path: &str) -> Result<Vec<String>, Unsupported> {
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| Unsupported::new(format!("{path} (not a list of strings)")))
}

/// Refuses the first key not in `allowed`: an unknown field may change the answer.
fn check_keys(
    object: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), Unsupported> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(Unsupported::new(format!("{path}.{key}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{
        Image, Message, Part, Reasoning, Request, ResponseFormat, StopReason, Tool, ToolChoice,
        ToolResult,
    };
    use crate::test_support::{named_frames, object, sse_events};

    fn weather_schema() -> Value {
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    }

    fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: Some("Current weather".into()),
            parameters: weather_schema(),
            strict: false,
        }
    }

    fn refusal(result: Result<impl std::fmt::Debug, Unsupported>) -> String {
        result.expect_err("must be refused").what
    }

    // --- Requests: client → neutral -----------------------------------------------------

    /// A Claude Code-like second turn: cached system blocks, signed thinking, parallel tool
    /// calls, tool results (one failed, with an image), a URL image, sampling and thinking.
    fn native_request() -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 16000,
            "system": [
                {"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Answer in French."}
            ],
            "messages": [
                {"role": "user", "content": "Weather in Paris and Lyon?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "EqQBCgIYAh"},
                    {"type": "text", "text": "Checking both."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Lyon"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18°C, sunny"},
                    {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": true, "content": [
                        {"type": "text", "text": "station offline"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                    ], "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "And this map?", "citations": null},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/map.jpg"}}
                ]}
            ],
            "tools": [{
                "name": "get_weather",
                "description": "Current weather",
                "input_schema": weather_schema(),
                "cache_control": {"type": "ephemeral"}
            }],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": false},
            "temperature": 1.0,
            "top_p": 0.99,
            "stop_sequences": ["</answer>"],
            "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "metadata": {"user_id": "u-42"},
            "service_tier": "auto",
            "cache_control": {"type": "ephemeral"}
        })
    }

    fn neutral_request() -> Request {
        Request {
            system: vec!["You are a weather bot.".into(), "Answer in French.".into()],
            messages: vec![
                Message::user(vec![Part::text("Weather in Paris and Lyon?")]),
                Message::assistant(vec![
                    Part::signed_thinking(
                        "Two cities, two calls.",
                        "EqQBCgIYAh",
                        Dialect::Messages,
                    ),
                    Part::text("Checking both."),
                    Part::tool_call("toolu_01A", "get_weather", json!({"city": "Paris"})),
                    Part::tool_call("toolu_01B", "get_weather", json!({"city": "Lyon"})),
                ]),
                Message::user(vec![
                    Part::tool_result("toolu_01A", vec![Part::text("18°C, sunny")], false),
                    Part::tool_result(
                        "toolu_01B",
                        vec![
                            Part::text("station offline"),
                            Part::Image(Image::Base64 {
                                media_type: "image/png".into(),
                                data: "iVBORw0KGgo=".into(),
                            }),
                        ],
                        true,
                    ),
                    Part::text("And this map?"),
                    Part::Image(Image::Url("https://example.com/map.jpg".into())),
                ]),
            ],
            tools: vec![weather_tool()],
            tool_choice: Some(ToolChoice::Auto),
            // `disable_parallel_tool_use: false` is Anthropic's default.
            parallel_tool_calls: None,
            max_tokens: Some(16000),
            temperature: Some(1.0),
            top_p: Some(0.99),
            top_k: None,
            stop: vec!["</answer>".into()],
            stream: true,
            reasoning: Some(Reasoning {
                effort: None,
                budget_tokens: Some(10000),
            }),
            response_format: None,
        }
    }

    #[test]
    fn decode_request_golden() {
        let decoded = decode_request(&object(native_request())).expect("decodes");
        assert_eq!(decoded, neutral_request());
    }

    #[test]
    fn decode_request_variants() {
        let decode = |extra: Value| {
            let mut body = object(json!({
                "model": "m", "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hi"}]
            }));
            body.extend(object(extra));
            decode_request(&body).expect("decodes")
        };
        let req = decode(json!({"system": "Be brief.", "top_k": 5, "stream": false}));
        assert_eq!(req.system, vec!["Be brief.".to_owned()]);
        assert_eq!((req.top_k, req.stream), (Some(5), false));
        assert!(decode(json!({"system": ""})).system.is_empty());
        assert_eq!(
            decode(json!({"thinking": {"type": "disabled"}})).reasoning,
            None
        );
        assert_eq!(
            decode(
                json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}})
            )
            .reasoning,
            Some(Reasoning {
                effort: Some("medium".into()),
                budget_tokens: None
            })
        );
        assert_eq!(
            decode(json!({"thinking": {"type": "adaptive", "display": "summarized"}})).reasoning,
            Some(Reasoning {
                effort: Some("high".into()),
                budget_tokens: None
            })
        );
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}},
            "required": ["n"], "additionalProperties": false});
        assert_eq!(
            decode(json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}}))
                .response_format,
            Some(ResponseFormat::JsonSchema {
                name: SCHEMA_NAME.into(),
                schema,
                strict: false,
            })
        );
        for (choice, expected) in [
            (json!({"type": "any"}), ToolChoice::Required),
            (json!({"type": "none"}), ToolChoice::None),
            (
                json!({"type": "tool", "name": "get_weather"}),
                ToolChoice::Tool("get_weather".into()),
            ),
        ] {
            assert_eq!(
                decode(json!({"tool_choice": choice})).tool_choice,
                Some(expected)
            );
        }
        // Nulls are absent; a custom-typed tool and a direct caller are ordinary.
        let req = decode(json!({
            "temperature": null,
            "tools": [{"type": "custom", "name": "f", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                    "input": {}, "caller": {"type": "direct"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}
            ]
        }));
        assert_eq!(req.temperature, None);
        assert_eq!(req.tools[0].description, None);
        assert_eq!(
            req.messages[1].content,
            vec![Part::tool_result("t", vec![], false)]
        );
    }

    #[test]
    fn decode_request_parallel_tool_use() {
        let decode = |choice: Value| {
            let mut body = object(json!({
                "model": "m", "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hi"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}]
            }));
            body.insert("tool_choice".into(), choice);
            let req = decode_request(&body).expect("decodes");
            (req.tool_choice, req.parallel_tool_calls)
        };
        assert_eq!(
            decode(json!({"type": "auto", "disable_parallel_tool_use": true})),
            (Some(ToolChoice::Auto), Some(false))
        );
        assert_eq!(
            decode(json!({"type": "any", "disable_parallel_tool_use": true})),
            (Some(ToolChoice::Required), Some(false))
        );
        assert_eq!(
            decode(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})),
            (Some(ToolChoice::Tool("f".into())), Some(false))
        );
        assert_eq!(
            decode(json!({"type": "auto", "disable_parallel_tool_use": false})),
            (Some(ToolChoice::Auto), None),
            "false is the default"
        );
        assert_eq!(
            decode(json!({"type": "auto", "disable_parallel_tool_use": null})),
            (Some(ToolChoice::Auto), None)
        );
        assert_eq!(
            decode(json!({"type": "any"})),
            (Some(ToolChoice::Required), None)
        );
    }

    #[test]
    fn encode_request_parallel_tool_use() {
        let tool_choice = |tool_choice: Option<ToolChoice>, parallel: Option<bool>, tools: bool| {
            let req = Request {
                messages: vec![Message::user(vec![Part::text("Hi")])],
                tools: if tools { vec![weather_tool()] } else { vec![] },
                tool_choice,
                parallel_tool_calls: parallel,
                ..Request::default()
            };
            encode_request(&req, "m")
                .expect("encodes")
                .get("tool_choice")
                .cloned()
        };
        let one = Some(false);
        assert_eq!(
            tool_choice(None, one, true),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
            "the switch lives in tool_choice, auto being the default"
        );
        assert_eq!(
            tool_choice(Some(ToolChoice::Auto), one, true),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            tool_choice(Some(ToolChoice::Required), one, true),
            Some(json!({"type": "any", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            tool_choice(Some(ToolChoice::Tool("get_weather".into())), one, true),
            Some(json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            tool_choice(Some(ToolChoice::None), one, true),
            Some(json!({"type": "none"})),
            "Anthropic forbids the switch on none"
        );
        assert_eq!(tool_choice(None, one, false), None, "no tools, no switch");
        assert_eq!(
            tool_choice(Some(ToolChoice::Auto), one, false),
            Some(json!({"type": "auto"}))
        );
        assert_eq!(tool_choice(None, Some(true), true), None, "the default");
        assert_eq!(
            tool_choice(Some(ToolChoice::Required), Some(true), true),
            Some(json!({"type": "any"}))
        );
        assert_eq!(tool_choice(None, None, true), None);
    }

    /// The tools `decode_request` reads from a body with this one tool.
    fn decoded_tools(tool: Value) -> Vec<Tool> {
        let body = object(json!({
            "model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [tool]
        }));
        decode_request(&body).expect("decodes").tools
    }

    /// The weather tool as a client sends it, with `extra` fields.
    fn client_weather_tool(extra: Value) -> Value {
        let mut tool = object(json!({"name": "get_weather", "description": "Current weather"}));
        tool.insert("input_schema".into(), weather_schema());
        tool.extend(object(extra));
        Value::Object(tool)
    }

    #[test]
    fn decode_request_tool_strict() {
        assert_eq!(
            decoded_tools(client_weather_tool(json!({"strict": true}))),
            vec![Tool {
                strict: true,
                ..weather_tool()
            }]
        );
        for not_asked in [json!({"strict": false}), json!({"strict": null}), json!({})] {
            assert_eq!(
                decoded_tools(client_weather_tool(not_asked.clone())),
                vec![weather_tool()],
                "{not_asked}"
            );
        }
    }

    #[test]
    fn decode_request_refusals() {
        let cases = [
            (json!({"container": "c_1"}), "container"),
            (json!({"inference_geo": "us"}), "inference_geo"),
            (
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]}),
                "tools[0] (server tool web_search_20250305)",
            ),
            (
                json!({"tools": [{"name": "f", "input_schema": {}, "strict": "true"}]}),
                "tools[0].strict (not a boolean)",
            ),
            (
                json!({"tools": [{"name": "f", "input_schema": {}},
                    {"name": "g", "input_schema": {}, "strict": 1}]}),
                "tools[1].strict (not a boolean)",
            ),
            (
                json!({"tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}}),
                "tool_choice.disable_parallel_tool_use (not a boolean)",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]}),
                "messages[0].content[0] (document)",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": [
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}]}]}),
                "messages[0].content[0] (redacted_thinking)",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image",
                    "source": {"type": "file", "file_id": "file_01"}}]}]}),
                "messages[0].content[0].source (file)",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x",
                    "citations": [{"type": "char_location", "cited_text": "x"}]}]}]}),
                "messages[0].content[0].citations",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result",
                    "tool_use_id": "t", "content": [{"type": "search_result", "source": "s",
                    "title": "t", "content": []}]}]}]}),
                "messages[0].content[0].content[0] (search_result)",
            ),
            (
                json!({"messages": [{"role": "system", "content": "x"}]}),
                "messages[0].role (system)",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x", "name": "bob"}]}),
                "messages[0].name",
            ),
            (
                json!({"system": [{"type": "image", "source": {"type": "url", "url": "u"}}]}),
                "system[0] (image)",
            ),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"}}),
                "thinking.display (omitted)",
            ),
            (
                json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}),
                "output_config.effort (max)",
            ),
            (
                json!({"output_config": {"effort": "low"}}),
                "output_config.effort (without adaptive thinking)",
            ),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 2048},
                    "output_config": {"effort": "low"}}),
                "output_config.effort (without adaptive thinking)",
            ),
            (json!({"temperature": "hot"}), "temperature (not a number)"),
        ];
        for (extra, expected) in cases {
            let mut body = object(json!({
                "model": "m", "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hi"}]
            }));
            body.extend(object(extra));
            assert_eq!(refusal(decode_request(&body)), expected);
        }
    }

    // --- Requests: neutral → upstream ---------------------------------------------------

    /// The tools `encode_request` writes for one weather tool with this `strict`.
    fn encoded_tools(strict: bool) -> Option<Value> {
        let req = Request {
            messages: vec![Message::user(vec![Part::text("x")])],
            tools: vec![Tool {
                strict,
                ..weather_tool()
            }],
            ..Request::default()
        };
        let body = encode_request(&req, "claude-sonnet-4-5").expect("encodes");
        body.get("tools").cloned()
    }

    #[test]
    fn tool_strict_is_sent_only_when_set() {
        assert_eq!(
            encoded_tools(true),
            Some(
                json!([{"name": "get_weather", "description": "Current weather",
                "input_schema": weather_schema(), "strict": true}])
            )
        );
        assert_eq!(
            encoded_tools(false),
            Some(
                json!([{"name": "get_weather", "description": "Current weather",
                "input_schema": weather_schema()}])
            ),
            "absence is Anthropic's default: a non-strict tool is written as before"
        );
    }

    #[test]
    fn schema_strict_is_not_sent() {
        // `output_config.format` has no strict flag.
        let req = Request {
            messages: vec![Message::user(vec![Part::text("x")])],
            response_format: Some(ResponseFormat::JsonSchema {
                name: "forecast".into(),
                schema: json!({"type": "object"}),
                strict: true,
            }),
            ..Request::default()
        };
        let body = encode_request(&req, "claude-sonnet-4-5").expect("encodes");
        assert_eq!(
            body.get("output_config"),
            Some(&json!({"format": {"type": "json_schema", "schema": {"type": "object"}}}))
        );
    }

    #[test]
    fn a_strict_chat_tool_stays_strict_for_messages() {
        let chat_body = object(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"type": "function", "function": {"name": "get_weather",
                    "parameters": {"type": "object"}, "strict": true}},
                {"type": "function", "function": {"name": "now",
                    "parameters": {"type": "object"}}}
            ]
        }));
        let req = crate::openai::chat_codec::decode_request(&chat_body).expect("decodes");
        let body = encode_request(&req, "claude-sonnet-4-5").expect("encodes");
        assert_eq!(
            body.get("tools"),
            Some(&json!([
                {"name": "get_weather", "input_schema": {"type": "object"}, "strict": true},
                {"name": "now", "input_schema": {"type": "object"}}
            ]))
        );
    }

    #[test]
    fn encode_request_golden() {
        let mut req = neutral_request();
        // Forced tool use is not allowed with thinking: this golden has none.
        req.reasoning = None;
        req.tool_choice = Some(ToolChoice::Tool("get_weather".into()));
        req.parallel_tool_calls = Some(false);
        req.temperature = Some(0.3);
        req.top_k = Some(40);
        req.stream = false;
        req.response_format = Some(ResponseFormat::JsonSchema {
            name: "forecast".into(),
            schema: json!({"type": "object"}),
            strict: false,
        });
        let body = encode_request(&req, "claude-sonnet-4-5-20250929").expect("encodes");
        assert_eq!(
            Value::Object(body),
            json!({
                "model": "claude-sonnet-4-5-20250929",
                "max_tokens": 16000,
                "system": [
                    {"type": "text", "text": "You are a weather bot."},
                    {"type": "text", "text": "Answer in French."}
                ],
                "messages": [
                    {"role": "user", "content": "Weather in Paris and Lyon?"},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "EqQBCgIYAh"},
                        {"type": "text", "text": "Checking both."},
                        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Lyon"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18°C, sunny"},
                        {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": true, "content": [
                            {"type": "text", "text": "station offline"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                        ]},
                        {"type": "text", "text": "And this map?"},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/map.jpg"}}
                    ]}
                ],
                "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": weather_schema()}],
                "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
                "temperature": 0.3,
                "top_p": 0.99,
                "top_k": 40,
                "stop_sequences": ["</answer>"],
                "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}
            })
        );
    }

    fn minimal(reasoning: Option<Reasoning>, max_tokens: Option<u64>) -> Request {
        Request {
            messages: vec![Message::user(vec![Part::text("Hi")])],
            reasoning,
            max_tokens,
            ..Request::default()
        }
    }

    fn effort(e: &str) -> Option<Reasoning> {
        Some(Reasoning {
            effort: Some(e.into()),
            budget_tokens: None,
        })
    }

    fn budget(b: u64) -> Option<Reasoning> {
        Some(Reasoning {
            effort: None,
            budget_tokens: Some(b),
        })
    }

    /// `max_tokens` and `thinking` of the encoded body.
    fn limits_of(req: &Request) -> (Value, Option<Value>) {
        let body = encode_request(req, "m").expect("encodes");
        (body["max_tokens"].clone(), body.get("thinking").cloned())
    }

    #[test]
    fn encode_request_limits_and_thinking() {
        let enabled = |b: u64| Some(json!({"type": "enabled", "budget_tokens": b}));
        assert_eq!(limits_of(&minimal(None, None)), (json!(4096), None));
        assert_eq!(limits_of(&minimal(None, Some(77))), (json!(77), None));
        // An effort becomes the shared budget; without max_tokens there is room for an answer.
        assert_eq!(
            limits_of(&minimal(effort("high"), None)),
            (json!(24_576 + 4096), enabled(24_576))
        );
        assert_eq!(
            limits_of(&minimal(effort("low"), Some(8000))),
            (json!(8000), enabled(2048))
        );
        // Raised to Anthropic's minimum; lowered under an explicit max_tokens.
        assert_eq!(
            limits_of(&minimal(budget(500), Some(8000))),
            (json!(8000), enabled(1024))
        );
        assert_eq!(
            limits_of(&minimal(budget(10_000), Some(4000))),
            (json!(4000), enabled(3999))
        );
        // Budget and effort both given: the budget is the precise one.
        let both = Some(Reasoning {
            effort: Some("high".into()),
            budget_tokens: Some(3000),
        });
        assert_eq!(
            limits_of(&minimal(both, Some(8000))),
            (json!(8000), enabled(3000))
        );
        // No thinking at all.
        for off in [
            budget(0),
            effort("none"),
            Some(Reasoning {
                effort: None,
                budget_tokens: None,
            }),
        ] {
            assert_eq!(limits_of(&minimal(off, Some(50))), (json!(50), None));
        }
        assert_eq!(
            refusal(encode_request(&minimal(budget(2048), Some(1024)), "m")),
            "reasoning with max_tokens 1024 (Anthropic needs a thinking budget of at least 1024 \
             below max_tokens)"
        );
        assert_eq!(
            refusal(encode_request(&minimal(effort("extreme"), None), "m")),
            "reasoning effort extreme"
        );
    }

    #[test]
    fn encode_request_thinking_compatibility() {
        let with = |f: &dyn Fn(&mut Request)| {
            let mut req = minimal(effort("medium"), None);
            f(&mut req);
            encode_request(&req, "m")
        };
        assert!(with(&|r| r.temperature = Some(1.0)).is_ok());
        assert!(with(&|r| r.top_p = Some(0.95)).is_ok());
        assert!(with(&|r| r.tool_choice = Some(ToolChoice::Auto)).is_ok());
        assert_eq!(
            refusal(with(&|r| r.temperature = Some(0.2))),
            "temperature with reasoning (Anthropic thinking requires temperature 1)"
        );
        assert_eq!(
            refusal(with(&|r| r.top_k = Some(3))),
            "top_k with reasoning (Anthropic thinking does not allow it)"
        );
        assert_eq!(
            refusal(with(&|r| r.top_p = Some(0.5))),
            "top_p below 0.95 with reasoning (Anthropic thinking does not allow it)"
        );
        assert_eq!(
            refusal(with(&|r| r.tool_choice = Some(ToolChoice::Required))),
            "forced tool use with reasoning (Anthropic thinking allows only auto or none)"
        );
    }

    #[test]
    fn encode_request_drops_what_anthropic_rejects() {
        let req = Request {
            messages: vec![
                Message::user(vec![Part::text("Hi"), Part::text("")]),
                // Reasoning from another provider: no signature, nothing Anthropic accepts.
                Message::assistant(vec![Part::thinking("hmm")]),
                Message::assistant(vec![
                    Part::thinking("plan"),
                    Part::tool_call("call_1", "now", Value::Null),
                ]),
                Message::user(vec![Part::tool_result(
                    "call_1",
                    vec![Part::text("")],
                    false,
                )]),
            ],
            tools: vec![Tool {
                name: "now".into(),
                description: None,
                parameters: Value::Null,
                strict: false,
            }],
            ..Request::default()
        };
        let body = encode_request(&req, "m").expect("encodes");
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1"}]}
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"name": "now", "input_schema": {"type": "object", "properties": {}}}])
        );
        assert_eq!(body.get("stream"), None);
    }

    #[test]
    fn encode_request_refusals() {
        let with_messages = |messages: Vec<Message>| Request {
            messages,
            ..Request::default()
        };
        let image = Part::Image(Image::Url("https://example.com/a.png".into()));
        let cases = [
            (
                with_messages(vec![Message::assistant(vec![image.clone()])]),
                "messages[0].content[0] (image from the assistant)",
            ),
            (
                with_messages(vec![Message::user(vec![
                    Part::text("x"),
                    Part::tool_call("c", "f", json!({})),
                ])]),
                "messages[0].content[1] (tool call from the user)",
            ),
            (
                with_messages(vec![Message::assistant(vec![Part::ToolResult(
                    ToolResult {
                        call_id: "c".into(),
                        content: vec![],
                        is_error: false,
                    },
                )])]),
                "messages[0].content[0] (tool result from the assistant)",
            ),
            (
                with_messages(vec![Message::user(vec![Part::signed_thinking(
                    "x",
                    "sig",
                    Dialect::Messages,
                )])]),
                "messages[0].content[0] (thinking from the user)",
            ),
            (
                with_messages(vec![Message::assistant(vec![Part::tool_call(
                    "c",
                    "f",
                    json!("{\"a\":1}"),
                )])]),
                "messages[0].content[0] (tool call arguments that are not a JSON object)",
            ),
            (
                with_messages(vec![Message::user(vec![Part::tool_result(
                    "c",
                    vec![image, Part::tool_call("d", "f", json!({}))],
                    false,
                )])]),
                "messages[0].content[0].content[1] (neither text nor image in a tool result)",
            ),
            (
                Request {
                    temperature: Some(1.5),
                    ..Request::default()
                },
                "temperature 1.5 (Anthropic accepts 0 to 1)",
            ),
            (
                Request {
                    response_format: Some(ResponseFormat::JsonObject),
                    ..Request::default()
                },
                "response_format json_object (Anthropic needs a schema)",
            ),
        ];
        for (req, expected) in cases {
            assert_eq!(refusal(encode_request(&req, "m")), expected);
        }
    }

    #[test]
    fn request_round_trips() {
        let mut rich = neutral_request();
        rich.response_format = Some(ResponseFormat::JsonSchema {
            name: SCHEMA_NAME.into(),
            schema: json!({"type": "object", "properties": {}}),
            strict: false,
        });
        let sampling = Request {
            system: vec!["Only one.".into()],
            messages: vec![
                Message::user(vec![Part::text("Pick a tool")]),
                Message::assistant(vec![Part::tool_call(
                    "toolu_1",
                    "get_weather",
                    json!({"city": "Oslo"}),
                )]),
                Message::user(vec![Part::tool_result(
                    "toolu_1",
                    vec![Part::text("-3°C"), Part::text("snow")],
                    false,
                )]),
            ],
            tools: vec![weather_tool()],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: Some(false),
            max_tokens: Some(300),
            temperature: Some(0.0),
            top_p: Some(0.5),
            top_k: Some(10),
            stop: vec!["\n\n".into(), "END".into()],
            ..Request::default()
        };
        for req in [rich, sampling] {
            let body = encode_request(&req, "claude-haiku-4-5").expect("encodes");
            assert_eq!(decode_request(&body).expect("decodes"), req);
        }
        // And the other way: a body in canonical form survives decode then encode.
        let native = native_request();
        let mut expected = object(native.clone());
        for ignored in ["metadata", "service_tier", "cache_control"] {
            expected.remove(ignored);
        }
        expected.insert("tool_choice".into(), json!({"type": "auto"}));
        let encoded = encode_request(
            &decode_request(&object(native)).expect("decodes"),
            "claude-sonnet-4-5",
        )
        .expect("encodes");
        let strip_cache = |mut v: Value| {
            strip_key(&mut v, "cache_control");
            strip_key(&mut v, "citations");
            v
        };
        assert_eq!(Value::Object(encoded), strip_cache(Value::Object(expected)));
    }

    fn strip_key(value: &mut Value, key: &str) {
        match value {
            Value::Object(map) => {
                map.remove(key);
                map.values_mut().for_each(|v| strip_key(v, key));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| strip_key(v, key)),
            _ => {}
        }
    }

    // --- Answers ------------------------------------------------------------------------

    fn native_response() -> Value {
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "Paris first.", "signature": "ErUBCkYIBBgCIkA"},
                {"type": "text", "text": "Let me check.", "citations": null},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 1200,
                "cache_read_input_tokens": 2048,
                "cache_creation": {"ephemeral_5m_input_tokens": 1200, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 89,
                "output_tokens_details": {"thinking_tokens": 40},
                "service_tier": "standard"
            }
        })
    }

    fn neutral_response() -> ir::Response {
        ir::Response {
            id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
            model: "claude-sonnet-4-5-20250929".into(),
            content: vec![
                Part::signed_thinking("Paris first.", "ErUBCkYIBBgCIkA", Dialect::Messages),
                Part::text("Let me check."),
                Part::tool_call("toolu_01A", "get_weather", json!({"city": "Paris"})),
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input_tokens: 472,
                output_tokens: 89,
                cache_read_tokens: 2048,
                cache_creation_tokens: 1200,
                reasoning_tokens: 40,
            },
        }
    }

    #[test]
    fn decode_response_golden() {
        assert_eq!(
            decode_response(&native_response()).expect("decodes"),
            neutral_response()
        );
    }

    #[test]
    fn decode_response_stop_reasons_and_refusals() {
        for (reason, expected) in [
            (json!("end_turn"), Some(StopReason::EndTurn)),
            (json!("max_tokens"), Some(StopReason::MaxTokens)),
            (
                json!("model_context_window_exceeded"),
                Some(StopReason::MaxTokens),
            ),
            (json!("stop_sequence"), Some(StopReason::StopSequence)),
            (json!("refusal"), Some(StopReason::ContentFilter)),
            (
                json!("pause_turn"),
                Some(StopReason::Other("pause_turn".into())),
            ),
            (Value::Null, None),
        ] {
            let body = json!({"id": "m", "model": "c", "content": [], "stop_reason": reason});
            let resp = decode_response(&body).expect("decodes");
            assert_eq!(resp.stop_reason, expected, "{reason}");
            assert_eq!(resp.usage, Usage::default());
        }
        let redacted = json!({"content": [{"type": "redacted_thinking", "data": "EmwK"}]});
        assert_eq!(
            refusal(decode_response(&redacted)),
            "content[0] (redacted_thinking)"
        );
        let server = json!({"content": [{"type": "server_tool_use", "id": "srvtoolu_1",
            "name": "web_search", "input": {}}]});
        assert_eq!(
            refusal(decode_response(&server)),
            "content[0] (server_tool_use)"
        );
        assert_eq!(
            refusal(decode_response(&json!([]))),
            "response (not an object)"
        );
        assert_eq!(
            refusal(decode_response(&json!({"id": "m"}))),
            "content (missing)"
        );
    }

    #[test]
    fn encode_response_golden() {
        assert_eq!(
            encode_response(&neutral_response()),
            json!({
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [
                    {"type": "thinking", "thinking": "Paris first.", "signature": "ErUBCkYIBBgCIkA"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {
                    "input_tokens": 472,
                    "output_tokens": 89,
                    "cache_creation_input_tokens": 1200,
                    "cache_read_input_tokens": 2048,
                    "output_tokens_details": {"thinking_tokens": 40}
                }
            })
        );
    }

    #[test]
    fn encode_response_from_other_dialects() {
        // A Gemini-like answer: no id, tool calls with a natural stop, unsigned thinking, an
        // inline image Anthropic answers cannot hold.
        let resp = ir::Response {
            id: String::new(),
            model: String::new(),
            content: vec![
                Part::thinking("considering"),
                Part::Image(Image::Base64 {
                    media_type: "image/png".into(),
                    data: "AAAA".into(),
                }),
                Part::tool_call("call_0", "lookup", Value::Null),
            ],
            stop_reason: Some(StopReason::EndTurn),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 3,
                ..Usage::default()
            },
        };
        assert_eq!(
            encode_response(&resp),
            json!({
                "id": "msg_gw",
                "type": "message",
                "role": "assistant",
                "model": "unknown",
                "content": [
                    {"type": "thinking", "thinking": "considering", "signature": ""},
                    {"type": "tool_use", "id": "call_0", "name": "lookup", "input": {}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 3,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            })
        );
        let reasons = [
            (None, false, "end_turn"),
            (Some(StopReason::ContentFilter), false, "refusal"),
            (Some(StopReason::StopSequence), false, "stop_sequence"),
            (Some(StopReason::MaxTokens), true, "max_tokens"),
            (
                Some(StopReason::Other("pause_turn".into())),
                false,
                "pause_turn",
            ),
            (
                Some(StopReason::Other("recitation".into())),
                false,
                "end_turn",
            ),
            (
                Some(StopReason::Other("function_call".into())),
                true,
                "tool_use",
            ),
        ];
        for (reason, tools, expected) in reasons {
            assert_eq!(encode_stop_reason(reason.as_ref(), tools), expected);
        }
    }

    #[test]
    fn response_round_trips() {
        let plain = ir::Response {
            id: "msg_1".into(),
            model: "claude-haiku-4-5".into(),
            content: vec![Part::text("Done.")],
            stop_reason: Some(StopReason::StopSequence),
            usage: Usage {
                input_tokens: 5,
                output_tokens: 2,
                ..Usage::default()
            },
        };
        let capped = ir::Response {
            content: vec![
                Part::signed_thinking("long", "sig", Dialect::Messages),
                Part::text("Partial"),
            ],
            stop_reason: Some(StopReason::MaxTokens),
            ..plain.clone()
        };
        for resp in [neutral_response(), plain, capped] {
            assert_eq!(
                decode_response(&encode_response(&resp)).expect("decodes"),
                resp
            );
        }
    }

    // --- Streams ------------------------------------------------------------------------

    /// Thinking, text, a tool call in fragments, a tool without arguments, a server tool (not
    /// the answer's), pings, and usage at both ends, as Anthropic streams them.
    const RECORDED: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_01Hx","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":2}}}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        "\n\n",
        "event: ping\n",
        r#"data: {"type": "ping"}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Weather for two"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" cities."}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAh"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" both."}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":1}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":2}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":3,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"x\"}"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":3}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":4,"content_block":{"type":"tool_use","id":"toolu_01B","name":"now","input":{}}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":4}"#,
        "\n\n",
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        "\n\n",
        "event: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n",
    );

    fn decode_all(raw: &str) -> Vec<Delta> {
        let mut decoder = StreamDecoder::new();
        sse_events(raw)
            .iter()
            .flat_map(|e| decoder.push(e))
            .collect()
    }

    #[test]
    fn stream_decoder_golden() {
        assert_eq!(
            decode_all(RECORDED),
            vec![
                Delta::Start {
                    id: "msg_01Hx".into(),
                    model: "claude-sonnet-4-5-20250929".into()
                },
                Delta::Usage(Usage {
                    input_tokens: 472,
                    output_tokens: 2,
                    cache_read_tokens: 2048,
                    ..Usage::default()
                }),
                Delta::Thinking("Weather for two".into()),
                Delta::Thinking(" cities.".into()),
                Delta::ThinkingSignature {
                    source: Some(Dialect::Messages),
                    signature: "EqQBCgIYAh".into(),
                },
                Delta::Text("Checking".into()),
                Delta::Text(" both.".into()),
                Delta::ToolCallStart {
                    index: 0,
                    id: "toolu_01A".into(),
                    name: "get_weather".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "{\"city\": \"Pa".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "ris\"}".into()
                },
                Delta::ToolCallStart {
                    index: 1,
                    id: "toolu_01B".into(),
                    name: "now".into()
                },
                Delta::ToolCallArguments {
                    index: 1,
                    fragment: "{}".into()
                },
                Delta::Usage(Usage {
                    output_tokens: 89,
                    ..Usage::default()
                }),
                Delta::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[test]
    fn stream_decoder_odd_inputs() {
        // No `event:` lines; a tool whose whole input comes with its start; error, ping and
        // garbage events produce nothing.
        let raw = concat!(
            r#"data: {"type":"message_start","message":{"id":"msg_2","model":"m"}}"#,
            "\n\n",
            r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{"a":1}}}"#,
            "\n\n",
            r#"data: {"type":"content_block_stop","index":0}"#,
            "\n\n",
            r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":"Hi"}}"#,
            "\n\n",
            r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}}"#,
            "\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            "data: not json\n\n",
            "event: message_delta\n",
            r#"data: {"delta":{"stop_reason":"refusal"}}"#,
            "\n\n",
        );
        assert_eq!(
            decode_all(raw),
            vec![
                Delta::Start {
                    id: "msg_2".into(),
                    model: "m".into()
                },
                Delta::ToolCallStart {
                    index: 0,
                    id: "t".into(),
                    name: "f".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: r#"{"a":1}"#.into()
                },
                Delta::Text("Hi".into()),
                Delta::Stop(StopReason::ContentFilter),
            ]
        );
    }

    fn encode_all(deltas: &[Delta]) -> Vec<Bytes> {
        let mut encoder = StreamEncoder::new(false);
        let mut frames: Vec<Bytes> = deltas.iter().flat_map(|d| encoder.push(d)).collect();
        frames.extend(encoder.finish());
        assert!(encoder.finish().is_empty(), "finish is idempotent");
        assert!(encoder.push(&Delta::Text("late".into())).is_empty());
        frames
    }

    fn data_only(frames: &[Bytes]) -> Vec<Value> {
        named_frames(frames).into_iter().map(|(_, v)| v).collect()
    }

    #[test]
    fn stream_encoder_golden() {
        // As an OpenAI chat upstream would give them: usage last, after the stop.
        let deltas = [
            Delta::Start {
                id: "chatcmpl-9x".into(),
                model: "gpt-4.1".into(),
            },
            Delta::Thinking("Two".into()),
            Delta::Thinking(" calls.".into()),
            Delta::Text("Checking.".into()),
            Delta::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "get_weather".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "{\"city\":".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "\"Paris\"}".into(),
            },
            Delta::ToolCallStart {
                index: 1,
                id: "call_b".into(),
                name: "get_weather".into(),
            },
            Delta::ToolCallArguments {
                index: 1,
                fragment: "{\"city\":\"Lyon\"}".into(),
            },
            Delta::Stop(StopReason::ToolUse),
            Delta::Usage(Usage {
                input_tokens: 86,
                output_tokens: 300,
                cache_read_tokens: 1920,
                reasoning_tokens: 192,
                ..Usage::default()
            }),
        ];
        let start = |i: usize, block: Value| json!({"type": "content_block_start", "index": i, "content_block": block});
        let delta =
            |i: usize, d: Value| json!({"type": "content_block_delta", "index": i, "delta": d});
        let stop = |i: usize| json!({"type": "content_block_stop", "index": i});
        assert_eq!(
            data_only(&encode_all(&deltas)),
            vec![
                json!({"type": "message_start", "message": {
                    "id": "chatcmpl-9x", "type": "message", "role": "assistant",
                    "model": "gpt-4.1", "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0,
                        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
                }}),
                start(
                    0,
                    json!({"type": "thinking", "thinking": "", "signature": ""})
                ),
                delta(0, json!({"type": "thinking_delta", "thinking": "Two"})),
                delta(0, json!({"type": "thinking_delta", "thinking": " calls."})),
                stop(0),
                start(1, json!({"type": "text", "text": ""})),
                delta(1, json!({"type": "text_delta", "text": "Checking."})),
                stop(1),
                start(
                    2,
                    json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
                ),
                delta(
                    2,
                    json!({"type": "input_json_delta", "partial_json": "{\"city\":"})
                ),
                delta(
                    2,
                    json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"})
                ),
                stop(2),
                start(
                    3,
                    json!({"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {}})
                ),
                delta(
                    3,
                    json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Lyon\"}"})
                ),
                stop(3),
                json!({"type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                    "usage": {"input_tokens": 86, "output_tokens": 300,
                        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1920,
                        "output_tokens_details": {"thinking_tokens": 192}}}),
                json!({"type": "message_stop"}),
            ]
        );
    }

    #[test]
    fn stream_encoder_usage_known_at_start_and_signatures() {
        let deltas = [
            Delta::Usage(Usage {
                input_tokens: 12,
                cache_creation_tokens: 100,
                reasoning_tokens: 7,
                ..Usage::default()
            }),
            Delta::Start {
                id: "msg_x".into(),
                model: "m".into(),
            },
            // A signature after text opens a thinking block of its own.
            Delta::Text("a".into()),
            Delta::Text(String::new()),
            Delta::ThinkingSignature {
                source: Some(Dialect::Messages),
                signature: "sig".into(),
            },
            Delta::Stop(StopReason::MaxTokens),
        ];
        let frames = named_frames(&encode_all(&deltas));
        let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            frames[0].1["message"]["usage"],
            json!({"input_tokens": 12, "output_tokens": 0,
                "cache_creation_input_tokens": 100, "cache_read_input_tokens": 0})
        );
        assert_eq!(
            frames[5].1["delta"],
            json!({"type": "signature_delta", "signature": "sig"})
        );
        assert_eq!(frames[7].1["delta"]["stop_reason"], json!("max_tokens"));
    }

    #[test]
    fn stream_encoder_without_start() {
        // Nothing at all: still a complete, valid message.
        let frames = data_only(&encode_all(&[]));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0]["message"]["id"], json!("msg_gw"));
        assert_eq!(frames[0]["message"]["model"], json!("unknown"));
        assert_eq!(frames[1]["delta"]["stop_reason"], json!("end_turn"));
        // Arguments of a call that was never started, then a late Start (ignored).
        let frames = data_only(&encode_all(&[
            Delta::ToolCallArguments {
                index: 0,
                fragment: "{}".into(),
            },
            Delta::Start {
                id: "late".into(),
                model: "late".into(),
            },
        ]));
        assert_eq!(frames[0]["message"]["id"], json!("msg_gw"));
        assert_eq!(
            frames[1]["content_block"],
            json!({"type": "tool_use", "id": "toolu_gw_0", "name": "", "input": {}})
        );
        assert_eq!(frames[4]["delta"]["stop_reason"], json!("tool_use"));
    }

    #[test]
    fn stream_encoder_interleaved_tool_arguments_keep_their_index() {
        // OpenAI may send the arguments of parallel calls interleaved.
        let frames = data_only(&encode_all(&[
            Delta::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "f".into(),
            },
            Delta::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "f".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "{}".into(),
            },
        ]));
        let last_delta = frames
            .iter()
            .rfind(|f| f["type"] == "content_block_delta")
            .expect("a delta");
        assert_eq!(last_delta["index"], json!(0));
    }

    #[test]
    fn stream_round_trips() {
        // Anthropic upstream → neutral → Anthropic client gives the same deltas back.
        let original = decode_all(RECORDED);
        let frames = encode_all(&original);
        let raw: String = frames
            .iter()
            .map(|f| std::str::from_utf8(f).expect("UTF-8"))
            .collect();
        let again = decode_all(&raw);
        let without_usage = |deltas: &[Delta]| -> Vec<Delta> {
            deltas
                .iter()
                .filter(|d| !matches!(d, Delta::Usage(_)))
                .cloned()
                .collect()
        };
        assert_eq!(without_usage(&again), without_usage(&original));
        let total = |deltas: &[Delta]| {
            let mut usage = Usage::default();
            for delta in deltas {
                if let Delta::Usage(u) = delta {
                    usage.merge_stream(u);
                }
            }
            usage
        };
        assert_eq!(total(&again), total(&original));
        // And the client's stream classifies like an upstream's.
        let events = sse_events(&raw);
        let classes: Vec<_> = events
            .iter()
            .map(super::super::messages::classify_stream_event)
            .collect();
        assert!(matches!(
            classes.last(),
            Some(crate::dialect::StreamEvent::Done { .. })
        ));
    }
}
