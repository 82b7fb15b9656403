//! The codec between OpenAI Chat Completions and the neutral model in [`crate::ir`]: client
//! requests in, upstream requests out, answers (whole and streamed) both ways.
//!
//! Invariants:
//! - Nothing that changes the answer is dropped silently. A request field the neutral model
//!   cannot carry is refused ([`Unsupported`], naming the field) unless it holds its default:
//!   `n` 1, `logprobs` false, `top_logprobs` 0, `frequency_penalty` / `presence_penalty` 0,
//!   `logit_bias` {}, `modalities` `["text"]`, `verbosity` `"medium"`.
//!   Always refused: `seed` (it makes the answer reproducible, which no other provider honours),
//!   `audio`, `functions`/`function_call` (legacy), `prediction`, `web_search_options`,
//!   `reasoning_effort` other than minimal/low/medium/high (`none` and `xhigh` have no neutral
//!   form), a message `name`, `image_url.detail` other than `auto`, `input_audio` and `file`
//!   parts, non-function tools and tool choices, a `json_schema` `description`, and any unknown
//!   field. `null` always means absent, as in OpenAI's own schema.
//! - Ignored because they do not change the answer: `model` (the caller has it), `user`,
//!   `safety_identifier`, `metadata`, `store`, `stream_options` (the relay owns `include_usage`),
//!   `prompt_cache_key`, `prompt_cache_retention`, `service_tier` (latency and price, not
//!   content), `cache_control` on messages, parts and tools, `index` echoed in history tool
//!   calls and the function `name` of a `tool` message (its `tool_call_id` already says it).
//! - `strict` on a function tool and on `json_schema` is carried as [`ir::Tool::strict`] and the
//!   `strict` of [`ir::ResponseFormat::JsonSchema`]: `true` asks for the schema to be enforced
//!   exactly; `false`, `null` and absence are OpenAI's default (not asked) and become `false`;
//!   anything else is refused. The encoder sends `"strict": true` only when it is set.
//! - `parallel_tool_calls` (`true` or `false`) is carried as [`ir::Request::parallel_tool_calls`],
//!   with or without tools; the encoder sends it only beside tools, because OpenAI rejects it in
//!   a request without them ("only allowed when 'tools' are specified").
//! - Accepted beside OpenAI's fields: `top_k` (vLLM, OpenRouter) and the `reasoning` message
//!   field (OpenRouter, recent vLLM) as a synonym of `reasoning_content` (DeepSeek).
//! - Messages: `system`/`developer` go to [`ir::Request::system`] wherever they stand (the
//!   neutral model's convention); each `tool` message becomes a [`ir::ToolResult`] in a user turn,
//!   consecutive ones sharing the turn. History `reasoning_content` becomes a thinking part
//!   placed before the message's text; an assistant `refusal` becomes text (it is what the model
//!   said). Empty assistant text beside tool calls is dropped (clients send `""` and `null`
//!   interchangeably there).
//! - Tool-call arguments are parsed from their JSON text. Empty text means no arguments (`{}`);
//!   text that is not JSON (a call cut off by the token limit) is kept as a JSON string holding
//!   the raw text, and the encoder writes a string back verbatim, so such a call survives a
//!   round trip unchanged. (Arguments that really are a JSON string literal — no real tool has
//!   them — would lose their quotes.)
//! - Encoding: `max_tokens` is sent as `max_completion_tokens` (reasoning models reject the
//!   deprecated name); a streamed request asks for `stream_options.include_usage` (accounting
//!   needs it); a budget-only reasoning setting becomes `reasoning_effort` through
//!   [`ir::Reasoning::effort_for_budget`]. Thinking parts of assistant turns are dropped: Chat
//!   Completions has no input field for them, OpenAI regenerates reasoning, DeepSeek's docs say
//!   `reasoning_content` must not be sent back, and signatures belong to another provider. A
//!   user turn's tool results are written first (as `tool` messages, which must follow the
//!   assistant's calls), then its other parts as one `user` message. Chat tool messages carry
//!   text only, so a tool result with an image is refused; chat has no error flag either, so an
//!   `is_error` result keeps its text with `Error: ` in front — dropping the flag would hide the
//!   failure from the model and refusing would make every Anthropic or Gemini agent loop that
//!   hit one failing tool unroutable. An assistant turn loses the order of text and tool calls
//!   (chat has `content` then `tool_calls`). `top_k` and more than 4 stop sequences are refused.
//! - Usage: decoded with [`chat::usage_from_response`] (normalised: `prompt_tokens` minus cached
//!   tokens); encoded back with `prompt_tokens = input + cache_read + cache_creation` and
//!   `cached_tokens = cache_read`. `finish_reason` maps `stop`/`length`/`tool_calls`/
//!   `content_filter` to end-turn/max-tokens/tool-use/content-filter; chat cannot tell a stop
//!   sequence from a natural end, both are `stop`, and so is any reason chat has no name for.
//! - Ids and models are kept as they are; `created` is 0 unless the caller stamps it (this crate
//!   never reads the clock: see `convert`). A
//!   stream that starts without [`Delta::Start`] is given the id `chatcmpl-gw` and model
//!   `unknown`; a streamed tool call without an id is given `call_gw_<n>`.

use crate::json_field::{
    array as as_array, boolean as as_bool, object as as_object, string as as_str,
};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::ir::{self, Delta, Image, Part, Role, StopReason, Unsupported};
use crate::openai::chat;
use crate::sse::{self, SseEvent};
use crate::usage::Usage;

/// A JSON object.
type Object = Map<String, Value>;

/// The reasoning efforts the neutral model knows.
const EFFORTS: [&str; 4] = ["minimal", "low", "medium", "high"];

/// OpenAI's limit on stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;

/// Prefix marking a failed tool's result, chat having no flag for it.
const ERROR_PREFIX: &str = "Error: ";

/// Id and model of a stream whose deltas did not start with [`Delta::Start`].
const FALLBACK_ID: &str = "chatcmpl-gw";
const FALLBACK_MODEL: &str = "unknown";

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

fn refuse<T>(what: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported::new(what))
}

/// The value of `key`, `None` when absent or `null` (OpenAI's "or null").
fn present<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// A required, non-null string field.
fn required_str<'a>(object: &'a Object, key: &str, path: &str) -> Result<&'a str, Unsupported> {
    match present(object, key) {
        Some(value) => as_str(value, &format!("{path}.{key}")),
        None => refuse(format!("{path}.{key} (missing)")),
    }
}

/// An optional string field.
fn optional_str<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, Unsupported> {
    present(object, key)
        .map(|value| as_str(value, &format!("{path}.{key}")))
        .transpose()
}

/// An optional boolean field; absent or `null` is false (OpenAI's default for `strict`).
fn optional_flag(object: &Object, key: &str, path: &str) -> Result<bool, Unsupported> {
    present(object, key).map_or(Ok(false), |value| as_bool(value, &format!("{path}.{key}")))
}

/// Refuses any non-null field of `object` outside `allowed`; `cache_control` (a cache hint) is
/// allowed everywhere.
fn check_keys(object: &Object, path: &str, allowed: &[&str]) -> Result<(), Unsupported> {
    let unknown = object.iter().find(|(key, value)| {
        !value.is_null() && key.as_str() != "cache_control" && !allowed.contains(&key.as_str())
    });
    match unknown {
        Some((key, _)) => refuse(format!("{path}.{key}")),
        None => Ok(()),
    }
}

fn is_zero(value: &Value) -> bool {
    value.as_f64() == Some(0.0)
}

fn optional_f64(body: &Object, key: &str) -> Result<Option<f64>, Unsupported> {
    present(body, key)
        .map(|value| {
            value
                .as_f64()
                .ok_or_else(|| Unsupported::new(format!("{key} (not a number)")))
        })
        .transpose()
}

fn optional_u64(body: &Object, key: &str) -> Result<Option<u64>, Unsupported> {
    present(body, key)
        .map(|value| {
            value
                .as_u64()
                .ok_or_else(|| Unsupported::new(format!("{key} (not a non-negative integer)")))
        })
        .transpose()
}

// ---------------------------------------------------------------------------------------------
// Requests: chat -> neutral
// ---------------------------------------------------------------------------------------------

/// Client body (Chat Completions) -> neutral request. Refuses, naming it, any field or part the
/// neutral model cannot carry; ignores only the fields listed in the module documentation.
///
/// # Errors
/// [`Unsupported`] naming the first field that cannot be carried (a field path such as
/// `messages[2].content[0] (input_audio)`).
pub fn decode_request(body: &Map<String, Value>) -> Result<ir::Request, Unsupported> {
    for (key, value) in body {
        check_top_field(key, value)?;
    }
    let mut req = ir::Request::default();
    let Some(messages) = present(body, "messages") else {
        return refuse("messages (missing)");
    };
    decode_messages(as_array(messages, "messages")?, &mut req)?;
    if let Some(tools) = present(body, "tools") {
        req.tools = as_array(tools, "tools")?
            .iter()
            .enumerate()
            .map(|(i, tool)| decode_tool(tool, &format!("tools[{i}]")))
            .collect::<Result<_, _>>()?;
    }
    req.tool_choice = present(body, "tool_choice")
        .map(decode_tool_choice)
        .transpose()?;
    req.parallel_tool_calls = match present(body, "parallel_tool_calls") {
        None => None,
        Some(Value::Bool(parallel)) => Some(*parallel),
        Some(_) => return refuse("parallel_tool_calls (not a boolean)"),
    };
    req.max_tokens = decode_max_tokens(body)?;
    req.temperature = optional_f64(body, "temperature")?;
    req.top_p = optional_f64(body, "top_p")?;
    req.top_k = optional_u64(body, "top_k")?;
    if let Some(stop) = present(body, "stop") {
        req.stop = decode_stop(stop)?;
    }
    req.stream = match present(body, "stream") {
        None => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return refuse("stream (not a boolean)"),
    };
    req.reasoning = present(body, "reasoning_effort")
        .map(decode_effort)
        .transpose()?;
    req.response_format = match present(body, "response_format") {
        Some(format) => decode_response_format(format)?,
        None => None,
    };
    Ok(req)
}

/// Accepts a top-level field that is carried, ignorable, or at its default; refuses the rest.
fn check_top_field(key: &str, value: &Value) -> Result<(), Unsupported> {
    let accepted = match key {
        // Carried into the neutral request (their values are checked when read).
        "messages"
        | "tools"
        | "tool_choice"
        | "max_tokens"
        | "max_completion_tokens"
        | "temperature"
        | "top_p"
        | "top_k"
        | "stop"
        | "stream"
        | "reasoning_effort"
        | "response_format"
        | "parallel_tool_calls" => true,
        // Never change the answer.
        "model"
        | "user"
        | "safety_identifier"
        | "metadata"
        | "store"
        | "stream_options"
        | "prompt_cache_key"
        | "prompt_cache_retention"
        | "service_tier" => true,
        // Accepted at their default only.
        "n" => value.is_null() || value.as_f64() == Some(1.0),
        "logprobs" => matches!(value, Value::Null | Value::Bool(false)),
        "top_logprobs" | "frequency_penalty" | "presence_penalty" => {
            value.is_null() || is_zero(value)
        }
        "logit_bias" => value.is_null() || value.as_object().is_some_and(Map::is_empty),
        "modalities" => value.is_null() || *value == json!(["text"]),
        "verbosity" => value.is_null() || value.as_str() == Some("medium"),
        // Known features the neutral model lacks, refused unless null.
        "seed" | "audio" | "functions" | "function_call" | "prediction" | "web_search_options" => {
            value.is_null()
        }
        _ => {
            return if value.is_null() {
                Ok(())
            } else {
                refuse(format!("{key} (unknown field)"))
            };
        }
    };
    if accepted { Ok(()) } else { refuse(key) }
}

fn decode_max_tokens(body: &Object) -> Result<Option<u64>, Unsupported> {
    let completion = optional_u64(body, "max_completion_tokens")?;
    let legacy = optional_u64(body, "max_tokens")?;
    match (completion, legacy) {
        (Some(a), Some(b)) if a != b => refuse("max_tokens (differs from max_completion_tokens)"),
        (completion, legacy) => Ok(completion.or(legacy)),
    }
}

fn decode_stop(value: &Value) -> Result<Vec<String>, Unsupported> {
    match value {
        Value::String(stop) => Ok(vec![stop.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| as_str(item, &format!("stop[{i}]")).map(str::to_owned))
            .collect(),
        _ => refuse("stop (neither a string nor an array)"),
    }
}

fn decode_effort(value: &Value) -> Result<ir::Reasoning, Unsupported> {
    let effort = as_str(value, "reasoning_effort")?;
    if !EFFORTS.contains(&effort) {
        return refuse(format!("reasoning_effort ({effort})"));
    }
    Ok(ir::Reasoning {
        effort: Some(effort.to_owned()),
        budget_tokens: None,
    })
}

fn decode_response_format(value: &Value) -> Result<Option<ir::ResponseFormat>, Unsupported> {
    let format = as_object(value, "response_format")?;
    match required_str(format, "type", "response_format")? {
        "text" => {
            check_keys(format, "response_format", &["type"])?;
            Ok(None)
        }
        "json_object" => {
            check_keys(format, "response_format", &["type"])?;
            Ok(Some(ir::ResponseFormat::JsonObject))
        }
        "json_schema" => {
            check_keys(format, "response_format", &["type", "json_schema"])?;
            let path = "response_format.json_schema";
            let Some(spec) = present(format, "json_schema") else {
                return refuse(format!("{path} (missing)"));
            };
            let spec = as_object(spec, path)?;
            check_keys(spec, path, &["name", "schema", "strict"])?;
            let Some(schema) = present(spec, "schema") else {
                return refuse(format!("{path}.schema (missing)"));
            };
            Ok(Some(ir::ResponseFormat::JsonSchema {
                name: required_str(spec, "name", path)?.to_owned(),
                schema: schema.clone(),
                strict: optional_flag(spec, "strict", path)?,
            }))
        }
        other => refuse(format!("response_format.type ({other})")),
    }
}

fn decode_tool(value: &Value, path: &str) -> Result<ir::Tool, Unsupported> {
    let tool = as_object(value, path)?;
    let kind = required_str(tool, "type", path)?;
    if kind != "function" {
        return refuse(format!("{path}.type ({kind})"));
    }
    check_keys(tool, path, &["type", "function"])?;
    let path = format!("{path}.function");
    let Some(function) = present(tool, "function") else {
        return refuse(format!("{path} (missing)"));
    };
    let function = as_object(function, &path)?;
    check_keys(
        function,
        &path,
        &["name", "description", "parameters", "strict"],
    )?;
    Ok(ir::Tool {
        name: required_str(function, "name", &path)?.to_owned(),
        description: optional_str(function, "description", &path)?.map(str::to_owned),
        // OpenAI: "Omitting parameters defines a function with an empty parameter list."
        parameters: present(function, "parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        strict: optional_flag(function, "strict", &path)?,
    })
}

fn decode_tool_choice(value: &Value) -> Result<ir::ToolChoice, Unsupported> {
    match value {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(ir::ToolChoice::Auto),
            "none" => Ok(ir::ToolChoice::None),
            "required" => Ok(ir::ToolChoice::Required),
            other => refuse(format!("tool_choice ({other})")),
        },
        Value::Object(choice) => {
            let kind = required_str(choice, "type", "tool_choice")?;
            if kind != "function" {
                return refuse(format!("tool_choice.type ({kind})"));
            }
            check_keys(choice, "tool_choice", &["type", "function"])?;
            let Some(function) = present(choice, "function") else {
                return refuse("tool_choice.function (missing)");
            };
            let function = as_object(function, "tool_choice.function")?;
            check_keys(function, "tool_choice.function", &["name"])?;
            let name = required_str(function, "name", "tool_choice.function")?;
            Ok(ir::ToolChoice::Tool(name.to_owned()))
        }
        _ => refuse("tool_choice (neither a string nor an object)"),
    }
}

fn decode_messages(messages: &[Value], req: &mut ir::Request) -> Result<(), Unsupported> {
    // The previous message was a `tool` one: the next tool result joins its turn.
    let mut after_tool = false;
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let message = as_object(message, &path)?;
        let role = required_str(message, "role", &path)?;
        let is_tool = role == "tool";
        match role {
            "system" | "developer" => {
                check_keys(message, &path, &["role", "content"])?;
                req.system.extend(decode_system(message, &path)?);
            }
            "user" => req
                .messages
                .push(ir::Message::user(decode_user(message, &path)?)),
            "assistant" => req
                .messages
                .push(ir::Message::assistant(decode_assistant(message, &path)?)),
            "tool" => {
                let result = Part::ToolResult(decode_tool_message(message, &path)?);
                match req.messages.last_mut() {
                    Some(turn) if after_tool => turn.content.push(result),
                    _ => req.messages.push(ir::Message::user(vec![result])),
                }
            }
            other => return refuse(format!("{path}.role ({other})")),
        }
        after_tool = is_tool;
    }
    Ok(())
}

/// Text of a content that may only hold text: a string or an array of `text` parts.
fn decode_text_content(value: &Value, path: &str, whose: &str) -> Result<Vec<String>, Unsupported> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let path = format!("{path}[{j}]");
                let part = as_object(part, &path)?;
                match required_str(part, "type", &path)? {
                    "text" => decode_text_part(part, &path),
                    other => refuse(format!("{path} ({other} in {whose})")),
                }
            })
            .collect(),
        _ => refuse(format!("{path} (neither a string nor an array)")),
    }
}

fn decode_text_part(part: &Object, path: &str) -> Result<String, Unsupported> {
    check_keys(part, path, &["type", "text"])?;
    Ok(required_str(part, "text", path)?.to_owned())
}

fn decode_system(message: &Object, path: &str) -> Result<Vec<String>, Unsupported> {
    match present(message, "content") {
        Some(content) => {
            decode_text_content(content, &format!("{path}.content"), "a system message")
        }
        None => refuse(format!("{path}.content (missing)")),
    }
}

fn decode_user(message: &Object, path: &str) -> Result<Vec<Part>, Unsupported> {
    check_keys(message, path, &["role", "content"])?;
    let path = format!("{path}.content");
    match present(message, "content") {
        Some(Value::String(text)) => Ok(vec![Part::Text(text.clone())]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| decode_user_part(part, &format!("{path}[{j}]")))
            .collect(),
        Some(_) => refuse(format!("{path} (neither a string nor an array)")),
        None => refuse(format!("{path} (missing)")),
    }
}

fn decode_user_part(value: &Value, path: &str) -> Result<Part, Unsupported> {
    let part = as_object(value, path)?;
    match required_str(part, "type", path)? {
        "text" => decode_text_part(part, path).map(Part::Text),
        "image_url" => {
            check_keys(part, path, &["type", "image_url"])?;
            let path = format!("{path}.image_url");
            let Some(image) = present(part, "image_url") else {
                return refuse(format!("{path} (missing)"));
            };
            let image = as_object(image, &path)?;
            check_keys(image, &path, &["url", "detail"])?;
            match optional_str(image, "detail", &path)? {
                None | Some("auto") => {}
                Some(detail) => return refuse(format!("{path}.detail ({detail})")),
            }
            decode_image_url(required_str(image, "url", &path)?, &path).map(Part::Image)
        }
        other => refuse(format!("{path} ({other})")),
    }
}

/// A `data:` URL (base64 only) or an http(s) URL.
fn decode_image_url(url: &str, path: &str) -> Result<Image, Unsupported> {
    if let Some(rest) = url.strip_prefix("data:") {
        let base64 = rest
            .split_once(',')
            .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
        return match base64 {
            Some((media_type, data)) => Ok(Image::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            }),
            None => refuse(format!("{path}.url (data URL that is not base64)")),
        };
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        Ok(Image::Url(url.to_owned()))
    } else {
        refuse(format!(
            "{path}.url (neither a data URL nor an http(s) URL)"
        ))
    }
}

fn decode_assistant(message: &Object, path: &str) -> Result<Vec<Part>, Unsupported> {
    check_keys(
        message,
        path,
        &[
            "role",
            "content",
            "tool_calls",
            "reasoning_content",
            "reasoning",
            "refusal",
        ],
    )?;
    let mut parts = Vec::new();
    for key in ["reasoning_content", "reasoning"] {
        if let Some(text) = optional_str(message, key, path)?.filter(|t| !t.is_empty()) {
            parts.push(Part::Thinking(ir::Thinking {
                text: text.to_owned(),
                signature: None,
                source: None,
            }));
        }
    }
    let content_path = format!("{path}.content");
    match present(message, "content") {
        None => {}
        Some(Value::String(text)) => parts.push(Part::Text(text.clone())),
        Some(Value::Array(items)) => {
            for (j, item) in items.iter().enumerate() {
                parts.push(Part::Text(decode_assistant_part(
                    item,
                    &format!("{content_path}[{j}]"),
                )?));
            }
        }
        Some(_) => return refuse(format!("{content_path} (neither a string nor an array)")),
    }
    if let Some(refusal) = optional_str(message, "refusal", path)? {
        parts.push(Part::Text(refusal.to_owned()));
    }
    if let Some(calls) = present(message, "tool_calls") {
        let calls_path = format!("{path}.tool_calls");
        for (k, call) in as_array(calls, &calls_path)?.iter().enumerate() {
            parts.push(Part::ToolCall(decode_tool_call(
                call,
                &format!("{calls_path}[{k}]"),
            )?));
        }
    }
    let has_other = parts
        .iter()
        .any(|p| !matches!(p, Part::Text(t) if t.is_empty()));
    if has_other {
        parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
    } else if parts.is_empty() {
        parts.push(Part::Text(String::new()));
    }
    Ok(parts)
}

/// An assistant content part: `text` or `refusal`, both kept as text.
fn decode_assistant_part(value: &Value, path: &str) -> Result<String, Unsupported> {
    let part = as_object(value, path)?;
    match required_str(part, "type", path)? {
        "text" => decode_text_part(part, path),
        "refusal" => {
            check_keys(part, path, &["type", "refusal"])?;
            Ok(required_str(part, "refusal", path)?.to_owned())
        }
        other => refuse(format!("{path} ({other})")),
    }
}

/// `{id, type: "function", function: {name, arguments}}`, in history or in an answer.
fn decode_tool_call(value: &Value, path: &str) -> Result<ir::ToolCall, Unsupported> {
    let call = as_object(value, path)?;
    if let Some(kind) = optional_str(call, "type", path)?.filter(|k| *k != "function") {
        return refuse(format!("{path}.type ({kind})"));
    }
    check_keys(call, path, &["id", "type", "function", "index"])?;
    let function_path = format!("{path}.function");
    let Some(function) = present(call, "function") else {
        return refuse(format!("{function_path} (missing)"));
    };
    let function = as_object(function, &function_path)?;
    check_keys(function, &function_path, &["name", "arguments"])?;
    let arguments = match present(function, "arguments") {
        None => json!({}),
        Some(Value::String(text)) => parse_arguments(text),
        // Some compatible servers send the object itself.
        Some(other) => other.clone(),
    };
    Ok(ir::ToolCall {
        id: required_str(call, "id", path)?.to_owned(),
        name: required_str(function, "name", &function_path)?.to_owned(),
        arguments,
    })
}

/// Arguments from their JSON text: empty = none, not JSON = the raw text as a string.
fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn decode_tool_message(message: &Object, path: &str) -> Result<ir::ToolResult, Unsupported> {
    check_keys(message, path, &["role", "content", "tool_call_id", "name"])?;
    let content = match present(message, "content") {
        Some(content) => {
            decode_text_content(content, &format!("{path}.content"), "a tool message")?
        }
        None => Vec::new(),
    };
    Ok(ir::ToolResult {
        call_id: required_str(message, "tool_call_id", path)?.to_owned(),
        content: content.into_iter().map(Part::Text).collect(),
        is_error: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Requests: neutral -> chat
// ---------------------------------------------------------------------------------------------

/// Neutral request -> Chat Completions body for an upstream, with `model` as its model name.
///
/// # Errors
/// [`Unsupported`] for what chat cannot express: `top_k`, more than 4 stop sequences, an image
/// in a tool result or an assistant turn, a tool call or thinking in a user turn.
pub fn encode_request(req: &ir::Request, model: &str) -> Result<Map<String, Value>, Unsupported> {
    if req.top_k.is_some() {
        return refuse("top_k");
    }
    if req.stop.len() > MAX_STOP_SEQUENCES {
        return refuse(format!(
            "stop ({} sequences, chat allows 4)",
            req.stop.len()
        ));
    }
    let mut body = Object::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(encode_messages(req)?));
    if !req.tools.is_empty() {
        let tools = req.tools.iter().map(encode_tool).collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        body.insert("tool_choice".into(), encode_tool_choice(choice));
    }
    // OpenAI rejects `parallel_tool_calls` in a request without tools, where it means nothing.
    if let Some(parallel) = req.parallel_tool_calls
        && !req.tools.is_empty()
    {
        body.insert("parallel_tool_calls".into(), json!(parallel));
    }
    if let Some(max) = req.max_tokens {
        body.insert("max_completion_tokens".into(), json!(max));
    }
    if let Some(temperature) = req.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = req.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(effort) = req.reasoning.as_ref().and_then(effort_of) {
        body.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(format) = &req.response_format {
        body.insert("response_format".into(), encode_response_format(format));
    }
    Ok(body)
}

/// The effort of a reasoning setting, from its budget when it names none.
fn effort_of(reasoning: &ir::Reasoning) -> Option<String> {
    reasoning.effort.clone().or_else(|| {
        reasoning
            .budget_tokens
            .map(|budget| ir::Reasoning::effort_for_budget(budget).to_owned())
    })
}

fn encode_tool(tool: &ir::Tool) -> Value {
    let mut function = Object::new();
    function.insert("name".into(), json!(tool.name));
    if let Some(description) = &tool.description {
        function.insert("description".into(), json!(description));
    }
    // A null schema (no parameters) is left out: OpenAI then reads "no arguments".
    if !tool.parameters.is_null() {
        function.insert("parameters".into(), tool.parameters.clone());
    }
    // Only when asked: `false` is Chat's default.
    if tool.strict {
        function.insert("strict".into(), json!(true));
    }
    json!({"type": "function", "function": function})
}

fn encode_tool_choice(choice: &ir::ToolChoice) -> Value {
    match choice {
        ir::ToolChoice::Auto => json!("auto"),
        ir::ToolChoice::None => json!("none"),
        ir::ToolChoice::Required => json!("required"),
        ir::ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

fn encode_response_format(format: &ir::ResponseFormat) -> Value {
    match format {
        ir::ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ir::ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut spec = Object::new();
            spec.insert("name".into(), json!(name));
            spec.insert("schema".into(), schema.clone());
            // Only when asked: `false` is Chat's default.
            if *strict {
                spec.insert("strict".into(), json!(true));
            }
            json!({"type": "json_schema", "json_schema": spec})
        }
    }
}

fn encode_messages(req: &ir::Request) -> Result<Vec<Value>, Unsupported> {
    let mut out: Vec<Value> = req
        .system
        .iter()
        .map(|text| json!({"role": "system", "content": text}))
        .collect();
    for (i, message) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        match message.role {
            Role::User => encode_user_turn(message, &path, &mut out)?,
            Role::Assistant => out.push(encode_assistant_turn(message, &path)?),
        }
    }
    Ok(out)
}

/// A user turn: its tool results as `tool` messages, then its other parts as one `user` message.
fn encode_user_turn(
    message: &ir::Message,
    path: &str,
    out: &mut Vec<Value>,
) -> Result<(), Unsupported> {
    let mut content = Vec::new();
    let mut results = 0;
    for (j, part) in message.content.iter().enumerate() {
        let path = format!("{path}.content[{j}]");
        match part {
            Part::Text(text) => content.push(json!({"type": "text", "text": text})),
            Part::Image(image) => content.push(encode_image(image)),
            Part::ToolResult(result) => {
                out.push(encode_tool_result(result, &path)?);
                results += 1;
            }
            Part::ToolCall(_) => return refuse(format!("{path} (tool call in a user turn)")),
            Part::Thinking(_) => return refuse(format!("{path} (thinking in a user turn)")),
        }
    }
    if !content.is_empty() || results == 0 {
        out.push(json!({"role": "user", "content": user_content(content)}));
    }
    Ok(())
}

/// One text part as a plain string (the common shape), anything else as parts.
fn user_content(mut parts: Vec<Value>) -> Value {
    match parts.as_mut_slice() {
        [] => json!(""),
        [only] if only["type"] == "text" => only["text"].take(),
        _ => Value::Array(parts),
    }
}

fn encode_image(image: &Image) -> Value {
    let url = match image {
        Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Image::Url(url) => url.clone(),
    };
    json!({"type": "image_url", "image_url": {"url": url}})
}

fn encode_tool_result(result: &ir::ToolResult, path: &str) -> Result<Value, Unsupported> {
    let mut texts = Vec::new();
    for (k, part) in result.content.iter().enumerate() {
        match part {
            Part::Text(text) => texts.push(text.clone()),
            Part::Image(_) => {
                return refuse(format!("{path}.content[{k}] (image in a tool result)"));
            }
            _ => return refuse(format!("{path}.content[{k}] (not text in a tool result)")),
        }
    }
    if result.is_error {
        match texts.first_mut() {
            Some(first) => first.insert_str(0, ERROR_PREFIX),
            None => texts.push(ERROR_PREFIX.trim_end().to_owned()),
        }
    }
    let content = match texts.as_slice() {
        [] => json!(""),
        [only] => json!(only),
        _ => Value::Array(
            texts
                .iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect(),
        ),
    };
    Ok(json!({"role": "tool", "tool_call_id": result.call_id, "content": content}))
}

fn encode_assistant_turn(message: &ir::Message, path: &str) -> Result<Value, Unsupported> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, part) in message.content.iter().enumerate() {
        match part {
            Part::Text(text) => texts.push(text.as_str()),
            Part::ToolCall(call) => calls.push(encode_tool_call(call)),
            // No input field for it in chat (see the module documentation).
            Part::Thinking(_) => {}
            Part::Image(_) => {
                return refuse(format!("{path}.content[{j}] (image in an assistant turn)"));
            }
            Part::ToolResult(_) => {
                return refuse(format!(
                    "{path}.content[{j}] (tool result in an assistant turn)"
                ));
            }
        }
    }
    let content = match texts.as_slice() {
        // OpenAI wants `content` unless there are tool calls.
        [] if calls.is_empty() => json!(""),
        [] => Value::Null,
        [only] => json!(only),
        _ => Value::Array(
            texts
                .iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect(),
        ),
    };
    let mut out = Object::new();
    out.insert("role".into(), json!("assistant"));
    out.insert("content".into(), content);
    if !calls.is_empty() {
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(out))
}

fn encode_tool_call(call: &ir::ToolCall) -> Value {
    json!({
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments_text(&call.arguments)},
    })
}

/// The JSON text of arguments; a string is raw text that was not JSON (see [`parse_arguments`]).
fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Upstream non-streamed answer (`chat.completion`) -> neutral answer, usage normalised.
///
/// # Errors
/// [`Unsupported`] when the body is not a completion with exactly one choice, or its message
/// holds what the neutral model cannot carry (`audio`, a legacy `function_call`).
pub fn decode_response(body: &Value) -> Result<ir::Response, Unsupported> {
    let object = as_object(body, "response")?;
    let Some(choices) = present(object, "choices") else {
        return refuse("choices (missing)");
    };
    let choice = match as_array(choices, "choices")? {
        [only] => as_object(only, "choices[0]")?,
        [] => return refuse("choices (empty)"),
        _ => return refuse("choices (more than one)"),
    };
    let Some(message) = present(choice, "message") else {
        return refuse("choices[0].message (missing)");
    };
    let content = decode_answer_message(as_object(message, "choices[0].message")?)?;
    let stop_reason = optional_str(choice, "finish_reason", "choices[0]")?.and_then(stop_reason);
    Ok(ir::Response {
        id: optional_str(object, "id", "response")?
            .unwrap_or_default()
            .to_owned(),
        model: optional_str(object, "model", "response")?
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason,
        usage: chat::usage_from_response(body).unwrap_or_default(),
    })
}

/// The answer's parts: reasoning first, then text, then tool calls (chat's own order).
/// Unknown fields (`annotations`, `logprobs`…) are read-only metadata and are skipped.
fn decode_answer_message(message: &Object) -> Result<Vec<Part>, Unsupported> {
    let path = "choices[0].message";
    for refused in ["audio", "function_call"] {
        if present(message, refused).is_some() {
            return refuse(format!("{path}.{refused}"));
        }
    }
    let mut parts = Vec::new();
    for key in ["reasoning_content", "reasoning"] {
        if let Some(text) = optional_str(message, key, path)?.filter(|t| !t.is_empty()) {
            parts.push(Part::Thinking(ir::Thinking {
                text: text.to_owned(),
                signature: None,
                source: None,
            }));
        }
    }
    let content_path = format!("{path}.content");
    match present(message, "content") {
        Some(Value::String(text)) if !text.is_empty() => parts.push(Part::Text(text.clone())),
        None | Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            for (j, item) in items.iter().enumerate() {
                parts.push(Part::Text(decode_assistant_part(
                    item,
                    &format!("{content_path}[{j}]"),
                )?));
            }
        }
        Some(_) => return refuse(format!("{content_path} (neither a string nor an array)")),
    }
    if let Some(refusal) = optional_str(message, "refusal", path)?.filter(|r| !r.is_empty()) {
        parts.push(Part::Text(refusal.to_owned()));
    }
    if let Some(calls) = present(message, "tool_calls") {
        let calls_path = format!("{path}.tool_calls");
        for (k, call) in as_array(calls, &calls_path)?.iter().enumerate() {
            parts.push(Part::ToolCall(decode_tool_call(
                call,
                &format!("{calls_path}[{k}]"),
            )?));
        }
    }
    Ok(parts)
}

/// A `finish_reason`; `""` (sent by some servers on every chunk) is no reason.
fn stop_reason(reason: &str) -> Option<StopReason> {
    Some(match reason {
        "" => return None,
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    })
}

fn finish_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence | StopReason::Other(_) => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

/// The reason to report when the neutral answer has none: it is complete, so it stopped
/// either to call tools or at its natural end.
fn default_finish_reason(called_tools: bool) -> &'static str {
    if called_tools { "tool_calls" } else { "stop" }
}

fn usage_json(usage: &Usage) -> Value {
    let prompt = usage.total_input_tokens();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt.saturating_add(usage.output_tokens),
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    })
}

/// Neutral answer -> the `chat.completion` a Chat Completions client expects. Images in an
/// answer (the neutral model puts them in user turns only) and thinking signatures have no
/// place in it and are left out; thinking text goes to `reasoning_content`.
#[must_use]
pub fn encode_response(resp: &ir::Response) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in &resp.content {
        match part {
            Part::Text(more) => text.push_str(more),
            Part::Thinking(thinking) => reasoning.push_str(&thinking.text),
            Part::ToolCall(call) => calls.push(encode_tool_call(call)),
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    let mut message = Object::new();
    message.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    let finish = resp
        .stop_reason
        .as_ref()
        .map_or_else(|| default_finish_reason(!calls.is_empty()), finish_reason);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": 0,
        "model": resp.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage_json(&resp.usage),
    })
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// One tool call seen in an upstream stream.
#[derive(Debug)]
struct SeenCall {
    /// The upstream's `index` for it, when it sent one.
    upstream_index: Option<u64>,
    /// Its id (given or generated).
    id: String,
}

/// Upstream `chat.completion.chunk` events -> neutral deltas.
///
/// Emits `Start` at the first chunk that carries a choice or usage (Azure's leading
/// prompt-filter chunk has neither, nor an id), then per chunk: reasoning, text, tool-call
/// starts and argument fragments, the stop reason (once), usage. Only choice 0 is read
/// (`n` > 1 is refused on the way in). `[DONE]`, error events and non-JSON data give nothing:
/// the relay classifies those with [`chat::classify_stream_event`].
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// `Start` was emitted.
    started: bool,
    /// `Stop` was emitted (some servers repeat the finish reason).
    stopped: bool,
    /// Tool calls in order; the position is the neutral ordinal.
    calls: Vec<SeenCall>,
}

impl StreamDecoder {
    /// A decoder for one stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The deltas one upstream event stands for.
    pub fn push(&mut self, event: &SseEvent) -> Vec<Delta> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Vec::new();
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return Vec::new();
        };
        let Some(object) = chunk.as_object() else {
            return Vec::new();
        };
        if present(object, "error").is_some() {
            return Vec::new();
        }
        let choices = object
            .get("choices")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let usage = chat::usage_from_response(&chunk);
        if choices.is_empty() && usage.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
            out.push(Delta::Start {
                id: text("id").to_owned(),
                model: text("model").to_owned(),
            });
        }
        let first = choices
            .iter()
            .find(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
        if let Some(choice) = first {
            self.choice_deltas(choice, &mut out);
        }
        out.extend(usage.map(Delta::Usage));
        out
    }

    fn choice_deltas(&mut self, choice: &Value, out: &mut Vec<Delta>) {
        if let Some(delta) = choice.get("delta") {
            let text = |key: &str| {
                delta
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            };
            for key in ["reasoning_content", "reasoning"] {
                out.extend(text(key).map(Delta::Thinking));
            }
            out.extend(text("content").map(Delta::Text));
            out.extend(text("refusal").map(Delta::Text));
            let calls = delta.get("tool_calls").and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                self.tool_call_deltas(call, out);
            }
        }
        let reason = choice.get("finish_reason").and_then(Value::as_str);
        if let Some(reason) = reason.and_then(stop_reason)
            && !self.stopped
        {
            self.stopped = true;
            out.push(Delta::Stop(reason));
        }
    }

    /// One `tool_calls` delta entry: a new call (`ToolCallStart`) and/or an argument fragment.
    fn tool_call_deltas(&mut self, call: &Value, out: &mut Vec<Delta>) {
        let upstream_index = call.get("index").and_then(Value::as_u64);
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let function = call.get("function");
        let ordinal = match self.find_call(upstream_index, id) {
            Some(ordinal) => ordinal,
            None => {
                let ordinal = self.calls.len();
                let id = id.map_or_else(|| format!("call_gw_{ordinal}"), str::to_owned);
                let name = function
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                out.push(Delta::ToolCallStart {
                    index: ordinal,
                    id: id.clone(),
                    name: name.to_owned(),
                });
                self.calls.push(SeenCall { upstream_index, id });
                ordinal
            }
        };
        let fragment = match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(text)) => text.clone(),
            // Some compatible servers send the whole object at once.
            Some(Value::Object(object)) => Value::Object(object.clone()).to_string(),
            _ => String::new(),
        };
        if !fragment.is_empty() {
            out.push(Delta::ToolCallArguments {
                index: ordinal,
                fragment,
            });
        }
    }

    /// The ordinal of a call already seen: same upstream index (and same id when one is
    /// repeated — a server reusing index 0 for every call gives each a new id), or, without an
    /// index, the same id or else the last call.
    fn find_call(&self, upstream_index: Option<u64>, id: Option<&str>) -> Option<usize> {
        let same_id = |call: &SeenCall| id.is_none_or(|id| id == call.id);
        match upstream_index {
            Some(index) => self
                .calls
                .iter()
                .rposition(|call| call.upstream_index == Some(index) && same_id(call)),
            None if id.is_some() => self.calls.iter().rposition(same_id),
            None => self.calls.len().checked_sub(1),
        }
    }
}

/// Neutral deltas -> `chat.completion.chunk` SSE frames for a Chat Completions client.
///
/// Every chunk carries the same `id`, `created` (see [`StreamEncoder::created`]) and `model`; the first one is the role
/// chunk (`delta: {role: "assistant", content: ""}`); tool calls are indexed by their neutral
/// ordinal; the stop becomes a chunk with an empty delta and `finish_reason`; [`finish`]
/// then writes the usage chunk (`choices: []`, only when the client asked for it, in which case
/// every other chunk has `usage: null` as OpenAI sends it) and `data: [DONE]`.
///
/// [`finish`]: StreamEncoder::finish
#[derive(Debug)]
pub struct StreamEncoder {
    /// Write the usage chunk (the client set `stream_options.include_usage`).
    include_usage: bool,
    /// Id of every chunk.
    id: String,
    /// Model of every chunk.
    model: String,
    /// The role chunk was written.
    started: bool,
    /// The finish-reason chunk was written.
    stopped: bool,
    /// A tool call was written (the reason to give if no `Stop` comes).
    called_tools: bool,
    /// `finish` ran.
    finished: bool,
    /// Usage merged from every `Usage` delta.
    usage: Usage,
    /// `created` of every chunk (the caller's clock; 0 when not given).
    created: i64,
}

impl StreamEncoder {
    /// Stamps every chunk with `created` (Unix seconds, from the caller's clock).
    #[must_use]
    pub fn created(mut self, unix_seconds: i64) -> Self {
        self.created = unix_seconds;
        self
    }

    /// An encoder for one stream; `include_usage` writes the final usage chunk.
    #[must_use]
    pub fn new(include_usage: bool) -> Self {
        Self {
            include_usage,
            id: FALLBACK_ID.to_owned(),
            model: FALLBACK_MODEL.to_owned(),
            started: false,
            stopped: false,
            called_tools: false,
            finished: false,
            usage: Usage::default(),
            created: 0,
        }
    }

    /// The frames one delta stands for.
    pub fn push(&mut self, delta: &Delta) -> Vec<Bytes> {
        if let Delta::Start { id, model } = delta {
            if self.started {
                return Vec::new();
            }
            self.id.clone_from(id);
            self.model.clone_from(model);
        }
        let mut out = self.start();
        match delta {
            Delta::Start { .. } | Delta::ThinkingSignature { .. } => {}
            Delta::Text(text) if !text.is_empty() => {
                out.push(self.chunk(json!({"content": text}), None));
            }
            Delta::Thinking(text) if !text.is_empty() => {
                out.push(self.chunk(json!({"reasoning_content": text}), None));
            }
            Delta::Text(_) | Delta::Thinking(_) => {}
            Delta::ToolCallStart { index, id, name } => {
                self.called_tools = true;
                let call = json!({"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}});
                out.push(self.chunk(json!({"tool_calls": [call]}), None));
            }
            Delta::ToolCallArguments { index, fragment } => {
                let call = json!({"index": index, "function": {"arguments": fragment}});
                out.push(self.chunk(json!({"tool_calls": [call]}), None));
            }
            Delta::Usage(usage) => self.usage.merge_stream(usage),
            Delta::Stop(reason) => out.extend(self.stop(finish_reason(reason))),
        }
        out
    }

    /// Ends the stream: the finish-reason chunk if no `Stop` came, the usage chunk if asked
    /// for, then `[DONE]`. Idempotent.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let mut out = self.start();
        out.extend(self.stop(default_finish_reason(self.called_tools)));
        if self.include_usage {
            let mut chunk = self.frame(Vec::new());
            chunk.insert("usage".into(), usage_json(&self.usage));
            out.push(sse::encode(None, &Value::Object(chunk).to_string()));
        }
        out.push(chat::done_event());
        out
    }

    /// The role chunk, once.
    fn start(&mut self) -> Vec<Bytes> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
    }

    /// The finish-reason chunk, once.
    fn stop(&mut self, reason: &str) -> Option<Bytes> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        Some(self.chunk(json!({}), Some(reason)))
    }

    /// The fields every chunk shares, with these choices.
    fn frame(&self, choices: Vec<Value>) -> Object {
        let mut chunk = Object::new();
        chunk.insert("id".into(), json!(self.id));
        chunk.insert("object".into(), json!("chat.completion.chunk"));
        chunk.insert("created".into(), json!(self.created));
        chunk.insert("model".into(), json!(self.model));
        chunk.insert("choices".into(), Value::Array(choices));
        chunk
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let choice =
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason});
        let mut chunk = self.frame(vec![choice]);
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        sse::encode(None, &Value::Object(chunk).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;
    use crate::ir::{Message, Reasoning, ResponseFormat, Thinking, Tool, ToolChoice};
    use crate::ir::{Request, Response};
    use crate::test_support::{data_event, frame_events, object};

    fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: Some("Current weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}),
            strict: false,
        }
    }

    fn refusal(body: Value) -> String {
        decode_request(&object(body))
            .expect_err("must be refused")
            .what
    }

    // --- requests: chat -> neutral ---------------------------------------------------------

    #[test]
    fn decodes_a_rich_request() {
        let body = object(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be terse."},
                {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is on these pictures, and the weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": null, "reasoning_content": "Two tools needed.",
                 "refusal": null, "audio": null, "tool_calls": [
                    {"id": "call_abc", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_def", "type": "function",
                     "function": {"name": "describe", "arguments": "{\"n\":2}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "18°C, cloudy"},
                {"role": "tool", "tool_call_id": "call_def", "name": "describe",
                 "content": [{"type": "text", "text": "a cat"}, {"type": "text", "text": "a dog"}]},
                {"role": "user", "content": "Thanks!", "name": null}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather for a city", "strict": true,
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            }}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "max_completion_tokens": 1024,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true},
            "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "strict": true, "schema": {"type": "object"}}},
            "user": "user-42",
            "metadata": {"team": "a"},
            "store": false,
            "n": 1,
            "parallel_tool_calls": true,
            "service_tier": "auto",
            "prompt_cache_key": "k1",
            "seed": null,
            "frequency_penalty": 0,
            "logprobs": false
        }));
        let expected = Request {
            system: vec!["Be terse.".into(), "Answer in French.".into()],
            messages: vec![
                Message::user(vec![
                    Part::text("What is on these pictures, and the weather in Paris?"),
                    Part::Image(Image::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBORw0KGgo=".into(),
                    }),
                    Part::Image(Image::Url("https://example.com/cat.jpg".into())),
                ]),
                Message::assistant(vec![
                    Part::thinking("Two tools needed."),
                    Part::tool_call("call_abc", "get_weather", json!({"city": "Paris"})),
                    Part::tool_call("call_def", "describe", json!({"n": 2})),
                ]),
                Message::user(vec![
                    Part::tool_result("call_abc", vec![Part::text("18°C, cloudy")], false),
                    Part::tool_result(
                        "call_def",
                        vec![Part::text("a cat"), Part::text("a dog")],
                        false,
                    ),
                ]),
                Message::user(vec![Part::text("Thanks!")]),
            ],
            tools: vec![Tool {
                strict: true,
                ..weather_tool()
            }],
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            parallel_tool_calls: Some(true),
            max_tokens: Some(1024),
            temperature: Some(0.2),
            top_p: Some(0.9),
            top_k: None,
            stop: vec!["END".into()],
            stream: true,
            reasoning: Some(Reasoning {
                effort: Some("low".into()),
                budget_tokens: None,
            }),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object"}),
                strict: true,
            }),
        };
        assert_eq!(decode_request(&body), Ok(expected));
    }

    #[test]
    fn decodes_assistant_history_variants() {
        let body = object(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Hi"},
                // Empty text beside a tool call is noise; arguments "" mean none.
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "now", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
                // A call cut off by the token limit keeps its raw text.
                {"role": "assistant", "reasoning": "Thinking…", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "refusal", "refusal": "Not that."}
                ], "tool_calls": [
                    {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]},
                {"role": "assistant", "content": null, "refusal": "I can't help with that."},
                {"role": "assistant", "content": ""}
            ],
            "max_tokens": 50,
            "stop": ["a", "b"],
            "tool_choice": "required",
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "now"}}]
        }));
        let req = decode_request(&body).expect("decodes");
        assert_eq!(
            req.messages,
            vec![
                Message::user(vec![Part::text("Hi")]),
                Message::assistant(vec![Part::tool_call("c1", "now", json!({}))]),
                Message::user(vec![Part::tool_result(
                    "c1",
                    vec![Part::text("12:00")],
                    false
                )]),
                Message::assistant(vec![
                    Part::thinking("Thinking…"),
                    Part::text("Let me check."),
                    Part::text("Not that."),
                    Part::tool_call("c2", "f", json!("{\"a\":")),
                ]),
                Message::assistant(vec![Part::text("I can't help with that.")]),
                Message::assistant(vec![Part::text("")]),
            ]
        );
        assert_eq!(req.max_tokens, Some(50));
        assert_eq!(req.stop, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(req.tool_choice, Some(ToolChoice::Required));
        assert_eq!(req.response_format, Some(ResponseFormat::JsonObject));
        assert_eq!(
            req.tools[0].parameters,
            json!({"type": "object", "properties": {}}),
            "no parameters = an empty parameter list"
        );
        assert!(!req.stream);

        let choice = |choice: Value| {
            decode_request(&object(
                json!({"model": "m", "messages": [], "tool_choice": choice}),
            ))
            .expect("decodes")
            .tool_choice
        };
        assert_eq!(choice(json!("auto")), Some(ToolChoice::Auto));
        assert_eq!(choice(json!("none")), Some(ToolChoice::None));
        assert_eq!(choice(Value::Null), None);
        let format = decode_request(&object(json!({"model": "m", "messages": [],
            "response_format": {"type": "text"}, "max_tokens": 9, "max_completion_tokens": 9})))
        .expect("decodes");
        assert_eq!((format.response_format, format.max_tokens), (None, Some(9)));
    }

    #[test]
    fn refuses_what_the_neutral_model_cannot_carry() {
        let base = |extra: Value| {
            let mut body =
                object(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
            body.extend(object(extra));
            Value::Object(body)
        };
        let with_message = |message: Value| json!({"model": "m", "messages": [message]});
        let cases = [
            (base(json!({"logprobs": true})), "logprobs"),
            (base(json!({"top_logprobs": 3})), "top_logprobs"),
            (base(json!({"n": 2})), "n"),
            (base(json!({"logit_bias": {"50256": -100}})), "logit_bias"),
            (base(json!({"frequency_penalty": 0.5})), "frequency_penalty"),
            (base(json!({"presence_penalty": -1})), "presence_penalty"),
            (base(json!({"seed": 7})), "seed"),
            (
                base(json!({"audio": {"voice": "alloy", "format": "wav"}})),
                "audio",
            ),
            (base(json!({"modalities": ["text", "audio"]})), "modalities"),
            (base(json!({"functions": [{"name": "f"}]})), "functions"),
            (
                base(json!({"prediction": {"type": "content", "content": "x"}})),
                "prediction",
            ),
            (
                base(json!({"web_search_options": {}})),
                "web_search_options",
            ),
            (
                base(json!({"parallel_tool_calls": "no"})),
                "parallel_tool_calls (not a boolean)",
            ),
            (base(json!({"verbosity": "low"})), "verbosity"),
            (base(json!({"x_vendor": 1})), "x_vendor (unknown field)"),
            (
                base(json!({"reasoning_effort": "none"})),
                "reasoning_effort (none)",
            ),
            (
                base(json!({"max_tokens": 10, "max_completion_tokens": 20})),
                "max_tokens (differs from max_completion_tokens)",
            ),
            (
                base(json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]})),
                "tools[0].type (custom)",
            ),
            (
                base(json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}})),
                "tool_choice.type (allowed_tools)",
            ),
            (
                base(
                    json!({"response_format": {"type": "json_schema", "json_schema": {
                    "name": "a", "description": "An answer", "schema": {}}}}),
                ),
                "response_format.json_schema.description",
            ),
            (
                base(json!({"tools": [{"type": "function",
                    "function": {"name": "f", "strict": "yes"}}]})),
                "tools[0].function.strict (not a boolean)",
            ),
            (
                base(
                    json!({"response_format": {"type": "json_schema", "json_schema": {
                    "name": "a", "schema": {}, "strict": 1}}}),
                ),
                "response_format.json_schema.strict (not a boolean)",
            ),
            (json!({"model": "m"}), "messages (missing)"),
            (
                with_message(json!({"role": "user", "content": [{"type": "input_audio",
                    "input_audio": {"data": "UklGR", "format": "wav"}}]})),
                "messages[0].content[0] (input_audio)",
            ),
            (
                with_message(json!({"role": "user", "content": [{"type": "file",
                    "file": {"file_id": "file-1"}}]})),
                "messages[0].content[0] (file)",
            ),
            (
                with_message(json!({"role": "user", "content": [{"type": "image_url",
                    "image_url": {"url": "https://x/y.png", "detail": "low"}}]})),
                "messages[0].content[0].image_url.detail (low)",
            ),
            (
                with_message(json!({"role": "user", "content": [{"type": "image_url",
                    "image_url": {"url": "file:///etc/passwd"}}]})),
                "messages[0].content[0].image_url.url (neither a data URL nor an http(s) URL)",
            ),
            (
                with_message(json!({"role": "system", "content": [{"type": "image_url",
                    "image_url": {"url": "https://x/y.png"}}]})),
                "messages[0].content[0] (image_url in a system message)",
            ),
            (
                with_message(json!({"role": "user", "name": "alice", "content": "x"})),
                "messages[0].name",
            ),
            (
                with_message(json!({"role": "function", "name": "f", "content": "x"})),
                "messages[0].role (function)",
            ),
            (
                with_message(json!({"role": "assistant", "audio": {"id": "audio_1"}})),
                "messages[0].audio",
            ),
            (
                with_message(
                    json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "custom",
                    "custom": {"name": "x", "input": "y"}}]}),
                ),
                "messages[0].tool_calls[0].type (custom)",
            ),
            (
                with_message(json!({"role": "tool", "content": "x"})),
                "messages[0].tool_call_id (missing)",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(refusal(body.clone()), expected, "{body}");
        }
    }

    // --- requests: neutral -> chat ---------------------------------------------------------

    /// A request using everything chat can express.
    fn rich_request() -> Request {
        Request {
            system: vec!["Be terse.".into(), "Answer in French.".into()],
            messages: vec![
                Message::user(vec![
                    Part::text("Weather in Paris? And what is this?"),
                    Part::Image(Image::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "/9j/4AAQ".into(),
                    }),
                    Part::Image(Image::Url("https://example.com/cat.jpg".into())),
                ]),
                Message::assistant(vec![
                    Part::text("Checking."),
                    Part::tool_call("toolu_01", "get_weather", json!({"city": "Paris"})),
                    Part::tool_call("toolu_02", "get_weather", json!({"city": "Lyon"})),
                ]),
                Message::user(vec![
                    Part::tool_result("toolu_01", vec![Part::text("18°C")], false),
                    Part::tool_result("toolu_02", vec![Part::text("21°C")], false),
                ]),
                Message::assistant(vec![Part::text("Paris 18°C, Lyon 21°C.")]),
                Message::user(vec![Part::text("And tomorrow?"), Part::text("Be brief.")]),
            ],
            tools: vec![weather_tool()],
            tool_choice: Some(ToolChoice::Auto),
            parallel_tool_calls: Some(false),
            max_tokens: Some(512),
            temperature: Some(0.7),
            top_p: Some(0.95),
            top_k: None,
            stop: vec!["\n\nHuman:".into()],
            stream: true,
            reasoning: Some(Reasoning {
                effort: Some("medium".into()),
                budget_tokens: None,
            }),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "forecast".into(),
                schema: json!({"type": "object", "properties": {"t": {"type": "number"}}}),
                strict: false,
            }),
        }
    }

    #[test]
    fn encodes_a_rich_request() {
        let body = encode_request(&rich_request(), "gpt-4o-2024-08-06").expect("encodes");
        let expected = json!({
            "model": "gpt-4o-2024-08-06",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris? And what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_01", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_02", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "18°C"},
                {"role": "tool", "tool_call_id": "toolu_02", "content": "21°C"},
                {"role": "assistant", "content": "Paris 18°C, Lyon 21°C."},
                {"role": "user", "content": [
                    {"type": "text", "text": "And tomorrow?"},
                    {"type": "text", "text": "Be brief."}
                ]}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"]}
            }}],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "max_completion_tokens": 512,
            "temperature": 0.7,
            "top_p": 0.95,
            "stop": ["\n\nHuman:"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "reasoning_effort": "medium",
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "forecast",
                "schema": {"type": "object", "properties": {"t": {"type": "number"}}}
            }}
        });
        assert_eq!(Value::Object(body), expected);
    }

    #[test]
    fn a_strict_responses_tool_stays_strict_for_chat() {
        // A Codex-style request: one strict tool, one not, and a strict schema.
        let responses_body = object(json!({"model": "gpt-5", "input": "x", "tools": [
            {"type": "function", "name": "get_weather", "parameters": {"type": "object"},
             "strict": true},
            {"type": "function", "name": "now", "parameters": {"type": "object"},
             "strict": false}
        ], "text": {"format": {"type": "json_schema", "name": "answer",
            "schema": {"type": "object"}, "strict": true}}}));
        let req = crate::openai::responses_codec::decode_request(&responses_body).expect("decodes");
        let body = Value::Object(encode_request(&req, "gpt-4o").expect("encodes"));
        assert_eq!(
            body["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather",
                    "parameters": {"type": "object"}, "strict": true}},
                {"type": "function", "function": {"name": "now",
                    "parameters": {"type": "object"}}}
            ]),
            "`strict` is sent only when asked, `false` being Chat's default"
        );
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer",
                "schema": {"type": "object"}, "strict": true}})
        );
    }

    #[test]
    fn carries_parallel_tool_calls() {
        // Codex's shape: tools with `parallel_tool_calls: false`.
        let decode = |extra: Value| {
            let mut body = object(json!({"model": "m",
                "messages": [{"role": "user", "content": "x"}]}));
            body.extend(object(extra));
            decode_request(&body).expect("decodes").parallel_tool_calls
        };
        let tools = json!([{"type": "function", "function": {"name": "now"}}]);
        assert_eq!(
            decode(json!({"tools": tools, "parallel_tool_calls": false})),
            Some(false)
        );
        assert_eq!(
            decode(json!({"tools": tools, "parallel_tool_calls": true})),
            Some(true)
        );
        assert_eq!(
            decode(json!({"tools": tools, "parallel_tool_calls": null})),
            None
        );
        assert_eq!(decode(json!({"tools": tools})), None);
        assert_eq!(
            decode(json!({"parallel_tool_calls": false})),
            Some(false),
            "carried without tools too; the encoder leaves it out then"
        );

        let with_tools = Request {
            messages: vec![Message::user(vec![Part::text("x")])],
            tools: vec![weather_tool()],
            parallel_tool_calls: Some(false),
            ..Request::default()
        };
        let body = encode_request(&with_tools, "gpt-4o").expect("encodes");
        assert_eq!(body.get("parallel_tool_calls"), Some(&json!(false)));
        assert_eq!(decode_request(&body), Ok(with_tools.clone()));
        let allowed = Request {
            parallel_tool_calls: Some(true),
            ..with_tools.clone()
        };
        let body = encode_request(&allowed, "gpt-4o").expect("encodes");
        assert_eq!(body.get("parallel_tool_calls"), Some(&json!(true)));
        let default = Request {
            parallel_tool_calls: None,
            ..with_tools.clone()
        };
        let body = encode_request(&default, "gpt-4o").expect("encodes");
        assert_eq!(body.get("parallel_tool_calls"), None);
        let tool_less = Request {
            tools: vec![],
            ..with_tools
        };
        let body = encode_request(&tool_less, "gpt-4o").expect("encodes");
        assert_eq!(
            Value::Object(body),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
            "OpenAI rejects parallel_tool_calls without tools"
        );
    }

    #[test]
    fn encodes_what_chat_lacks_the_documented_way() {
        let req = Request {
            messages: vec![
                Message::user(vec![Part::text("Read /tmp/x")]),
                // Anthropic history: signed thinking, text after the call.
                Message::assistant(vec![
                    Part::Thinking(Thinking {
                        text: "Use the tool.".into(),
                        signature: Some("EqQBCkYIBxgCKkB".into()),
                        source: Some(Dialect::Messages),
                    }),
                    Part::tool_call("toolu_01", "read", json!({"path": "/tmp/x"})),
                ]),
                // Anthropic shape: text beside the results, an error result, an empty one.
                Message::user(vec![
                    Part::text("Here you go."),
                    Part::tool_result("toolu_01", vec![Part::text("No such file")], true),
                    Part::tool_result("toolu_02", vec![], true),
                ]),
                Message::assistant(vec![Part::thinking("only thoughts")]),
            ],
            reasoning: Some(Reasoning {
                effort: None,
                budget_tokens: Some(10_000),
            }),
            tool_choice: Some(ToolChoice::Tool("read".into())),
            response_format: Some(ResponseFormat::JsonObject),
            ..Request::default()
        };
        let body = encode_request(&req, "deepseek-reasoner").expect("encodes");
        assert_eq!(
            Value::Object(body),
            json!({
                "model": "deepseek-reasoner",
                "messages": [
                    {"role": "user", "content": "Read /tmp/x"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_01",
                        "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"/tmp/x\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_01", "content": "Error: No such file"},
                    {"role": "tool", "tool_call_id": "toolu_02", "content": "Error:"},
                    {"role": "user", "content": "Here you go."},
                    {"role": "assistant", "content": ""}
                ],
                "tool_choice": {"type": "function", "function": {"name": "read"}},
                "reasoning_effort": "medium",
                "response_format": {"type": "json_object"}
            })
        );
    }

    #[test]
    fn encode_refusals() {
        let refused = |req: Request| encode_request(&req, "m").expect_err("refused").what;
        let image = Part::Image(Image::Url("https://x/y.png".into()));
        assert_eq!(
            refused(Request {
                top_k: Some(40),
                ..Request::default()
            }),
            "top_k"
        );
        assert_eq!(
            refused(Request {
                stop: vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()],
                ..Request::default()
            }),
            "stop (5 sequences, chat allows 4)"
        );
        assert_eq!(
            refused(Request {
                messages: vec![Message::user(vec![Part::tool_result(
                    "c",
                    vec![Part::text("see"), image.clone()],
                    false
                )])],
                ..Request::default()
            }),
            "messages[0].content[0].content[1] (image in a tool result)"
        );
        assert_eq!(
            refused(Request {
                messages: vec![Message::assistant(vec![image])],
                ..Request::default()
            }),
            "messages[0].content[0] (image in an assistant turn)"
        );
        assert_eq!(
            refused(Request {
                messages: vec![Message::user(vec![Part::tool_call("c", "f", json!({}))])],
                ..Request::default()
            }),
            "messages[0].content[0] (tool call in a user turn)"
        );
        assert_eq!(
            refused(Request {
                messages: vec![Message::user(vec![Part::thinking("x")])],
                ..Request::default()
            }),
            "messages[0].content[0] (thinking in a user turn)"
        );
    }

    #[test]
    fn requests_round_trip() {
        let rich = rich_request();
        let body = encode_request(&rich, "gpt-4o").expect("encodes");
        assert_eq!(decode_request(&body), Ok(rich));

        let plain = Request {
            messages: vec![Message::user(vec![Part::text("Hi")])],
            tool_choice: Some(ToolChoice::None),
            response_format: Some(ResponseFormat::JsonObject),
            ..Request::default()
        };
        let body = encode_request(&plain, "gpt-4o-mini").expect("encodes");
        assert_eq!(
            Value::Object(body.clone()),
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
                "tool_choice": "none", "response_format": {"type": "json_object"}})
        );
        assert_eq!(decode_request(&body), Ok(plain));

        // Raw, unparsable arguments come back byte for byte.
        let cut = Request {
            messages: vec![Message::assistant(vec![Part::tool_call(
                "c",
                "f",
                json!("{\"a\": [1,"),
            )])],
            ..Request::default()
        };
        let body = encode_request(&cut, "m").expect("encodes");
        assert_eq!(
            body["messages"][0]["tool_calls"][0]["function"]["arguments"],
            json!("{\"a\": [1,")
        );
        assert_eq!(decode_request(&body), Ok(cut));
    }

    // --- responses -------------------------------------------------------------------------

    fn usage() -> Usage {
        Usage {
            input_tokens: 86,
            output_tokens: 300,
            cache_read_tokens: 1920,
            cache_creation_tokens: 0,
            reasoning_tokens: 192,
        }
    }

    #[test]
    fn decodes_a_response_with_tool_calls_and_cached_usage() {
        let body = json!({
            "id": "chatcmpl-BpVx3kq",
            "object": "chat.completion",
            "created": 1_751_900_000,
            "model": "o4-mini-2025-04-16",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_2", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}
                    ],
                    "refusal": null,
                    "annotations": []
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {
                "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            },
            "service_tier": "default",
            "system_fingerprint": null
        });
        assert_eq!(
            decode_response(&body),
            Ok(Response {
                id: "chatcmpl-BpVx3kq".into(),
                model: "o4-mini-2025-04-16".into(),
                content: vec![
                    Part::tool_call("call_1", "get_weather", json!({"city": "Paris"})),
                    Part::tool_call("call_2", "get_weather", json!({"city": "Lyon"})),
                ],
                stop_reason: Some(StopReason::ToolUse),
                usage: usage(),
            })
        );
    }

    #[test]
    fn decodes_deepseek_reasoning_and_stop_reasons() {
        let body = |finish: Value| {
            json!({
                "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e",
                "object": "chat.completion",
                "created": 1_705_651_092,
                "model": "deepseek-reasoner",
                "choices": [{"index": 0, "message": {"role": "assistant",
                    "content": "9.11 < 9.9", "reasoning_content": "Compare decimals."},
                    "logprobs": null, "finish_reason": finish}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
                    "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36,
                    "completion_tokens_details": {"reasoning_tokens": 30}}
            })
        };
        let decoded = decode_response(&body(json!("stop"))).expect("decodes");
        assert_eq!(
            decoded.content,
            vec![
                Part::thinking("Compare decimals."),
                Part::text("9.11 < 9.9")
            ]
        );
        assert_eq!(
            decoded.usage,
            Usage {
                input_tokens: 36,
                output_tokens: 40,
                cache_read_tokens: 64,
                cache_creation_tokens: 0,
                reasoning_tokens: 30,
            }
        );
        let reasons = [
            (json!("stop"), Some(StopReason::EndTurn)),
            (json!("length"), Some(StopReason::MaxTokens)),
            (json!("tool_calls"), Some(StopReason::ToolUse)),
            (json!("function_call"), Some(StopReason::ToolUse)),
            (json!("content_filter"), Some(StopReason::ContentFilter)),
            (
                json!("insufficient_system_resource"),
                Some(StopReason::Other("insufficient_system_resource".into())),
            ),
            (json!(""), None),
            (Value::Null, None),
        ];
        for (finish, expected) in reasons {
            let decoded = decode_response(&body(finish.clone())).expect("decodes");
            assert_eq!(decoded.stop_reason, expected, "{finish}");
        }
    }

    #[test]
    fn response_refusals() {
        let refused = |body: Value| decode_response(&body).expect_err("refused").what;
        assert_eq!(refused(json!([])), "response (not an object)");
        assert_eq!(refused(json!({"id": "x"})), "choices (missing)");
        assert_eq!(refused(json!({"choices": []})), "choices (empty)");
        let choice = json!({"index": 0, "message": {"role": "assistant", "content": "a"},
            "finish_reason": "stop"});
        assert_eq!(
            refused(json!({"choices": [choice.clone(), choice]})),
            "choices (more than one)"
        );
        assert_eq!(
            refused(
                json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": null,
                "audio": {"id": "audio_1", "data": "UklGR", "transcript": "hi", "expires_at": 1}}}]})
            ),
            "choices[0].message.audio"
        );
    }

    #[test]
    fn encodes_a_response() {
        let resp = Response {
            id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
            model: "claude-sonnet-4-5".into(),
            content: vec![
                Part::Thinking(Thinking {
                    text: "The user wants the weather.".into(),
                    signature: Some("EqQBCkYIBxgC".into()),
                    source: Some(Dialect::Messages),
                }),
                Part::text("Let me check. "),
                Part::text("One moment."),
                Part::tool_call(
                    "toolu_01A09q90qw90lq917835lq9",
                    "get_weather",
                    json!({"city": "Paris"}),
                ),
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input_tokens: 20,
                output_tokens: 95,
                cache_read_tokens: 1000,
                cache_creation_tokens: 300,
                reasoning_tokens: 0,
            },
        };
        assert_eq!(
            encode_response(&resp),
            json!({
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": 0,
                "model": "claude-sonnet-4-5",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Let me check. One moment.",
                        "refusal": null,
                        "reasoning_content": "The user wants the weather.",
                        "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls"
                }],
                "usage": {
                    "prompt_tokens": 1320,
                    "completion_tokens": 95,
                    "total_tokens": 1415,
                    "prompt_tokens_details": {"cached_tokens": 1000},
                    "completion_tokens_details": {"reasoning_tokens": 0}
                }
            })
        );

        let bare = |stop_reason, content| Response {
            id: "r".into(),
            model: "m".into(),
            content,
            stop_reason,
            usage: Usage::default(),
        };
        let finish = |resp: &Response| encode_response(resp)["choices"][0]["finish_reason"].clone();
        assert_eq!(finish(&bare(Some(StopReason::MaxTokens), vec![])), "length");
        assert_eq!(
            finish(&bare(Some(StopReason::StopSequence), vec![])),
            "stop"
        );
        assert_eq!(
            finish(&bare(Some(StopReason::ContentFilter), vec![])),
            "content_filter"
        );
        assert_eq!(
            finish(&bare(Some(StopReason::Other("pause_turn".into())), vec![])),
            "stop"
        );
        assert_eq!(
            finish(&bare(None, vec![Part::tool_call("c", "f", json!({}))])),
            "tool_calls"
        );
        let empty = encode_response(&bare(None, vec![]));
        assert_eq!(empty["choices"][0]["finish_reason"], "stop");
        assert_eq!(empty["choices"][0]["message"]["content"], "");
    }

    #[test]
    fn responses_round_trip() {
        let responses = [
            Response {
                id: "chatcmpl-1".into(),
                model: "o3".into(),
                content: vec![
                    Part::thinking("Two calls."),
                    Part::text("Checking both."),
                    Part::tool_call("call_1", "get_weather", json!({"city": "Paris"})),
                    Part::tool_call("call_2", "get_weather", json!({"city": "Lyon"})),
                ],
                stop_reason: Some(StopReason::ToolUse),
                usage: usage(),
            },
            Response {
                id: "chatcmpl-2".into(),
                model: "gpt-4o".into(),
                content: vec![Part::text("Bonjour")],
                stop_reason: Some(StopReason::MaxTokens),
                usage: Usage {
                    input_tokens: 5,
                    output_tokens: 1,
                    ..Usage::default()
                },
            },
        ];
        for resp in responses {
            assert_eq!(decode_response(&encode_response(&resp)), Ok(resp));
        }
    }

    // --- streams ---------------------------------------------------------------------------

    /// A chunk as OpenAI sends it when the client asked for usage.
    fn upstream_chunk(delta: Value, finish: Value) -> SseEvent {
        data_event(
            &json!({
                "id": "chatcmpl-C1x", "object": "chat.completion.chunk", "created": 1_751_900_000,
                "model": "gpt-4o-mini-2024-07-18", "service_tier": "default",
                "system_fingerprint": "fp_34a54ae93c",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                "usage": null
            })
            .to_string(),
        )
    }

    fn decode_all(events: &[SseEvent]) -> Vec<Delta> {
        let mut decoder = StreamDecoder::new();
        events.iter().flat_map(|e| decoder.push(e)).collect()
    }

    #[test]
    fn decodes_a_text_stream_with_usage() {
        let usage_chunk = data_event(
            &json!({
                "id": "chatcmpl-C1x", "object": "chat.completion.chunk", "created": 1_751_900_000,
                "model": "gpt-4o-mini-2024-07-18", "choices": [],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 2, "total_tokens": 1202,
                    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
            })
            .to_string(),
        );
        let events = [
            upstream_chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ),
            upstream_chunk(json!({"content": "Hello"}), Value::Null),
            upstream_chunk(json!({"content": "!"}), Value::Null),
            upstream_chunk(json!({}), json!("stop")),
            usage_chunk,
            data_event("[DONE]"),
        ];
        assert_eq!(
            decode_all(&events),
            vec![
                Delta::Start {
                    id: "chatcmpl-C1x".into(),
                    model: "gpt-4o-mini-2024-07-18".into()
                },
                Delta::Text("Hello".into()),
                Delta::Text("!".into()),
                Delta::Stop(StopReason::EndTurn),
                Delta::Usage(Usage {
                    input_tokens: 176,
                    output_tokens: 2,
                    cache_read_tokens: 1024,
                    ..Usage::default()
                }),
            ]
        );
    }

    #[test]
    fn decodes_parallel_tool_calls_and_reasoning() {
        let azure_filter = data_event(
            r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
        );
        let events = [
            azure_filter,
            upstream_chunk(
                json!({"role": "assistant", "content": null, "reasoning_content": ""}),
                Value::Null,
            ),
            upstream_chunk(json!({"reasoning_content": "Two cities"}), Value::Null),
            upstream_chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_P", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            upstream_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
                Value::Null,
            ),
            upstream_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                Value::Null,
            ),
            upstream_chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_L", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}}]}),
                Value::Null,
            ),
            upstream_chunk(json!({}), json!("tool_calls")),
            data_event("[DONE]"),
        ];
        assert_eq!(
            decode_all(&events),
            vec![
                Delta::Start {
                    id: "chatcmpl-C1x".into(),
                    model: "gpt-4o-mini-2024-07-18".into()
                },
                Delta::Thinking("Two cities".into()),
                Delta::ToolCallStart {
                    index: 0,
                    id: "call_P".into(),
                    name: "get_weather".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "{\"city\": ".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "\"Paris\"}".into()
                },
                Delta::ToolCallStart {
                    index: 1,
                    id: "call_L".into(),
                    name: "get_weather".into()
                },
                Delta::ToolCallArguments {
                    index: 1,
                    fragment: "{\"city\": \"Lyon\"}".into()
                },
                Delta::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[test]
    fn decodes_what_compatible_servers_send() {
        let chunk = |delta: Value, finish: Value| {
            data_event(
                &json!({"id": "x", "model": "gemini-2.5-flash", "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                .to_string(),
            )
        };
        let events = [
            // Whole calls, no `index`, the same `index` reused would be as bad.
            chunk(
                json!({"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": {"k": 1}}}
                ]}),
                json!(""),
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "h", "arguments": "{"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
                Value::Null,
            ),
            // No id at all.
            chunk(
                json!({"tool_calls": [{"index": 7, "function": {"name": "i"}}]}),
                Value::Null,
            ),
            chunk(json!({"content": "", "reasoning": "hmm"}), json!("stop")),
            // A repeated finish reason and usage on a content chunk.
            data_event(
                r#"{"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            ),
            data_event(r#"{"error":{"message":"overloaded","type":"server_error"}}"#),
            data_event("not json"),
            data_event("[DONE]"),
        ];
        let start = |index, id: &str, name: &str| Delta::ToolCallStart {
            index,
            id: id.into(),
            name: name.into(),
        };
        let args = |index, fragment: &str| Delta::ToolCallArguments {
            index,
            fragment: fragment.into(),
        };
        assert_eq!(
            decode_all(&events),
            vec![
                Delta::Start {
                    id: "x".into(),
                    model: "gemini-2.5-flash".into()
                },
                start(0, "a", "f"),
                args(0, "{}"),
                start(1, "b", "g"),
                args(1, "{\"k\":1}"),
                start(2, "c", "h"),
                args(2, "{"),
                args(2, "}"),
                start(3, "call_gw_3", "i"),
                Delta::Thinking("hmm".into()),
                Delta::Stop(StopReason::EndTurn),
                Delta::Usage(Usage {
                    input_tokens: 3,
                    output_tokens: 1,
                    ..Usage::default()
                }),
            ]
        );
    }

    /// The frames parsed back: each JSON chunk, and `[DONE]` as a string.
    fn parse_frames(frames: &[Bytes]) -> Vec<Value> {
        frame_events(frames)
            .iter()
            .map(|e| {
                assert_eq!(e.event, None, "chat frames have no event name");
                serde_json::from_str(&e.data).unwrap_or_else(|_| Value::String(e.data.clone()))
            })
            .collect()
    }

    fn encode_all(include_usage: bool, deltas: &[Delta]) -> Vec<Bytes> {
        let mut encoder = StreamEncoder::new(include_usage);
        let mut frames: Vec<Bytes> = deltas.iter().flat_map(|d| encoder.push(d)).collect();
        frames.extend(encoder.finish());
        assert!(encoder.finish().is_empty(), "finish is idempotent");
        frames
    }

    #[test]
    fn encodes_a_stream_with_reasoning_and_usage() {
        let deltas = [
            Delta::Start {
                id: "msg_01".into(),
                model: "claude-sonnet-4-5".into(),
            },
            Delta::Thinking("Hmm.".into()),
            Delta::ThinkingSignature {
                source: Some(Dialect::Messages),
                signature: "EqQB".into(),
            },
            Delta::Text("Hi".into()),
            Delta::Text(String::new()),
            Delta::Usage(Usage {
                input_tokens: 10,
                cache_read_tokens: 90,
                output_tokens: 1,
                ..Usage::default()
            }),
            Delta::Stop(StopReason::StopSequence),
            Delta::Usage(Usage {
                output_tokens: 7,
                ..Usage::default()
            }),
        ];
        let frame = |delta: Value, finish: Value| {
            json!({"id": "msg_01", "object": "chat.completion.chunk", "created": 0,
                "model": "claude-sonnet-4-5", "usage": null,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        };
        assert_eq!(
            parse_frames(&encode_all(true, &deltas)),
            vec![
                frame(json!({"role": "assistant", "content": ""}), Value::Null),
                frame(json!({"reasoning_content": "Hmm."}), Value::Null),
                frame(json!({"content": "Hi"}), Value::Null),
                frame(json!({}), json!("stop")),
                json!({"id": "msg_01", "object": "chat.completion.chunk", "created": 0,
                    "model": "claude-sonnet-4-5", "choices": [],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                        "prompt_tokens_details": {"cached_tokens": 90},
                        "completion_tokens_details": {"reasoning_tokens": 0}}}),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn encodes_tool_calls_without_start_or_usage() {
        let deltas = [
            Delta::ToolCallStart {
                index: 0,
                id: "toolu_01".into(),
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
            Delta::Usage(Usage {
                input_tokens: 5,
                ..Usage::default()
            }),
            // A late Start is ignored: the stream already has its id.
            Delta::Start {
                id: "late".into(),
                model: "late".into(),
            },
        ];
        let frame = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-gw", "object": "chat.completion.chunk", "created": 0,
                "model": "unknown",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        };
        assert_eq!(
            parse_frames(&encode_all(false, &deltas)),
            vec![
                frame(json!({"role": "assistant", "content": ""}), Value::Null),
                frame(
                    json!({"tool_calls": [{"index": 0, "id": "toolu_01", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null
                ),
                frame(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                    Value::Null
                ),
                frame(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null
                ),
                // No Stop came: the answer is complete and called a tool.
                frame(json!({}), json!("tool_calls")),
                json!("[DONE]"),
            ]
        );
        // An empty answer is still a valid stream.
        assert_eq!(
            parse_frames(&encode_all(false, &[])),
            vec![
                frame(json!({"role": "assistant", "content": ""}), Value::Null),
                frame(json!({}), json!("stop")),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn streams_round_trip() {
        let deltas = vec![
            Delta::Start {
                id: "chatcmpl-9".into(),
                model: "gpt-4o".into(),
            },
            Delta::Thinking("Plan.".into()),
            Delta::Text("Calling.".into()),
            Delta::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "f".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "{\"x\":1}".into(),
            },
            Delta::ToolCallStart {
                index: 1,
                id: "call_b".into(),
                name: "g".into(),
            },
            Delta::ToolCallArguments {
                index: 1,
                fragment: "{}".into(),
            },
            Delta::Stop(StopReason::ToolUse),
            Delta::Usage(usage()),
        ];
        let events = frame_events(&encode_all(true, &deltas));
        assert_eq!(decode_all(&events), deltas);
    }

    proptest::proptest! {
        #[test]
        fn any_text_stream_round_trips(
            pieces in proptest::collection::vec("[a-z \n\"{}\u{e9}\u{1F600}]{1,8}", 0..8),
            include_usage: bool,
        ) {
            let mut deltas = vec![Delta::Start { id: "c".into(), model: "m".into() }];
            deltas.extend(pieces.into_iter().map(Delta::Text));
            deltas.push(Delta::Stop(StopReason::MaxTokens));
            let events = frame_events(&encode_all(include_usage, &deltas));
            if include_usage {
                // The usage chunk is always written, zeros included.
                deltas.push(Delta::Usage(Usage::default()));
            }
            proptest::prop_assert_eq!(decode_all(&events), deltas);
        }
    }
}
