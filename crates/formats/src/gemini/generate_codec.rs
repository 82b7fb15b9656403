//! The Gemini codec: `generateContent` bodies, answers and `alt=sse` streams to and from the
//! neutral model in [`crate::ir`].
//!
//! What is kept (both directions):
//! - `systemInstruction.parts[].text` ↔ [`ir::Request::system`] (one string per part).
//! - `contents[]` ↔ messages: role `user` (or no role) ↔ [`Role::User`], `model` ↔
//!   [`Role::Assistant`]. Parts: `text`; `inlineData` with an `image/*` type ↔ [`Image::Base64`];
//!   `fileData` whose type (given, or read from the URI's extension) is `image/*` ↔
//!   [`Image::Url`]; `functionCall` ↔ [`Part::ToolCall`]; `functionResponse` ↔
//!   [`Part::ToolResult`]; `thought: true` parts ↔ [`Part::Thinking`] with their
//!   `thoughtSignature`. A signature on any other part becomes a text-less [`Thinking`] just
//!   before it, and the encoder puts such a signature back on the part that follows it.
//! - Joined on decode: consecutive contents of one role make one message (the google-genai SDK's
//!   chat records every streamed chunk as a content of its own), and a thought part continues an
//!   unsigned thought part just before it (a streamed thought comes in pieces, the signature on
//!   the last one, covering the whole text). Signatures are read with
//!   [`crate::signature::unwrap`]: one marked by this gateway with another issuer is that
//!   issuer's (written for a Gemini client as base64 of the marked form, which the SDK's bytes
//!   field accepts), kept as written; Gemini's own are read in base64's standard alphabet (the SDK
//!   writes back URL-safe, `-_`, what it received standard, `+/`; Gemini accepts both).
//! - Gemini 3 and later refuse a model turn whose first function call has no thought signature;
//!   a call converted from another model's answer has none, so for those models (by upstream
//!   name) it carries Google's documented placeholder `skip_thought_signature_validator`.
//! - `tools[].functionDeclarations[]` ↔ tools. Decoded `parameters` (Gemini's OpenAPI subset) get
//!   their `type` names lower-cased so they are JSON Schema; `parametersJsonSchema` is taken as
//!   is; a function without either gets the empty object schema. The encoder always sends
//!   `parametersJsonSchema`, which takes full JSON Schema (`additionalProperties`, `$ref`…) as
//!   OpenAI and Anthropic clients write it, where `parameters` would reject those keywords.
//! - `toolConfig.functionCallingConfig`: `AUTO` ↔ [`ToolChoice::Auto`], `NONE` ↔
//!   [`ToolChoice::None`], `ANY` ↔ [`ToolChoice::Required`], `ANY` with one
//!   `allowedFunctionNames` ↔ [`ToolChoice::Tool`]; no mode = the default (`None`).
//! - `generationConfig`: `maxOutputTokens`, `temperature`, `topP`, `topK`, `stopSequences`;
//!   `responseMimeType: application/json` ↔ [`ResponseFormat::JsonObject`], with
//!   `responseSchema`/`responseJsonSchema` ↔ [`ResponseFormat::JsonSchema`] (Gemini has no
//!   schema name: decoded as `response`, dropped on encode; the encoder sends
//!   `responseJsonSchema`); `thinkingConfig` ↔ [`Reasoning`]: `thinkingBudget` n ≥ 0 ↔ a budget
//!   of n (0 = no thinking), -1 (dynamic) or no budget ↔ neither budget nor effort,
//!   `thinkingLevel` → an effort. The encoder sends a budget (every thinking Gemini model takes
//!   one; `thinkingLevel` only Gemini 3), from the effort through
//!   [`Reasoning::budget_for_effort`] when there is no budget (`none` → 0), and
//!   `includeThoughts: true` unless the budget is 0, because clients of the other dialects get
//!   their thinking blocks back.
//! - OpenAI's `strict` ([`ir::Tool::strict`], and that of [`ResponseFormat::JsonSchema`]) has no
//!   Gemini counterpart in function declarations or `generationConfig`: it is ignored on encode
//!   and false on decode.
//!
//! Tool-call ids: Gemini's `functionCall.id` is optional and rarely sent. A call without one gets
//! `call_<n>`, n its ordinal among the conversation's calls; in an answer `call_<responseId>_<n>`,
//! so calls of successive answers never share an id (Anthropic rejects duplicates). A
//! `functionResponse` without an id answers the oldest unanswered call with its name, and is
//! refused if there is none. The encoder always sends ids (the Developer API accepts them and
//! matches on them), and finds a tool result's function name through the earlier call with the
//! same id (refused if there is none).
//!
//! Tool results: `functionResponse.response` is an object. Following Google's convention
//! ("use `output` for the function output and `error` for error details"), a result's text
//! (its text parts joined with newlines) is sent as `{"output": text}`, or `{"error": text}` when
//! [`ToolResult::is_error`]. Decoding is the inverse; `{"content": text}` is read like `output`;
//! any other object becomes its JSON text. Images in tool results are refused both ways
//! (`functionResponse.parts`).
//!
//! Ignored on decode, because they do not change the answer: `model` (the URL names the model),
//! `labels` (billing labels), `systemInstruction.role`, `inlineData/fileData.displayName`, a
//! function declaration's `response`/`responseJsonSchema` (what the function returns: its
//! result reaches the model anyway; the Python SDK adds them to every annotated function),
//! `thinkingConfig.includeThoughts` (whether thoughts are shown: the answer's thinking parts are
//! carried either way and the client's encoder decides), `candidateCount: 1`,
//! `responseModalities: ["TEXT"]`, and `safetySettings` whose thresholds only relax Gemini's own
//! filter (`BLOCK_NONE`, `OFF`, unspecified): other providers do not run that filter at all.
//!
//! Refused on decode (each names its field): any unknown field; `cachedContent`; tools other
//! than function declarations (`googleSearch`, `codeExecution`, `urlContext`…);
//! `toolConfig.retrievalConfig`; `allowedFunctionNames` other than one name with mode `ANY`;
//! mode `VALIDATED`; `candidateCount` > 1; any other `generationConfig` field (`seed`,
//! `presencePenalty`, `frequencyPenalty`, `responseLogprobs`, `speechConfig`, `mediaResolution`,
//! non-text `responseModalities`…); a schema without `responseMimeType: application/json`;
//! stricter `safetySettings` thresholds (a filter no other provider would apply); non-image
//! `inlineData`/`fileData`, `executableCode`, `codeExecutionResult`, `videoMetadata`; a part
//! with two kinds of data; images in model turns, calls in user turns, results in model turns.
//!
//! Refused on encode: a tool result with no earlier call of its id, or with an image or a
//! non-text part; tool-call arguments that are not an object; an unknown reasoning effort; a
//! `data:` image URL that is not base64; one tool call per turn
//! ([`ir::Request::parallel_tool_calls`] `Some(false)`, which Codex always sends) when the model
//! may call a tool. Gemini has no switch for it, and it does answer with several `functionCall`
//! parts in one turn when it sees independent calls to make (Google's "parallel function
//! calling", which needs no opt-in), so dropping the setting would let through an answer the
//! client asked never to get — and a client that asks may handle only one call per turn. Without
//! tools, or with [`ToolChoice::None`] (mode `NONE`), no call is made at all: the setting holds
//! by itself and is left out. Decoding never sets it (Gemini cannot ask for it). Dropped on
//! encode: a [`Thinking`] with neither text nor
//! signature (it carries nothing), and in a request any signature Gemini did not issue
//! ([`ir::Thinking::source`]; Gemini rejects them: "Corrupted thought signature") or that is
//! not base64 (`thoughtSignature` is bytes); Gemini 2.5 accepts turns without signatures. A
//! Gemini signature lets the model resume its reasoning. In an answer for a Gemini client,
//! another provider's signature is written marked with its issuer (`swy1.<tag>.…`, see
//! [`crate::signature`]) so it comes back recognisable; Gemini's own only when base64.
//!
//! Answers: one candidate (more is refused). `finishReason` `STOP` is [`StopReason::ToolUse`] when
//! the answer calls a tool (Gemini says `STOP` then) and [`StopReason::EndTurn`] otherwise;
//! `MAX_TOKENS` ↔ [`StopReason::MaxTokens`]; `SAFETY`, `RECITATION`, `PROHIBITED_CONTENT`,
//! `BLOCKLIST`, `SPII` and the image filters → [`StopReason::ContentFilter`] (encoded `SAFETY`);
//! a blocked prompt (no candidate, `promptFeedback.blockReason`) → content filter; others are
//! [`StopReason::Other`]. Gemini has no stop-sequence reason: [`StopReason::StopSequence`] is
//! encoded `STOP`. An answer's images and code-execution parts are refused (the stream decoder,
//! which cannot refuse, skips them). Usage goes through
//! [`super::generate::usage_from_response`] and [`super::generate::usage_metadata`]: a cache
//! write has no Gemini field and is reported as prompt.
//!
//! Streams: every event is a whole `GenerateContentResponse` in a `data:` line, with no `event:`
//! line and no terminator (the google-genai SDK parses each line after `data: ` as JSON). The
//! encoder sends text and thinking as they come (a signature as a text-less thought part of its
//! own), and tool calls whole (Gemini never splits a call): their argument fragments are held
//! until text or thinking follows them or the stream finishes;
//! the last event carries the held calls, the `finishReason` (`STOP` when no stop reason came)
//! and the `usageMetadata`. The decoder emits `Start` on the first event (`msg_gw` / `unknown`
//! when the upstream names neither), each part as deltas, a tool call as its start plus its
//! whole arguments, usage whenever it changes, and `Stop` on the first `finishReason`.
//!
//! Decoding reads field names in Gemini's JSON spelling (`inlineData`) and in their proto
//! spelling (`inline_data`), as Google's API accepts both; encoding writes the JSON spelling.

use crate::json_field::{array, boolean, number, object, string};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::generate::{usage_from_response, usage_metadata};
use crate::body::is_error_object;
use crate::dialect::Dialect;
use crate::ir::{
    self, Delta, Image, Message, Part, Reasoning, ResponseFormat, Role, StopReason, Thinking, Tool,
    ToolCall, ToolChoice, ToolResult, Unsupported,
};
use crate::signature;
use crate::sse::{self, SseEvent};
use crate::usage::Usage;

type Object = Map<String, Value>;

/// The response id used when the upstream sent none (and for streams that never said `Start`).
const FALLBACK_ID: &str = "msg_gw";
/// The model named when the upstream named none.
const FALLBACK_MODEL: &str = "unknown";
/// The schema name of a decoded [`ResponseFormat::JsonSchema`]: Gemini's schemas are nameless.
const SCHEMA_NAME: &str = "response";
/// Finish reasons that Gemini defines and that carry through [`StopReason::Other`] unchanged;
/// any other `Other` is encoded `OTHER`, so a Gemini client never meets an unknown enum value.
const GEMINI_OTHER_REASONS: [&str; 5] = [
    "LANGUAGE",
    "OTHER",
    "MALFORMED_FUNCTION_CALL",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
];

// ---------------------------------------------------------------------------------------------
// Reading Gemini JSON
// ---------------------------------------------------------------------------------------------

/// The JSON spelling of a field name: `inline_data` → `inlineData`. Names starting with `_`
/// (`_responseJsonSchema`) are kept as they are.
fn camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') || key.starts_with('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A field by its JSON name, or its proto (snake_case) spelling; `null` counts as absent, as in
/// proto JSON.
fn field<'a>(obj: &'a Object, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|value| !value.is_null()).or_else(|| {
        obj.iter()
            .find(|(key, value)| !value.is_null() && key.as_str() != name && camel(key) == name)
            .map(|(_, value)| value)
    })
}

/// Refuses the first non-null field whose name is not in `known`, naming it.
fn known_fields(obj: &Object, path: &str, known: &[&str]) -> Result<(), Unsupported> {
    for (key, value) in obj {
        if !value.is_null() && !known.contains(&camel(key).as_ref()) {
            return Err(Unsupported::new(join(path, key)));
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn malformed(path: &str, expected: &str) -> Unsupported {
    Unsupported::new(format!("{path} (not {expected})"))
}

/// An integer, also written as `40.0` (proto JSON allows it).
fn integer(value: &Value, path: &str) -> Result<i64, Unsupported> {
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                // Exact: the value is integral and well inside i64's range.
                .map(|f| f as i64)
        })
        .ok_or_else(|| malformed(path, "an integer"))
}

fn unsigned(value: &Value, path: &str) -> Result<u64, Unsupported> {
    u64::try_from(integer(value, path)?).map_err(|_| malformed(path, "a non-negative integer"))
}

/// An optional field read with `read`; the error names `path.name`.
fn opt<'a, T>(
    obj: &'a Object,
    path: &str,
    name: &str,
    read: impl FnOnce(&'a Value, &str) -> Result<T, Unsupported>,
) -> Result<Option<T>, Unsupported> {
    field(obj, name)
        .map(|value| read(value, &join(path, name)))
        .transpose()
}

/// A required field read with `read`.
fn required<'a, T>(
    obj: &'a Object,
    path: &str,
    name: &str,
    read: impl FnOnce(&'a Value, &str) -> Result<T, Unsupported>,
) -> Result<T, Unsupported> {
    opt(obj, path, name, read)?
        .ok_or_else(|| Unsupported::new(format!("{} (missing)", join(path, name))))
}

// ---------------------------------------------------------------------------------------------
// Tool-call ids
// ---------------------------------------------------------------------------------------------

/// Gives calls without an id a generated one and matches results without an id to their call.
#[derive(Debug)]
struct CallIds {
    /// `call_` in a request, `call_<responseId>_` in an answer.
    prefix: String,
    /// Calls seen so far (the next generated id's ordinal).
    seen: usize,
    /// Calls not answered yet, oldest first: (id, function name).
    unanswered: Vec<(String, String)>,
}

impl CallIds {
    fn new(prefix: String) -> Self {
        Self {
            prefix,
            seen: 0,
            unanswered: Vec::new(),
        }
    }

    /// Ids for the calls of one answer: the response id keeps them apart from the calls of other
    /// answers in the same conversation. Only characters every dialect accepts in an id are used.
    fn for_answer(response_id: Option<&str>) -> Self {
        let safe: String = response_id
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if safe.is_empty() {
            Self::new("call_".to_owned())
        } else {
            Self::new(format!("call_{safe}_"))
        }
    }

    /// The id of a call: its own, or the next generated one.
    fn call(&mut self, explicit: Option<&str>, name: &str) -> String {
        let ordinal = self.seen;
        self.seen += 1;
        let id = explicit.map_or_else(|| format!("{}{ordinal}", self.prefix), str::to_owned);
        self.unanswered.push((id.clone(), name.to_owned()));
        id
    }

    /// The id of the call a result answers: its own, or the oldest unanswered call of `name`.
    fn answer(&mut self, explicit: Option<&str>, name: &str) -> Option<String> {
        if let Some(id) = explicit {
            self.unanswered.retain(|(call, _)| call != id);
            return Some(id.to_owned());
        }
        let pos = self.unanswered.iter().position(|(_, n)| n == name)?;
        Some(self.unanswered.remove(pos).0)
    }
}

// ---------------------------------------------------------------------------------------------
// decode_request
// ---------------------------------------------------------------------------------------------

/// Client body (Gemini) -> neutral request. Refuses (Err) any field or part the neutral model
/// cannot carry, naming it; ignores only the fields listed in the module documentation.
/// `stream` is left false: Gemini says it in the URL path, which the caller has.
///
/// # Errors
/// [`Unsupported`] naming the first field that cannot be carried over.
pub fn decode_request(body: &Map<String, Value>) -> Result<ir::Request, Unsupported> {
    known_fields(
        body,
        "",
        &[
            "contents",
            "systemInstruction",
            "tools",
            "toolConfig",
            "generationConfig",
            "safetySettings",
            "cachedContent",
            "model",
            "labels",
        ],
    )?;
    if field(body, "cachedContent").is_some() {
        return Err(Unsupported::new(
            "cachedContent (context cached at this provider)",
        ));
    }
    let mut req = ir::Request::default();
    if let Some(system) = field(body, "systemInstruction") {
        req.system = decode_system(system)?;
    }
    let mut ids = CallIds::new("call_".to_owned());
    let mut open_thought = false;
    for (i, content) in opt(body, "", "contents", array)?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("contents[{i}]");
        decode_content(
            content,
            &path,
            &mut ids,
            &mut req.messages,
            &mut open_thought,
        )?;
    }
    if let Some(tools) = field(body, "tools") {
        req.tools = decode_tools(tools)?;
    }
    if let Some(config) = field(body, "toolConfig") {
        req.tool_choice = decode_tool_config(config)?;
    }
    if let Some(config) = field(body, "generationConfig") {
        decode_generation_config(config, &mut req)?;
    }
    if let Some(settings) = field(body, "safetySettings") {
        check_safety_settings(settings)?;
    }
    Ok(req)
}

fn decode_system(value: &Value) -> Result<Vec<String>, Unsupported> {
    const PATH: &str = "systemInstruction";
    if let Value::String(text) = value {
        return Ok(vec![text.clone()]);
    }
    let obj = object(value, PATH)?;
    known_fields(obj, PATH, &["parts", "role"])?;
    let parts = opt(obj, PATH, "parts", array)?.unwrap_or_default();
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let path = format!("{PATH}.parts[{j}]");
            let part = object(part, &path)?;
            known_fields(part, &path, &["text"])?;
            Ok(required(part, &path, "text", string)?.to_owned())
        })
        .collect()
}

/// Decodes one content into `messages`: a content of the same role as the previous one joins
/// its message. The google-genai SDK's chat records every streamed chunk as a content of its
/// own; joined, the history is one turn per speaker, as every other dialect wants it.
/// `open_thought`: the last part decoded is a thought without a signature (see [`decode_part`]).
fn decode_content(
    value: &Value,
    path: &str,
    ids: &mut CallIds,
    messages: &mut Vec<Message>,
    open_thought: &mut bool,
) -> Result<(), Unsupported> {
    let obj = object(value, path)?;
    known_fields(obj, path, &["role", "parts"])?;
    let role = match opt(obj, path, "role", string)? {
        None | Some("user") => Role::User,
        Some("model") => Role::Assistant,
        Some(other) => {
            return Err(Unsupported::new(format!("{path}.role ({other})")));
        }
    };
    let mut content = match messages.pop() {
        Some(last) if last.role == role => last.content,
        last => {
            messages.extend(last);
            *open_thought = false;
            Vec::new()
        }
    };
    let parts = opt(obj, path, "parts", array)?.unwrap_or_default();
    for (j, part) in parts.iter().enumerate() {
        let part_path = format!("{path}.parts[{j}]");
        decode_part(part, role, &part_path, ids, &mut content, open_thought)?;
    }
    messages.push(Message { role, content });
    Ok(())
}

/// The kinds of data a part may hold; Gemini allows exactly one per part.
const PART_DATA: [&str; 5] = [
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
];

/// Decodes one part (of a turn or of an answer) into `out`: zero parts (an empty one), one, or
/// two (a signature carried by a non-thought part becomes a text-less thinking block before it).
///
/// A thought part that follows a thought part without a signature continues it (its text is
/// appended, its signature taken): a streamed thought arrives in pieces, with the signature on
/// the last, and the signature covers the whole text. `open_thought` says whether the last part
/// decoded is such an unsigned thought.
fn decode_part(
    value: &Value,
    role: Role,
    path: &str,
    ids: &mut CallIds,
    out: &mut Vec<Part>,
    open_thought: &mut bool,
) -> Result<(), Unsupported> {
    let obj = object(value, path)?;
    let mut known = PART_DATA.to_vec();
    known.extend(["thought", "thoughtSignature"]);
    known_fields(obj, path, &known)?;
    let thought = opt(obj, path, "thought", boolean)?.unwrap_or(false);
    let signature = opt(obj, path, "thoughtSignature", string)?.map(read_signature);
    let mut kinds = PART_DATA.iter().filter(|kind| field(obj, kind).is_some());
    let kind = kinds.next().copied();
    if let Some(second) = kinds.next() {
        return Err(Unsupported::new(format!(
            "{path}.{second} (a second kind of data in one part)"
        )));
    }

    if thought {
        if let Some(kind) = kind.filter(|kind| *kind != "text") {
            return Err(Unsupported::new(format!(
                "{path}.{kind} (marked as thought)"
            )));
        }
        let text = opt(obj, path, "text", string)?.unwrap_or("");
        let signed = signature.is_some();
        match out.last_mut() {
            Some(Part::Thinking(previous)) if *open_thought => {
                previous.text.push_str(text);
                let (source, signature) = signature.unzip();
                (previous.source, previous.signature) = (source.flatten(), signature);
            }
            _ => {
                let (source, signature) = signature.unzip();
                out.push(Part::Thinking(Thinking {
                    text: text.to_owned(),
                    signature,
                    source: source.flatten(),
                }));
            }
        }
        *open_thought = !signed;
        return Ok(());
    }
    *open_thought = false;
    let signed = signature.is_some();
    if let Some((source, signature)) = signature {
        out.push(Part::Thinking(Thinking {
            text: String::new(),
            signature: Some(signature),
            source,
        }));
    }
    let Some(kind) = kind else {
        return Ok(());
    };
    let data = required(obj, path, kind, |value, _| Ok(value))?;
    let data_path = join(path, kind);
    let wrong_turn = |turn: &str| Unsupported::new(format!("{data_path} (in a {turn} turn)"));
    match (kind, role) {
        ("text", _) => {
            let text = string(data, &data_path)?;
            // Gemini's closing `{"text": "", "thoughtSignature": …}`: the signature is the content.
            if !(text.is_empty() && signed) {
                out.push(Part::Text(text.to_owned()));
            }
        }
        ("inlineData", Role::User) => out.push(Part::Image(decode_inline_data(data, &data_path)?)),
        ("fileData", Role::User) => out.push(Part::Image(decode_file_data(data, &data_path)?)),
        ("functionCall", Role::Assistant) => {
            out.push(Part::ToolCall(decode_function_call(data, &data_path, ids)?));
        }
        ("functionResponse", Role::User) => {
            out.push(Part::ToolResult(decode_function_response(
                data, &data_path, ids,
            )?));
        }
        ("functionResponse" | "inlineData" | "fileData", Role::Assistant) => {
            return Err(wrong_turn("model"));
        }
        _ => return Err(wrong_turn("user")),
    }
    Ok(())
}

/// The placeholder Google documents for function calls Gemini did not produce itself (history
/// from another model): it tells a model that validates call signatures to skip the check.
const SKIP_SIGNATURE_VALIDATION: &str = "skip_thought_signature_validator";

/// Gemini 3 and later refuse a model turn whose function call lacks its thought signature
/// (400 "Function call … is missing a thought_signature"); earlier models do not check.
fn validates_call_signatures(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    name.strip_prefix("gemini-")
        .and_then(|rest| {
            let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
            major.parse::<u32>().ok()
        })
        .is_some_and(|major| major >= 3)
}

/// The first function call of a model turn must carry a signature (the later ones of the same
/// turn need none): a call converted from another dialect has none, so it gets the placeholder.
fn vouch_for_unsigned_calls(parts: &mut [Value]) {
    if let Some(first_call) = parts.iter_mut().find(|p| p.get("functionCall").is_some())
        && let Some(part) = first_call.as_object_mut()
        && !part.contains_key("thoughtSignature")
    {
        part.insert(
            "thoughtSignature".into(),
            Value::String(SKIP_SIGNATURE_VALIDATION.into()),
        );
    }
}

/// A signature read from a client or from Gemini: its issuer (see [`crate::signature`]) and the
/// signature, in base64's standard alphabet when Gemini issued it.
fn read_signature(raw: &str) -> (Option<Dialect>, String) {
    // A foreign signature written for a Gemini client: base64 of the marked form (the SDK may
    // have turned it URL-safe on the way back).
    let standard = standard_base64(raw);
    if let Ok(bytes) = STANDARD_NO_PAD.decode(standard.trim_end_matches('='))
        && let Ok(marked) = String::from_utf8(bytes)
        && let (Some(source), original) = signature::unwrap(&marked, Dialect::Gemini)
        && source != Dialect::Gemini
    {
        return (Some(source), original);
    }
    match signature::unwrap(raw, Dialect::Gemini) {
        (Some(Dialect::Gemini), gemini) => (Some(Dialect::Gemini), standard_base64(&gemini)),
        // Marked by the gateway: as it was issued, never re-encoded.
        foreign => foreign,
    }
}

/// A signature in base64's standard alphabet. The google-genai SDK holds signatures as bytes and
/// writes them back URL-safe (`-_`), which would corrupt a signature written in the standard
/// alphabet (`+/`; Gemini's own accepts both).
fn standard_base64(signature: &str) -> String {
    signature
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect()
}

fn decode_inline_data(value: &Value, path: &str) -> Result<Image, Unsupported> {
    let obj = object(value, path)?;
    known_fields(obj, path, &["mimeType", "data", "displayName"])?;
    let media_type = required(obj, path, "mimeType", string)?;
    if !is_image(media_type) {
        return Err(not_an_image(path, media_type));
    }
    Ok(Image::Base64 {
        media_type: media_type.to_owned(),
        data: required(obj, path, "data", string)?.to_owned(),
    })
}

fn decode_file_data(value: &Value, path: &str) -> Result<Image, Unsupported> {
    let obj = object(value, path)?;
    known_fields(obj, path, &["mimeType", "fileUri", "displayName"])?;
    let uri = required(obj, path, "fileUri", string)?;
    match opt(obj, path, "mimeType", string)?.or_else(|| image_type_of_uri(uri)) {
        Some(media_type) if is_image(media_type) => Ok(Image::Url(uri.to_owned())),
        Some(media_type) => Err(not_an_image(path, media_type)),
        None => Err(Unsupported::new(format!(
            "{path} (no mimeType, and the URI does not name an image)"
        ))),
    }
}

fn is_image(media_type: &str) -> bool {
    media_type
        .get(..6)
        .is_some_and(|head| head.eq_ignore_ascii_case("image/"))
}

fn not_an_image(path: &str, media_type: &str) -> Unsupported {
    Unsupported::new(format!("{path} ({media_type}: only images convert)"))
}

/// The image type a URI's extension names, if any (`…/cat.PNG?x=1` → `image/png`).
fn image_type_of_uri(uri: &str) -> Option<&'static str> {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let name = path.rsplit('/').next().unwrap_or(path);
    let (_, extension) = name.rsplit_once('.')?;
    match extension.to_ascii_lowercase().as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "heic" => Some("image/heic"),
        "heif" => Some("image/heif"),
        _ => None,
    }
}

fn decode_function_call(
    value: &Value,
    path: &str,
    ids: &mut CallIds,
) -> Result<ToolCall, Unsupported> {
    let obj = object(value, path)?;
    known_fields(obj, path, &["name", "args", "id"])?;
    let name = required(obj, path, "name", string)?;
    let explicit = opt(obj, path, "id", string)?;
    Ok(ToolCall {
        id: ids.call(explicit, name),
        name: name.to_owned(),
        // A call without arguments has `args` absent; the neutral model wants an object.
        arguments: field(obj, "args").cloned().unwrap_or_else(|| json!({})),
    })
}

fn decode_function_response(
    value: &Value,
    path: &str,
    ids: &mut CallIds,
) -> Result<ToolResult, Unsupported> {
    let obj = object(value, path)?;
    known_fields(obj, path, &["name", "response", "id", "parts"])?;
    if opt(obj, path, "parts", array)?.is_some_and(|parts| !parts.is_empty()) {
        return Err(Unsupported::new(format!(
            "{path}.parts (images in a tool result)"
        )));
    }
    let name = required(obj, path, "name", string)?;
    let explicit = opt(obj, path, "id", string)?;
    let call_id = ids.answer(explicit, name).ok_or_else(|| {
        Unsupported::new(format!(
            "{path} (answers no earlier functionCall named {name})"
        ))
    })?;
    let (content, is_error) = tool_result_content(field(obj, "response"));
    Ok(ToolResult {
        call_id,
        content,
        is_error,
    })
}

/// The text of a `functionResponse.response`: `{"output": x}` or `{"content": x}` is the
/// output `x`, `{"error": x}` an error `x`; anything else is its own JSON text.
fn tool_result_content(response: Option<&Value>) -> (Vec<Part>, bool) {
    fn text(value: &Value) -> Vec<Part> {
        vec![Part::Text(match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })]
    }
    let Some(response) = response else {
        return (Vec::new(), false);
    };
    if let Some(obj) = response.as_object().filter(|obj| obj.len() == 1) {
        if let Some(output) = obj.get("output").or_else(|| obj.get("content")) {
            return (text(output), false);
        }
        if let Some(error) = obj.get("error") {
            return (text(error), true);
        }
    }
    (text(response), false)
}

fn decode_tools(value: &Value) -> Result<Vec<Tool>, Unsupported> {
    let mut tools = Vec::new();
    for (i, tool) in array(value, "tools")?.iter().enumerate() {
        let path = format!("tools[{i}]");
        let obj = object(tool, &path)?;
        known_fields(obj, &path, &["functionDeclarations"])?;
        for (j, declaration) in opt(obj, &path, "functionDeclarations", array)?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            tools.push(decode_declaration(
                declaration,
                &format!("{path}.functionDeclarations[{j}]"),
            )?);
        }
    }
    Ok(tools)
}

fn decode_declaration(value: &Value, path: &str) -> Result<Tool, Unsupported> {
    let obj = object(value, path)?;
    // `response`/`responseJsonSchema` describe what the function returns (the Python SDK adds
    // them for every annotated function); the result itself reaches the model, so they are
    // ignored.
    known_fields(
        obj,
        path,
        &[
            "name",
            "description",
            "parameters",
            "parametersJsonSchema",
            "response",
            "responseJsonSchema",
        ],
    )?;
    let parameters = match (field(obj, "parameters"), field(obj, "parametersJsonSchema")) {
        (Some(_), Some(_)) => {
            return Err(Unsupported::new(format!(
                "{path}.parametersJsonSchema (beside parameters)"
            )));
        }
        (Some(schema), None) => openapi_to_json_schema(schema),
        (None, Some(schema)) => schema.clone(),
        (None, None) => json!({"type": "object", "properties": {}}),
    };
    Ok(Tool {
        name: required(obj, path, "name", string)?.to_owned(),
        description: opt(obj, path, "description", string)?.map(str::to_owned),
        parameters,
        // Gemini has no strict switch to decode.
        strict: false,
    })
}

/// Gemini's OpenAPI-subset schema as JSON Schema: the same keywords in their JSON spelling
/// (`max_items` → `maxItems`, as JSON Schema writes them), with the type names in lower case
/// (`OBJECT` → `object`), which is all the other dialects' validators need. Property names and
/// values (`enum`, `default`, `example`) are data and stay as they are.
fn openapi_to_json_schema(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let converted = obj
        .iter()
        .map(|(key, value)| {
            let key = camel(key);
            let value = match (key.as_ref(), value) {
                ("type", Value::String(name)) => Value::String(name.to_ascii_lowercase()),
                ("items", item) => openapi_to_json_schema(item),
                ("anyOf", Value::Array(options)) => {
                    Value::Array(options.iter().map(openapi_to_json_schema).collect())
                }
                ("properties", Value::Object(properties)) => Value::Object(
                    properties
                        .iter()
                        .map(|(name, property)| (name.clone(), openapi_to_json_schema(property)))
                        .collect(),
                ),
                (_, other) => other.clone(),
            };
            (key.into_owned(), value)
        })
        .collect();
    Value::Object(converted)
}

fn decode_tool_config(value: &Value) -> Result<Option<ToolChoice>, Unsupported> {
    const PATH: &str = "toolConfig";
    let obj = object(value, PATH)?;
    known_fields(obj, PATH, &["functionCallingConfig"])?;
    let Some(config) = field(obj, "functionCallingConfig") else {
        return Ok(None);
    };
    let path = "toolConfig.functionCallingConfig";
    let config = object(config, path)?;
    known_fields(config, path, &["mode", "allowedFunctionNames"])?;
    let mode = opt(config, path, "mode", string)?
        .unwrap_or("MODE_UNSPECIFIED")
        .to_ascii_uppercase();
    let names_path = format!("{path}.allowedFunctionNames");
    let names = opt(config, path, "allowedFunctionNames", array)?
        .unwrap_or_default()
        .iter()
        .map(|name| string(name, &names_path))
        .collect::<Result<Vec<_>, _>>()?;
    match (mode.as_str(), names.as_slice()) {
        ("NONE", _) => Ok(Some(ToolChoice::None)),
        ("MODE_UNSPECIFIED", []) => Ok(None),
        ("AUTO", []) => Ok(Some(ToolChoice::Auto)),
        ("ANY", []) => Ok(Some(ToolChoice::Required)),
        ("ANY", [name]) => Ok(Some(ToolChoice::Tool((*name).to_owned()))),
        ("ANY", _) => Err(Unsupported::new(format!(
            "{names_path} (more than one function)"
        ))),
        ("AUTO" | "MODE_UNSPECIFIED", _) => {
            Err(Unsupported::new(format!("{names_path} (with mode {mode})")))
        }
        (other, _) => Err(Unsupported::new(format!("{path}.mode ({other})"))),
    }
}

fn decode_generation_config(value: &Value, req: &mut ir::Request) -> Result<(), Unsupported> {
    const PATH: &str = "generationConfig";
    let obj = object(value, PATH)?;
    known_fields(
        obj,
        PATH,
        &[
            "maxOutputTokens",
            "temperature",
            "topP",
            "topK",
            "stopSequences",
            "candidateCount",
            "responseModalities",
            "responseMimeType",
            "responseSchema",
            "responseJsonSchema",
            "_responseJsonSchema",
            "thinkingConfig",
        ],
    )?;
    req.max_tokens = opt(obj, PATH, "maxOutputTokens", unsigned)?;
    req.temperature = opt(obj, PATH, "temperature", number)?;
    req.top_p = opt(obj, PATH, "topP", number)?;
    req.top_k = opt(obj, PATH, "topK", unsigned)?;
    let stop_path = format!("{PATH}.stopSequences");
    req.stop = opt(obj, PATH, "stopSequences", array)?
        .unwrap_or_default()
        .iter()
        .map(|stop| string(stop, &stop_path).map(str::to_owned))
        .collect::<Result<_, _>>()?;
    if opt(obj, PATH, "candidateCount", unsigned)?.is_some_and(|n| n > 1) {
        return Err(Unsupported::new(format!(
            "{PATH}.candidateCount (more than one candidate)"
        )));
    }
    let modalities_path = format!("{PATH}.responseModalities");
    for modality in opt(obj, PATH, "responseModalities", array)?.unwrap_or_default() {
        let modality = string(modality, &modalities_path)?;
        if !modality.eq_ignore_ascii_case("TEXT") {
            return Err(Unsupported::new(format!("{modalities_path} ({modality})")));
        }
    }
    if let Some(thinking) = field(obj, "thinkingConfig") {
        req.reasoning = Some(decode_thinking_config(thinking)?);
    }
    req.response_format = decode_response_format(obj)?;
    Ok(())
}

fn decode_thinking_config(value: &Value) -> Result<Reasoning, Unsupported> {
    const PATH: &str = "generationConfig.thinkingConfig";
    let obj = object(value, PATH)?;
    known_fields(
        obj,
        PATH,
        &["thinkingBudget", "includeThoughts", "thinkingLevel"],
    )?;
    // Read to validate its type; whether thoughts are shown is the client encoder's business.
    opt(obj, PATH, "includeThoughts", boolean)?;
    let budget_tokens = match opt(obj, PATH, "thinkingBudget", integer)? {
        // -1 asks for dynamic thinking: the model's default amount.
        None | Some(-1) => None,
        Some(budget) => Some(
            u64::try_from(budget)
                .map_err(|_| Unsupported::new(format!("{PATH}.thinkingBudget ({budget})")))?,
        ),
    };
    let effort = match opt(obj, PATH, "thinkingLevel", string)?
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("THINKING_LEVEL_UNSPECIFIED") => None,
        Some(level @ ("MINIMAL" | "LOW" | "MEDIUM" | "HIGH")) => Some(level.to_ascii_lowercase()),
        Some(other) => {
            return Err(Unsupported::new(format!("{PATH}.thinkingLevel ({other})")));
        }
    };
    Ok(Reasoning {
        effort,
        budget_tokens,
    })
}

fn decode_response_format(config: &Object) -> Result<Option<ResponseFormat>, Unsupported> {
    const PATH: &str = "generationConfig";
    let mut schemas = [
        "responseSchema",
        "responseJsonSchema",
        "_responseJsonSchema",
    ]
    .into_iter()
    .filter_map(|name| field(config, name).map(|schema| (name, schema)));
    let schema = schemas.next();
    if let Some((second, _)) = schemas.next() {
        return Err(Unsupported::new(format!(
            "{PATH}.{second} (a second response schema)"
        )));
    }
    let schema = schema.map(|(name, schema)| match name {
        "responseSchema" => openapi_to_json_schema(schema),
        _ => schema.clone(),
    });
    match (opt(config, PATH, "responseMimeType", string)?, schema) {
        (None | Some("text/plain"), None) => Ok(None),
        (Some("application/json"), None) => Ok(Some(ResponseFormat::JsonObject)),
        (Some("application/json"), Some(schema)) => Ok(Some(ResponseFormat::JsonSchema {
            name: SCHEMA_NAME.to_owned(),
            schema,
            // Gemini has no strict switch to decode.
            strict: false,
        })),
        (_, Some(_)) => Err(Unsupported::new(format!(
            "{PATH}.responseSchema (without responseMimeType application/json)"
        ))),
        (Some(other), None) => Err(Unsupported::new(format!(
            "{PATH}.responseMimeType ({other})"
        ))),
    }
}

/// Safety settings that only relax Gemini's own filter are ignored (no other provider runs it);
/// a stricter threshold asks for blocking that no other provider would do, so it is refused.
fn check_safety_settings(value: &Value) -> Result<(), Unsupported> {
    for (i, setting) in array(value, "safetySettings")?.iter().enumerate() {
        let path = format!("safetySettings[{i}]");
        let obj = object(setting, &path)?;
        known_fields(obj, &path, &["category", "threshold", "method"])?;
        match opt(obj, &path, "threshold", string)?
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("BLOCK_NONE" | "OFF" | "HARM_BLOCK_THRESHOLD_UNSPECIFIED") => {}
            Some(threshold) => {
                return Err(Unsupported::new(format!(
                    "{path}.threshold ({threshold}: a Gemini content filter)"
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// encode_request
// ---------------------------------------------------------------------------------------------

/// Neutral request -> `generateContent` body. The model goes in the upstream URL, so `_model`
/// is not used; `stream` neither (the URL's action says it).
///
/// # Errors
/// [`Unsupported`] for what Gemini cannot express (see the module documentation).
pub fn encode_request(req: &ir::Request, model: &str) -> Result<Map<String, Value>, Unsupported> {
    // Gemini may answer with several calls and cannot be told not to; a request that calls no
    // tool keeps the promise anyway.
    if req.parallel_tool_calls == Some(false)
        && !req.tools.is_empty()
        && req.tool_choice != Some(ToolChoice::None)
    {
        return Err(Unsupported::new(
            "parallel_tool_calls: false (Gemini cannot be held to one tool call per turn)",
        ));
    }
    let mut body = Map::new();
    if !req.system.is_empty() {
        let parts: Vec<Value> = req
            .system
            .iter()
            .map(|text| json!({"text": text}))
            .collect();
        body.insert("systemInstruction".into(), json!({ "parts": parts }));
    }
    let mut names = HashMap::new();
    let mut contents = Vec::with_capacity(req.messages.len());
    for (i, message) in req.messages.iter().enumerate() {
        let parts = encode_parts(
            &message.content,
            &format!("messages[{i}]"),
            &mut names,
            Policy::Refuse,
        )?;
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let mut parts = parts;
        if message.role == Role::Assistant && validates_call_signatures(model) {
            vouch_for_unsigned_calls(&mut parts);
        }
        contents.push(json!({"role": role, "parts": parts}));
    }
    body.insert("contents".into(), Value::Array(contents));
    if !req.tools.is_empty() {
        let declarations: Vec<Value> = req.tools.iter().map(encode_tool).collect();
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
    }
    if let Some(choice) = &req.tool_choice {
        body.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": encode_tool_choice(choice) }),
        );
    }
    let config = encode_generation_config(req)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(body)
}

/// What to do with a part Gemini cannot take: refuse the request, or (in an answer, which cannot
/// be refused any more) leave the part out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Refuse,
    Skip,
}

/// Encodes the parts of one turn or answer. `names` maps the call ids seen so far to their
/// function names, for the tool results that follow.
fn encode_parts(
    content: &[Part],
    path: &str,
    names: &mut HashMap<String, String>,
    policy: Policy,
) -> Result<Vec<Value>, Unsupported> {
    let mut parts = Vec::with_capacity(content.len());
    // A signature waiting for the part it belongs to (see the module documentation).
    let mut carried: Option<String> = None;
    for (j, part) in content.iter().enumerate() {
        let part_path = format!("{path}.content[{j}]");
        let mut encoded = match part {
            Part::Thinking(thinking) if thinking.text.is_empty() => {
                let next_takes_it =
                    matches!(content.get(j + 1), Some(Part::Text(_) | Part::ToolCall(_)));
                match outgoing_signature(thinking, policy) {
                    // Carries nothing.
                    None => continue,
                    Some(signature) if next_takes_it => {
                        carried = Some(signature);
                        continue;
                    }
                    Some(signature) => {
                        json!({"thought": true, "text": "", "thoughtSignature": signature})
                    }
                }
            }
            part => match encode_part(part, &part_path, names, policy) {
                Ok(encoded) => encoded,
                Err(_) if policy == Policy::Skip => continue,
                Err(refusal) => return Err(refusal),
            },
        };
        if let (Some(signature), Some(obj)) = (carried.take(), encoded.as_object_mut()) {
            obj.insert("thoughtSignature".into(), json!(signature));
        }
        parts.push(encoded);
    }
    Ok(parts)
}

/// The `thoughtSignature` of a thinking block. To Gemini (`Policy::Refuse`, a request): only
/// a signature Gemini issued (see [`crate::signature`]) that is base64. To a Gemini client
/// (`Policy::Skip`, an answer): Gemini's own when it is base64, another provider's marked with
/// its issuer, so it comes back recognisable on the client's next turn.
fn outgoing_signature(thinking: &Thinking, policy: Policy) -> Option<String> {
    let signature = thinking.signature.as_deref()?;
    match thinking.source {
        Some(Dialect::Gemini) => gemini_signature(signature).map(str::to_owned),
        _ if policy == Policy::Refuse => None,
        // A foreign signature carries the gateway's marker, which is not base64 — and the
        // google-genai SDK decodes `thoughtSignature` as base64 bytes. So the marked form is
        // written base64-encoded; `read_signature` recognises it when the client sends it back.
        Some(source) => Some(STANDARD.encode(signature::wrap(source, signature))),
        // Issuer unknown: written as it is when it can be Gemini's.
        None => gemini_signature(signature).map(str::to_owned),
    }
}

/// A signature Gemini can take: `thoughtSignature` is `bytes`, sent as base64 (standard or
/// URL-safe alphabet, padding optional), which Gemini and the google-genai SDK both decode. Any
/// other text cannot be a Gemini signature: sent, it would fail the request (or the SDK's
/// parsing of an answer), so it is dropped like a missing one, which Gemini 2.5 accepts.
fn gemini_signature(signature: &str) -> Option<&str> {
    let body = signature.trim_end_matches('=');
    let padding = signature.len() - body.len();
    let alphabet = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    // One character past a multiple of four is never whole base64.
    (!body.is_empty() && alphabet && padding <= 2 && body.len() % 4 != 1).then_some(signature)
}

/// One part that stands on its own (not a text-less thinking block).
fn encode_part(
    part: &Part,
    path: &str,
    names: &mut HashMap<String, String>,
    policy: Policy,
) -> Result<Value, Unsupported> {
    Ok(match part {
        Part::Text(text) => json!({ "text": text }),
        Part::Thinking(thinking) => {
            let mut thought = json!({"thought": true, "text": thinking.text});
            let signature = outgoing_signature(thinking, policy);
            if let (Some(signature), Some(obj)) = (signature, thought.as_object_mut()) {
                obj.insert("thoughtSignature".into(), json!(signature));
            }
            thought
        }
        Part::Image(image) => encode_image(image, path)?,
        Part::ToolCall(call) => {
            names.insert(call.id.clone(), call.name.clone());
            let args = match &call.arguments {
                Value::Object(_) => call.arguments.clone(),
                Value::Null => json!({}),
                _ if policy == Policy::Skip => json!({}),
                _ => {
                    return Err(Unsupported::new(format!(
                        "{path}.arguments (not a JSON object)"
                    )));
                }
            };
            json!({"functionCall": {"id": call.id, "name": call.name, "args": args}})
        }
        Part::ToolResult(result) => encode_tool_result(result, path, names)?,
    })
}

fn encode_image(image: &Image, path: &str) -> Result<Value, Unsupported> {
    Ok(match image {
        Image::Base64 { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        Image::Url(url) if url.starts_with("data:") => {
            let (media_type, data) = url
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(','))
                .and_then(|(header, data)| Some((header.strip_suffix(";base64")?, data)))
                .ok_or_else(|| Unsupported::new(format!("{path} (a data: URL not in base64)")))?;
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        Image::Url(url) => match image_type_of_uri(url) {
            Some(media_type) => json!({"fileData": {"mimeType": media_type, "fileUri": url}}),
            // The type is optional for Gemini; a wrong guess would be worse than none.
            None => json!({"fileData": {"fileUri": url}}),
        },
    })
}

fn encode_tool_result(
    result: &ToolResult,
    path: &str,
    names: &HashMap<String, String>,
) -> Result<Value, Unsupported> {
    let name = names.get(&result.call_id).ok_or_else(|| {
        Unsupported::new(format!(
            "{path} (the result of {}, which no earlier tool call has as its id)",
            result.call_id
        ))
    })?;
    let mut texts = Vec::with_capacity(result.content.len());
    for (k, part) in result.content.iter().enumerate() {
        match part {
            Part::Text(text) => texts.push(text.as_str()),
            Part::Image(_) => {
                return Err(Unsupported::new(format!(
                    "{path}.content[{k}] (an image in a tool result)"
                )));
            }
            _ => {
                return Err(Unsupported::new(format!(
                    "{path}.content[{k}] (not text, in a tool result)"
                )));
            }
        }
    }
    let text = texts.join("\n");
    let response = if result.is_error {
        json!({ "error": text })
    } else {
        json!({ "output": text })
    };
    Ok(json!({"functionResponse": {"id": result.call_id, "name": name, "response": response}}))
}

fn encode_tool(tool: &Tool) -> Value {
    let mut declaration = Map::new();
    declaration.insert("name".into(), json!(tool.name));
    if let Some(description) = &tool.description {
        declaration.insert("description".into(), json!(description));
    }
    if !tool.parameters.is_null() {
        declaration.insert("parametersJsonSchema".into(), tool.parameters.clone());
    }
    Value::Object(declaration)
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!({"mode": "AUTO"}),
        ToolChoice::None => json!({"mode": "NONE"}),
        ToolChoice::Required => json!({"mode": "ANY"}),
        ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
    }
}

fn encode_generation_config(req: &ir::Request) -> Result<Object, Unsupported> {
    let mut config = Map::new();
    if let Some(max) = req.max_tokens {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(temperature) = req.temperature {
        config.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = req.top_p {
        config.insert("topP".into(), json!(top_p));
    }
    if let Some(top_k) = req.top_k {
        config.insert("topK".into(), json!(top_k));
    }
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), json!(req.stop));
    }
    if let Some(reasoning) = &req.reasoning {
        config.insert("thinkingConfig".into(), encode_reasoning(reasoning)?);
    }
    match &req.response_format {
        None => {}
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    Ok(config)
}

fn encode_reasoning(reasoning: &Reasoning) -> Result<Value, Unsupported> {
    let budget = match (reasoning.budget_tokens, reasoning.effort.as_deref()) {
        (Some(budget), _) => Some(budget),
        (None, None) => None,
        (None, Some("none")) => Some(0),
        (None, Some(effort)) => Some(
            Reasoning::budget_for_effort(effort)
                .ok_or_else(|| Unsupported::new(format!("reasoning effort {effort}")))?,
        ),
    };
    let mut config = Map::new();
    if let Some(budget) = budget {
        config.insert("thinkingBudget".into(), json!(budget));
    }
    if budget != Some(0) {
        config.insert("includeThoughts".into(), json!(true));
    }
    Ok(Value::Object(config))
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// Upstream `generateContent` answer -> neutral answer, usage normalised.
///
/// # Errors
/// [`Unsupported`] for more than one candidate, or a part the neutral model cannot carry (an
/// image, executable code).
pub fn decode_response(body: &Value) -> Result<ir::Response, Unsupported> {
    let obj = object(body, "response")?;
    let response_id = opt(obj, "", "responseId", string)?;
    let model = opt(obj, "", "modelVersion", string)?.unwrap_or(FALLBACK_MODEL);
    let mut ids = CallIds::for_answer(response_id);
    let (content, stop_reason) = match opt(obj, "", "candidates", array)?.unwrap_or_default() {
        [] => (
            Vec::new(),
            prompt_blocked(obj).then_some(StopReason::ContentFilter),
        ),
        [candidate] => decode_candidate(candidate, &mut ids)?,
        _ => return Err(Unsupported::new("candidates (more than one)")),
    };
    Ok(ir::Response {
        id: response_id.unwrap_or(FALLBACK_ID).to_owned(),
        model: model.to_owned(),
        content,
        stop_reason,
        usage: usage_from_response(body).unwrap_or_default(),
    })
}

/// The prompt itself was blocked (`promptFeedback.blockReason`): no candidate comes.
fn prompt_blocked(obj: &Object) -> bool {
    field(obj, "promptFeedback")
        .and_then(Value::as_object)
        .and_then(|feedback| field(feedback, "blockReason"))
        .and_then(Value::as_str)
        .is_some_and(|reason| !reason.is_empty() && reason != "BLOCK_REASON_UNSPECIFIED")
}

fn decode_candidate(
    value: &Value,
    ids: &mut CallIds,
) -> Result<(Vec<Part>, Option<StopReason>), Unsupported> {
    const PATH: &str = "candidates[0]";
    let candidate = object(value, PATH)?;
    let mut content = Vec::new();
    // A candidate stopped by a filter before any output has no content at all.
    if let Some(turn) = opt(candidate, PATH, "content", object)? {
        let parts_path = format!("{PATH}.content");
        let parts = opt(turn, &parts_path, "parts", array)?.unwrap_or_default();
        let mut open_thought = false;
        for (j, part) in parts.iter().enumerate() {
            let path = format!("{parts_path}.parts[{j}]");
            let role = Role::Assistant;
            decode_part(part, role, &path, ids, &mut content, &mut open_thought)?;
        }
    }
    let calls_tool = content.iter().any(|part| matches!(part, Part::ToolCall(_)));
    let stop_reason = opt(candidate, PATH, "finishReason", string)?
        .and_then(|reason| decode_finish_reason(reason, calls_tool));
    Ok((content, stop_reason))
}

/// A Gemini `finishReason` in the neutral model; `calls_tool`: the answer has a function call.
fn decode_finish_reason(reason: &str, calls_tool: bool) -> Option<StopReason> {
    Some(match reason {
        "" | "FINISH_REASON_UNSPECIFIED" => return None,
        "STOP" if calls_tool => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY"
        | "RECITATION"
        | "PROHIBITED_CONTENT"
        | "BLOCKLIST"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    })
}

/// A neutral stop reason as a Gemini `finishReason`.
fn encode_finish_reason(reason: &StopReason) -> &str {
    match reason {
        StopReason::EndTurn | StopReason::ToolUse | StopReason::StopSequence => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter => "SAFETY",
        StopReason::Other(other) if GEMINI_OTHER_REASONS.contains(&other.as_str()) => other,
        StopReason::Other(_) => "OTHER",
    }
}

/// Neutral answer -> the `GenerateContentResponse` a Gemini client expects: one candidate with
/// the answer's parts, its finish reason, `usageMetadata`, `modelVersion` and `responseId`.
/// Parts Gemini cannot put in an answer (tool results) are left out.
#[must_use]
pub fn encode_response(resp: &ir::Response) -> Value {
    let parts = encode_parts(&resp.content, "content", &mut HashMap::new(), Policy::Skip)
        .unwrap_or_default();
    let finish = resp.stop_reason.as_ref().map(encode_finish_reason);
    let mut body = Map::new();
    body.insert("candidates".into(), json!([candidate(parts, finish)]));
    body.insert(
        "usageMetadata".into(),
        Value::Object(usage_metadata(&resp.usage)),
    );
    body.insert("modelVersion".into(), json!(resp.model));
    body.insert("responseId".into(), json!(resp.id));
    Value::Object(body)
}

/// One candidate: the model's turn, its finish reason if any, index 0.
fn candidate(parts: Vec<Value>, finish_reason: Option<&str>) -> Value {
    let mut candidate = Map::new();
    candidate.insert("content".into(), json!({"role": "model", "parts": parts}));
    if let Some(reason) = finish_reason {
        candidate.insert("finishReason".into(), json!(reason));
    }
    candidate.insert("index".into(), json!(0));
    Value::Object(candidate)
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// Upstream `alt=sse` events -> neutral deltas. Keeps the tool-call ordinal, whether a call was
/// seen (`STOP` then means tool use) and the last usage reported.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// `Start` was emitted.
    started: bool,
    /// Call ids of this answer (from the first event's `responseId`).
    ids: Option<CallIds>,
    /// Tool calls seen: the next call's index.
    calls: usize,
    /// `Stop` was emitted.
    stopped: bool,
    /// The usage last emitted; Gemini repeats it on every event.
    last_usage: Option<Usage>,
}

impl StreamDecoder {
    /// A decoder for one stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The deltas one event carries. Errors and malformed events carry none (the relay
    /// classifies them with [`super::generate::classify_stream_event`]); parts the neutral model
    /// cannot carry (images, executable code) are skipped.
    pub fn push(&mut self, event: &SseEvent) -> Vec<Delta> {
        let Ok(value) = serde_json::from_str::<Value>(event.data.trim()) else {
            return Vec::new();
        };
        let Some(obj) = value.as_object().filter(|_| !is_error_object(&value)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let response_id = field(obj, "responseId").and_then(Value::as_str);
        if !self.started {
            self.started = true;
            let model = field(obj, "modelVersion").and_then(Value::as_str);
            out.push(Delta::Start {
                id: response_id.unwrap_or(FALLBACK_ID).to_owned(),
                model: model.unwrap_or(FALLBACK_MODEL).to_owned(),
            });
        }
        let ids = self
            .ids
            .get_or_insert_with(|| CallIds::for_answer(response_id));

        let mut finish = None;
        let candidates = field(obj, "candidates").and_then(Value::as_array);
        // Only the first candidate: more are refused on encode.
        for candidate in candidates
            .into_iter()
            .flatten()
            .filter(|candidate| candidate.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            let parts = candidate
                .get("content")
                .and_then(|content| content.get("parts"))
                .and_then(Value::as_array);
            for part in parts.into_iter().flatten().filter_map(Value::as_object) {
                part_deltas(part, ids, &mut self.calls, &mut out);
            }
            finish = finish.or_else(|| candidate.get("finishReason").and_then(Value::as_str));
        }

        if let Some(usage) = usage_from_response(&value)
            && self.last_usage != Some(usage)
        {
            self.last_usage = Some(usage);
            out.push(Delta::Usage(usage));
        }
        let stop = match finish {
            Some(reason) => decode_finish_reason(reason, self.calls > 0),
            None if candidates.is_none_or(Vec::is_empty) && prompt_blocked(obj) => {
                Some(StopReason::ContentFilter)
            }
            None => None,
        };
        if let Some(stop) = stop
            && !self.stopped
        {
            self.stopped = true;
            out.push(Delta::Stop(stop));
        }
        out
    }
}

/// The deltas of one streamed part.
fn part_deltas(part: &Object, ids: &mut CallIds, calls: &mut usize, out: &mut Vec<Delta>) {
    let text = field(part, "text").and_then(Value::as_str).unwrap_or("");
    let signature = field(part, "thoughtSignature")
        .and_then(Value::as_str)
        .map(read_signature)
        .map(|(source, signature)| Delta::ThinkingSignature { source, signature });
    if field(part, "thought").and_then(Value::as_bool) == Some(true) {
        if !text.is_empty() {
            out.push(Delta::Thinking(text.to_owned()));
        }
        out.extend(signature);
        return;
    }
    out.extend(signature);
    if !text.is_empty() {
        out.push(Delta::Text(text.to_owned()));
    }
    if let Some(call) = field(part, "functionCall").and_then(Value::as_object) {
        let name = field(call, "name").and_then(Value::as_str).unwrap_or("");
        let explicit = field(call, "id").and_then(Value::as_str);
        let index = *calls;
        *calls += 1;
        out.push(Delta::ToolCallStart {
            index,
            id: ids.call(explicit, name),
            name: name.to_owned(),
        });
        let args = field(call, "args").map_or_else(|| "{}".to_owned(), Value::to_string);
        out.push(Delta::ToolCallArguments {
            index,
            fragment: args,
        });
    }
}

/// Neutral deltas -> `alt=sse` frames for a Gemini client.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    /// The response id from `Start` ([`FALLBACK_ID`] without one).
    id: Option<String>,
    /// The model from `Start` ([`FALLBACK_MODEL`] without one).
    model: Option<String>,
    /// Tool calls whose arguments are still arriving, by index.
    calls: BTreeMap<usize, PendingCall>,
    /// Usage so far, merged.
    usage: Usage,
    /// The stop reason, sent in the last event.
    stop: Option<StopReason>,
    /// The last event was sent.
    finished: bool,
}

/// A tool call being assembled from its fragments.
#[derive(Debug, Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

impl StreamEncoder {
    /// An encoder for one stream; `include_usage` is OpenAI chat's and is ignored (every Gemini
    /// stream ends with its usage).
    #[must_use]
    pub fn new(include_usage: bool) -> Self {
        let _ = include_usage;
        Self::default()
    }

    /// The frames one delta produces (none for what is held until later).
    pub fn push(&mut self, delta: &Delta) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        match delta {
            Delta::Start { id, model } => {
                self.id = Some(id.clone());
                self.model = Some(model.clone());
                Vec::new()
            }
            Delta::Text(text) if text.is_empty() => Vec::new(),
            Delta::Text(text) => self.send(json!({ "text": text })),
            Delta::Thinking(text) if text.is_empty() => Vec::new(),
            Delta::Thinking(text) => self.send(json!({"thought": true, "text": text})),
            Delta::ThinkingSignature { source, signature } => match outgoing_signature(
                &Thinking {
                    text: String::new(),
                    signature: Some(signature.clone()),
                    source: *source,
                },
                Policy::Skip,
            ) {
                Some(signature) => {
                    self.send(json!({"thought": true, "text": "", "thoughtSignature": signature}))
                }
                None => Vec::new(),
            },
            Delta::ToolCallStart { index, id, name } => {
                let call = self.calls.entry(*index).or_default();
                call.id.clone_from(id);
                call.name.clone_from(name);
                Vec::new()
            }
            Delta::ToolCallArguments { index, fragment } => {
                self.calls
                    .entry(*index)
                    .or_default()
                    .arguments
                    .push_str(fragment);
                Vec::new()
            }
            Delta::Usage(usage) => {
                self.usage.merge_stream(usage);
                Vec::new()
            }
            Delta::Stop(reason) => {
                self.stop = Some(reason.clone());
                Vec::new()
            }
        }
    }

    /// The last event: the held tool calls, the finish reason (`STOP` if none was given) and the
    /// usage. Idempotent: later calls return nothing.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if std::mem::replace(&mut self.finished, true) {
            return Vec::new();
        }
        let parts = self.take_calls();
        let reason = self.stop.as_ref().map_or("STOP", encode_finish_reason);
        let meta = usage_metadata(&self.usage);
        vec![self.frame(parts, Some(reason), Some(meta))]
    }

    /// One event with `part`, after the held tool calls: text after a call means the call is
    /// complete (every dialect streams one block at a time), and the order is kept.
    fn send(&mut self, part: Value) -> Vec<Bytes> {
        let mut parts = self.take_calls();
        parts.push(part);
        vec![self.frame(parts, None, None)]
    }

    fn take_calls(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.calls)
            .into_values()
            .map(|call| {
                // Gemini's `args` is an object; arguments that are empty (a call without any) or
                // not an object cannot be sent as they are, and become `{}`.
                let args = serde_json::from_str::<Value>(&call.arguments)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                let mut function_call = Map::new();
                if !call.id.is_empty() {
                    function_call.insert("id".into(), json!(call.id));
                }
                function_call.insert("name".into(), json!(call.name));
                function_call.insert("args".into(), args);
                json!({ "functionCall": function_call })
            })
            .collect()
    }

    fn frame(
        &self,
        parts: Vec<Value>,
        finish_reason: Option<&str>,
        usage: Option<Object>,
    ) -> Bytes {
        let mut body = Map::new();
        body.insert(
            "candidates".into(),
            json!([candidate(parts, finish_reason)]),
        );
        if let Some(usage) = usage {
            body.insert("usageMetadata".into(), Value::Object(usage));
        }
        body.insert(
            "modelVersion".into(),
            json!(self.model.as_deref().unwrap_or(FALLBACK_MODEL)),
        );
        body.insert(
            "responseId".into(),
            json!(self.id.as_deref().unwrap_or(FALLBACK_ID)),
        );
        sse::encode(None, &Value::Object(body).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{frame_events, object as body, sse_events};

    #[test]
    fn calls_from_other_models_carry_the_skip_placeholder_for_gemini_3_and_later() {
        let req = ir::Request {
            messages: vec![
                Message::user(vec![Part::text("Weather in Paris and Rome?")]),
                Message::assistant(vec![
                    Part::tool_call("call_1", "get_weather", json!({"city": "Paris"})),
                    Part::tool_call("call_2", "get_weather", json!({"city": "Rome"})),
                ]),
                Message::user(vec![
                    Part::tool_result("call_1", vec![Part::text("Sunny")], false),
                    Part::tool_result("call_2", vec![Part::text("Rain")], false),
                ]),
            ],
            ..ir::Request::default()
        };
        let signatures = |model: &str| -> Vec<Option<String>> {
            let body = encode_request(&req, model).expect("encodes");
            body["contents"][1]["parts"]
                .as_array()
                .expect("parts")
                .iter()
                .map(|p| p["thoughtSignature"].as_str().map(str::to_owned))
                .collect()
        };
        // Only the first call of the turn needs one.
        assert_eq!(
            signatures("gemini-3-pro-preview"),
            [Some(SKIP_SIGNATURE_VALIDATION.to_owned()), None]
        );
        assert_eq!(
            signatures("models/gemini-3.1-flash"),
            [Some(SKIP_SIGNATURE_VALIDATION.to_owned()), None]
        );
        assert_eq!(signatures("gemini-2.5-pro"), [None, None]);
        assert_eq!(signatures("my-gateway-alias"), [None, None]);
    }

    fn decode(value: Value) -> Result<ir::Request, Unsupported> {
        decode_request(&body(value))
    }

    fn refusal(value: Value) -> String {
        decode(value).expect_err("must be refused").what
    }

    fn empty_schema() -> Value {
        json!({"type": "object", "properties": {}})
    }

    #[test]
    fn strict_is_not_sent() {
        // Gemini has no counterpart of OpenAI's `strict` for declarations or response schemas.
        let req = ir::Request {
            messages: vec![Message::user(vec![Part::text("x")])],
            tools: vec![Tool {
                name: "f".into(),
                description: None,
                parameters: empty_schema(),
                strict: true,
            }],
            response_format: Some(ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object"}),
                strict: true,
            }),
            ..ir::Request::default()
        };
        let body = encode_request(&req, "gemini-2.5-flash").expect("encodes");
        assert_eq!(
            body.get("tools"),
            Some(&json!([{"functionDeclarations": [
                {"name": "f", "parametersJsonSchema": empty_schema()}]}]))
        );
        assert_eq!(
            body.get("generationConfig"),
            Some(&json!({"responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object"}}))
        );
    }

    // --- decode_request ------------------------------------------------------------------------

    /// What the google-genai SDK sends for a multimodal, multi-turn tool conversation with
    /// thinking (Gemini 2.5 calls carry no ids; the signature rides on the first call).
    fn sdk_request() -> Value {
        json!({
            "systemInstruction": {"role": "user", "parts": [
                {"text": "You are a weather assistant."},
                {"text": "Answer in one sentence."}
            ]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "What's the weather where this photo was taken, and in Paris?"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
                    {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/street.png"}}
                ]},
                {"role": "model", "parts": [
                    {"text": "**Locating the photo**\n\nThe signs suggest Lyon.", "thought": true},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}},
                     "thoughtSignature": "CiQBVKhc7g=="},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"output": "14C, rain"}}},
                    {"functionResponse": {"name": "get_weather",
                        "response": {"error": "Paris: service unavailable"}}}
                ]},
                {"role": "model", "parts": [{"text": "Lyon has 14C and rain; Paris is unknown."}]},
                {"parts": [{"text": "Thanks. And tomorrow?"}]}
            ],
            "tools": [{"functionDeclarations": [
                {"name": "get_weather", "description": "Current weather for a city.",
                 "parameters": {"type": "OBJECT", "properties": {
                    "city": {"type": "STRING", "description": "City name"},
                    "days": {"type": "ARRAY", "items": {"type": "INTEGER"}}
                 }, "required": ["city"]}},
                {"name": "get_time"}
            ]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                "allowedFunctionNames": ["get_weather"]}},
            "generationConfig": {
                "maxOutputTokens": 1024, "temperature": 0.4, "topP": 0.95, "topK": 40,
                "stopSequences": ["END"], "candidateCount": 1,
                "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}
            },
            "safetySettings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "OFF"}
            ],
            "labels": {"team": "weather"}
        })
    }

    #[test]
    fn decodes_a_rich_sdk_request() {
        let req = decode(sdk_request()).expect("decodes");
        let expected = ir::Request {
            system: vec![
                "You are a weather assistant.".into(),
                "Answer in one sentence.".into(),
            ],
            messages: vec![
                Message::user(vec![
                    Part::text("What's the weather where this photo was taken, and in Paris?"),
                    Part::Image(Image::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "/9j/4AAQSkZJRg==".into(),
                    }),
                    Part::Image(Image::Url("https://example.com/street.png".into())),
                ]),
                Message::assistant(vec![
                    Part::thinking("**Locating the photo**\n\nThe signs suggest Lyon."),
                    Part::signed_thinking("", "CiQBVKhc7g==", Dialect::Gemini),
                    Part::tool_call("call_0", "get_weather", json!({"city": "Lyon"})),
                    Part::tool_call("call_1", "get_weather", json!({"city": "Paris"})),
                ]),
                Message::user(vec![
                    Part::tool_result("call_0", vec![Part::text("14C, rain")], false),
                    Part::tool_result(
                        "call_1",
                        vec![Part::text("Paris: service unavailable")],
                        true,
                    ),
                ]),
                Message::assistant(vec![Part::text("Lyon has 14C and rain; Paris is unknown.")]),
                Message::user(vec![Part::text("Thanks. And tomorrow?")]),
            ],
            tools: vec![
                Tool {
                    name: "get_weather".into(),
                    description: Some("Current weather for a city.".into()),
                    parameters: json!({"type": "object", "properties": {
                        "city": {"type": "string", "description": "City name"},
                        "days": {"type": "array", "items": {"type": "integer"}}
                    }, "required": ["city"]}),
                    strict: false,
                },
                Tool {
                    name: "get_time".into(),
                    description: None,
                    parameters: empty_schema(),
                    strict: false,
                },
            ],
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            parallel_tool_calls: None,
            max_tokens: Some(1024),
            temperature: Some(0.4),
            top_p: Some(0.95),
            top_k: Some(40),
            stop: vec!["END".into()],
            stream: false,
            reasoning: Some(Reasoning {
                effort: None,
                budget_tokens: Some(2048),
            }),
            response_format: None,
        };
        assert_eq!(req, expected);
    }

    #[test]
    fn decodes_what_the_python_sdk_sends() {
        // Captured from google-genai: a Python function as a tool (with the return schema the
        // SDK adds), bytes and URI parts, a pydantic response schema; note the mixed spellings
        // and the float `topK`.
        let req = decode(json!({"contents": [{"parts": [{"text": "hi"},
            {"inlineData": {"data": "iVBORw==", "mime_type": "image/png"}},
            {"fileData": {"file_uri": "https://example.com/a.jpg", "mime_type": "image/jpeg"}}],
            "role": "user"}],
            "systemInstruction": {"parts": [{"text": "You are terse."}], "role": "user"},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "tools": [{"functionDeclarations": [{"description": "Current weather for a city.",
                "name": "get_weather", "parameters_json_schema": {"type": "object", "properties":
                {"city": {"type": "string"}, "days": {"type": "integer", "default": 1}},
                "required": ["city"]}, "response_json_schema": {"type": "string"}}]}],
            "toolConfig": {"functionCallingConfig": {"allowedFunctionNames": ["get_weather"],
                "mode": "ANY"}},
            "generationConfig": {"temperature": 0.3, "topP": 0.9, "topK": 20.0,
                "maxOutputTokens": 256, "stopSequences": ["END"],
                "thinkingConfig": {"include_thoughts": true, "thinking_budget": 1024}}}))
        .expect("decodes");
        assert_eq!(
            req,
            ir::Request {
                system: vec!["You are terse.".into()],
                messages: vec![Message::user(vec![
                    Part::text("hi"),
                    Part::Image(Image::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBORw==".into()
                    }),
                    Part::Image(Image::Url("https://example.com/a.jpg".into())),
                ])],
                tools: vec![Tool {
                    name: "get_weather".into(),
                    description: Some("Current weather for a city.".into()),
                    parameters: json!({"type": "object", "properties": {"city": {"type": "string"},
                        "days": {"type": "integer", "default": 1}}, "required": ["city"]}),
                    strict: false,
                }],
                tool_choice: Some(ToolChoice::Tool("get_weather".into())),
                parallel_tool_calls: None,
                max_tokens: Some(256),
                temperature: Some(0.3),
                top_p: Some(0.9),
                top_k: Some(20),
                stop: vec!["END".into()],
                stream: false,
                reasoning: Some(Reasoning {
                    effort: None,
                    budget_tokens: Some(1024)
                }),
                response_format: None,
            }
        );

        let req = decode(
            json!({"contents": [{"parts": [{"text": "weather?"}], "role": "user"}],
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": {
                "properties": {"city": {"title": "City", "type": "STRING"},
                    "temperature": {"title": "Temperature", "type": "NUMBER"}},
                "property_ordering": ["city", "temperature"], "required": ["city", "temperature"],
                "title": "Answer", "type": "OBJECT"}}}),
        )
        .expect("decodes");
        assert_eq!(
            req.response_format,
            Some(ResponseFormat::JsonSchema {
                name: "response".into(),
                schema: json!({"properties": {"city": {"title": "City", "type": "string"},
                    "temperature": {"title": "Temperature", "type": "number"}},
                    "propertyOrdering": ["city", "temperature"],
                    "required": ["city", "temperature"], "title": "Answer", "type": "object"}),
                strict: false,
            })
        );
    }

    #[test]
    fn proto_spelling_is_read_like_json_spelling() {
        let req = decode(json!({
            "system_instruction": {"parts": [{"text": "sys"}]},
            "contents": [
                {"role": "user", "parts": [{"inline_data": {"mime_type": "image/webp", "data": "UklG"}}]},
                {"role": "model", "parts": [{"function_call": {"name": "f", "args": {"a": 1}}}]},
                {"role": "user", "parts": [{"function_response": {"name": "f", "response": {"output": "ok"}}}]}
            ],
            "tools": [{"function_declarations": [{"name": "f", "parameters_json_schema": {"type": "object"}}]}],
            "tool_config": {"function_calling_config": {"mode": "NONE"}},
            "generation_config": {"max_output_tokens": 10, "thinking_config": {"thinking_budget": 0}}
        }))
        .expect("decodes");
        assert_eq!(req.system, vec!["sys".to_owned()]);
        assert_eq!(
            req.messages,
            vec![
                Message::user(vec![Part::Image(Image::Base64 {
                    media_type: "image/webp".into(),
                    data: "UklG".into()
                })]),
                Message::assistant(vec![Part::tool_call("call_0", "f", json!({"a": 1}))]),
                Message::user(vec![Part::tool_result(
                    "call_0",
                    vec![Part::text("ok")],
                    false
                )]),
            ]
        );
        assert_eq!(req.tools[0].parameters, json!({"type": "object"}));
        assert_eq!(req.tool_choice, Some(ToolChoice::None));
        assert_eq!(req.max_tokens, Some(10));
        assert_eq!(
            req.reasoning,
            Some(Reasoning {
                effort: None,
                budget_tokens: Some(0)
            })
        );
    }

    #[test]
    fn call_ids_are_generated_and_results_matched_by_name() {
        let req = decode(json!({"contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "a", "args": {}}},
                {"functionCall": {"name": "b"}},
                {"functionCall": {"id": "fc-7", "name": "a", "args": {"x": 1}}}
            ]},
            {"role": "user", "parts": [
                // Out of order, by name: the oldest unanswered `a` is call_0.
                {"functionResponse": {"name": "b", "response": {"content": "B"}}},
                {"functionResponse": {"name": "a", "response": {"output": "A"}}},
                {"functionResponse": {"name": "a", "id": "fc-7", "response": {"temp": 20}}}
            ]},
            {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {"output": {"n": 2}}}}]}
        ]}))
        .expect("decodes");
        assert_eq!(
            req.messages[1].content,
            vec![
                Part::tool_call("call_0", "a", json!({})),
                Part::tool_call("call_1", "b", json!({})),
                Part::tool_call("fc-7", "a", json!({"x": 1})),
            ]
        );
        assert_eq!(
            req.messages[2].content,
            vec![
                Part::tool_result("call_1", vec![Part::text("B")], false),
                Part::tool_result("call_0", vec![Part::text("A")], false),
                // Neither `output` nor `error`: the whole object is the output.
                Part::tool_result("fc-7", vec![Part::text(r#"{"temp":20}"#)], false),
            ]
        );
        assert_eq!(
            req.messages[3].content,
            vec![Part::tool_call("call_3", "a", json!({}))]
        );
        assert_eq!(
            req.messages[4].content,
            vec![Part::tool_result(
                "call_3",
                vec![Part::text(r#"{"n":2}"#)],
                false
            )]
        );
    }

    #[test]
    fn tool_choice_modes() {
        let choice = |config: Value| {
            decode(json!({"contents": [], "toolConfig": {"functionCallingConfig": config}}))
                .map(|req| req.tool_choice)
        };
        assert_eq!(choice(json!({})), Ok(None));
        assert_eq!(choice(json!({"mode": "MODE_UNSPECIFIED"})), Ok(None));
        assert_eq!(choice(json!({"mode": "AUTO"})), Ok(Some(ToolChoice::Auto)));
        assert_eq!(choice(json!({"mode": "auto"})), Ok(Some(ToolChoice::Auto)));
        assert_eq!(choice(json!({"mode": "NONE"})), Ok(Some(ToolChoice::None)));
        assert_eq!(
            choice(json!({"mode": "ANY"})),
            Ok(Some(ToolChoice::Required))
        );
        assert_eq!(
            choice(json!({"mode": "ANY", "allowedFunctionNames": ["f"]})),
            Ok(Some(ToolChoice::Tool("f".into())))
        );
        assert_eq!(
            decode(json!({"contents": [], "toolConfig": {}})).map(|req| req.tool_choice),
            Ok(None)
        );
    }

    #[test]
    fn reasoning_and_response_format() {
        let config = |generation: Value| {
            decode(json!({"contents": [], "generationConfig": generation})).expect("decodes")
        };
        let reasoning = |effort: Option<&str>, budget: Option<u64>| {
            Some(Reasoning {
                effort: effort.map(str::to_owned),
                budget_tokens: budget,
            })
        };
        let req = config(json!({"thinkingConfig": {"thinkingBudget": -1}}));
        assert_eq!(req.reasoning, reasoning(None, None));
        let req = config(json!({"thinkingConfig": {"includeThoughts": true}}));
        assert_eq!(req.reasoning, reasoning(None, None));
        let req = config(json!({"thinkingConfig": {"thinkingLevel": "LOW"}}));
        assert_eq!(req.reasoning, reasoning(Some("low"), None));
        let req = config(json!({"thinkingConfig": {"thinkingBudget": 512.0}}));
        assert_eq!(req.reasoning, reasoning(None, Some(512)));

        assert_eq!(config(json!({})).response_format, None);
        assert_eq!(
            config(json!({"responseMimeType": "text/plain"})).response_format,
            None
        );
        assert_eq!(
            config(json!({"responseMimeType": "application/json"})).response_format,
            Some(ResponseFormat::JsonObject)
        );
        assert_eq!(
            config(json!({"responseMimeType": "application/json",
                "responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}}}))
            .response_format,
            Some(ResponseFormat::JsonSchema {
                name: "response".into(),
                schema: json!({"type": "array", "items": {"type": "string"}}),
                strict: false,
            })
        );
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}},
            "additionalProperties": false});
        for key in [
            "responseJsonSchema",
            "_responseJsonSchema",
            "response_json_schema",
        ] {
            let req = config(json!({"responseMimeType": "application/json", key: schema.clone()}));
            assert_eq!(
                req.response_format,
                Some(ResponseFormat::JsonSchema {
                    name: "response".into(),
                    schema: schema.clone(),
                    strict: false,
                }),
                "{key}"
            );
        }
    }

    #[test]
    fn sdk_chat_history_of_a_stream_is_joined() {
        // Recorded from google-genai's chat after a streamed answer (see `encodes_a_stream`):
        // one content per chunk, the thought in pieces, the signature re-encoded URL-safe.
        let req = decode(json!({"contents": [
            {"parts": [{"text": "hi"}], "role": "user"},
            {"parts": [{"text": "Let me", "thought": true}], "role": "model"},
            {"parts": [{"text": " think.", "thought": true}], "role": "model"},
            {"parts": [{"text": "", "thought": true, "thoughtSignature": "EqQBCgIYAh-_"}], "role": "model"},
            {"parts": [{"text": "Checking."}], "role": "model"},
            {"parts": [{"functionCall": {"id": "toolu_1", "args": {"city": "Paris"},
                "name": "get_weather"}}], "role": "model"},
            {"parts": [{"functionResponse": {"name": "get_weather",
                "response": {"output": "18C"}}}], "role": "user"}
        ]}))
        .expect("decodes");
        assert_eq!(
            req.messages,
            vec![
                Message::user(vec![Part::text("hi")]),
                Message::assistant(vec![
                    Part::signed_thinking("Let me think.", "EqQBCgIYAh+/", Dialect::Gemini),
                    Part::text("Checking."),
                    Part::tool_call("toolu_1", "get_weather", json!({"city": "Paris"})),
                ]),
                Message::user(vec![Part::tool_result(
                    "toolu_1",
                    vec![Part::text("18C")],
                    false
                )]),
            ]
        );
    }

    #[test]
    fn only_unsigned_thoughts_are_continued() {
        let req = decode(json!({"contents": [{"role": "model", "parts": [
            {"text": "A", "thought": true, "thoughtSignature": "c2lnMQ=="},
            {"text": "B", "thought": true},
            {"text": "text"},
            {"text": "C", "thought": true},
            {"functionCall": {"name": "f"}, "thoughtSignature": "c2lnMg=="}
        ]}, {"role": "user", "parts": [{"text": "next"}]},
            {"role": "model", "parts": [{"text": "D", "thought": true}]}
        ]}))
        .expect("decodes");
        assert_eq!(
            req.messages,
            vec![
                Message::assistant(vec![
                    Part::signed_thinking("A", "c2lnMQ==", Dialect::Gemini),
                    Part::thinking("B"),
                    Part::text("text"),
                    Part::thinking("C"),
                    // A call's signature stays with the call, not with the thought before it.
                    Part::signed_thinking("", "c2lnMg==", Dialect::Gemini),
                    Part::tool_call("call_0", "f", json!({})),
                ]),
                Message::user(vec![Part::text("next")]),
                Message::assistant(vec![Part::thinking("D")]),
            ]
        );
    }

    #[test]
    fn empty_text_beside_a_signature_is_not_text() {
        let req = decode(json!({"contents": [{"role": "model", "parts": [
            {"text": "Done."},
            {"text": "", "thoughtSignature": "Ei0KKw=="},
            {"thought": true, "thoughtSignature": "Zm9v"},
            {"text": ""}
        ]}]}))
        .expect("decodes");
        assert_eq!(
            req.messages[0].content,
            vec![
                Part::text("Done."),
                Part::signed_thinking("", "Ei0KKw==", Dialect::Gemini),
                Part::signed_thinking("", "Zm9v", Dialect::Gemini),
                Part::text(""),
            ]
        );
    }

    #[test]
    fn decode_refusals_name_the_field() {
        let user_part = |part: Value| json!({"contents": [{"role": "user", "parts": [part]}]});
        let model_part = |part: Value| json!({"contents": [{"role": "model", "parts": [part]}]});
        let generation = |config: Value| json!({"contents": [], "generationConfig": config});
        let calling = |config: Value| json!({"contents": [], "toolConfig": {"functionCallingConfig": config}});
        let cases = [
            (
                json!({"contents": [], "cachedContent": "cachedContents/abc123"}),
                "cachedContent (context cached at this provider)",
            ),
            (json!({"contents": [], "store": true}), "store"),
            (json!({"contents": {}}), "contents (not an array)"),
            (
                json!({"contents": [{"role": "system", "parts": []}]}),
                "contents[0].role (system)",
            ),
            (
                json!({"contents": [], "tools": [{"googleSearch": {}}]}),
                "tools[0].googleSearch",
            ),
            (
                json!({"contents": [], "tools": [{"functionDeclarations": [
                    {"name": "f", "behavior": "NON_BLOCKING"}]}]}),
                "tools[0].functionDeclarations[0].behavior",
            ),
            (
                json!({"contents": [], "tools": [{"functionDeclarations": [
                    {"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}]}),
                "tools[0].functionDeclarations[0].parametersJsonSchema (beside parameters)",
            ),
            (
                json!({"contents": [], "tools": [{"functionDeclarations": [{"description": "x"}]}]}),
                "tools[0].functionDeclarations[0].name (missing)",
            ),
            (
                calling(json!({"mode": "ANY", "allowedFunctionNames": ["a", "b"]})),
                "toolConfig.functionCallingConfig.allowedFunctionNames (more than one function)",
            ),
            (
                calling(json!({"mode": "AUTO", "allowedFunctionNames": ["a"]})),
                "toolConfig.functionCallingConfig.allowedFunctionNames (with mode AUTO)",
            ),
            (
                calling(json!({"mode": "VALIDATED"})),
                "toolConfig.functionCallingConfig.mode (VALIDATED)",
            ),
            (
                json!({"contents": [], "toolConfig": {"retrievalConfig": {"languageCode": "en"}}}),
                "toolConfig.retrievalConfig",
            ),
            (generation(json!({"seed": 7})), "generationConfig.seed"),
            (
                generation(json!({"presencePenalty": 0.5})),
                "generationConfig.presencePenalty",
            ),
            (
                generation(json!({"candidateCount": 2})),
                "generationConfig.candidateCount (more than one candidate)",
            ),
            (
                generation(json!({"responseModalities": ["TEXT", "IMAGE"]})),
                "generationConfig.responseModalities (IMAGE)",
            ),
            (
                generation(json!({"responseSchema": {"type": "STRING"}})),
                "generationConfig.responseSchema (without responseMimeType application/json)",
            ),
            (
                generation(json!({"responseMimeType": "text/x.enum"})),
                "generationConfig.responseMimeType (text/x.enum)",
            ),
            (
                generation(json!({"responseMimeType": "application/json",
                    "responseSchema": {}, "responseJsonSchema": {}})),
                "generationConfig.responseJsonSchema (a second response schema)",
            ),
            (
                generation(json!({"thinkingConfig": {"thinkingBudget": -5}})),
                "generationConfig.thinkingConfig.thinkingBudget (-5)",
            ),
            (
                generation(json!({"thinkingConfig": {"thinkingLevel": "ultra"}})),
                "generationConfig.thinkingConfig.thinkingLevel (ULTRA)",
            ),
            (
                generation(json!({"maxOutputTokens": "many"})),
                "generationConfig.maxOutputTokens (not an integer)",
            ),
            (
                json!({"contents": [], "safetySettings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
                    {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_LOW_AND_ABOVE"}]}),
                "safetySettings[1].threshold (BLOCK_LOW_AND_ABOVE: a Gemini content filter)",
            ),
            (
                user_part(json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}})),
                "contents[0].parts[0].inlineData (application/pdf: only images convert)",
            ),
            (
                user_part(json!({"fileData": {"mimeType": "video/mp4",
                    "fileUri": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}})),
                "contents[0].parts[0].fileData (video/mp4: only images convert)",
            ),
            (
                user_part(json!({"fileData": {
                    "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}})),
                "contents[0].parts[0].fileData (no mimeType, and the URI does not name an image)",
            ),
            (
                model_part(json!({"executableCode": {"language": "PYTHON", "code": "1+1"}})),
                "contents[0].parts[0].executableCode",
            ),
            (
                user_part(
                    json!({"text": "a", "inlineData": {"mimeType": "image/png", "data": ""}}),
                ),
                "contents[0].parts[0].inlineData (a second kind of data in one part)",
            ),
            (
                model_part(json!({"thought": true, "functionCall": {"name": "f"}})),
                "contents[0].parts[0].functionCall (marked as thought)",
            ),
            (
                user_part(json!({"functionCall": {"name": "f", "args": {}}})),
                "contents[0].parts[0].functionCall (in a user turn)",
            ),
            (
                model_part(json!({"inlineData": {"mimeType": "image/png", "data": "iVBO"}})),
                "contents[0].parts[0].inlineData (in a model turn)",
            ),
            (
                model_part(json!({"functionResponse": {"name": "f", "response": {}}})),
                "contents[0].parts[0].functionResponse (in a model turn)",
            ),
            (
                user_part(json!({"functionResponse": {"name": "f", "response": {"output": "x"}}})),
                "contents[0].parts[0].functionResponse (answers no earlier functionCall named f)",
            ),
            (
                json!({"contents": [
                    {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}}]}]}),
                "contents[1].parts[0].functionResponse.parts (images in a tool result)",
            ),
            (
                json!({"contents": [
                    {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f",
                        "response": {}, "willContinue": true}}]}]}),
                "contents[1].parts[0].functionResponse.willContinue",
            ),
            (
                json!({"contents": [], "systemInstruction": {"parts": [
                    {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}}),
                "systemInstruction.parts[0].inlineData",
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(refusal(request.clone()), expected, "{request}");
        }
    }

    // --- encode_request ------------------------------------------------------------------------

    /// A request as an Anthropic client would have it decoded: ids from Anthropic, a thinking
    /// block with its signature, an effort instead of a budget, a named schema.
    fn anthropic_like_request() -> ir::Request {
        ir::Request {
            system: vec!["Be brief.".into()],
            messages: vec![
                Message::user(vec![
                    Part::text("What is in these pictures?"),
                    Part::Image(Image::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBORw0KGgo=".into(),
                    }),
                    Part::Image(Image::Url("https://example.com/photos/cat.jpg".into())),
                    Part::Image(Image::Url("https://example.com/render?id=7".into())),
                ]),
                Message::assistant(vec![
                    Part::signed_thinking(
                        "The user wants labels; I will look them up.",
                        "EqQBCgIYAh",
                        Dialect::Gemini,
                    ),
                    Part::text("Let me check."),
                    Part::tool_call("toolu_01A", "lookup", json!({"q": "cat"})),
                ]),
                Message::user(vec![Part::tool_result(
                    "toolu_01A",
                    vec![Part::text("a cat"), Part::text("on a mat")],
                    false,
                )]),
            ],
            tools: vec![Tool {
                name: "lookup".into(),
                description: Some("Looks a word up.".into()),
                parameters: json!({"type": "object", "properties": {"q": {"type": "string"}},
                    "required": ["q"], "additionalProperties": false}),
                strict: false,
            }],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: None,
            max_tokens: Some(512),
            temperature: Some(1.0),
            top_p: None,
            top_k: Some(5),
            stop: vec!["\n\nHuman:".into()],
            stream: true,
            reasoning: Some(Reasoning {
                effort: Some("medium".into()),
                budget_tokens: None,
            }),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "labels".into(),
                schema: json!({"type": "array", "items": {"type": "string"}}),
                strict: false,
            }),
        }
    }

    #[test]
    fn encodes_a_rich_request() {
        let encoded =
            encode_request(&anthropic_like_request(), "gemini-2.5-flash").expect("encodes");
        assert_eq!(
            Value::Object(encoded),
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "What is in these pictures?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                        {"fileData": {"mimeType": "image/jpeg",
                            "fileUri": "https://example.com/photos/cat.jpg"}},
                        {"fileData": {"fileUri": "https://example.com/render?id=7"}}
                    ]},
                    {"role": "model", "parts": [
                        {"thought": true, "text": "The user wants labels; I will look them up.",
                         "thoughtSignature": "EqQBCgIYAh"},
                        {"text": "Let me check."},
                        {"functionCall": {"id": "toolu_01A", "name": "lookup", "args": {"q": "cat"}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"id": "toolu_01A", "name": "lookup",
                            "response": {"output": "a cat\non a mat"}}}
                    ]}
                ],
                "tools": [{"functionDeclarations": [{
                    "name": "lookup",
                    "description": "Looks a word up.",
                    "parametersJsonSchema": {"type": "object", "properties": {"q": {"type": "string"}},
                        "required": ["q"], "additionalProperties": false}
                }]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
                "generationConfig": {
                    "maxOutputTokens": 512,
                    "temperature": 1.0,
                    "topK": 5,
                    "stopSequences": ["\n\nHuman:"],
                    "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": true},
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "array", "items": {"type": "string"}}
                }
            })
        );
    }

    #[test]
    fn encode_minimal_request_and_choices() {
        let mut req = ir::Request {
            messages: vec![Message::user(vec![Part::text("hi")])],
            ..ir::Request::default()
        };
        assert_eq!(
            Value::Object(encode_request(&req, "m").expect("encodes")),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
        let cases = [
            (ToolChoice::Auto, json!({"mode": "AUTO"})),
            (ToolChoice::None, json!({"mode": "NONE"})),
            (ToolChoice::Required, json!({"mode": "ANY"})),
            (
                ToolChoice::Tool("f".into()),
                json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
            ),
        ];
        for (choice, expected) in cases {
            req.tool_choice = Some(choice);
            let encoded = encode_request(&req, "m").expect("encodes");
            assert_eq!(encoded["toolConfig"]["functionCallingConfig"], expected);
        }
    }

    #[test]
    fn encode_reasoning_settings() {
        let thinking_config = |effort: Option<&str>, budget: Option<u64>| {
            let req = ir::Request {
                reasoning: Some(Reasoning {
                    effort: effort.map(str::to_owned),
                    budget_tokens: budget,
                }),
                ..ir::Request::default()
            };
            encode_request(&req, "m").map(|body| body["generationConfig"]["thinkingConfig"].clone())
        };
        assert_eq!(
            thinking_config(None, None),
            Ok(json!({"includeThoughts": true}))
        );
        assert_eq!(
            thinking_config(None, Some(0)),
            Ok(json!({"thinkingBudget": 0}))
        );
        assert_eq!(
            thinking_config(Some("none"), None),
            Ok(json!({"thinkingBudget": 0}))
        );
        assert_eq!(
            thinking_config(Some("high"), Some(3000)),
            Ok(json!({"thinkingBudget": 3000, "includeThoughts": true}))
        );
        assert_eq!(
            thinking_config(Some("minimal"), None),
            Ok(json!({"thinkingBudget": 1024, "includeThoughts": true}))
        );
        assert_eq!(
            thinking_config(Some("extreme"), None),
            Err(Unsupported::new("reasoning effort extreme"))
        );
    }

    #[test]
    fn encode_signatures_and_data_urls() {
        let req = ir::Request {
            messages: vec![
                Message::user(vec![Part::Image(Image::Url(
                    "data:image/gif;base64,R0lGODlh".into(),
                ))]),
                Message::assistant(vec![
                    Part::thinking(""),
                    Part::signed_thinking("", "sig-call", Dialect::Gemini),
                    Part::tool_call("c1", "f", Value::Null),
                    Part::signed_thinking("", "sig-end", Dialect::Gemini),
                ]),
            ],
            ..ir::Request::default()
        };
        let encoded = encode_request(&req, "m").expect("encodes");
        assert_eq!(
            encoded["contents"],
            json!([
                {"role": "user", "parts": [{"inlineData": {"mimeType": "image/gif", "data": "R0lGODlh"}}]},
                {"role": "model", "parts": [
                    {"functionCall": {"id": "c1", "name": "f", "args": {}}, "thoughtSignature": "sig-call"},
                    {"thought": true, "text": "", "thoughtSignature": "sig-end"}
                ]}
            ])
        );
    }

    #[test]
    fn signatures_that_are_not_base64_are_dropped() {
        for valid in ["EqQBCgIYAhIM", "CiQBVKhc7g==", "gAAAAABo-x_9", "c2ln+/8="] {
            assert_eq!(gemini_signature(valid), Some(valid));
        }
        for invalid in ["", "=", "sig-a", "has space", "a===", "é4AA", "{\"sig\":1}"] {
            assert_eq!(gemini_signature(invalid), None, "{invalid}");
        }
        let req = ir::Request {
            messages: vec![Message::assistant(vec![
                Part::signed_thinking("Visible.", "not base64!", Dialect::Gemini),
                Part::signed_thinking("", "abcde", Dialect::Gemini),
                Part::text("Answer."),
            ])],
            ..ir::Request::default()
        };
        let encoded = encode_request(&req, "m").expect("encodes");
        assert_eq!(
            encoded["contents"][0]["parts"],
            json!([{"thought": true, "text": "Visible."}, {"text": "Answer."}])
        );
        let mut encoder = StreamEncoder::new(false);
        assert!(
            encoder
                .push(&Delta::ThinkingSignature {
                    source: Some(Dialect::Gemini),
                    signature: "x y".into(),
                })
                .is_empty()
        );
        assert_eq!(
            encoder
                .push(&Delta::ThinkingSignature {
                    source: Some(Dialect::Gemini),
                    signature: "eHk=".into(),
                })
                .len(),
            1
        );
    }

    #[test]
    fn one_tool_call_per_turn_only_where_no_call_is_made() {
        // Gemini cannot ask for it.
        assert_eq!(
            decode(sdk_request()).expect("decodes").parallel_tool_calls,
            None
        );
        let with_tools = ir::Request {
            messages: vec![Message::user(vec![Part::text("hi")])],
            tools: vec![Tool {
                name: "f".into(),
                description: None,
                parameters: empty_schema(),
                strict: false,
            }],
            ..ir::Request::default()
        };
        let encode = |tool_choice: Option<ToolChoice>, parallel: Option<bool>, tools: bool| {
            let req = ir::Request {
                tool_choice,
                parallel_tool_calls: parallel,
                tools: if tools {
                    with_tools.tools.clone()
                } else {
                    vec![]
                },
                ..with_tools.clone()
            };
            encode_request(&req, "gemini-2.5-flash").map_err(|refusal| refusal.what)
        };
        let refused = Err(
            "parallel_tool_calls: false (Gemini cannot be held to one tool call per turn)"
                .to_owned(),
        );
        // Codex's request: tools, no choice, one call per turn.
        assert_eq!(encode(None, Some(false), true), refused);
        for choice in [
            ToolChoice::Auto,
            ToolChoice::Required,
            ToolChoice::Tool("f".into()),
        ] {
            assert_eq!(encode(Some(choice), Some(false), true), refused);
        }
        // No call can be made: the promise holds, nothing is sent for it.
        assert_eq!(
            encode(Some(ToolChoice::None), Some(false), true),
            encode(Some(ToolChoice::None), None, true)
        );
        assert_eq!(encode(None, Some(false), false), encode(None, None, false));
        assert!(encode(None, None, false).is_ok());
        // Parallel calls allowed is Gemini's own behaviour.
        assert_eq!(encode(None, Some(true), true), encode(None, None, true));
        assert_eq!(
            encode(None, Some(true), true).map(Value::Object),
            Ok(json!({
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [{"name": "f",
                    "parametersJsonSchema": {"type": "object", "properties": {}}}]}]
            }))
        );
    }

    #[test]
    fn encode_refusals_name_the_part() {
        let with = |messages: Vec<Message>| ir::Request {
            messages,
            ..ir::Request::default()
        };
        let cases = [
            (
                with(vec![Message::user(vec![Part::tool_result(
                    "toolu_9",
                    vec![Part::text("x")],
                    false,
                )])]),
                "messages[0].content[0] (the result of toolu_9, which no earlier tool call has as its id)",
            ),
            (
                with(vec![
                    Message::assistant(vec![Part::tool_call("c1", "screenshot", json!({}))]),
                    Message::user(vec![Part::tool_result(
                        "c1",
                        vec![Part::Image(Image::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBO".into(),
                        })],
                        false,
                    )]),
                ]),
                "messages[1].content[0].content[0] (an image in a tool result)",
            ),
            (
                with(vec![Message::assistant(vec![Part::tool_call(
                    "c1",
                    "f",
                    json!("{\"a\":1}"),
                )])]),
                "messages[0].content[0].arguments (not a JSON object)",
            ),
            (
                with(vec![Message::user(vec![Part::Image(Image::Url(
                    "data:image/svg+xml,<svg/>".into(),
                ))])]),
                "messages[0].content[0] (a data: URL not in base64)",
            ),
        ];
        for (req, expected) in cases {
            assert_eq!(
                encode_request(&req, "m").map(|_| ()),
                Err(Unsupported::new(expected))
            );
        }
    }

    // --- round trips ---------------------------------------------------------------------------

    fn rich_requests() -> Vec<ir::Request> {
        let first = ir::Request {
            system: vec!["One.".into(), "Two.".into()],
            messages: vec![
                Message::user(vec![
                    Part::text("Look"),
                    Part::Image(Image::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "/9j/".into(),
                    }),
                    Part::Image(Image::Url("https://example.com/a.png".into())),
                ]),
                Message::assistant(vec![
                    Part::signed_thinking("Hmm.", "c2lnQQ==", Dialect::Gemini),
                    Part::signed_thinking("", "c2lnQg", Dialect::Gemini),
                    Part::tool_call("call_x", "f", json!({"k": [1, 2]})),
                    Part::tool_call("call_y", "g", json!({})),
                ]),
                Message::user(vec![
                    Part::tool_result("call_x", vec![Part::text("done")], false),
                    Part::tool_result("call_y", vec![Part::text("boom")], true),
                    Part::text("Next?"),
                ]),
                Message::assistant(vec![
                    Part::text("Fine."),
                    Part::signed_thinking("", "c2lnQw", Dialect::Gemini),
                ]),
            ],
            tools: vec![
                Tool {
                    name: "f".into(),
                    description: Some("F.".into()),
                    parameters: json!({"type": "object", "properties": {"k": {"type": "array"}}}),
                    strict: false,
                },
                Tool {
                    name: "g".into(),
                    description: None,
                    parameters: empty_schema(),
                    strict: false,
                },
            ],
            tool_choice: Some(ToolChoice::Tool("f".into())),
            parallel_tool_calls: None,
            max_tokens: Some(100),
            temperature: Some(0.5),
            top_p: Some(0.25),
            top_k: Some(3),
            stop: vec!["x".into(), "y".into()],
            stream: false,
            reasoning: Some(Reasoning {
                effort: None,
                budget_tokens: Some(4096),
            }),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "response".into(),
                schema: json!({"type": "object"}),
                strict: false,
            }),
        };
        let second = ir::Request {
            messages: vec![Message::user(vec![Part::text("hi")])],
            tool_choice: Some(ToolChoice::Auto),
            reasoning: Some(Reasoning {
                effort: None,
                budget_tokens: None,
            }),
            response_format: Some(ResponseFormat::JsonObject),
            ..ir::Request::default()
        };
        let third = ir::Request {
            messages: vec![Message::user(vec![Part::text("no thinking")])],
            tool_choice: Some(ToolChoice::None),
            reasoning: Some(Reasoning {
                effort: None,
                budget_tokens: Some(0),
            }),
            ..ir::Request::default()
        };
        vec![first, second, third]
    }

    #[test]
    fn request_round_trip() {
        for req in rich_requests() {
            let encoded = encode_request(&req, "gemini-2.5-pro").expect("encodes");
            assert_eq!(decode_request(&encoded), Ok(req));
        }
    }

    #[test]
    fn native_request_round_trip() {
        // In the encoder's own spelling, a Gemini body comes back unchanged.
        let native = json!({
            "systemInstruction": {"parts": [{"text": "sys"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "q"},
                    {"fileData": {"mimeType": "image/webp", "fileUri": "https://e.com/x.webp"}}]},
                {"role": "model", "parts": [
                    {"thought": true, "text": "t", "thoughtSignature": "s1"},
                    {"functionCall": {"id": "call_0", "name": "f", "args": {"a": 1}},
                     "thoughtSignature": "s2"}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "call_0", "name": "f", "response": {"error": "e"}}}]}
            ],
            "tools": [{"functionDeclarations": [
                {"name": "f", "parametersJsonSchema": {"type": "object"}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
            "generationConfig": {"maxOutputTokens": 8, "topP": 0.5,
                "thinkingConfig": {"thinkingBudget": 128, "includeThoughts": true},
                "responseMimeType": "application/json"}
        });
        let req = decode(native.clone()).expect("decodes");
        let encoded = encode_request(&req, "m").expect("encodes");
        assert_eq!(Value::Object(encoded), native);
    }

    // --- responses -----------------------------------------------------------------------------

    #[test]
    fn decodes_a_thinking_answer_with_cached_usage() {
        let body = json!({
            "candidates": [{
                "content": {"parts": [
                    {"text": "**Weighing the question**\n\nSimple arithmetic.", "thought": true},
                    {"text": "2 + 2 = 4.", "thoughtSignature": "Cq8CAdHtim9"}
                ], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
            }],
            "usageMetadata": {
                "promptTokenCount": 2006, "candidatesTokenCount": 108, "totalTokenCount": 2306,
                "cachedContentTokenCount": 1920, "thoughtsTokenCount": 192,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2006}]
            },
            "modelVersion": "gemini-2.5-pro",
            "responseId": "mQ9qaO-eDJ2vz7IP0sLj2Ak"
        });
        assert_eq!(
            decode_response(&body),
            Ok(ir::Response {
                id: "mQ9qaO-eDJ2vz7IP0sLj2Ak".into(),
                model: "gemini-2.5-pro".into(),
                content: vec![
                    Part::thinking("**Weighing the question**\n\nSimple arithmetic."),
                    Part::signed_thinking("", "Cq8CAdHtim9", Dialect::Gemini),
                    Part::text("2 + 2 = 4."),
                ],
                stop_reason: Some(StopReason::EndTurn),
                usage: Usage {
                    input_tokens: 86,
                    output_tokens: 300,
                    cache_read_tokens: 1920,
                    cache_creation_tokens: 0,
                    reasoning_tokens: 192,
                },
            })
        );
    }

    #[test]
    fn decodes_tool_calls_with_generated_ids() {
        // What the mock upstream and Gemini 2.x send: no ids, STOP.
        let body = json!({
            "candidates": [{"content": {"parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time"}}
            ], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 12, "totalTokenCount": 52},
            "modelVersion": "gemini-2.0-flash",
            "responseId": "Ab3/x+Y"
        });
        let resp = decode_response(&body).expect("decodes");
        assert_eq!(
            resp.content,
            vec![
                Part::tool_call("call_Ab3xY_0", "get_weather", json!({"city": "Paris"})),
                Part::tool_call("call_Ab3xY_1", "get_time", json!({})),
            ]
        );
        assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            resp.usage,
            Usage {
                input_tokens: 40,
                output_tokens: 12,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn decodes_stop_reasons_and_blocks() {
        let stop = |reason: &str| {
            decode_response(
                &json!({"candidates": [{"content": {"parts": [{"text": "x"}],
                "role": "model"}, "finishReason": reason}]}),
            )
            .expect("decodes")
            .stop_reason
        };
        assert_eq!(stop("MAX_TOKENS"), Some(StopReason::MaxTokens));
        for filter in [
            "SAFETY",
            "RECITATION",
            "PROHIBITED_CONTENT",
            "BLOCKLIST",
            "SPII",
        ] {
            assert_eq!(stop(filter), Some(StopReason::ContentFilter), "{filter}");
        }
        assert_eq!(
            stop("MALFORMED_FUNCTION_CALL"),
            Some(StopReason::Other("MALFORMED_FUNCTION_CALL".into()))
        );
        assert_eq!(stop("FINISH_REASON_UNSPECIFIED"), None);

        // A candidate stopped by the filter before any output has no content.
        let filtered = decode_response(
            &json!({"candidates": [{"finishReason": "SAFETY", "index": 0}],
            "modelVersion": "gemini-2.5-flash", "responseId": "r"}),
        )
        .expect("decodes");
        assert_eq!(filtered.content, vec![]);
        assert_eq!(filtered.stop_reason, Some(StopReason::ContentFilter));

        // The prompt was blocked: no candidates at all; no ids either.
        let blocked = decode_response(
            &json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}),
        )
        .expect("decodes");
        assert_eq!(
            blocked,
            ir::Response {
                id: "msg_gw".into(),
                model: "unknown".into(),
                content: vec![],
                stop_reason: Some(StopReason::ContentFilter),
                usage: Usage {
                    input_tokens: 9,
                    ..Usage::default()
                },
            }
        );
    }

    #[test]
    fn decode_response_refusals() {
        let two = json!({"candidates": [
            {"content": {"parts": [{"text": "a"}]}, "index": 0},
            {"content": {"parts": [{"text": "b"}]}, "index": 1}]});
        assert_eq!(
            decode_response(&two),
            Err(Unsupported::new("candidates (more than one)"))
        );
        let image = json!({"candidates": [{"content": {"parts": [
            {"text": "Here it is"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}], "role": "model"}}]});
        assert_eq!(
            decode_response(&image),
            Err(Unsupported::new(
                "candidates[0].content.parts[1].inlineData (in a model turn)"
            ))
        );
        let code = json!({"candidates": [{"content": {"parts": [
            {"executableCode": {"language": "PYTHON", "code": "print(1)"}}]}}]});
        assert_eq!(
            decode_response(&code),
            Err(Unsupported::new(
                "candidates[0].content.parts[0].executableCode"
            ))
        );
        assert_eq!(
            decode_response(&json!([])),
            Err(Unsupported::new("response (not an object)"))
        );
    }

    fn rich_response() -> ir::Response {
        ir::Response {
            id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
            model: "claude-sonnet-4-5".into(),
            content: vec![
                Part::signed_thinking("Need the weather.", "EqQBCgIYAhIM", Dialect::Gemini),
                Part::text("Checking."),
                Part::tool_call("toolu_01", "get_weather", json!({"city": "Paris"})),
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input_tokens: 50,
                output_tokens: 120,
                cache_read_tokens: 10,
                cache_creation_tokens: 0,
                reasoning_tokens: 20,
            },
        }
    }

    #[test]
    fn encodes_an_answer() {
        assert_eq!(
            encode_response(&rich_response()),
            json!({
                "candidates": [{
                    "content": {"role": "model", "parts": [
                        {"thought": true, "text": "Need the weather.", "thoughtSignature": "EqQBCgIYAhIM"},
                        {"text": "Checking."},
                        {"functionCall": {"id": "toolu_01", "name": "get_weather", "args": {"city": "Paris"}}}
                    ]},
                    "finishReason": "STOP",
                    "index": 0
                }],
                "usageMetadata": {
                    "promptTokenCount": 60,
                    "candidatesTokenCount": 100,
                    "thoughtsTokenCount": 20,
                    "cachedContentTokenCount": 10,
                    "totalTokenCount": 180
                },
                "modelVersion": "claude-sonnet-4-5",
                "responseId": "msg_01XFDUDYJgAACzvnptvVoYEL"
            })
        );
    }

    #[test]
    fn encode_answer_edge_cases() {
        let mut resp = ir::Response {
            id: "chatcmpl-1".into(),
            model: "gpt-4o".into(),
            content: vec![
                Part::text("x"),
                // Never in an answer; left out rather than failing the whole answer.
                Part::tool_result("call_1", vec![Part::text("y")], false),
                Part::tool_call("call_2", "f", json!("not an object")),
            ],
            stop_reason: None,
            usage: Usage::default(),
        };
        let encoded = encode_response(&resp);
        assert_eq!(
            encoded["candidates"][0],
            json!({"content": {"role": "model", "parts": [
                {"text": "x"},
                {"functionCall": {"id": "call_2", "name": "f", "args": {}}}
            ]}, "index": 0})
        );
        assert_eq!(
            encoded["usageMetadata"],
            json!({"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0})
        );
        let cases = [
            (StopReason::EndTurn, "STOP"),
            (StopReason::StopSequence, "STOP"),
            (StopReason::MaxTokens, "MAX_TOKENS"),
            (StopReason::ContentFilter, "SAFETY"),
            (StopReason::Other("LANGUAGE".into()), "LANGUAGE"),
            (StopReason::Other("pause_turn".into()), "OTHER"),
        ];
        for (reason, expected) in cases {
            resp.stop_reason = Some(reason);
            assert_eq!(
                encode_response(&resp)["candidates"][0]["finishReason"],
                json!(expected)
            );
        }
    }

    #[test]
    fn response_round_trip() {
        let plain = ir::Response {
            id: "r-2".into(),
            model: "gemini-2.5-flash".into(),
            content: vec![
                Part::text("Hello."),
                Part::signed_thinking("", "dGFpbA==", Dialect::Gemini),
            ],
            stop_reason: Some(StopReason::MaxTokens),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            },
        };
        for resp in [rich_response(), plain] {
            assert_eq!(decode_response(&encode_response(&resp)), Ok(resp));
        }
    }

    // --- streams -------------------------------------------------------------------------------

    fn decode_stream(raw: &str) -> Vec<Delta> {
        let mut decoder = StreamDecoder::new();
        sse_events(raw)
            .iter()
            .flat_map(|ev| decoder.push(ev))
            .collect()
    }

    /// `gemini-2.5-flash` with `includeThoughts`, recorded (CRLF line ends).
    const TEXT_STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"**Answering a greeting**\\n\\nThe user says hello.\",\"thought\": true}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"totalTokenCount\": 7,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello! How can I\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"candidatesTokenCount\": 5,\"totalTokenCount\": 45,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}],\"thoughtsTokenCount\": 33},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" help you today?\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"candidatesTokenCount\": 9,\"totalTokenCount\": 49,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}],\"thoughtsTokenCount\": 33},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"candidatesTokenCount\": 9,\"totalTokenCount\": 49,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}],\"thoughtsTokenCount\": 33},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
    );

    #[test]
    fn decodes_a_recorded_text_stream() {
        let usage = |output: u64, reasoning: u64| {
            Delta::Usage(Usage {
                input_tokens: 7,
                output_tokens: output,
                reasoning_tokens: reasoning,
                ..Usage::default()
            })
        };
        assert_eq!(
            decode_stream(TEXT_STREAM),
            vec![
                Delta::Start {
                    id: "2p5qaNmOF4-qz7IPo9mS8Ak".into(),
                    model: "gemini-2.5-flash".into()
                },
                Delta::Thinking("**Answering a greeting**\n\nThe user says hello.".into()),
                usage(0, 0),
                Delta::Text("Hello! How can I".into()),
                usage(38, 33),
                Delta::Text(" help you today?".into()),
                usage(42, 33),
                // The closing event repeats the usage: not emitted again.
                Delta::Stop(StopReason::EndTurn),
            ]
        );
    }

    /// Parallel calls in one event, the first with its signature; then an error event and
    /// garbage, which carry no deltas, and a repeated finish, which stops only once.
    const TOOL_STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_weather\",\"args\": {\"city\": \"Paris\"}},\"thoughtSignature\": \"CiQBVKhc7g==\"},{\"functionCall\": {\"name\": \"get_weather\",\"args\": {\"city\": \"Lyon\"}}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 64,\"candidatesTokenCount\": 30,\"totalTokenCount\": 170,\"thoughtsTokenCount\": 76},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
        "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n",
        "data: {not json\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
    );

    #[test]
    fn decodes_a_tool_call_stream() {
        assert_eq!(
            decode_stream(TOOL_STREAM),
            vec![
                Delta::Start {
                    id: "r-1".into(),
                    model: "gemini-2.5-flash".into()
                },
                Delta::ThinkingSignature {
                    source: Some(Dialect::Gemini),
                    signature: "CiQBVKhc7g==".into(),
                },
                Delta::ToolCallStart {
                    index: 0,
                    id: "call_r-1_0".into(),
                    name: "get_weather".into()
                },
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: r#"{"city":"Paris"}"#.into()
                },
                Delta::ToolCallStart {
                    index: 1,
                    id: "call_r-1_1".into(),
                    name: "get_weather".into()
                },
                Delta::ToolCallArguments {
                    index: 1,
                    fragment: r#"{"city":"Lyon"}"#.into()
                },
                Delta::Usage(Usage {
                    input_tokens: 64,
                    output_tokens: 106,
                    reasoning_tokens: 76,
                    ..Usage::default()
                }),
                Delta::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[test]
    fn decodes_the_mock_upstream_stream_and_a_blocked_prompt() {
        // The mock's shape: usage on every chunk, no responseId before the first event is read.
        let mock = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1,\"totalTokenCount\":6,\"cachedContentTokenCount\":0,\"thoughtsTokenCount\":0},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc\"}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" there\"}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2,\"totalTokenCount\":7,\"cachedContentTokenCount\":0,\"thoughtsTokenCount\":0},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc\"}\r\n\r\n",
        );
        let usage = |output| {
            Delta::Usage(Usage {
                input_tokens: 5,
                output_tokens: output,
                ..Usage::default()
            })
        };
        assert_eq!(
            decode_stream(mock),
            vec![
                Delta::Start {
                    id: "abc".into(),
                    model: "gemini-2.5-flash".into()
                },
                Delta::Text("Hi".into()),
                usage(1),
                Delta::Text(" there".into()),
                usage(2),
                Delta::Stop(StopReason::MaxTokens),
            ]
        );
        assert_eq!(
            decode_stream("data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"}}\n\n"),
            vec![
                Delta::Start {
                    id: "msg_gw".into(),
                    model: "unknown".into()
                },
                Delta::Stop(StopReason::ContentFilter),
            ]
        );
    }

    /// Frames parsed back: each must be one `data:` line holding a JSON object, with no
    /// `event:` line (the google-genai SDK reads every line after `data: ` as JSON).
    fn frames_as_json(frames: &[Bytes]) -> Vec<Value> {
        for frame in frames {
            let text = std::str::from_utf8(frame).expect("UTF-8");
            assert!(text.starts_with("data: {"), "{text}");
            assert!(text.ends_with("}\n\n"), "{text}");
            assert_eq!(
                text.lines().count(),
                2,
                "one data line, then the blank line"
            );
        }
        frame_events(frames)
            .into_iter()
            .map(|event| {
                assert_eq!(event.event, None);
                serde_json::from_str(&event.data).expect("JSON")
            })
            .collect()
    }

    fn encode_stream(deltas: &[Delta]) -> Vec<Bytes> {
        let mut encoder = StreamEncoder::new(true);
        let mut frames: Vec<Bytes> = deltas.iter().flat_map(|d| encoder.push(d)).collect();
        frames.extend(encoder.finish());
        frames
    }

    /// What an Anthropic upstream's stream decodes to: thinking then its signature, text, a
    /// tool call in fragments, the stop, then the final usage.
    fn anthropic_deltas() -> Vec<Delta> {
        vec![
            Delta::Start {
                id: "msg_01".into(),
                model: "claude-sonnet-4-5".into(),
            },
            Delta::Usage(Usage {
                input_tokens: 10,
                cache_read_tokens: 5,
                output_tokens: 1,
                ..Usage::default()
            }),
            Delta::Thinking("Let me".into()),
            Delta::Thinking(" think.".into()),
            Delta::ThinkingSignature {
                source: Some(Dialect::Gemini),
                signature: "EqQB".into(),
            },
            Delta::Text("Checking.".into()),
            Delta::ToolCallStart {
                index: 0,
                id: "toolu_1".into(),
                name: "get_weather".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: String::new(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "{\"ci".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "ty\": \"Paris\"}".into(),
            },
            Delta::Stop(StopReason::ToolUse),
            Delta::Usage(Usage {
                output_tokens: 42,
                ..Usage::default()
            }),
        ]
    }

    #[test]
    fn encodes_a_stream() {
        let frame = |parts: Value| {
            json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
                "modelVersion": "claude-sonnet-4-5", "responseId": "msg_01"})
        };
        assert_eq!(
            frames_as_json(&encode_stream(&anthropic_deltas())),
            vec![
                frame(json!([{"thought": true, "text": "Let me"}])),
                frame(json!([{"thought": true, "text": " think."}])),
                frame(json!([{"thought": true, "text": "", "thoughtSignature": "EqQB"}])),
                frame(json!([{"text": "Checking."}])),
                json!({
                    "candidates": [{
                        "content": {"role": "model", "parts": [
                            {"functionCall": {"id": "toolu_1", "name": "get_weather",
                                "args": {"city": "Paris"}}}
                        ]},
                        "finishReason": "STOP",
                        "index": 0
                    }],
                    "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 42,
                        "cachedContentTokenCount": 5, "totalTokenCount": 57},
                    "modelVersion": "claude-sonnet-4-5",
                    "responseId": "msg_01"
                }),
            ]
        );
    }

    #[test]
    fn encoder_without_start_keeps_order_and_finishes_once() {
        let mut encoder = StreamEncoder::new(false);
        let mut frames = Vec::new();
        for delta in [
            Delta::Text(String::new()),
            Delta::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "f".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "{\"x\":".into(),
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "1}".into(),
            },
            // Text after a call: the call is complete and goes first.
            Delta::Text("after".into()),
            Delta::ToolCallStart {
                index: 1,
                id: String::new(),
                name: "g".into(),
            },
            Delta::ToolCallArguments {
                index: 1,
                fragment: "{broken".into(),
            },
            Delta::Stop(StopReason::Other("pause_turn".into())),
        ] {
            frames.extend(encoder.push(&delta));
        }
        frames.extend(encoder.finish());
        assert!(encoder.finish().is_empty(), "finish is idempotent");
        assert!(encoder.push(&Delta::Text("late".into())).is_empty());
        assert_eq!(
            frames_as_json(&frames),
            vec![
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"id": "call_a", "name": "f", "args": {"x": 1}}},
                    {"text": "after"}
                ]}, "index": 0}], "modelVersion": "unknown", "responseId": "msg_gw"}),
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"name": "g", "args": {}}}
                ]}, "finishReason": "OTHER", "index": 0}],
                "usageMetadata": {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0},
                "modelVersion": "unknown", "responseId": "msg_gw"}),
            ]
        );

        // Nothing at all, not even a stop: still a valid closing event.
        let frames = StreamEncoder::new(false).finish();
        assert_eq!(
            frames_as_json(&frames)[0]["candidates"][0],
            json!({"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0})
        );
    }

    #[test]
    fn stream_round_trip() {
        let frames = encode_stream(&anthropic_deltas());
        let mut decoder = StreamDecoder::default();
        let decoded: Vec<Delta> = frame_events(&frames)
            .iter()
            .flat_map(|event| decoder.push(event))
            .collect();
        assert_eq!(
            decoded,
            vec![
                Delta::Start {
                    id: "msg_01".into(),
                    model: "claude-sonnet-4-5".into()
                },
                Delta::Thinking("Let me".into()),
                Delta::Thinking(" think.".into()),
                Delta::ThinkingSignature {
                    source: Some(Dialect::Gemini),
                    signature: "EqQB".into(),
                },
                Delta::Text("Checking.".into()),
                Delta::ToolCallStart {
                    index: 0,
                    id: "toolu_1".into(),
                    name: "get_weather".into()
                },
                // Whole, as Gemini sends calls.
                Delta::ToolCallArguments {
                    index: 0,
                    fragment: r#"{"city":"Paris"}"#.into()
                },
                Delta::Usage(Usage {
                    input_tokens: 10,
                    output_tokens: 42,
                    cache_read_tokens: 5,
                    ..Usage::default()
                }),
                Delta::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[test]
    fn gemini_stream_through_both_ends_matches_the_answer() {
        // Decoding the recorded stream and encoding it again gives a Gemini client the same
        // text, thinking and final usage the upstream sent.
        let frames = encode_stream(&decode_stream(TEXT_STREAM));
        let values = frames_as_json(&frames);
        let texts: Vec<&Value> = values
            .iter()
            .flat_map(|v| {
                v["candidates"][0]["content"]["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                &json!({"thought": true, "text": "**Answering a greeting**\n\nThe user says hello."}),
                &json!({"text": "Hello! How can I"}),
                &json!({"text": " help you today?"}),
            ]
        );
        let last = values.last().expect("a closing event");
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["usageMetadata"],
            json!({"promptTokenCount": 7, "candidatesTokenCount": 9, "thoughtsTokenCount": 33,
                "totalTokenCount": 49})
        );
        assert_eq!(last["responseId"], "2p5qaNmOF4-qz7IPo9mS8Ak");
    }
}
