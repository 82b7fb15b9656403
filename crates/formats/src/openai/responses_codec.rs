//! The OpenAI Responses codec: Responses requests, answers and streams to and from the neutral
//! model in [`crate::ir`].
//!
//! Requests (`decode_request` / `encode_request`):
//! - `instructions` and `system`/`developer` messages become [`ir::Request::system`] (in that
//!   order); the encoder joins the system texts with a blank line into `instructions`.
//! - `input` is one user text (a string) or items. Consecutive items of the same side share a
//!   turn: reasoning, assistant messages and `function_call`s form an assistant turn;
//!   `function_call_output`s and user messages form a user turn.
//! - Ids: a call's `call_id` is the neutral call id (and its result's `call_id`); item ids
//!   (`fc_…`, `msg_…`, `rs_…`) name items in OpenAI's store and are dropped on decode. The
//!   encoder sends no item ids: with `store: false` (always sent) OpenAI would look them up and
//!   fail ("Item with id … not found").
//! - Reasoning items become [`ir::Thinking`]: the summary texts joined by a blank line (or the
//!   `reasoning_text` content when there is no summary), and `encrypted_content` as the
//!   signature, read with [`crate::signature::unwrap`] (a signature this gateway marked with
//!   another issuer is that issuer's). The encoder sends a thinking part back only when OpenAI
//!   issued its signature ([`ir::Thinking::source`]): OpenAI rejects reasoning it did not
//!   produce, and its documentation makes reasoning items optional input, so thinking from
//!   another provider (an Anthropic signature, plain reasoning text) is dropped. When reasoning
//!   is requested the encoder asks for `include: ["reasoning.encrypted_content"]`, so the next
//!   turn can send it back.
//! - Function tools only. `strict` on a function tool and on a `json_schema` text format is
//!   carried as [`ir::Tool::strict`] and the `strict` of [`ResponseFormat::JsonSchema`]: `true`
//!   asks for the schema to be enforced exactly; `false`, `null` and absence become `false`;
//!   anything else is refused. The encoder always sends it, so `false` unless a client asked
//!   (from another format only an Anthropic tool with `"strict": true` does): Responses
//!   defaults to strict for function tools, which rejects most schemas written for other
//!   formats.
//! - `parallel_tool_calls` (`true` or `false`; Codex always sends `false`) becomes
//!   [`ir::Request::parallel_tool_calls`] when the request has tools, and is sent back only beside
//!   tools: OpenAI rejects it in a request without them.
//! - `max_output_tokens` below 16 is raised to 16 on encode: the Responses API rejects smaller
//!   values, and clients send 1 to probe a model.
//! - Ignored on decode (they do not change the answer): `store`, `metadata`, `user`,
//!   `safety_identifier`, `prompt_cache_key`, `prompt_cache_retention`,
//!   `prompt_cache_options` (unless `prewarm`), `prompt_cache_breakpoint` on parts,
//!   `service_tier`, `stream_options`, a call's `caller: {"type": "direct"}`,
//!   `include: ["reasoning.encrypted_content"]` (signatures are always returned when known),
//!   `parallel_tool_calls` without tools (no tool can be called, so it means nothing),
//!   `truncation: "disabled"`, `background: false`, `top_logprobs: 0`, `reasoning.summary`
//!   (only whether OpenAI shows summaries), `text.verbosity: "medium"` (the default),
//!   the `description` of a JSON schema format, an image's `detail` (a resolution hint),
//!   output annotations, a message's `phase`, and nulls everywhere.
//! - Refused: `previous_response_id`, `conversation`, `item_reference` items, `prompt`, file ids
//!   (OpenAI-stored state another upstream cannot resolve), built-in and custom tools,
//!   `background: true`, `truncation: "auto"`, `prompt_cache_options.prewarm`, calls made
//!   by a program (`caller.type: "program"`), `max_tool_calls`, `top_logprobs`, other `include` values, `text.verbosity` other than
//!   medium, files, audio, and any unknown field or item type. On encode: `top_k`, stop
//!   sequences (Responses has neither), images in assistant turns, tool calls or thinking in
//!   user turns, tool results in assistant turns. A tool result's `is_error` is not
//!   expressible and is dropped: the result text says what failed.
//!
//! Answers: `status: completed` is the end of turn (tool use when there are function calls),
//! `incomplete` with `max_output_tokens` / `content_filter` the truncated ones. Usage is
//! normalised by [`usage_from_response`]; the encoder reports `input_tokens` as the whole
//! prompt (input + cache reads + cache writes) with the cache reads as `cached_tokens` and the
//! cache writes as `cache_write_tokens`. The encoded response object has every field the
//! `openai` SDK's `Response` model requires; `created_at` is 0 unless the caller stamps it (no
//! clock here: see `convert`). Item ids of
//! encoded answers are derived from the response id and the output index. Every thinking
//! signature goes out as the reasoning item's `encrypted_content` (another provider's marked
//! with its issuer, see [`crate::signature`]), so a Responses client hands it back on its next
//! turn and it reaches only the provider that issued it.
//!
//! Streams: the encoder emits the full typed sequence (`response.created`,
//! `response.in_progress`, `response.output_item.added`, content parts, text / reasoning
//! summary / function-argument deltas and their `done` events, `response.output_item.done`,
//! then `response.completed` or `response.incomplete` carrying the whole response and usage),
//! numbering events with `sequence_number` from 0. The decoder reads the same events and
//! falls back on the `done` events when a server sends no deltas. `response.failed` and
//! `error` events produce no delta: the relay classifies them with
//! [`crate::openai::responses::classify_stream_event`].

use crate::json_field::{boolean as flag, number, object, string, unsigned as count};
use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::dialect::Dialect;
use crate::ir::{
    self, Delta, Image, Message, Part, Reasoning, ResponseFormat, Role, StopReason, Thinking, Tool,
    ToolCall, ToolChoice, ToolResult, Unsupported,
};
use crate::openai::responses::usage_from_response;
use crate::signature;
use crate::sse::{self, SseEvent};
use crate::usage::Usage;

/// The smallest `max_output_tokens` the Responses API accepts.
const MIN_OUTPUT_TOKENS: u64 = 16;
/// The only `include` value that does not change the answer.
const ENCRYPTED_REASONING: &str = "reasoning.encrypted_content";
/// The response id of a stream that did not say its own.
const GATEWAY_RESPONSE_ID: &str = "resp_gw";
/// The model of a stream that did not say its own.
const UNKNOWN_MODEL: &str = "unknown";

// ------------------------------------------------------------------------------------------
// Requests: Responses -> neutral
// ------------------------------------------------------------------------------------------

/// Client body (Responses) -> neutral request. Refuses, naming it, any field or item the
/// neutral model cannot carry; ignores only the fields listed in the module documentation.
///
/// # Errors
/// [`Unsupported`] naming the first field, item or part that cannot be converted.
pub fn decode_request(body: &Map<String, Value>) -> Result<ir::Request, Unsupported> {
    let mut req = ir::Request::default();
    let mut parallel_tool_calls = None;
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            // Routing, storage, caching, billing and abuse-monitoring hints.
            "model"
            | "input"
            | "store"
            | "metadata"
            | "user"
            | "safety_identifier"
            | "prompt_cache_key"
            | "prompt_cache_retention"
            | "service_tier"
            | "stream_options" => {}
            "instructions" => req.system.push(string(value, key)?.to_owned()),
            "tools" => req.tools = decode_tools(value)?,
            "tool_choice" => req.tool_choice = Some(decode_tool_choice(value)?),
            "max_output_tokens" => req.max_tokens = Some(count(value, key)?),
            "temperature" => req.temperature = Some(number(value, key)?),
            "top_p" => req.top_p = Some(number(value, key)?),
            "stream" => req.stream = flag(value, key)?,
            "reasoning" => req.reasoning = decode_reasoning(value)?,
            "text" => req.response_format = decode_text_config(value)?,
            "parallel_tool_calls" => parallel_tool_calls = Some(flag(value, key)?),
            "include" => check_include(value)?,
            // Cache settings, unless they ask to warm the cache instead of answering.
            "prompt_cache_options"
                if value.get("prewarm").and_then(Value::as_bool) != Some(true) => {}
            "truncation" if value.as_str() == Some("disabled") => {}
            "background" if value.as_bool() == Some(false) => {}
            "top_logprobs" if value.as_u64() == Some(0) => {}
            "previous_response_id" | "conversation" => {
                return Err(Unsupported::new(format!(
                    "{key} (state stored by OpenAI cannot be resolved by an upstream of another format)"
                )));
            }
            "prompt" => {
                return Err(Unsupported::new(
                    "prompt (a prompt template stored by OpenAI cannot be resolved by an upstream of another format)",
                ));
            }
            other => {
                return Err(Unsupported::new(format!(
                    "{other} (not convertible to another format)"
                )));
            }
        }
    }
    // Without tools the flag means nothing, and is dropped so that it does not reach an
    // encoder as a setting the client made.
    if !req.tools.is_empty() {
        req.parallel_tool_calls = parallel_tool_calls;
    }
    // After the loop, so that `instructions` comes before system messages of the input.
    decode_input(body.get("input"), &mut req)?;
    Ok(req)
}

/// Turns built from items: a part joins the last turn when it is of the same side.
#[derive(Debug, Default)]
struct Turns(Vec<Message>);

impl Turns {
    fn push(&mut self, role: Role, part: Part) {
        match self.0.last_mut() {
            Some(last) if last.role == role => last.content.push(part),
            _ => self.0.push(Message {
                role,
                content: vec![part],
            }),
        }
    }
}

fn decode_input(input: Option<&Value>, req: &mut ir::Request) -> Result<(), Unsupported> {
    let mut turns = Turns::default();
    match input {
        Some(Value::String(text)) => turns.push(Role::User, Part::Text(text.clone())),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                decode_item(&format!("input[{i}]"), item, &mut turns, &mut req.system)?;
            }
        }
        None | Some(Value::Null) => return Err(Unsupported::new("input (missing)")),
        Some(_) => {
            return Err(Unsupported::new(
                "input (neither a text nor a list of items)",
            ));
        }
    }
    req.messages = turns.0;
    Ok(())
}

fn decode_item(
    path: &str,
    item: &Value,
    turns: &mut Turns,
    system: &mut Vec<String>,
) -> Result<(), Unsupported> {
    let item = object(item, path)?;
    // An item without a type is an "easy" message (`{"role","content"}`).
    let kind = match item.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(Unsupported::new(format!("{path}.type (not a string)"))),
    };
    match kind {
        "message" => decode_message(path, item, turns, system),
        "function_call" => {
            known_keys(
                path,
                item,
                &[
                    "type",
                    "id",
                    "call_id",
                    "name",
                    "arguments",
                    "status",
                    "caller",
                ],
            )?;
            // A call the model made itself; one made by a program it ran has no equivalent.
            if let Some(caller) = item.get("caller").filter(|caller| !caller.is_null())
                && caller.get("type").and_then(Value::as_str) != Some("direct")
            {
                return Err(Unsupported::new(format!(
                    "{path}.caller (a call made by a program OpenAI ran)"
                )));
            }
            let call = ToolCall {
                id: required_str(item, "call_id", path)?.to_owned(),
                name: required_str(item, "name", path)?.to_owned(),
                arguments: parse_arguments(item.get("arguments"), path)?,
            };
            turns.push(Role::Assistant, Part::ToolCall(call));
            Ok(())
        }
        "function_call_output" => {
            known_keys(path, item, &["type", "id", "call_id", "output", "status"])?;
            let result = ToolResult {
                call_id: required_str(item, "call_id", path)?.to_owned(),
                content: decode_tool_output(path, item.get("output"))?,
                is_error: false,
            };
            turns.push(Role::User, Part::ToolResult(result));
            Ok(())
        }
        "reasoning" => {
            known_keys(
                path,
                item,
                &[
                    "type",
                    "id",
                    "summary",
                    "content",
                    "encrypted_content",
                    "status",
                ],
            )?;
            if let Some(thinking) = decode_reasoning_item(path, item)? {
                turns.push(Role::Assistant, Part::Thinking(thinking));
            }
            Ok(())
        }
        "item_reference" => Err(Unsupported::new(format!(
            "{path} (item_reference: an item stored by OpenAI cannot be resolved by an upstream of another format)"
        ))),
        other => Err(Unsupported::new(format!("{path} ({other})"))),
    }
}

fn decode_message(
    path: &str,
    item: &Map<String, Value>,
    turns: &mut Turns,
    system: &mut Vec<String>,
) -> Result<(), Unsupported> {
    known_keys(
        path,
        item,
        &["type", "id", "role", "content", "status", "phase"],
    )?;
    let role = match required_str(item, "role", path)? {
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        "system" | "developer" => None,
        other => return Err(Unsupported::new(format!("{path}.role ({other})"))),
    };
    let content = decode_content(path, item.get("content"))?;
    for part in content {
        match (role, part) {
            (None, Part::Text(text)) => system.push(text),
            (None, _) => {
                return Err(Unsupported::new(format!(
                    "{path}.content (an image in a system message)"
                )));
            }
            (Some(Role::Assistant), Part::Image(_)) => {
                return Err(Unsupported::new(format!(
                    "{path}.content (an image in an assistant message)"
                )));
            }
            (Some(role), part) => turns.push(role, part),
        }
    }
    Ok(())
}

/// A message's content: a text, or a list of text and image parts.
fn decode_content(path: &str, content: Option<&Value>) -> Result<Vec<Part>, Unsupported> {
    match content {
        Some(Value::String(text)) => Ok(vec![Part::Text(text.clone())]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| decode_part(&format!("{path}.content[{j}]"), part))
            .collect(),
        None | Some(Value::Null) => Err(Unsupported::new(format!("{path}.content (missing)"))),
        Some(_) => Err(Unsupported::new(format!(
            "{path}.content (neither a text nor a list of parts)"
        ))),
    }
}

fn decode_part(path: &str, part: &Value) -> Result<Part, Unsupported> {
    let part = object(part, path)?;
    match required_str(part, "type", path)? {
        "input_text" | "output_text" => {
            known_keys(
                path,
                part,
                &[
                    "type",
                    "text",
                    "annotations",
                    "logprobs",
                    "prompt_cache_breakpoint",
                ],
            )?;
            Ok(Part::Text(required_str(part, "text", path)?.to_owned()))
        }
        // What the model said instead of answering is still what it said.
        "refusal" => {
            known_keys(path, part, &["type", "refusal"])?;
            Ok(Part::Text(required_str(part, "refusal", path)?.to_owned()))
        }
        "input_image" => {
            known_keys(
                path,
                part,
                &[
                    "type",
                    "image_url",
                    "file_id",
                    "detail",
                    "prompt_cache_breakpoint",
                ],
            )?;
            if part.get("file_id").is_some_and(|id| !id.is_null()) {
                return Err(Unsupported::new(format!(
                    "{path}.file_id (a file stored by OpenAI cannot be read by an upstream of another format)"
                )));
            }
            image_from_url(required_str(part, "image_url", path)?, path).map(Part::Image)
        }
        other => Err(Unsupported::new(format!("{path} ({other})"))),
    }
}

/// A data URL becomes inline bytes, an http(s) URL stays a reference.
fn image_from_url(url: &str, path: &str) -> Result<Image, Unsupported> {
    if let Some(rest) = url.strip_prefix("data:") {
        return match rest.split_once(',') {
            Some((meta, data)) if meta.ends_with(";base64") => Ok(Image::Base64 {
                media_type: meta.trim_end_matches(";base64").to_owned(),
                data: data.to_owned(),
            }),
            _ => Err(Unsupported::new(format!(
                "{path}.image_url (a data URL that is not base64)"
            ))),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url.to_owned()));
    }
    Err(Unsupported::new(format!(
        "{path}.image_url (neither a data URL nor an http(s) URL)"
    )))
}

/// A function's output: a text (empty means no content) or a list of text and image parts.
fn decode_tool_output(path: &str, output: Option<&Value>) -> Result<Vec<Part>, Unsupported> {
    match output {
        Some(Value::String(text)) if text.is_empty() => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Part::Text(text.clone())]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| decode_part(&format!("{path}.output[{j}]"), part))
            .collect(),
        None | Some(Value::Null) => Err(Unsupported::new(format!("{path}.output (missing)"))),
        Some(_) => Err(Unsupported::new(format!(
            "{path}.output (neither a text nor a list of parts)"
        ))),
    }
}

/// A reasoning item as thinking; `None` when it carries neither text nor encrypted content
/// (a bare id, which only OpenAI's store could resolve).
fn decode_reasoning_item(
    path: &str,
    item: &Map<String, Value>,
) -> Result<Option<Thinking>, Unsupported> {
    let mut text = joined_texts(path, item, "summary", "summary_text")?;
    if text.is_empty() {
        text = joined_texts(path, item, "content", "reasoning_text")?;
    }
    let signature = match item.get("encrypted_content") {
        None | Some(Value::Null) => None,
        Some(Value::String(sealed)) if sealed.is_empty() => None,
        Some(Value::String(sealed)) => Some(sealed.as_str()),
        Some(_) => {
            return Err(Unsupported::new(format!(
                "{path}.encrypted_content (not a string)"
            )));
        }
    };
    if text.is_empty() && signature.is_none() {
        return Ok(None);
    }
    Ok(Some(signature::thinking(
        text,
        signature,
        Dialect::Responses,
    )))
}

/// The texts of a list of `{type, text}` parts, joined by a blank line the way summaries are
/// shown.
fn joined_texts(
    path: &str,
    item: &Map<String, Value>,
    key: &str,
    kind: &str,
) -> Result<String, Unsupported> {
    let parts = match item.get(key) {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(Unsupported::new(format!("{path}.{key} (not a list)"))),
    };
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let part_path = format!("{path}.{key}[{j}]");
        let part = object(part, &part_path)?;
        match required_str(part, "type", &part_path)? {
            found if found == kind => texts.push(required_str(part, "text", &part_path)?),
            other => return Err(Unsupported::new(format!("{part_path} ({other})"))),
        }
    }
    Ok(texts.join("\n\n"))
}

/// Arguments are JSON text; an empty text is a call without arguments.
fn parse_arguments(raw: Option<&Value>, path: &str) -> Result<Value, Unsupported> {
    let raw = match raw {
        None | Some(Value::Null) => "",
        Some(Value::String(raw)) => raw.as_str(),
        Some(_) => {
            return Err(Unsupported::new(format!("{path}.arguments (not a string)")));
        }
    };
    if raw.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(raw)
        .map_err(|_| Unsupported::new(format!("{path}.arguments (not valid JSON)")))
}

fn decode_tools(value: &Value) -> Result<Vec<Tool>, Unsupported> {
    let Value::Array(tools) = value else {
        return Err(Unsupported::new("tools (not a list)"));
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| decode_tool(&format!("tools[{i}]"), tool))
        .collect()
}

fn decode_tool(path: &str, tool: &Value) -> Result<Tool, Unsupported> {
    let tool = object(tool, path)?;
    match required_str(tool, "type", path)? {
        "function" => {}
        other => {
            return Err(Unsupported::new(format!(
                "{path} ({other}: only function tools exist in other formats)"
            )));
        }
    }
    known_keys(
        path,
        tool,
        &["type", "name", "description", "parameters", "strict"],
    )?;
    let parameters = match tool.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema.clone(),
        Some(_) => {
            return Err(Unsupported::new(format!(
                "{path}.parameters (not a schema object)"
            )));
        }
    };
    let description = match tool.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(Unsupported::new(format!(
                "{path}.description (not a string)"
            )));
        }
    };
    Ok(Tool {
        name: required_str(tool, "name", path)?.to_owned(),
        description,
        parameters,
        strict: strict_flag(tool, path)?,
    })
}

fn decode_tool_choice(value: &Value) -> Result<ToolChoice, Unsupported> {
    match value {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(Unsupported::new(format!("tool_choice ({other})"))),
        },
        Value::Object(choice) => match required_str(choice, "type", "tool_choice")? {
            "function" => {
                known_keys("tool_choice", choice, &["type", "name"])?;
                Ok(ToolChoice::Tool(
                    required_str(choice, "name", "tool_choice")?.to_owned(),
                ))
            }
            other => Err(Unsupported::new(format!("tool_choice ({other})"))),
        },
        _ => Err(Unsupported::new(
            "tool_choice (neither a mode nor an object)",
        )),
    }
}

fn decode_reasoning(value: &Value) -> Result<Option<Reasoning>, Unsupported> {
    let reasoning = object(value, "reasoning")?;
    // `summary` (and its deprecated `generate_summary`) only decides whether OpenAI shows
    // summaries of the reasoning; the reasoning itself is the same.
    known_keys(
        "reasoning",
        reasoning,
        &["effort", "summary", "generate_summary"],
    )?;
    match reasoning.get("effort") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(effort)) => Ok(Some(Reasoning {
            effort: Some(effort.clone()),
            budget_tokens: None,
        })),
        Some(_) => Err(Unsupported::new("reasoning.effort (not a string)")),
    }
}

fn decode_text_config(value: &Value) -> Result<Option<ResponseFormat>, Unsupported> {
    let text = object(value, "text")?;
    known_keys("text", text, &["format", "verbosity"])?;
    match text.get("verbosity") {
        None | Some(Value::Null) => {}
        Some(level) if level.as_str() == Some("medium") => {}
        Some(level) => {
            return Err(Unsupported::new(format!(
                "text.verbosity ({})",
                level.as_str().unwrap_or("not a string")
            )));
        }
    }
    let format = match text.get("format") {
        None | Some(Value::Null) => return Ok(None),
        Some(format) => object(format, "text.format")?,
    };
    match required_str(format, "type", "text.format")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            known_keys(
                "text.format",
                format,
                &["type", "name", "schema", "strict", "description"],
            )?;
            let schema = match format.get("schema") {
                Some(schema @ Value::Object(_)) => schema.clone(),
                _ => {
                    return Err(Unsupported::new(
                        "text.format.schema (missing or not an object)",
                    ));
                }
            };
            Ok(Some(ResponseFormat::JsonSchema {
                name: required_str(format, "name", "text.format")?.to_owned(),
                schema,
                strict: strict_flag(format, "text.format")?,
            }))
        }
        other => Err(Unsupported::new(format!("text.format ({other})"))),
    }
}

/// The `strict` field of a function tool or JSON schema format: absent or `null` is false.
fn strict_flag(object: &Map<String, Value>, path: &str) -> Result<bool, Unsupported> {
    match object.get("strict") {
        None | Some(Value::Null) => Ok(false),
        Some(value) => flag(value, &format!("{path}.strict")),
    }
}

fn check_include(value: &Value) -> Result<(), Unsupported> {
    let Value::Array(items) = value else {
        return Err(Unsupported::new("include (not a list)"));
    };
    for item in items {
        match item.as_str() {
            Some(ENCRYPTED_REASONING) => {}
            Some(other) => return Err(Unsupported::new(format!("include ({other})"))),
            None => return Err(Unsupported::new("include (not a list of names)")),
        }
    }
    Ok(())
}

/// Refuses the first non-null field that is not in `known`: an unknown field may change the
/// answer.
fn known_keys(path: &str, object: &Map<String, Value>, known: &[&str]) -> Result<(), Unsupported> {
    match object
        .iter()
        .find(|(key, value)| !value.is_null() && !known.contains(&key.as_str()))
    {
        Some((key, _)) => Err(Unsupported::new(format!("{path}.{key} (unknown field)"))),
        None => Ok(()),
    }
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, Unsupported> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Unsupported::new(format!("{path}.{key} (missing or not a string)")))
}

// ------------------------------------------------------------------------------------------
// Requests: neutral -> Responses
// ------------------------------------------------------------------------------------------

/// Neutral request -> body for a Responses upstream, with `model` as the upstream's model name.
/// Always stateless (`store: false`); thinking that OpenAI did not produce is dropped (see the
/// module documentation).
///
/// # Errors
/// [`Unsupported`] for `top_k`, stop sequences, and parts in a turn of the wrong side.
pub fn encode_request(req: &ir::Request, model: &str) -> Result<Map<String, Value>, Unsupported> {
    if req.top_k.is_some() {
        return Err(Unsupported::new(
            "top_k (the Responses API has no top-k sampling)",
        ));
    }
    if !req.stop.is_empty() {
        return Err(Unsupported::new(
            "stop (the Responses API has no stop sequences)",
        ));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    if !req.system.is_empty() {
        body.insert("instructions".into(), json!(req.system.join("\n\n")));
    }
    body.insert("input".into(), Value::Array(encode_input(&req.messages)?));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req.tools.iter().map(encode_tool).collect();
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
        body.insert(
            "max_output_tokens".into(),
            json!(max.max(MIN_OUTPUT_TOKENS)),
        );
    }
    if let Some(temperature) = req.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = req.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(effort) = req.reasoning.as_ref().and_then(effort_of) {
        body.insert("reasoning".into(), json!({ "effort": effort }));
        // Stateless reasoning comes back sealed, so the next turn can send it back.
        body.insert("include".into(), json!([ENCRYPTED_REASONING]));
    }
    if let Some(format) = &req.response_format {
        body.insert("text".into(), json!({ "format": encode_format(format) }));
    }
    body.insert("store".into(), json!(false));
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(body)
}

/// The effort asked for, or the one that stands for the thinking budget asked for.
fn effort_of(reasoning: &Reasoning) -> Option<String> {
    reasoning.effort.clone().or_else(|| {
        reasoning
            .budget_tokens
            .map(|budget| Reasoning::effort_for_budget(budget).to_owned())
    })
}

fn encode_input(messages: &[Message]) -> Result<Vec<Value>, Unsupported> {
    let mut items = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        // Text and image parts of the message item being built; other parts are items of
        // their own, so they close it.
        let mut pending: Vec<Value> = Vec::new();
        for (j, part) in message.content.iter().enumerate() {
            match (message.role, part) {
                (Role::User, Part::Text(text)) => {
                    pending.push(json!({"type": "input_text", "text": text}));
                }
                (Role::Assistant, Part::Text(text)) => {
                    pending.push(json!({"type": "output_text", "text": text}));
                }
                (Role::User, Part::Image(image)) => pending.push(encode_image(image)),
                (Role::User, Part::ToolResult(result)) => {
                    flush_message(&mut items, message.role, &mut pending);
                    let path = format!("messages[{i}].content[{j}]");
                    items.push(json!({
                        "type": "function_call_output",
                        "call_id": result.call_id,
                        "output": encode_tool_output(&result.content, &path)?,
                    }));
                }
                (Role::Assistant, Part::ToolCall(call)) => {
                    flush_message(&mut items, message.role, &mut pending);
                    items.push(json!({
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": call.arguments.to_string(),
                    }));
                }
                (Role::Assistant, Part::Thinking(thinking)) => {
                    flush_message(&mut items, message.role, &mut pending);
                    if let Some(item) = reasoning_input_item(thinking) {
                        items.push(item);
                    }
                }
                (role, part) => {
                    return Err(Unsupported::new(format!(
                        "messages[{i}].content[{j}] ({} in {} turn)",
                        part_name(part),
                        match role {
                            Role::User => "a user",
                            Role::Assistant => "an assistant",
                        }
                    )));
                }
            }
        }
        flush_message(&mut items, message.role, &mut pending);
    }
    Ok(items)
}

/// Closes the message item being built, if it has content. No item id: see the module doc.
fn flush_message(items: &mut Vec<Value>, role: Role, pending: &mut Vec<Value>) {
    if pending.is_empty() {
        return;
    }
    let role = match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    items.push(json!({
        "type": "message",
        "role": role,
        "content": std::mem::take(pending),
    }));
}

fn part_name(part: &Part) -> &'static str {
    match part {
        Part::Text(_) => "text",
        Part::Image(_) => "an image",
        Part::ToolCall(_) => "a tool call",
        Part::ToolResult(_) => "a tool result",
        Part::Thinking(_) => "thinking",
    }
}

fn encode_image(image: &Image) -> Value {
    let url = match image {
        Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Image::Url(url) => url.clone(),
    };
    json!({"type": "input_image", "image_url": url, "detail": "auto"})
}

/// One text is sent as a string (the common form); anything else as a list of parts.
fn encode_tool_output(content: &[Part], path: &str) -> Result<Value, Unsupported> {
    match content {
        [] => Ok(json!("")),
        [Part::Text(text)] => Ok(json!(text)),
        parts => parts
            .iter()
            .enumerate()
            .map(|(k, part)| match part {
                Part::Text(text) => Ok(json!({"type": "input_text", "text": text})),
                Part::Image(image) => Ok(encode_image(image)),
                other => Err(Unsupported::new(format!(
                    "{path}.content[{k}] ({} in a tool result)",
                    part_name(other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
    }
}

/// A thinking part sent back as a reasoning item, only when OpenAI sealed it (see the module
/// doc); the summary text rides along, the encrypted content is what OpenAI reads.
fn reasoning_input_item(thinking: &Thinking) -> Option<Value> {
    let sealed = signature::for_upstream(
        thinking.source,
        thinking.signature.as_deref(),
        Dialect::Responses,
    )?;
    Some(json!({
        "type": "reasoning",
        "summary": summary_parts(&thinking.text),
        "encrypted_content": sealed,
    }))
}

fn summary_parts(text: &str) -> Value {
    if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    }
}

fn encode_tool(tool: &Tool) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!("function"));
    out.insert("name".into(), json!(tool.name));
    if let Some(description) = &tool.description {
        out.insert("description".into(), json!(description));
    }
    out.insert("parameters".into(), tool.parameters.clone());
    // Always sent: Responses defaults to strict schemas, which reject most schemas written for
    // other formats, so only a client that asked for strict gets it.
    out.insert("strict".into(), json!(tool.strict));
    Value::Object(out)
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
    }
}

fn encode_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            // Sent either way, so that the setting does not rest on the upstream's default.
            json!({"type": "json_schema", "name": name, "schema": schema, "strict": strict})
        }
    }
}

// ------------------------------------------------------------------------------------------
// Answers
// ------------------------------------------------------------------------------------------

/// Upstream non-streamed answer (a Responses `response` object) -> neutral answer.
///
/// # Errors
/// [`Unsupported`] when the body is not a response object or holds an output item or part the
/// neutral model cannot carry (a built-in tool call, unparsable function arguments).
pub fn decode_response(body: &Value) -> Result<ir::Response, Unsupported> {
    let response = object(body, "response")?;
    let output = match response.get("output") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(Unsupported::new("output (not a list)")),
    };
    let mut content = Vec::new();
    for (i, item) in output.iter().enumerate() {
        decode_output_item(&format!("output[{i}]"), item, &mut content)?;
    }
    let has_calls = content.iter().any(|part| matches!(part, Part::ToolCall(_)));
    Ok(ir::Response {
        id: text_field(response, "id"),
        model: text_field(response, "model"),
        stop_reason: Some(stop_reason(response, has_calls)),
        content,
        usage: usage_from_response(body).unwrap_or_default(),
    })
}

fn decode_output_item(
    path: &str,
    item: &Value,
    content: &mut Vec<Part>,
) -> Result<(), Unsupported> {
    let item = object(item, path)?;
    match required_str(item, "type", path)? {
        "message" => {
            let Some(Value::Array(parts)) = item.get("content") else {
                return Err(Unsupported::new(format!("{path}.content (not a list)")));
            };
            for (j, part) in parts.iter().enumerate() {
                let part_path = format!("{path}.content[{j}]");
                let part = object(part, &part_path)?;
                let text = match required_str(part, "type", &part_path)? {
                    "output_text" => required_str(part, "text", &part_path)?,
                    "refusal" => required_str(part, "refusal", &part_path)?,
                    other => return Err(Unsupported::new(format!("{part_path} ({other})"))),
                };
                content.push(Part::Text(text.to_owned()));
            }
        }
        "reasoning" => {
            if let Some(thinking) = decode_reasoning_item(path, item)? {
                content.push(Part::Thinking(thinking));
            }
        }
        "function_call" => content.push(Part::ToolCall(ToolCall {
            id: required_str(item, "call_id", path)?.to_owned(),
            name: required_str(item, "name", path)?.to_owned(),
            arguments: parse_arguments(item.get("arguments"), path)?,
        })),
        other => return Err(Unsupported::new(format!("{path} ({other})"))),
    }
    Ok(())
}

fn text_field(object: &Map<String, Value>, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Responses has no finish reason: the status says whether the answer is whole, and function
/// calls in a whole answer mean the model waits for their results.
fn stop_reason(response: &Map<String, Value>, has_calls: bool) -> StopReason {
    let reason = response
        .get("incomplete_details")
        .and_then(|details| details.get("reason"))
        .and_then(Value::as_str);
    match response.get("status").and_then(Value::as_str) {
        // Compatible servers may omit the status of a finished answer.
        Some("completed") | None if has_calls => StopReason::ToolUse,
        Some("completed") | None => StopReason::EndTurn,
        Some("incomplete") => match reason {
            Some("max_output_tokens") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::ContentFilter,
            Some(other) => StopReason::Other(other.to_owned()),
            None => StopReason::Other("incomplete".to_owned()),
        },
        Some(other) => StopReason::Other(other.to_owned()),
    }
}

/// Neutral answer -> the `response` object a Responses client expects (complete for the
/// `openai` SDK's `Response` model).
#[must_use]
pub fn encode_response(resp: &ir::Response) -> Value {
    let id = if resp.id.is_empty() {
        GATEWAY_RESPONSE_ID
    } else {
        resp.id.as_str()
    };
    let mut output = Vec::new();
    let mut texts: Vec<Value> = Vec::new();
    for part in &resp.content {
        match part {
            Part::Text(text) => texts.push(output_text(text)),
            Part::Thinking(thinking) => {
                flush_output_message(&mut output, &mut texts, id);
                let item_id = item_id("rs", id, output.len());
                let signature = thinking.signature.as_deref().map(|signature| {
                    signature::for_client(thinking.source, signature, Dialect::Responses)
                });
                output.push(reasoning_item(
                    &item_id,
                    &thinking.text,
                    signature.as_deref(),
                ));
            }
            Part::ToolCall(call) => {
                flush_output_message(&mut output, &mut texts, id);
                let item_id = item_id("fc", id, output.len());
                output.push(function_call_item(
                    &item_id,
                    &call.id,
                    &call.name,
                    &call.arguments.to_string(),
                    "completed",
                ));
            }
            // Never part of an answer; nothing a Responses client could be shown.
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    flush_output_message(&mut output, &mut texts, id);
    let usage = usage_json(&resp.usage);
    response_object(id, &resp.model, 0, resp.stop_reason.as_ref(), output, usage)
}

fn flush_output_message(output: &mut Vec<Value>, texts: &mut Vec<Value>, response_id: &str) {
    if texts.is_empty() {
        return;
    }
    let item_id = item_id("msg", response_id, output.len());
    output.push(message_item(&item_id, std::mem::take(texts)));
}

/// An item id derived from the response id, so ids are stable and unique per response. Only
/// letters, digits, `_` and `-` are kept: OpenAI refuses other characters in ids a client may
/// send back.
fn item_id(prefix: &str, response_id: &str, output_index: usize) -> String {
    let base: String = response_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    format!("{prefix}_{base}_{output_index}")
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: &str, content: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": "completed",
        "role": "assistant",
        "content": content,
    })
}

fn reasoning_item(id: &str, text: &str, signature: Option<&str>) -> Value {
    let mut item = json!({"type": "reasoning", "id": id, "summary": summary_parts(text)});
    if let (Some(signature), Some(fields)) = (signature, item.as_object_mut()) {
        fields.insert("encrypted_content".into(), json!(signature));
    }
    item
}

fn function_call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

/// `status` and `incomplete_details` for a stop reason: only a truncated answer is incomplete.
fn status_of(stop: Option<&StopReason>) -> (&'static str, Value) {
    match stop {
        Some(StopReason::MaxTokens) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(StopReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// Responses usage: `input_tokens` is the whole prompt, its cache reads and writes repeated in
/// `input_tokens_details`; `output_tokens` includes reasoning.
fn usage_json(usage: &Usage) -> Value {
    let input = usage.total_input_tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_creation_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": input.saturating_add(usage.output_tokens),
    })
}

/// A whole `response` object. The request's settings are unknown here, so the fields that
/// echo them hold the API's defaults.
fn response_object(
    id: &str,
    model: &str,
    created_at: i64,
    stop: Option<&StopReason>,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    let (status, incomplete_details) = status_of(stop);
    response_shell(
        id,
        model,
        created_at,
        status,
        incomplete_details,
        output,
        usage,
    )
}

fn response_shell(
    id: &str,
    model: &str,
    created_at: i64,
    status: &str,
    incomplete_details: Value,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete_details,
        "instructions": null,
        "max_output_tokens": null,
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "service_tier": "default",
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
    })
}

// ------------------------------------------------------------------------------------------
// Streams: Responses events -> neutral deltas
// ------------------------------------------------------------------------------------------

/// Upstream Responses stream events -> neutral deltas. Keeps the tool-call ordinals (by item id
/// and output index) and which items already streamed their text, so `done` events fill in only
/// what deltas did not bring.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// `Start` was emitted.
    started: bool,
    /// Function calls seen, by ordinal.
    calls: Vec<DecodedCall>,
    /// Keys (`id:…`, `ix:…`) of the items whose text arrived as deltas.
    streamed: HashSet<String>,
    /// The terminal event was read; later events are ignored.
    finished: bool,
}

/// One function call of the stream being decoded.
#[derive(Debug)]
struct DecodedCall {
    item_id: Option<String>,
    output_index: Option<u64>,
    /// Some of its arguments were passed on already.
    arguments_sent: bool,
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The deltas one event brings (often none: most events are bookkeeping).
    pub fn push(&mut self, event: &SseEvent) -> Vec<Delta> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let Ok(Value::Object(data)) = serde_json::from_str::<Value>(event.data.trim()) else {
            return out;
        };
        let kind = event
            .event
            .as_deref()
            .filter(|name| !name.is_empty())
            .or_else(|| data.get("type").and_then(Value::as_str))
            .unwrap_or_default();
        match kind {
            "response.created" | "response.in_progress" => self.start(&data, &mut out),
            "response.output_item.added" => {
                if let Some(item) = data.get("item").and_then(Value::as_object)
                    && item.get("type").and_then(Value::as_str) == Some("function_call")
                {
                    self.open_call(&data, item, &mut out);
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(delta) = self.text_delta(&data) {
                    out.push(Delta::Text(delta));
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(delta) = self.text_delta(&data) {
                    out.push(Delta::Thinking(delta));
                }
            }
            // Summary parts are separated the way the non-streamed decoder joins them.
            "response.reasoning_summary_part.added"
                if data
                    .get("summary_index")
                    .and_then(Value::as_u64)
                    .is_some_and(|index| index > 0) =>
            {
                out.push(Delta::Thinking("\n\n".to_owned()));
            }
            "response.function_call_arguments.delta" => {
                let fragment = data
                    .get("delta")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(index) = self.find_call(&data)
                    && !fragment.is_empty()
                {
                    self.send_arguments(index, fragment, &mut out);
                }
            }
            "response.function_call_arguments.done" => {
                if let Some(index) = self.find_call(&data) {
                    let arguments = data.get("arguments").and_then(Value::as_str);
                    self.fill_arguments(index, arguments, &mut out);
                }
            }
            "response.output_item.done" => self.item_done(&data, &mut out),
            "response.completed" | "response.incomplete" => self.end(kind, &data, &mut out),
            _ => {}
        }
        out
    }

    fn start(&mut self, data: &Map<String, Value>, out: &mut Vec<Delta>) {
        if self.started {
            return;
        }
        let Some(response) = data.get("response").and_then(Value::as_object) else {
            return;
        };
        self.started = true;
        out.push(Delta::Start {
            id: text_field(response, "id"),
            model: text_field(response, "model"),
        });
    }

    /// A non-empty text delta, remembering that its item streamed.
    fn text_delta(&mut self, data: &Map<String, Value>) -> Option<String> {
        let delta = data.get("delta").and_then(Value::as_str)?;
        if delta.is_empty() {
            return None;
        }
        if let Some(id) = data.get("item_id").and_then(Value::as_str) {
            self.streamed.insert(format!("id:{id}"));
        }
        if let Some(index) = data.get("output_index").and_then(Value::as_u64) {
            self.streamed.insert(format!("ix:{index}"));
        }
        Some(delta.to_owned())
    }

    fn was_streamed(&self, item: &Map<String, Value>, data: &Map<String, Value>) -> bool {
        let by_id = item
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.streamed.contains(&format!("id:{id}")));
        let by_index = data
            .get("output_index")
            .and_then(Value::as_u64)
            .is_some_and(|index| self.streamed.contains(&format!("ix:{index}")));
        by_id || by_index
    }

    fn open_call(
        &mut self,
        data: &Map<String, Value>,
        item: &Map<String, Value>,
        out: &mut Vec<Delta>,
    ) {
        let index = self.calls.len();
        self.calls.push(DecodedCall {
            item_id: item.get("id").and_then(Value::as_str).map(str::to_owned),
            output_index: data.get("output_index").and_then(Value::as_u64),
            arguments_sent: false,
        });
        out.push(Delta::ToolCallStart {
            index,
            id: text_field(item, "call_id"),
            name: text_field(item, "name"),
        });
        // Some servers put the whole call in the `added` event.
        let arguments = item.get("arguments").and_then(Value::as_str);
        if arguments.is_some_and(|text| !text.is_empty()) {
            self.fill_arguments(index, arguments, out);
        }
    }

    /// The call an event is about: by item id, else by output index.
    fn find_call(&self, data: &Map<String, Value>) -> Option<usize> {
        let item_id = data
            .get("item_id")
            .and_then(Value::as_str)
            .or_else(|| data.get("item")?.get("id")?.as_str());
        if let Some(item_id) = item_id
            && let Some(index) = self
                .calls
                .iter()
                .position(|call| call.item_id.as_deref() == Some(item_id))
        {
            return Some(index);
        }
        let output_index = data.get("output_index").and_then(Value::as_u64)?;
        self.calls
            .iter()
            .position(|call| call.output_index == Some(output_index))
    }

    fn send_arguments(&mut self, index: usize, fragment: &str, out: &mut Vec<Delta>) {
        if let Some(call) = self.calls.get_mut(index) {
            call.arguments_sent = true;
        }
        out.push(Delta::ToolCallArguments {
            index,
            fragment: fragment.to_owned(),
        });
    }

    /// The whole arguments, unless deltas brought them already.
    fn fill_arguments(&mut self, index: usize, arguments: Option<&str>, out: &mut Vec<Delta>) {
        let sent = self.calls.get(index).is_none_or(|call| call.arguments_sent);
        if let Some(arguments) = arguments.filter(|text| !text.is_empty())
            && !sent
        {
            self.send_arguments(index, arguments, out);
        }
    }

    fn item_done(&mut self, data: &Map<String, Value>, out: &mut Vec<Delta>) {
        let Some(item) = data.get("item").and_then(Value::as_object) else {
            return;
        };
        match item.get("type").and_then(Value::as_str) {
            Some("message") if !self.was_streamed(item, data) => {
                let text: String = item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|part| part.get("text").or_else(|| part.get("refusal")))
                    .filter_map(Value::as_str)
                    .collect();
                if !text.is_empty() {
                    out.push(Delta::Text(text));
                }
            }
            Some("reasoning") => {
                if !self.was_streamed(item, data) {
                    let mut text =
                        joined_texts("", item, "summary", "summary_text").unwrap_or_default();
                    if text.is_empty() {
                        text =
                            joined_texts("", item, "content", "reasoning_text").unwrap_or_default();
                    }
                    if !text.is_empty() {
                        out.push(Delta::Thinking(text));
                    }
                }
                if let Some(sealed) = item
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .filter(|sealed| !sealed.is_empty())
                {
                    out.push(signature::delta(sealed, Dialect::Responses));
                }
            }
            Some("function_call") => {
                let index = match self.find_call(data) {
                    Some(index) => index,
                    None => {
                        // A call announced only when done: start it now.
                        self.open_call(data, item, out);
                        return;
                    }
                };
                let arguments = item.get("arguments").and_then(Value::as_str);
                self.fill_arguments(index, arguments, out);
            }
            _ => {}
        }
    }

    fn end(&mut self, kind: &str, data: &Map<String, Value>, out: &mut Vec<Delta>) {
        self.finished = true;
        let empty = Map::new();
        let response = data
            .get("response")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        if let Some(usage) = data.get("response").and_then(usage_from_response) {
            out.push(Delta::Usage(usage));
        }
        let has_calls = !self.calls.is_empty();
        let reason = match (kind, response.get("status").and_then(Value::as_str)) {
            // The event's name is authoritative when the status is missing.
            ("response.incomplete", None) => {
                let mut with_status = response.clone();
                with_status.insert("status".into(), json!("incomplete"));
                stop_reason(&with_status, has_calls)
            }
            _ => stop_reason(response, has_calls),
        };
        out.push(Delta::Stop(reason));
    }
}

// ------------------------------------------------------------------------------------------
// Streams: neutral deltas -> Responses events
// ------------------------------------------------------------------------------------------

/// Neutral deltas -> Responses SSE frames, keeping the dialect's bookkeeping: output items
/// opened and closed in order, content and summary parts, `sequence_number` from 0, and the
/// whole response (output and usage) in the terminal event.
#[derive(Debug)]
pub struct StreamEncoder {
    /// The next event's `sequence_number`.
    sequence: u64,
    /// `response.created` was sent.
    started: bool,
    /// The terminal event was sent; nothing follows it.
    finished: bool,
    /// Response id (the upstream's, or [`GATEWAY_RESPONSE_ID`]).
    id: String,
    /// The model that answers.
    model: String,
    /// The next output index.
    next_output: usize,
    /// The open message or reasoning item.
    current: Current,
    /// Open function calls by tool-call ordinal. Several may be open at once, so arguments of
    /// interleaved calls still reach the right item.
    calls: BTreeMap<usize, OpenCall>,
    /// Every ordinal ever opened: a late fragment of a closed call is dropped, not restarted.
    seen_calls: HashSet<usize>,
    /// Closed items by output index, for the terminal response object.
    done: BTreeMap<usize, Value>,
    /// Why generation stopped, when told.
    stop: Option<StopReason>,
    /// Usage so far.
    usage: Usage,
    /// `created_at` of the response objects (the caller's clock; 0 when not given).
    created_at: i64,
}

/// The open message or reasoning item (at most one at a time).
#[derive(Debug)]
enum Current {
    None,
    Message(OpenText),
    Reasoning(OpenReasoning),
}

#[derive(Debug)]
struct OpenText {
    output_index: usize,
    item_id: String,
    text: String,
}

#[derive(Debug)]
struct OpenReasoning {
    output_index: usize,
    item_id: String,
    text: String,
    /// The summary part was announced (only once thinking text arrives).
    part_open: bool,
    signature: Option<String>,
}

#[derive(Debug)]
struct OpenCall {
    output_index: usize,
    item_id: String,
    call_id: String,
    name: String,
    arguments: String,
}

impl StreamEncoder {
    /// An encoder at the start of a stream. `include_usage` is an OpenAI chat option: ignored,
    /// the terminal event always carries the usage.
    #[must_use]
    pub fn new(include_usage: bool) -> Self {
        let _ = include_usage;
        Self {
            sequence: 0,
            started: false,
            finished: false,
            id: GATEWAY_RESPONSE_ID.to_owned(),
            model: UNKNOWN_MODEL.to_owned(),
            next_output: 0,
            current: Current::None,
            calls: BTreeMap::new(),
            seen_calls: HashSet::new(),
            done: BTreeMap::new(),
            stop: None,
            usage: Usage::default(),
            created_at: 0,
        }
    }

    /// Stamps the response objects with `created_at` (Unix seconds, from the caller's clock).
    #[must_use]
    pub fn created_at(mut self, unix_seconds: i64) -> Self {
        self.created_at = unix_seconds;
        self
    }

    /// The frames one delta produces.
    pub fn push(&mut self, delta: &Delta) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        match delta {
            Delta::Start { id, model } => self.start(id, model, &mut out),
            Delta::Text(text) if !text.is_empty() => {
                self.ensure_started(&mut out);
                self.text(text, &mut out);
            }
            Delta::Thinking(text) if !text.is_empty() => {
                self.ensure_started(&mut out);
                self.thinking(text, &mut out);
            }
            Delta::ThinkingSignature { source, signature } => {
                self.ensure_started(&mut out);
                self.close_calls(&mut out);
                self.open_reasoning(&mut out);
                if let Current::Reasoning(open) = &mut self.current {
                    open.signature = Some(signature::for_client(
                        *source,
                        signature,
                        Dialect::Responses,
                    ));
                }
            }
            Delta::ToolCallStart { index, id, name } => {
                self.ensure_started(&mut out);
                self.open_call(*index, id, name, &mut out);
            }
            Delta::ToolCallArguments { index, fragment } if !fragment.is_empty() => {
                self.ensure_started(&mut out);
                self.arguments(*index, fragment, &mut out);
            }
            Delta::Usage(usage) => self.usage.merge_stream(usage),
            Delta::Stop(reason) => self.stop = Some(reason.clone()),
            Delta::Text(_) | Delta::Thinking(_) | Delta::ToolCallArguments { .. } => {}
        }
        out
    }

    /// Closes open items and sends `response.completed` (or `response.incomplete` for a
    /// truncated answer) with the whole response. Idempotent.
    pub fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.ensure_started(&mut out);
        self.close_current(&mut out);
        self.close_calls(&mut out);
        self.finished = true;
        let output: Vec<Value> = std::mem::take(&mut self.done).into_values().collect();
        let usage = if self.usage.is_empty() {
            Value::Null
        } else {
            usage_json(&self.usage)
        };
        let response = response_object(
            &self.id,
            &self.model,
            self.created_at,
            self.stop.as_ref(),
            output,
            usage,
        );
        let kind = if response["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        out.push(self.frame(kind, json!({ "response": response })));
        out
    }

    /// One event: its name on the `event:` line and as `type`, and the next sequence number.
    fn frame(&mut self, kind: &str, mut data: Value) -> Bytes {
        if let Some(fields) = data.as_object_mut() {
            fields.insert("type".into(), json!(kind));
            fields.insert("sequence_number".into(), json!(self.sequence));
        }
        self.sequence += 1;
        sse::encode(Some(kind), &data.to_string())
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        if !id.is_empty() {
            self.id = id.to_owned();
        }
        if !model.is_empty() {
            self.model = model.to_owned();
        }
        let shell = response_shell(
            &self.id,
            &self.model,
            self.created_at,
            "in_progress",
            Value::Null,
            Vec::new(),
            Value::Null,
        );
        out.push(self.frame("response.created", json!({ "response": shell.clone() })));
        out.push(self.frame("response.in_progress", json!({ "response": shell })));
    }

    /// Clients need `response.created` first even when the upstream said nothing about itself.
    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        self.start(GATEWAY_RESPONSE_ID, UNKNOWN_MODEL, out);
    }

    fn next_index(&mut self) -> usize {
        let index = self.next_output;
        self.next_output += 1;
        index
    }

    fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        self.close_calls(out);
        if !matches!(self.current, Current::Message(_)) {
            self.close_current(out);
            let output_index = self.next_index();
            let item_id = item_id("msg", &self.id, output_index);
            let item = json!({"type": "message", "id": item_id, "status": "in_progress",
                "role": "assistant", "content": []});
            out.push(self.frame(
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            ));
            out.push(self.frame(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                    "part": output_text("")}),
            ));
            self.current = Current::Message(OpenText {
                output_index,
                item_id,
                text: String::new(),
            });
        }
        let Current::Message(open) = &mut self.current else {
            return;
        };
        open.text.push_str(text);
        let data = json!({"item_id": open.item_id, "output_index": open.output_index,
            "content_index": 0, "delta": text, "logprobs": []});
        out.push(self.frame("response.output_text.delta", data));
    }

    fn open_reasoning(&mut self, out: &mut Vec<Bytes>) {
        if matches!(self.current, Current::Reasoning(_)) {
            return;
        }
        self.close_current(out);
        let output_index = self.next_index();
        let item_id = item_id("rs", &self.id, output_index);
        out.push(self.frame(
            "response.output_item.added",
            json!({"output_index": output_index,
                "item": {"type": "reasoning", "id": item_id, "summary": []}}),
        ));
        self.current = Current::Reasoning(OpenReasoning {
            output_index,
            item_id,
            text: String::new(),
            part_open: false,
            signature: None,
        });
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<Bytes>) {
        self.close_calls(out);
        self.open_reasoning(out);
        let Current::Reasoning(open) = &mut self.current else {
            return;
        };
        let first = !open.part_open;
        open.part_open = true;
        open.text.push_str(text);
        let (item_id, output_index) = (open.item_id.clone(), open.output_index);
        if first {
            out.push(self.frame(
                "response.reasoning_summary_part.added",
                json!({"item_id": item_id, "output_index": output_index, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
            ));
        }
        out.push(self.frame(
            "response.reasoning_summary_text.delta",
            json!({"item_id": item_id, "output_index": output_index, "summary_index": 0,
                "delta": text}),
        ));
    }

    fn open_call(&mut self, index: usize, call_id: &str, name: &str, out: &mut Vec<Bytes>) {
        // A repeated start says nothing new.
        if !self.seen_calls.insert(index) {
            return;
        }
        self.close_current(out);
        let output_index = self.next_index();
        let item_id = item_id("fc", &self.id, output_index);
        let item = function_call_item(&item_id, call_id, name, "", "in_progress");
        out.push(self.frame(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        ));
        self.calls.insert(
            index,
            OpenCall {
                output_index,
                item_id,
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: String::new(),
            },
        );
    }

    fn arguments(&mut self, index: usize, fragment: &str, out: &mut Vec<Bytes>) {
        if !self.seen_calls.contains(&index) {
            // The upstream skipped the start: the arguments still get through.
            self.open_call(index, &format!("call_{index}"), "", out);
        }
        let Some(call) = self.calls.get_mut(&index) else {
            return;
        };
        call.arguments.push_str(fragment);
        let data = json!({"item_id": call.item_id, "output_index": call.output_index,
            "delta": fragment});
        out.push(self.frame("response.function_call_arguments.delta", data));
    }

    /// Closes the open message or reasoning item: its `done` events, then the item.
    fn close_current(&mut self, out: &mut Vec<Bytes>) {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::None => {}
            Current::Message(open) => {
                let (item_id, output_index) = (open.item_id.as_str(), open.output_index);
                out.push(self.frame(
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                        "text": open.text, "logprobs": []}),
                ));
                out.push(self.frame(
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                        "part": output_text(&open.text)}),
                ));
                let item = message_item(item_id, vec![output_text(&open.text)]);
                self.item_done(output_index, item, out);
            }
            Current::Reasoning(open) => {
                let (item_id, output_index) = (open.item_id.as_str(), open.output_index);
                if open.part_open {
                    out.push(self.frame(
                        "response.reasoning_summary_text.done",
                        json!({"item_id": item_id, "output_index": output_index,
                            "summary_index": 0, "text": open.text}),
                    ));
                    out.push(self.frame(
                        "response.reasoning_summary_part.done",
                        json!({"item_id": item_id, "output_index": output_index,
                            "summary_index": 0,
                            "part": {"type": "summary_text", "text": open.text}}),
                    ));
                }
                let item = reasoning_item(item_id, &open.text, open.signature.as_deref());
                self.item_done(output_index, item, out);
            }
        }
    }

    /// Closes every open function call, in output order.
    fn close_calls(&mut self, out: &mut Vec<Bytes>) {
        let mut calls: Vec<OpenCall> = std::mem::take(&mut self.calls).into_values().collect();
        calls.sort_by_key(|call| call.output_index);
        for call in calls {
            out.push(self.frame(
                "response.function_call_arguments.done",
                json!({"item_id": call.item_id, "output_index": call.output_index,
                    "name": call.name, "arguments": call.arguments}),
            ));
            let item = function_call_item(
                &call.item_id,
                &call.call_id,
                &call.name,
                &call.arguments,
                "completed",
            );
            self.item_done(call.output_index, item, out);
        }
    }

    fn item_done(&mut self, output_index: usize, item: Value, out: &mut Vec<Bytes>) {
        out.push(self.frame(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item.clone()}),
        ));
        self.done.insert(output_index, item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{named_frames, object, sse_events};

    fn body(raw: &str) -> Map<String, Value> {
        object(serde_json::from_str(raw).expect("test JSON"))
    }

    fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: Some("Current weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}),
            strict: false,
        }
    }

    /// What the `openai` SDK and Codex send, with every convertible feature.
    const RICH_REQUEST: &str = r#"{
        "model": "gpt-5",
        "instructions": "You are a careful assistant.",
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is in these pictures?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"},
                {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"}
            ]},
            {"type": "reasoning", "id": "rs_01", "summary": [
                {"type": "summary_text", "text": "**Looking**"},
                {"type": "summary_text", "text": "Two images."}
            ], "encrypted_content": "gAAAAABoSealed"},
            {"type": "message", "id": "msg_01", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Un chat.", "annotations": []}]},
            {"type": "function_call", "id": "fc_01", "call_id": "call_weather", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_weather", "output": "18°C, sunny"},
            {"role": "user", "content": "Merci !"}
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": true}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "max_output_tokens": 2048,
        "temperature": 0.7,
        "top_p": 0.9,
        "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"},
            "strict": true}, "verbosity": "medium"},
        "stream": true,
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "metadata": {"session": "s1"},
        "user": "u-42",
        "prompt_cache_key": "0199a1b2",
        "parallel_tool_calls": false,
        "truncation": "disabled",
        "service_tier": "auto",
        "previous_response_id": null
    }"#;

    #[test]
    fn decode_a_rich_request() {
        let req = decode_request(&body(RICH_REQUEST)).expect("convertible");
        assert_eq!(
            req,
            ir::Request {
                system: vec![
                    "You are a careful assistant.".into(),
                    "Answer in French.".into()
                ],
                messages: vec![
                    Message::user(vec![
                        Part::text("What is in these pictures?"),
                        Part::Image(Image::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBORw0KGgo=".into(),
                        }),
                        Part::Image(Image::Url("https://example.com/cat.jpg".into())),
                    ]),
                    Message::assistant(vec![
                        Part::signed_thinking(
                            "**Looking**\n\nTwo images.",
                            "gAAAAABoSealed",
                            Dialect::Responses
                        ),
                        Part::text("Un chat."),
                        Part::tool_call("call_weather", "get_weather", json!({"city": "Paris"})),
                    ]),
                    Message::user(vec![
                        Part::tool_result("call_weather", vec![Part::text("18°C, sunny")], false),
                        Part::text("Merci !"),
                    ]),
                ],
                tools: vec![Tool {
                    strict: true,
                    ..weather_tool()
                }],
                tool_choice: Some(ToolChoice::Tool("get_weather".into())),
                parallel_tool_calls: Some(false),
                max_tokens: Some(2048),
                temperature: Some(0.7),
                top_p: Some(0.9),
                top_k: None,
                stop: vec![],
                stream: true,
                reasoning: Some(Reasoning {
                    effort: Some("high".into()),
                    budget_tokens: None,
                }),
                response_format: Some(ResponseFormat::JsonSchema {
                    name: "answer".into(),
                    schema: json!({"type": "object"}),
                    strict: true,
                }),
            }
        );
    }

    #[test]
    fn decode_simple_requests() {
        let req = decode_request(&body(r#"{"model":"gpt-4.1","input":"Tell me a joke"}"#))
            .expect("convertible");
        assert_eq!(
            req,
            ir::Request {
                messages: vec![Message::user(vec![Part::text("Tell me a joke")])],
                ..ir::Request::default()
            }
        );
        // Tool-less: `parallel_tool_calls: false` means nothing; modes of tool_choice; a
        // tool without parameters; arguments of a call without any; empty and list outputs.
        let req = decode_request(&body(
            r#"{"model":"m","parallel_tool_calls":false,"tool_choice":"none","text":{"format":{"type":"json_object"}},
            "prompt_cache_options":{"mode":"implicit","ttl":"30m"},
            "input":[{"role":"system","content":[{"type":"input_text","text":"A"},{"type":"input_text","text":"B"}]},
              {"role":"user","content":[{"type":"input_text","text":"Go","prompt_cache_breakpoint":{"ttl":"30m"}}]},
              {"type":"reasoning","id":"rs_bare","summary":[]},
              {"type":"function_call","call_id":"c1","name":"now","arguments":"","caller":{"type":"direct"}},
              {"type":"function_call_output","call_id":"c1","output":""},
              {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"see"},{"type":"input_image","image_url":"https://x.test/a.png"}]},
              {"type":"message","role":"assistant","content":[{"type":"refusal","refusal":"I can't."}]},
              {"type":"reasoning","summary":[],"content":[{"type":"reasoning_text","text":"raw thought"}]}
            ]}"#,
        ))
        .expect("convertible");
        assert_eq!(req.system, vec!["A".to_owned(), "B".to_owned()]);
        assert_eq!(
            req.parallel_tool_calls, None,
            "no tools, nothing to call in parallel"
        );
        assert_eq!(req.tool_choice, Some(ToolChoice::None));
        assert_eq!(req.response_format, Some(ResponseFormat::JsonObject));
        assert_eq!(
            req.messages,
            vec![
                Message::user(vec![Part::text("Go")]),
                Message::assistant(vec![Part::tool_call("c1", "now", json!({}))]),
                Message::user(vec![
                    Part::tool_result("c1", vec![], false),
                    Part::tool_result(
                        "c2",
                        vec![
                            Part::text("see"),
                            Part::Image(Image::Url("https://x.test/a.png".into()))
                        ],
                        false
                    ),
                ]),
                Message::assistant(vec![Part::text("I can't."), Part::thinking("raw thought")]),
            ],
            "a reasoning item with nothing in it is dropped"
        );
        for (choice, expected) in [
            (json!("auto"), ToolChoice::Auto),
            (json!("required"), ToolChoice::Required),
        ] {
            let mut request = body(r#"{"model":"m","input":"x"}"#);
            request.insert("tool_choice".into(), choice);
            assert_eq!(
                decode_request(&request).expect("convertible").tool_choice,
                Some(expected)
            );
        }
        let req = decode_request(&body(
            r#"{"model":"m","input":"x","tools":[{"type":"function","name":"now"}],"reasoning":{"summary":"auto"}}"#,
        ))
        .expect("convertible");
        assert_eq!(
            req.tools,
            vec![Tool {
                name: "now".into(),
                description: None,
                parameters: json!({"type": "object", "properties": {}}),
                strict: false,
            }]
        );
        assert_eq!(req.reasoning, None, "no effort, nothing asked");
    }

    #[test]
    fn parallel_tool_calls_are_carried_beside_tools() {
        let decode = |extra: &str| {
            let mut request = body(r#"{"model":"m","input":"x"}"#);
            request.extend(body(extra));
            decode_request(&request)
                .expect("convertible")
                .parallel_tool_calls
        };
        let tools = r#""tools":[{"type":"function","name":"f"}]"#;
        assert_eq!(
            decode(&format!(r#"{{{tools},"parallel_tool_calls":false}}"#)),
            Some(false)
        );
        assert_eq!(
            decode(&format!(r#"{{{tools},"parallel_tool_calls":true}}"#)),
            Some(true)
        );
        assert_eq!(
            decode(&format!(r#"{{{tools},"parallel_tool_calls":null}}"#)),
            None
        );
        assert_eq!(decode(&format!("{{{tools}}}")), None);
        assert_eq!(decode(r#"{"parallel_tool_calls":false}"#), None);

        let req = ir::Request {
            messages: vec![Message::user(vec![Part::text("x")])],
            tools: vec![weather_tool()],
            parallel_tool_calls: Some(false),
            ..ir::Request::default()
        };
        let encoded = encode_request(&req, "gpt-5").expect("expressible");
        assert_eq!(encoded.get("parallel_tool_calls"), Some(&json!(false)));
        assert_eq!(decode_request(&encoded).expect("convertible"), req);
        let allowed = ir::Request {
            parallel_tool_calls: Some(true),
            ..req.clone()
        };
        let encoded = encode_request(&allowed, "gpt-5").expect("expressible");
        assert_eq!(encoded.get("parallel_tool_calls"), Some(&json!(true)));
        let default = ir::Request {
            parallel_tool_calls: None,
            ..req.clone()
        };
        let encoded = encode_request(&default, "gpt-5").expect("expressible");
        assert_eq!(encoded.get("parallel_tool_calls"), None);
        let tool_less = ir::Request {
            tools: vec![],
            ..req
        };
        let encoded = encode_request(&tool_less, "gpt-5").expect("expressible");
        assert_eq!(
            encoded.get("parallel_tool_calls"),
            None,
            "OpenAI rejects parallel_tool_calls without tools"
        );
    }

    #[test]
    fn decode_refusals_name_the_field() {
        let cases = [
            (
                r#"{"previous_response_id":"resp_1"}"#,
                "previous_response_id (state stored by OpenAI cannot be resolved by an upstream of another format)",
            ),
            (
                r#"{"conversation":"conv_1"}"#,
                "conversation (state stored by OpenAI cannot be resolved by an upstream of another format)",
            ),
            (
                r#"{"prompt":{"id":"pmpt_1"}}"#,
                "prompt (a prompt template stored by OpenAI cannot be resolved by an upstream of another format)",
            ),
            (
                r#"{"stop":["\n"]}"#,
                "stop (not convertible to another format)",
            ),
            (
                r#"{"background":true}"#,
                "background (not convertible to another format)",
            ),
            (
                r#"{"truncation":"auto"}"#,
                "truncation (not convertible to another format)",
            ),
            (
                r#"{"prompt_cache_options":{"prewarm":true}}"#,
                "prompt_cache_options (not convertible to another format)",
            ),
            (
                r#"{"max_tool_calls":3}"#,
                "max_tool_calls (not convertible to another format)",
            ),
            (
                r#"{"top_logprobs":5}"#,
                "top_logprobs (not convertible to another format)",
            ),
            (
                r#"{"include":["reasoning.encrypted_content","message.output_text.logprobs"]}"#,
                "include (message.output_text.logprobs)",
            ),
            (r#"{"text":{"verbosity":"low"}}"#, "text.verbosity (low)"),
            (
                r#"{"text":{"format":{"type":"grammar"}}}"#,
                "text.format (grammar)",
            ),
            (
                r#"{"tools":[{"type":"function","name":"f"},{"type":"web_search"}]}"#,
                "tools[1] (web_search: only function tools exist in other formats)",
            ),
            (
                r#"{"tools":[{"type":"custom","name":"apply_patch","format":{"type":"grammar"}}]}"#,
                "tools[0] (custom: only function tools exist in other formats)",
            ),
            (
                r#"{"tools":[{"type":"function","name":"f","defer_loading":true}]}"#,
                "tools[0].defer_loading (unknown field)",
            ),
            (
                r#"{"tools":[{"type":"function","name":"f"}],"parallel_tool_calls":"no"}"#,
                "parallel_tool_calls (not a boolean)",
            ),
            (
                r#"{"tools":[{"type":"function","name":"f","strict":"true"}]}"#,
                "tools[0].strict (not a boolean)",
            ),
            (
                r#"{"text":{"format":{"type":"json_schema","name":"a","schema":{},"strict":1}}}"#,
                "text.format.strict (not a boolean)",
            ),
            (
                r#"{"tool_choice":{"type":"allowed_tools","mode":"auto","tools":[]}}"#,
                "tool_choice (allowed_tools)",
            ),
            (
                r#"{"reasoning":{"effort":"low","budget":3}}"#,
                "reasoning.budget (unknown field)",
            ),
        ];
        for (extra, expected) in cases {
            let mut request = body(r#"{"model":"m","input":"x"}"#);
            request.extend(body(extra));
            assert_eq!(
                decode_request(&request).map_err(|e| e.what),
                Err(expected.to_owned()),
                "{extra}"
            );
        }
        let items = [
            (
                r#"{"type":"item_reference","id":"msg_1"}"#,
                "input[0] (item_reference: an item stored by OpenAI cannot be resolved by an upstream of another format)",
            ),
            (
                r#"{"type":"web_search_call","id":"ws_1","status":"completed"}"#,
                "input[0] (web_search_call)",
            ),
            (
                r#"{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}"#,
                "input[0].content[0] (input_file)",
            ),
            (
                r#"{"role":"user","content":[{"type":"input_image","file_id":"file-1","detail":"auto"}]}"#,
                "input[0].content[0].file_id (a file stored by OpenAI cannot be read by an upstream of another format)",
            ),
            (
                r#"{"role":"user","content":[{"type":"input_image","image_url":"ftp://x/a.png"}]}"#,
                "input[0].content[0].image_url (neither a data URL nor an http(s) URL)",
            ),
            (
                r#"{"role":"developer","content":[{"type":"input_image","image_url":"https://x/a.png"}]}"#,
                "input[0].content (an image in a system message)",
            ),
            (
                r#"{"role":"assistant","content":[{"type":"input_image","image_url":"https://x/a.png"}]}"#,
                "input[0].content (an image in an assistant message)",
            ),
            (r#"{"role":"tool","content":"x"}"#, "input[0].role (tool)"),
            (
                r#"{"type":"function_call","call_id":"c","name":"f","arguments":"{\"a\":"}"#,
                "input[0].arguments (not valid JSON)",
            ),
            (
                r#"{"type":"function_call","call_id":"c","name":"f","arguments":"{}","caller":{"type":"program","caller_id":"p1"}}"#,
                "input[0].caller (a call made by a program OpenAI ran)",
            ),
            (
                r#"{"type":"function_call_output","output":"x"}"#,
                "input[0].call_id (missing or not a string)",
            ),
            (
                r#"{"role":"user","content":"x","cache_control":{"type":"ephemeral"}}"#,
                "input[0].cache_control (unknown field)",
            ),
        ];
        for (item, expected) in items {
            let request = body(&format!(r#"{{"model":"m","input":[{item}]}}"#));
            assert_eq!(
                decode_request(&request).map_err(|e| e.what),
                Err(expected.to_owned()),
                "{item}"
            );
        }
        assert_eq!(
            decode_request(&body(r#"{"model":"m"}"#)).map_err(|e| e.what),
            Err("input (missing)".to_owned())
        );
    }

    /// A request as an Anthropic client would have it, with every feature Responses expresses.
    fn anthropic_style_request() -> ir::Request {
        ir::Request {
            system: vec!["You are terse.".into(), "Use metric units.".into()],
            messages: vec![
                Message::user(vec![
                    Part::text("Weather in Paris, and what is this?"),
                    Part::Image(Image::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "/9j/4AAQ".into(),
                    }),
                    Part::Image(Image::Url("https://example.com/p.png".into())),
                ]),
                Message::assistant(vec![
                    Part::signed_thinking(
                        "I should call the tool.",
                        "gAAAAABsealed",
                        Dialect::Responses,
                    ),
                    Part::Thinking(Thinking {
                        text: "A thought from Claude.".into(),
                        signature: Some("EqQBCkYIBxgCKkA".into()),
                        source: Some(Dialect::Messages),
                    }),
                    Part::text("Checking."),
                    Part::tool_call("toolu_1", "get_weather", json!({"city": "Paris"})),
                    Part::tool_call("toolu_2", "get_time", json!({})),
                ]),
                Message::user(vec![
                    Part::tool_result("toolu_1", vec![Part::text("18°C")], false),
                    Part::tool_result(
                        "toolu_2",
                        vec![
                            Part::text("10:00"),
                            Part::Image(Image::Url("https://example.com/clock.png".into())),
                        ],
                        true,
                    ),
                    Part::text("Thanks"),
                ]),
            ],
            tools: vec![
                weather_tool(),
                Tool {
                    name: "get_time".into(),
                    description: None,
                    parameters: json!({"type": "object", "properties": {}}),
                    strict: false,
                },
            ],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: Some(false),
            max_tokens: Some(1024),
            temperature: Some(0.5),
            top_p: Some(0.95),
            top_k: None,
            stop: vec![],
            stream: true,
            reasoning: Some(Reasoning {
                effort: None,
                budget_tokens: Some(8_192),
            }),
            response_format: Some(ResponseFormat::JsonObject),
        }
    }

    #[test]
    fn encode_a_rich_request() {
        let encoded =
            encode_request(&anthropic_style_request(), "gpt-5-mini").expect("expressible");
        assert_eq!(
            Value::Object(encoded),
            json!({
                "model": "gpt-5-mini",
                "instructions": "You are terse.\n\nUse metric units.",
                "input": [
                    {"type": "message", "role": "user", "content": [
                        {"type": "input_text", "text": "Weather in Paris, and what is this?"},
                        {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "auto"},
                        {"type": "input_image", "image_url": "https://example.com/p.png", "detail": "auto"}
                    ]},
                    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "I should call the tool."}],
                     "encrypted_content": "gAAAAABsealed"},
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                    {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                    {"type": "function_call", "call_id": "toolu_2", "name": "get_time", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "toolu_1", "output": "18°C"},
                    {"type": "function_call_output", "call_id": "toolu_2", "output": [
                        {"type": "input_text", "text": "10:00"},
                        {"type": "input_image", "image_url": "https://example.com/clock.png", "detail": "auto"}
                    ]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks"}]}
                ],
                "tools": [
                    {"type": "function", "name": "get_weather", "description": "Current weather for a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                     "strict": false},
                    {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}},
                     "strict": false}
                ],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "max_output_tokens": 1024,
                "temperature": 0.5,
                "top_p": 0.95,
                "reasoning": {"effort": "medium"},
                "include": ["reasoning.encrypted_content"],
                "text": {"format": {"type": "json_object"}},
                "store": false,
                "stream": true
            })
        );
    }

    #[test]
    fn encode_small_requests_and_clamps() {
        let req = ir::Request {
            messages: vec![Message::user(vec![Part::text("ping")])],
            max_tokens: Some(1),
            tool_choice: Some(ToolChoice::Tool("f".into())),
            reasoning: Some(Reasoning {
                effort: Some("low".into()),
                budget_tokens: Some(30_000),
            }),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "out".into(),
                schema: json!({"type": "object"}),
                strict: false,
            }),
            ..ir::Request::default()
        };
        assert_eq!(
            Value::Object(encode_request(&req, "o4-mini").expect("expressible")),
            json!({
                "model": "o4-mini",
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ping"}]}],
                "tool_choice": {"type": "function", "name": "f"},
                "max_output_tokens": 16,
                "reasoning": {"effort": "low"},
                "include": ["reasoning.encrypted_content"],
                "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"},
                    "strict": false}},
                "store": false
            })
        );
    }

    #[test]
    fn encode_refusals() {
        let base = ir::Request {
            messages: vec![Message::user(vec![Part::text("x")])],
            ..ir::Request::default()
        };
        let refused = |req: ir::Request| encode_request(&req, "m").map_err(|e| e.what);
        assert_eq!(
            refused(ir::Request {
                top_k: Some(40),
                ..base.clone()
            }),
            Err("top_k (the Responses API has no top-k sampling)".to_owned())
        );
        assert_eq!(
            refused(ir::Request {
                stop: vec!["END".into()],
                ..base.clone()
            }),
            Err("stop (the Responses API has no stop sequences)".to_owned())
        );
        let turns = [
            (
                Message::assistant(vec![Part::Image(Image::Url("https://x/a.png".into()))]),
                "messages[0].content[0] (an image in an assistant turn)",
            ),
            (
                Message::user(vec![Part::text("x"), Part::tool_call("c", "f", json!({}))]),
                "messages[0].content[1] (a tool call in a user turn)",
            ),
            (
                Message::user(vec![Part::thinking("hm")]),
                "messages[0].content[0] (thinking in a user turn)",
            ),
            (
                Message::assistant(vec![Part::tool_result("c", vec![], false)]),
                "messages[0].content[0] (a tool result in an assistant turn)",
            ),
            (
                Message::user(vec![Part::tool_result(
                    "c",
                    vec![Part::text("a"), Part::tool_call("d", "f", json!({}))],
                    false,
                )]),
                "messages[0].content[0].content[1] (a tool call in a tool result)",
            ),
        ];
        for (turn, expected) in turns {
            assert_eq!(
                refused(ir::Request {
                    messages: vec![turn],
                    ..ir::Request::default()
                }),
                Err(expected.to_owned())
            );
        }
    }

    #[test]
    fn request_round_trip() {
        let rich = ir::Request {
            system: vec!["Be brief.".into()],
            messages: vec![
                Message::user(vec![
                    Part::text("Look"),
                    Part::Image(Image::Base64 {
                        media_type: "image/webp".into(),
                        data: "UklGRg==".into(),
                    }),
                ]),
                Message::assistant(vec![
                    Part::signed_thinking("", "gAAAAABonlysealed", Dialect::Responses),
                    Part::signed_thinking("Summary.", "gAAAAABsealed2", Dialect::Responses),
                    Part::text("One"),
                    Part::text("Two"),
                    Part::tool_call(
                        "call_1",
                        "get_weather",
                        json!({"city": "Oslo", "days": [1, 2]}),
                    ),
                ]),
                Message::user(vec![
                    Part::tool_result("call_1", vec![], false),
                    Part::tool_result("call_2", vec![Part::text("a"), Part::text("b")], false),
                    Part::text("And now?"),
                ]),
                Message::assistant(vec![Part::text("Done.")]),
            ],
            tools: vec![weather_tool()],
            tool_choice: Some(ToolChoice::Auto),
            parallel_tool_calls: Some(false),
            max_tokens: Some(500),
            temperature: Some(1.0),
            top_p: Some(0.5),
            stream: false,
            reasoning: Some(Reasoning {
                effort: Some("minimal".into()),
                budget_tokens: None,
            }),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "s".into(),
                schema: json!({"type": "object", "properties": {}}),
                strict: false,
            }),
            ..ir::Request::default()
        };
        let minimal = ir::Request {
            messages: vec![Message::user(vec![Part::text("hi")])],
            stream: true,
            ..ir::Request::default()
        };
        for req in [rich, minimal] {
            let encoded = encode_request(&req, "m").expect("expressible");
            assert_eq!(decode_request(&encoded).expect("convertible"), req);
        }
        // And from the native side: what Responses expresses comes back the same.
        let native = body(RICH_REQUEST);
        let decoded = decode_request(&native).expect("convertible");
        let again = decode_request(&encode_request(&decoded, "gpt-5").expect("expressible"))
            .expect("convertible");
        assert_eq!(
            again.system,
            vec!["You are a careful assistant.\n\nAnswer in French.".to_owned()],
            "system texts are joined into `instructions`"
        );
        assert_eq!(again.messages, decoded.messages);
        assert_eq!(
            (
                again.tools,
                again.tool_choice,
                again.parallel_tool_calls,
                again.response_format
            ),
            (
                decoded.tools,
                decoded.tool_choice,
                decoded.parallel_tool_calls,
                decoded.response_format
            )
        );
    }

    /// A non-streamed answer as api.openai.com returns it (ids shortened).
    fn openai_response() -> Value {
        json!({
            "id": "resp_68b1",
            "object": "response",
            "created_at": 1_756_400_000,
            "status": "completed",
            "background": false,
            "error": null,
            "incomplete_details": null,
            "instructions": null,
            "max_output_tokens": null,
            "model": "gpt-5-2025-08-07",
            "output": [
                {"id": "rs_68b1", "type": "reasoning", "summary": [
                    {"type": "summary_text", "text": "**Planning**"}], "encrypted_content": "gAAAAABoSealed"},
                {"id": "msg_68b1", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}]},
                {"id": "fc_68b1", "type": "function_call", "status": "completed",
                 "arguments": "{\"city\":\"Paris\"}", "call_id": "call_Xyz", "name": "get_weather"}
            ],
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "service_tier": "default",
            "store": false,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {"input_tokens": 2100, "input_tokens_details": {"cached_tokens": 2048},
                "output_tokens": 320, "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 2420},
            "user": null,
            "metadata": {}
        })
    }

    /// A Chat body with these tools and `response_format`, as a Responses upstream gets it.
    fn responses_body_from_chat(tools: Value, response_format: Value) -> Value {
        let chat_body = object(json!({"model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "tools": tools, "response_format": response_format}));
        let req = crate::openai::chat_codec::decode_request(&chat_body).expect("decodes");
        Value::Object(encode_request(&req, "gpt-5").expect("expressible"))
    }

    #[test]
    fn a_strict_chat_tool_stays_strict_for_responses() {
        let body = responses_body_from_chat(
            json!([{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object"}, "strict": true}}]),
            Value::Null,
        );
        assert_eq!(body["tools"][0]["strict"], json!(true));
    }

    #[test]
    fn chat_tools_and_schemas_without_strict_go_out_non_strict() {
        // Responses would otherwise enforce its strict default on schemas written without it.
        let body = responses_body_from_chat(
            json!([
                {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "b", "parameters": {"type": "object"},
                    "strict": false}},
                {"type": "function", "function": {"name": "c", "parameters": {"type": "object"},
                    "strict": null}}
            ]),
            json!({"type": "json_schema", "json_schema": {"name": "answer",
                "schema": {"type": "object"}}}),
        );
        let strict: Vec<&Value> = body["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|tool| &tool["strict"])
            .collect();
        assert_eq!(strict, [&json!(false); 3]);
        assert_eq!(body["text"]["format"]["strict"], json!(false));
    }

    #[test]
    fn a_strict_json_schema_round_trips_between_chat_and_responses() {
        let schema = json!({"type": "object", "properties": {"t": {"type": "number"}},
            "required": ["t"], "additionalProperties": false});
        let chat_format = json!({"type": "json_schema", "json_schema": {"name": "forecast",
            "schema": schema, "strict": true}});
        let body = responses_body_from_chat(Value::Null, chat_format.clone());
        assert_eq!(
            body["text"]["format"],
            json!({"type": "json_schema", "name": "forecast", "schema": schema, "strict": true})
        );
        // And back: the Responses body, decoded, becomes the same Chat `response_format`.
        let req = decode_request(&object(body)).expect("convertible");
        let chat_body = crate::openai::chat_codec::encode_request(&req, "gpt-4o").expect("encodes");
        assert_eq!(chat_body.get("response_format"), Some(&chat_format));
    }

    #[test]
    fn anthropic_tools_without_strict_and_schemas_go_out_non_strict() {
        // Not asked for (`output_config.format` has no `strict` at all): these schemas were not
        // written for OpenAI's strict subset, so Responses must not enforce it on them.
        let anthropic_body = object(json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "output_config": {"format": {"type": "json_schema",
                "schema": {"type": "object"}}}}));
        let req =
            crate::anthropic::messages_codec::decode_request(&anthropic_body).expect("decodes");
        let body = Value::Object(encode_request(&req, "gpt-5").expect("expressible"));
        assert_eq!(body["tools"][0]["strict"], json!(false));
        assert_eq!(body["text"]["format"]["strict"], json!(false));
    }

    #[test]
    fn a_strict_anthropic_tool_stays_strict_for_responses() {
        let anthropic_body = object(json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"},
                "strict": true}]}));
        let req =
            crate::anthropic::messages_codec::decode_request(&anthropic_body).expect("decodes");
        let body = Value::Object(encode_request(&req, "gpt-5").expect("expressible"));
        assert_eq!(body["tools"][0]["strict"], json!(true));
    }

    #[test]
    fn decode_a_rich_response() {
        assert_eq!(
            decode_response(&openai_response()).expect("convertible"),
            ir::Response {
                id: "resp_68b1".into(),
                model: "gpt-5-2025-08-07".into(),
                content: vec![
                    Part::signed_thinking("**Planning**", "gAAAAABoSealed", Dialect::Responses),
                    Part::text("Let me check."),
                    Part::tool_call("call_Xyz", "get_weather", json!({"city": "Paris"})),
                ],
                stop_reason: Some(StopReason::ToolUse),
                usage: Usage {
                    input_tokens: 52,
                    output_tokens: 320,
                    cache_read_tokens: 2048,
                    cache_creation_tokens: 0,
                    reasoning_tokens: 256,
                },
            }
        );
    }

    #[test]
    fn decode_stop_reasons_and_refusals() {
        let with = |status: &str, details: Value, output: Value| {
            let mut response = openai_response();
            response["status"] = json!(status);
            response["incomplete_details"] = details;
            response["output"] = output;
            decode_response(&response).map(|r| (r.content, r.stop_reason))
        };
        let message = json!([{"id": "msg_1", "type": "message", "status": "incomplete", "role": "assistant",
            "content": [{"type": "output_text", "text": "Once upon", "annotations": []}]}]);
        assert_eq!(
            with(
                "incomplete",
                json!({"reason": "max_output_tokens"}),
                message.clone()
            ),
            Ok((vec![Part::text("Once upon")], Some(StopReason::MaxTokens)))
        );
        assert_eq!(
            with(
                "incomplete",
                json!({"reason": "content_filter"}),
                message.clone()
            ),
            Ok((
                vec![Part::text("Once upon")],
                Some(StopReason::ContentFilter)
            ))
        );
        assert_eq!(
            with("completed", Value::Null, message.clone()),
            Ok((vec![Part::text("Once upon")], Some(StopReason::EndTurn)))
        );
        assert_eq!(
            with("cancelled", Value::Null, json!([])),
            Ok((vec![], Some(StopReason::Other("cancelled".into()))))
        );
        let refusal = json!([{"type": "message", "role": "assistant", "id": "m", "status": "completed",
            "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]);
        assert_eq!(
            with("completed", Value::Null, refusal),
            Ok((
                vec![Part::text("I can't help with that.")],
                Some(StopReason::EndTurn)
            ))
        );
        assert_eq!(
            with(
                "completed",
                Value::Null,
                json!([{"type": "web_search_call", "id": "ws_1", "status": "completed"}])
            )
            .map_err(|e| e.what),
            Err("output[0] (web_search_call)".to_owned())
        );
        assert_eq!(
            with(
                "completed",
                Value::Null,
                json!([{"type": "function_call", "call_id": "c", "name": "f",
                "arguments": "{\"cut"}])
            )
            .map_err(|e| e.what),
            Err("output[0].arguments (not valid JSON)".to_owned())
        );
        assert_eq!(
            decode_response(&json!("nope")).map_err(|e| e.what),
            Err("response (not an object)".to_owned())
        );
        // The mock upstream's minimal object, without usage details.
        let minimal = json!({"id": "resp_m", "object": "response", "model": "m", "status": "completed",
            "output": [], "usage": {"input_tokens": 3, "output_tokens": 1}});
        let decoded = decode_response(&minimal).expect("convertible");
        assert_eq!(
            (decoded.usage.input_tokens, decoded.usage.output_tokens),
            (3, 1)
        );
    }

    fn claude_answer() -> ir::Response {
        ir::Response {
            id: "msg_01XYZ".into(),
            model: "claude-sonnet-4-5".into(),
            content: vec![
                Part::signed_thinking("Need the weather.", "EqQBCkYIBxgC", Dialect::Responses),
                Part::text("Checking."),
                Part::tool_call("toolu_01", "get_weather", json!({"city": "Paris"})),
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input_tokens: 100,
                output_tokens: 50,
                cache_read_tokens: 1000,
                cache_creation_tokens: 200,
                reasoning_tokens: 0,
            },
        }
    }

    #[test]
    fn encode_a_rich_response() {
        assert_eq!(
            encode_response(&claude_answer()),
            json!({
                "id": "msg_01XYZ",
                "object": "response",
                "created_at": 0,
                "status": "completed",
                "background": false,
                "error": null,
                "incomplete_details": null,
                "instructions": null,
                "max_output_tokens": null,
                "metadata": {},
                "model": "claude-sonnet-4-5",
                "output": [
                    {"type": "reasoning", "id": "rs_msg_01XYZ_0",
                     "summary": [{"type": "summary_text", "text": "Need the weather."}],
                     "encrypted_content": "EqQBCkYIBxgC"},
                    {"type": "message", "id": "msg_msg_01XYZ_1", "status": "completed", "role": "assistant",
                     "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
                    {"type": "function_call", "id": "fc_msg_01XYZ_2", "call_id": "toolu_01",
                     "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"}
                ],
                "parallel_tool_calls": true,
                "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null},
                "service_tier": "default",
                "store": false,
                "temperature": null,
                "text": {"format": {"type": "text"}},
                "tool_choice": "auto",
                "tools": [],
                "top_p": null,
                "truncation": "disabled",
                "usage": {"input_tokens": 1300,
                    "input_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200},
                    "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1350},
                "user": null
            })
        );
    }

    #[test]
    fn encode_response_statuses() {
        let answer = |stop: Option<StopReason>| {
            let encoded = encode_response(&ir::Response {
                id: String::new(),
                model: "m".into(),
                content: vec![Part::text("a"), Part::text("b")],
                stop_reason: stop,
                usage: Usage::default(),
            });
            (
                encoded["id"].clone(),
                encoded["status"].clone(),
                encoded["incomplete_details"].clone(),
                encoded["output"].clone(),
            )
        };
        let two_parts = json!([{"type": "message", "id": "msg_resp_gw_0", "status": "completed",
            "role": "assistant", "content": [
                {"type": "output_text", "text": "a", "annotations": [], "logprobs": []},
                {"type": "output_text", "text": "b", "annotations": [], "logprobs": []}]}]);
        assert_eq!(
            answer(Some(StopReason::MaxTokens)),
            (
                json!("resp_gw"),
                json!("incomplete"),
                json!({"reason": "max_output_tokens"}),
                two_parts.clone()
            )
        );
        assert_eq!(
            answer(Some(StopReason::ContentFilter)).2,
            json!({"reason": "content_filter"})
        );
        for whole in [
            None,
            Some(StopReason::EndTurn),
            Some(StopReason::StopSequence),
            Some(StopReason::Other("x".into())),
        ] {
            assert_eq!(answer(whole).1, json!("completed"));
        }
    }

    #[test]
    fn response_round_trip() {
        let claude = claude_answer();
        let plain = ir::Response {
            id: "chatcmpl-abc".into(),
            model: "gpt-4o".into(),
            content: vec![Part::text("Hello")],
            stop_reason: Some(StopReason::EndTurn),
            usage: Usage {
                input_tokens: 9,
                output_tokens: 2,
                ..Usage::default()
            },
        };
        let truncated = ir::Response {
            stop_reason: Some(StopReason::MaxTokens),
            content: vec![Part::thinking("Hmm"), Part::text("Once")],
            ..plain.clone()
        };
        let filtered = ir::Response {
            stop_reason: Some(StopReason::ContentFilter),
            content: vec![],
            ..plain.clone()
        };
        for answer in [claude, plain, truncated, filtered] {
            assert_eq!(
                decode_response(&encode_response(&answer)).expect("convertible"),
                answer
            );
        }
        // The native side: decoding, encoding and decoding again changes nothing.
        let decoded = decode_response(&openai_response()).expect("convertible");
        assert_eq!(
            decode_response(&encode_response(&decoded)).expect("convertible"),
            decoded
        );
    }

    fn decode_all(raw: &str) -> Vec<Delta> {
        let mut decoder = StreamDecoder::new();
        sse_events(raw)
            .iter()
            .flat_map(|ev| decoder.push(ev))
            .collect()
    }

    /// Reasoning with two summary parts, text, then a function call, as api.openai.com streams
    /// it with `include: ["reasoning.encrypted_content"]` (ids shortened, shells trimmed).
    const RECORDED_TOOL_STREAM: &str = concat!(
        "event: response.created\n",
        r#"data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1756400000,"status":"in_progress","model":"gpt-5-2025-08-07","output":[],"usage":null}}"#,
        "\n\n",
        "event: response.in_progress\n",
        r#"data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","created_at":1756400000,"status":"in_progress","model":"gpt-5-2025-08-07","output":[],"usage":null}}"#,
        "\n\n",
        "event: response.output_item.added\n",
        r#"data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"rs_1","type":"reasoning","encrypted_content":"gAAAAABpartial","summary":[]}}"#,
        "\n\n",
        "event: response.reasoning_summary_part.added\n",
        r#"data: {"type":"response.reasoning_summary_part.added","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}"#,
        "\n\n",
        "event: response.reasoning_summary_text.delta\n",
        r#"data: {"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"**Plan**","obfuscation":"ab"}"#,
        "\n\n",
        "event: response.reasoning_summary_text.done\n",
        r#"data: {"type":"response.reasoning_summary_text.done","sequence_number":5,"item_id":"rs_1","output_index":0,"summary_index":0,"text":"**Plan**"}"#,
        "\n\n",
        "event: response.reasoning_summary_part.done\n",
        r#"data: {"type":"response.reasoning_summary_part.done","sequence_number":6,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":"**Plan**"}}"#,
        "\n\n",
        "event: response.reasoning_summary_part.added\n",
        r#"data: {"type":"response.reasoning_summary_part.added","sequence_number":7,"item_id":"rs_1","output_index":0,"summary_index":1,"part":{"type":"summary_text","text":""}}"#,
        "\n\n",
        "event: response.reasoning_summary_text.delta\n",
        r#"data: {"type":"response.reasoning_summary_text.delta","sequence_number":8,"item_id":"rs_1","output_index":0,"summary_index":1,"delta":"Call the tool."}"#,
        "\n\n",
        "event: response.output_item.done\n",
        r#"data: {"type":"response.output_item.done","sequence_number":9,"output_index":0,"item":{"id":"rs_1","type":"reasoning","encrypted_content":"gAAAAABfinal","summary":[{"type":"summary_text","text":"**Plan**"},{"type":"summary_text","text":"Call the tool."}]}}"#,
        "\n\n",
        "event: response.output_item.added\n",
        r#"data: {"type":"response.output_item.added","sequence_number":10,"output_index":1,"item":{"id":"msg_1","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#,
        "\n\n",
        "event: response.content_part.added\n",
        r#"data: {"type":"response.content_part.added","sequence_number":11,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#,
        "\n\n",
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","sequence_number":12,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Let me ","logprobs":[]}"#,
        "\n\n",
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","sequence_number":13,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"check.","logprobs":[]}"#,
        "\n\n",
        "event: response.output_text.done\n",
        r#"data: {"type":"response.output_text.done","sequence_number":14,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Let me check.","logprobs":[]}"#,
        "\n\n",
        "event: response.content_part.done\n",
        r#"data: {"type":"response.content_part.done","sequence_number":15,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":"Let me check."}}"#,
        "\n\n",
        "event: response.output_item.done\n",
        r#"data: {"type":"response.output_item.done","sequence_number":16,"output_index":1,"item":{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Let me check."}],"role":"assistant"}}"#,
        "\n\n",
        "event: response.output_item.added\n",
        r#"data: {"type":"response.output_item.added","sequence_number":17,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"in_progress","arguments":"","call_id":"call_Xyz","name":"get_weather"}}"#,
        "\n\n",
        "event: response.function_call_arguments.delta\n",
        r#"data: {"type":"response.function_call_arguments.delta","sequence_number":18,"item_id":"fc_1","output_index":2,"delta":"{\"city\":"}"#,
        "\n\n",
        "event: response.function_call_arguments.delta\n",
        r#"data: {"type":"response.function_call_arguments.delta","sequence_number":19,"item_id":"fc_1","output_index":2,"delta":"\"Paris\"}"}"#,
        "\n\n",
        "event: response.function_call_arguments.done\n",
        r#"data: {"type":"response.function_call_arguments.done","sequence_number":20,"item_id":"fc_1","output_index":2,"arguments":"{\"city\":\"Paris\"}"}"#,
        "\n\n",
        "event: response.output_item.done\n",
        r#"data: {"type":"response.output_item.done","sequence_number":21,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"Paris\"}","call_id":"call_Xyz","name":"get_weather"}}"#,
        "\n\n",
        "event: response.completed\n",
        r#"data: {"type":"response.completed","sequence_number":22,"response":{"id":"resp_1","object":"response","created_at":1756400000,"status":"completed","model":"gpt-5-2025-08-07","output":[],"usage":{"input_tokens":2100,"input_tokens_details":{"cached_tokens":2048},"output_tokens":320,"output_tokens_details":{"reasoning_tokens":256},"total_tokens":2420}}}"#,
        "\n\n",
    );

    #[test]
    fn decode_a_recorded_stream() {
        assert_eq!(
            decode_all(RECORDED_TOOL_STREAM),
            vec![
                Delta::Start {
                    id: "resp_1".into(),
                    model: "gpt-5-2025-08-07".into()
                },
                Delta::Thinking("**Plan**".into()),
                Delta::Thinking("\n\n".into()),
                Delta::Thinking("Call the tool.".into()),
                Delta::ThinkingSignature {
                    source: Some(Dialect::Responses),
                    signature: "gAAAAABfinal".into(),
                },
                Delta::Text("Let me ".into()),
                Delta::Text("check.".into()),
                Delta::ToolCallStart {
                    index: 0,
                    id: "call_Xyz".into(),
                    name: "get_weather".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "{\"city\":".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "\"Paris\"}".into()
                },
                Delta::Usage(Usage {
                    input_tokens: 52,
                    output_tokens: 320,
                    cache_read_tokens: 2048,
                    cache_creation_tokens: 0,
                    reasoning_tokens: 256,
                }),
                Delta::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[test]
    fn decode_streams_without_deltas_or_event_lines() {
        // A compatible server that sends whole items only, without `event:` lines, and ends
        // on a truncated answer.
        let raw = concat!(
            r#"data: {"type":"response.created","response":{"id":"resp_2","model":"qwen3"}}"#,
            "\n\n",
            r#"data: {"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning","id":"rs_2","summary":[],"content":[{"type":"reasoning_text","text":"Think."}]}}"#,
            "\n\n",
            r#"data: {"type":"response.output_item.done","output_index":1,"item":{"type":"message","id":"msg_2","role":"assistant","content":[{"type":"output_text","text":"Partial"}]}}"#,
            "\n\n",
            r#"data: {"type":"response.output_item.done","output_index":2,"item":{"type":"function_call","id":"fc_2","call_id":"c2","name":"f","arguments":"{}"}}"#,
            "\n\n",
            r#"data: {"type":"response.incomplete","response":{"incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":10,"output_tokens":16}}}"#,
            "\n\n",
            r#"data: {"type":"response.output_text.delta","delta":"after the end"}"#,
            "\n\n",
        );
        assert_eq!(
            decode_all(raw),
            vec![
                Delta::Start {
                    id: "resp_2".into(),
                    model: "qwen3".into()
                },
                Delta::Thinking("Think.".into()),
                Delta::Text("Partial".into()),
                Delta::ToolCallStart {
                    index: 0,
                    id: "c2".into(),
                    name: "f".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "{}".into()
                },
                Delta::Usage(Usage {
                    input_tokens: 10,
                    output_tokens: 16,
                    ..Usage::default()
                }),
                Delta::Stop(StopReason::MaxTokens),
            ]
        );
        // Arguments only in the `done` event; errors and garbage bring nothing.
        let raw = concat!(
            "event: response.output_item.added\n",
            r#"data: {"output_index":0,"item":{"type":"function_call","id":"fc_3","call_id":"c3","name":"g","arguments":""}}"#,
            "\n\n",
            "event: response.function_call_arguments.done\n",
            r#"data: {"output_index":0,"item_id":"fc_3","arguments":"{\"q\":1}"}"#,
            "\n\n",
            "event: response.output_item.done\n",
            r#"data: {"output_index":0,"item":{"type":"function_call","id":"fc_3","call_id":"c3","name":"g","arguments":"{\"q\":1}"}}"#,
            "\n\n",
            "event: response.output_text.delta\n",
            "data: {\"this is not\": json, malformed by mock-upstream\n\n",
            "event: error\n",
            r#"data: {"type":"error","code":"server_error","message":"boom","param":null}"#,
            "\n\n",
            "event: response.failed\n",
            r#"data: {"response":{"status":"failed","error":{"code":"server_error","message":"boom"}}}"#,
            "\n\n",
        );
        assert_eq!(
            decode_all(raw),
            vec![
                Delta::ToolCallStart {
                    index: 0,
                    id: "c3".into(),
                    name: "g".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "{\"q\":1}".into()
                },
            ]
        );
    }

    /// Frames parsed back: (`event:` name, data), checking that each data repeats its name as
    /// `type` and that sequence numbers count from `first`.
    fn parse_frames(frames: &[Bytes], first: u64) -> Vec<(String, Value)> {
        let named = named_frames(frames);
        assert_eq!(named.len(), frames.len(), "one event per frame");
        named
            .into_iter()
            .zip(first..)
            .map(|((name, mut data), sequence)| {
                assert_eq!(data["sequence_number"], json!(sequence), "{name}");
                if let Some(fields) = data.as_object_mut() {
                    fields.remove("type");
                    fields.remove("sequence_number");
                }
                (name, data)
            })
            .collect()
    }

    fn encode_all(deltas: &[Delta]) -> Vec<Bytes> {
        let mut encoder = StreamEncoder::new(false);
        let mut frames: Vec<Bytes> = deltas.iter().flat_map(|d| encoder.push(d)).collect();
        frames.extend(encoder.finish());
        frames
    }

    fn tool_answer_deltas() -> Vec<Delta> {
        vec![
            Delta::Start {
                id: "resp_abc".into(),
                model: "gpt-5".into(),
            },
            Delta::Thinking("Plan.".into()),
            Delta::ThinkingSignature {
                source: Some(Dialect::Responses),
                signature: "gAAAAABsig".into(),
            },
            Delta::Text("Hel".into()),
            Delta::Text("lo".into()),
            Delta::ToolCallStart {
                index: 0,
                id: "call_1".into(),
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
                input_tokens: 20,
                cache_read_tokens: 100,
                ..Usage::default()
            }),
            Delta::Usage(Usage {
                output_tokens: 30,
                reasoning_tokens: 12,
                ..Usage::default()
            }),
            Delta::Stop(StopReason::ToolUse),
        ]
    }

    #[test]
    fn encode_a_tool_answer_stream() {
        let in_progress = json!({
            "id": "resp_abc", "object": "response", "created_at": 0, "status": "in_progress",
            "background": false, "error": null, "incomplete_details": null, "instructions": null,
            "max_output_tokens": null, "metadata": {}, "model": "gpt-5", "output": [],
            "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "service_tier": "default", "store": false,
            "temperature": null, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": [], "top_p": null, "truncation": "disabled", "usage": null, "user": null
        });
        let reasoning = json!({"type": "reasoning", "id": "rs_resp_abc_0",
            "summary": [{"type": "summary_text", "text": "Plan."}], "encrypted_content": "gAAAAABsig"});
        let message = json!({"type": "message", "id": "msg_resp_abc_1", "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]});
        let function_call = json!({"type": "function_call", "id": "fc_resp_abc_2", "call_id": "call_1",
            "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"});
        let mut completed = in_progress.clone();
        completed["status"] = json!("completed");
        completed["output"] = json!([reasoning, message, function_call]);
        completed["usage"] = json!({"input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
            "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 150});
        let (rs, msg, fc) = ("rs_resp_abc_0", "msg_resp_abc_1", "fc_resp_abc_2");
        let expected: Vec<(&str, Value)> = vec![
            ("response.created", json!({"response": in_progress})),
            ("response.in_progress", json!({"response": in_progress})),
            (
                "response.output_item.added",
                json!({"output_index": 0,
                "item": {"type": "reasoning", "id": rs, "summary": []}}),
            ),
            (
                "response.reasoning_summary_part.added",
                json!({"item_id": rs, "output_index": 0,
                "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
            ),
            (
                "response.reasoning_summary_text.delta",
                json!({"item_id": rs, "output_index": 0,
                "summary_index": 0, "delta": "Plan."}),
            ),
            (
                "response.reasoning_summary_text.done",
                json!({"item_id": rs, "output_index": 0,
                "summary_index": 0, "text": "Plan."}),
            ),
            (
                "response.reasoning_summary_part.done",
                json!({"item_id": rs, "output_index": 0,
                "summary_index": 0, "part": {"type": "summary_text", "text": "Plan."}}),
            ),
            (
                "response.output_item.done",
                json!({"output_index": 0, "item": reasoning}),
            ),
            (
                "response.output_item.added",
                json!({"output_index": 1, "item": {"type": "message",
                "id": msg, "status": "in_progress", "role": "assistant", "content": []}}),
            ),
            (
                "response.content_part.added",
                json!({"item_id": msg, "output_index": 1, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            ),
            (
                "response.output_text.delta",
                json!({"item_id": msg, "output_index": 1, "content_index": 0,
                "delta": "Hel", "logprobs": []}),
            ),
            (
                "response.output_text.delta",
                json!({"item_id": msg, "output_index": 1, "content_index": 0,
                "delta": "lo", "logprobs": []}),
            ),
            (
                "response.output_text.done",
                json!({"item_id": msg, "output_index": 1, "content_index": 0,
                "text": "Hello", "logprobs": []}),
            ),
            (
                "response.content_part.done",
                json!({"item_id": msg, "output_index": 1, "content_index": 0,
                "part": {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}}),
            ),
            (
                "response.output_item.done",
                json!({"output_index": 1, "item": message}),
            ),
            (
                "response.output_item.added",
                json!({"output_index": 2, "item": {"type": "function_call",
                "id": fc, "call_id": "call_1", "name": "get_weather", "arguments": "",
                "status": "in_progress"}}),
            ),
            (
                "response.function_call_arguments.delta",
                json!({"item_id": fc, "output_index": 2,
                "delta": "{\"city\":"}),
            ),
            (
                "response.function_call_arguments.delta",
                json!({"item_id": fc, "output_index": 2,
                "delta": "\"Paris\"}"}),
            ),
            (
                "response.function_call_arguments.done",
                json!({"item_id": fc, "output_index": 2,
                "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}),
            ),
            (
                "response.output_item.done",
                json!({"output_index": 2, "item": function_call}),
            ),
            ("response.completed", json!({"response": completed})),
        ];
        let frames = parse_frames(&encode_all(&tool_answer_deltas()), 0);
        assert_eq!(frames.len(), expected.len());
        for (i, ((name, data), (expected_name, expected_data))) in
            frames.iter().zip(&expected).enumerate()
        {
            assert_eq!(
                (name.as_str(), data),
                (*expected_name, expected_data),
                "frame {i}"
            );
        }
    }

    #[test]
    fn encode_streams_without_start_and_truncated() {
        // No Start: an id and model are made up; no Stop and no usage: completed, usage null.
        let frames = parse_frames(&encode_all(&[Delta::Text("Hi".into())]), 0);
        let names: Vec<&str> = frames.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let (_, last) = &frames[8];
        assert_eq!(last["response"]["id"], json!("resp_gw"));
        assert_eq!(last["response"]["model"], json!("unknown"));
        assert_eq!(last["response"]["usage"], Value::Null);
        assert_eq!(frames[2].1["item"]["id"], json!("msg_resp_gw_0"));

        // Truncated: `response.incomplete` with its reason.
        let frames = parse_frames(
            &encode_all(&[
                Delta::Start {
                    id: "chatcmpl-9x".into(),
                    model: "gpt-4o".into(),
                },
                Delta::Text("Once".into()),
                Delta::Stop(StopReason::MaxTokens),
                Delta::Usage(Usage {
                    input_tokens: 5,
                    output_tokens: 16,
                    ..Usage::default()
                }),
            ]),
            0,
        );
        let (name, last) = frames.last().expect("terminal event");
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["response"]["status"], json!("incomplete"));
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(last["response"]["usage"]["total_tokens"], json!(21));

        // Nothing at all still makes a valid, empty answer; finish is idempotent and the
        // encoder is deaf after it.
        let mut encoder = StreamEncoder::new(true);
        let frames = encoder.finish();
        let parsed = parse_frames(&frames, 0);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2].1["response"]["output"], json!([]));
        assert!(encoder.finish().is_empty());
        assert!(encoder.push(&Delta::Text("late".into())).is_empty());
    }

    #[test]
    fn encode_interleaved_calls_and_bare_signatures() {
        let frames = parse_frames(
            &encode_all(&[
                Delta::ThinkingSignature {
                    source: Some(Dialect::Responses),
                    signature: "EqQBsig".into(),
                },
                Delta::ToolCallStart {
                    index: 0,
                    id: "a".into(),
                    name: "f".into(),
                },
                Delta::ToolCallStart {
                    index: 1,
                    id: "b".into(),
                    name: "g".into(),
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: "{}".into(),
                },
                Delta::ToolCallStart {
                    index: 1,
                    id: "b".into(),
                    name: "g".into(),
                },
                Delta::ToolCallArguments {
                    index: 1,
                    fragment: "{\"x\":1}".into(),
                },
                Delta::ToolCallArguments {
                    index: 2,
                    fragment: "{}".into(),
                },
                Delta::Text(String::new()),
            ]),
            0,
        );
        let (_, last) = frames.last().expect("terminal event");
        assert_eq!(
            last["response"]["output"],
            json!([
                {"type": "reasoning", "id": "rs_resp_gw_0", "summary": [], "encrypted_content": "EqQBsig"},
                {"type": "function_call", "id": "fc_resp_gw_1", "call_id": "a", "name": "f",
                 "arguments": "{}", "status": "completed"},
                {"type": "function_call", "id": "fc_resp_gw_2", "call_id": "b", "name": "g",
                 "arguments": "{\"x\":1}", "status": "completed"},
                {"type": "function_call", "id": "fc_resp_gw_3", "call_id": "call_2", "name": "",
                 "arguments": "{}", "status": "completed"}
            ])
        );
        // A signature-only reasoning item has no summary-part events.
        assert!(
            frames
                .iter()
                .all(|(name, _)| !name.starts_with("response.reasoning_summary"))
        );
    }

    #[test]
    fn stream_round_trip() {
        let deltas = tool_answer_deltas();
        let frames = encode_all(&deltas);
        let raw: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        let decoded = decode_all(std::str::from_utf8(&raw).expect("UTF-8"));
        // Usage reports merge into one; everything else comes back as it went.
        let mut expected = deltas;
        expected.retain(|d| !matches!(d, Delta::Usage(_)));
        expected.insert(
            expected.len() - 1,
            Delta::Usage(Usage {
                input_tokens: 20,
                output_tokens: 30,
                cache_read_tokens: 100,
                cache_creation_tokens: 0,
                reasoning_tokens: 12,
            }),
        );
        assert_eq!(decoded, expected);
    }
}
