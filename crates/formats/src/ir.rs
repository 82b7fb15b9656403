//! The format-neutral model that cross-format conversion goes through.
//!
//! Converting between four dialects pairwise would take twelve converters; instead each dialect
//! decodes into and encodes from these types (a hub), so a request goes `A → ir → B`. The model
//! holds exactly what at least two dialects can express — text, images, tool definitions, tool
//! calls and results with ids, thinking blocks, sampling parameters, stop reasons, usage. A
//! decoder refuses ([`Unsupported`]) a field it cannot carry into this model, and an encoder
//! refuses a part its dialect cannot express: a candidate is skipped with that reason instead of
//! receiving a silently altered request.
//!
//! Conventions every codec relies on:
//! - The system prompt is separate from the turns (Anthropic's and Gemini's shape); OpenAI's
//!   `system`/`developer` messages are collected into it.
//! - Tool results are parts of a `User` turn (Anthropic's and Gemini's shape); OpenAI's `tool`
//!   messages become such parts, and consecutive ones share one turn.
//! - Tool-call arguments are a JSON value (normally an object), never a JSON-encoded string.
//! - Ids are kept as they are; a dialect without ids (Gemini) gets generated ones on decode, and
//!   its encoder finds a tool result's function name through the call with the same id.

use crate::dialect::Dialect;
use crate::usage::Usage;
use serde_json::Value;
use std::fmt;

/// A request in the neutral model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// System instructions, in order (text parts; images are not allowed there by any dialect).
    pub system: Vec<String>,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// How the model must use the tools; `None` = the dialect's default (auto).
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn; `None` = the dialect's default,
    /// which is parallel calls allowed in every dialect; `Some(false)` = at most one tool call
    /// per turn (OpenAI's `parallel_tool_calls: false`, Anthropic's
    /// `disable_parallel_tool_use: true`). Only meaningful when there are tools.
    pub parallel_tool_calls: Option<bool>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini).
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Streamed answer.
    pub stream: bool,
    /// Reasoning / extended thinking.
    pub reasoning: Option<Reasoning>,
    /// The JSON schema or mode the answer must follow.
    pub response_format: Option<ResponseFormat>,
}

/// One turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What was said, in order.
    pub content: Vec<Part>,
}

impl Message {
    /// A user turn holding `content` (text, images, tool results).
    #[must_use]
    pub fn user(content: Vec<Part>) -> Self {
        Self {
            role: Role::User,
            content,
        }
    }

    /// An assistant turn holding `content` (text, thinking, tool calls).
    #[must_use]
    pub fn assistant(content: Vec<Part>) -> Self {
        Self {
            role: Role::Assistant,
            content,
        }
    }
}

/// The speaker of a turn (system prompts live in [`Request::system`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user, tool results included.
    User,
    /// The model.
    Assistant,
}

/// One piece of a turn or of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Plain text.
    Text(String),
    /// An image (user turns only).
    Image(Image),
    /// The model calls a tool (assistant turns and answers).
    ToolCall(ToolCall),
    /// The result of a tool call (user turns).
    ToolResult(ToolResult),
    /// Reasoning the model showed (assistant turns and answers).
    Thinking(Thinking),
}

impl Part {
    /// A text part.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Part::Text(text.into())
    }

    /// A tool call with its id, the tool's name and the arguments (a JSON value).
    #[must_use]
    pub fn tool_call(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        Part::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments,
        })
    }

    /// The result of the call with id `call_id`: `content` (text and images), failed or not.
    #[must_use]
    pub fn tool_result(call_id: impl Into<String>, content: Vec<Part>, is_error: bool) -> Self {
        Part::ToolResult(ToolResult {
            call_id: call_id.into(),
            content,
            is_error,
        })
    }

    /// A reasoning block with no signature (it cannot be sent back to a provider as its own).
    #[must_use]
    pub fn thinking(text: impl Into<String>) -> Self {
        Part::Thinking(Thinking {
            text: text.into(),
            signature: None,
            source: None,
        })
    }

    /// A reasoning block carrying the `signature` that the provider of dialect `source` issued.
    #[must_use]
    pub fn signed_thinking(
        text: impl Into<String>,
        signature: impl Into<String>,
        source: Dialect,
    ) -> Self {
        Part::Thinking(Thinking {
            text: text.into(),
            signature: Some(signature.into()),
            source: Some(source),
        })
    }
}

/// Image data or a reference to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// Inline bytes, base64-encoded, with their media type (`image/png`).
    Base64 {
        /// MIME type.
        media_type: String,
        /// Base64 payload (no `data:` prefix).
        data: String,
    },
    /// An URL the provider fetches (`https://…`).
    Url(String),
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call's id, echoed by its result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON value (an object for every real tool).
    pub arguments: Value,
}

/// The answer to a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The id of the call it answers.
    pub call_id: String,
    /// The result: text and images.
    pub content: Vec<Part>,
    /// The tool failed.
    pub is_error: bool,
}

/// A reasoning block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thinking {
    /// The visible reasoning text (may be empty when only a signature is carried).
    pub text: String,
    /// The provider's signature that lets the block be sent back (Anthropic), if any.
    pub signature: Option<String>,
    /// The dialect whose provider issued `signature` (`None`: unknown, or no signature). Only
    /// that provider is sent the signature; clients of other dialects get it marked with its
    /// issuer (see [`crate::signature`]).
    pub source: Option<Dialect>,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON schema of its arguments (an object schema).
    pub parameters: Value,
    /// The client asked the provider to enforce the schema exactly (OpenAI's and Anthropic's
    /// `strict`); false = not asked. The OpenAI and Anthropic codecs read and write it; Gemini
    /// has no such switch.
    pub strict: bool,
}

/// Tool use policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool must be called.
    Tool(String),
}

/// Reasoning settings. Dialects express either an effort (OpenAI) or a token budget
/// (Anthropic, Gemini); a codec converts one to the other with [`Reasoning::budget_for_effort`]
/// and [`Reasoning::effort_for_budget`] so the same request always maps the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reasoning {
    /// `minimal`, `low`, `medium` or `high`.
    pub effort: Option<String>,
    /// Thinking token budget.
    pub budget_tokens: Option<u64>,
}

impl Reasoning {
    /// The thinking budget that stands for an effort level.
    #[must_use]
    pub fn budget_for_effort(effort: &str) -> Option<u64> {
        match effort {
            "minimal" => Some(1_024),
            "low" => Some(2_048),
            "medium" => Some(8_192),
            "high" => Some(24_576),
            _ => None,
        }
    }

    /// The effort level that stands for a thinking budget.
    #[must_use]
    pub fn effort_for_budget(budget: u64) -> &'static str {
        match budget {
            0..=1_024 => "minimal",
            1_025..=4_096 => "low",
            4_097..=16_384 => "medium",
            _ => "high",
        }
    }
}

/// Structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON following this schema.
    JsonSchema {
        /// Schema name (OpenAI requires one).
        name: String,
        /// The schema.
        schema: Value,
        /// The client asked the provider to enforce the schema exactly (OpenAI's `strict`);
        /// false = not asked. Only the OpenAI codecs read and write it.
        strict: bool,
    },
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Natural end of the answer.
    EndTurn,
    /// The token limit was hit.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The model called tools and waits for their results.
    ToolUse,
    /// A safety or content filter stopped it.
    ContentFilter,
    /// Something else the dialect reported (kept for the record).
    Other(String),
}

/// A complete, non-streamed answer in the neutral model.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The upstream's response id.
    pub id: String,
    /// The model the upstream says answered (never rewritten by the gateway).
    pub model: String,
    /// The answer: text, thinking and tool calls, in order.
    pub content: Vec<Part>,
    /// Why it stopped.
    pub stop_reason: Option<StopReason>,
    /// Normalised usage.
    pub usage: Usage,
}

/// One step of a streamed answer in the neutral model. A stream decoder turns upstream events
/// into these; a stream encoder turns them into the client's events, keeping the block and
/// index bookkeeping of its own dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// The answer begins (first event).
    Start {
        /// Response id.
        id: String,
        /// Model that answers.
        model: String,
    },
    /// More answer text.
    Text(String),
    /// More reasoning text.
    Thinking(String),
    /// The signature of the current thinking block.
    ThinkingSignature {
        /// The dialect whose provider issued it (`None`: unknown).
        source: Option<Dialect>,
        /// The signature, unmarked.
        signature: String,
    },
    /// A tool call begins. `index` counts tool calls of this answer from 0.
    ToolCallStart {
        /// Ordinal of the call in this answer.
        index: usize,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// A fragment of the JSON text of a call's arguments (concatenated they form the JSON).
    ToolCallArguments {
        /// Ordinal of the call.
        index: usize,
        /// The fragment.
        fragment: String,
    },
    /// Usage so far (merge with [`Usage::merge_stream`]).
    Usage(Usage),
    /// Generation stopped for this reason (the stream's end follows).
    Stop(StopReason),
}

/// A feature of a request or answer that a dialect cannot express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// What cannot be carried over, naming the field (`logprobs`, `messages[2].content[0]
    /// (audio)`), ready to be put after "cannot convert: ".
    pub what: String,
}

impl Unsupported {
    /// A refusal naming `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot convert: {}", self.what)
    }
}

impl std::error::Error for Unsupported {}
