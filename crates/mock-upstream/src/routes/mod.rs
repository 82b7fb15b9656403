//! The fake provider API: the route table, what every route shares (token
//! counting, the reply text or tool call, error envelopes) and the
//! [`Reply`] each route hands back to the server to write.
//!
//! Each provider's wire format lives in its own module.

mod anthropic;
mod errors;
mod gemini;
mod openai;
mod responses;

use serde_json::Value;

pub(crate) use errors::ApiError;

use crate::behaviour::Behaviour;
use crate::stream::StreamPlan;

/// Whose conventions (error envelope, rate-limit headers, request id) a
/// route follows. The Responses API follows OpenAI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

/// What a Gemini `models/{model}:{action}` call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeminiAction {
    Generate,
    Stream,
    CountTokens,
}

/// A routed API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Health,
    Models,
    ChatCompletions,
    Responses,
    Messages,
    CountTokens,
    Gemini {
        model: &'a str,
        action: GeminiAction,
    },
    NotFound,
}

impl<'a> Route<'a> {
    /// Route a method and a path (already stripped of `/_b/` and query).
    pub(crate) fn parse(method: &str, path: &'a str) -> Route<'a> {
        let post = method == "POST";
        let get = method == "GET";
        match path {
            "/health" if get => return Route::Health,
            "/v1/models" if get => return Route::Models,
            "/v1/chat/completions" if post => return Route::ChatCompletions,
            "/v1/responses" if post => return Route::Responses,
            "/v1/messages" if post => return Route::Messages,
            "/v1/messages/count_tokens" if post => return Route::CountTokens,
            _ => {}
        }
        if post && let Some((model, action)) = gemini_path(path) {
            let action = match action {
                "generateContent" => GeminiAction::Generate,
                "streamGenerateContent" => GeminiAction::Stream,
                "countTokens" => GeminiAction::CountTokens,
                _ => return Route::NotFound,
            };
            return Route::Gemini { model, action };
        }
        Route::NotFound
    }

    /// The conventions this route follows.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Route::Messages | Route::CountTokens => Dialect::Anthropic,
            Route::Gemini { .. } => Dialect::Gemini,
            _ => Dialect::OpenAi,
        }
    }

    /// The model the request asks for: the Gemini path, else body `model`.
    pub(crate) fn model<'b>(&self, body: Option<&'b Value>) -> Option<&'b str>
    where
        'a: 'b,
    {
        match self {
            Route::Gemini { model, .. } => Some(model),
            _ => body?.get("model")?.as_str(),
        }
    }
}

/// `/v1beta/models/{model}:{action}` (or `/v1/...`) → `(model, action)`.
fn gemini_path(path: &str) -> Option<(&str, &str)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, action) = rest.rsplit_once(':')?;
    (!model.is_empty()).then_some((model, action))
}

/// The model a logged request asked for (for `GET /_mock/requests`).
pub(crate) fn request_model(path: &str, body: Option<&Value>) -> Option<String> {
    match gemini_path(path) {
        Some((model, _)) => Some(model.to_owned()),
        None => body?.get("model")?.as_str().map(str::to_owned),
    }
}

/// What the server writes back.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A complete body, sent with Content-Length.
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A streamed body, sent chunked.
    Stream(StreamPlan),
}

impl Reply {
    pub(crate) fn json(status: u16, value: &Value) -> Reply {
        Reply::Full {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }
}

/// What a route handler gets to look at.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The request body, when it is JSON.
    pub body: Option<&'a Value>,
    pub behaviour: &'a Behaviour,
    pub query: Option<&'a str>,
    /// An `anthropic-version` header was sent (selects the Anthropic
    /// flavour of `GET /v1/models`).
    pub anthropic_version: bool,
    /// The method and path, for "Invalid URL" messages.
    pub method: &'a str,
    pub path: &'a str,
}

impl<'a> Ctx<'a> {
    /// The JSON body, or the dialect's "could not parse" error.
    fn json(&self) -> Result<&'a Value, ApiError> {
        self.body.filter(|b| b.is_object()).ok_or_else(|| {
            ApiError::new(
                400,
                "We could not parse the JSON body of your request. The body must be a JSON object.",
            )
        })
    }
}

/// Run the handler of a route.
pub(crate) fn dispatch(route: &Route<'_>, ctx: &Ctx<'_>) -> Reply {
    let dialect = route.dialect();
    let result = match route {
        Route::Health => Ok(Reply::Full {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: b"ok".to_vec(),
        }),
        Route::Models if ctx.anthropic_version => Ok(anthropic::models()),
        Route::Models => Ok(openai::models()),
        Route::ChatCompletions => openai::chat_completions(ctx),
        Route::Responses => responses::create(ctx),
        Route::Messages => anthropic::messages(ctx),
        Route::CountTokens => anthropic::count_tokens(ctx),
        Route::Gemini { model, action } => gemini::handle(ctx, model, *action),
        Route::NotFound => Err(ApiError::new(
            404,
            format!("Invalid URL ({} {})", ctx.method, ctx.path),
        )),
    };
    result.unwrap_or_else(|e| e.reply(dialect))
}

/// `max(1, bytes / 4)`: the mock's deterministic tokenizer.
pub(crate) fn tokens(bytes: usize) -> u64 {
    u64::try_from(bytes / 4).unwrap_or(u64::MAX).max(1)
}

/// Keys whose string values count as prompt text, wherever they appear in
/// the body: message `content`, part `text`, Responses `input` and
/// `instructions`, Anthropic `system`.
const TEXT_KEYS: &[&str] = &["content", "text", "input", "instructions", "system"];

fn text_bytes(v: &Value) -> usize {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if TEXT_KEYS.contains(&k.as_str()) => s.len(),
                _ => text_bytes(v),
            })
            .sum(),
        Value::Array(items) => items.iter().map(text_bytes).sum(),
        _ => 0,
    }
}

/// Prompt tokens of a request body (before any cache tokens are added).
pub(crate) fn input_tokens(body: &Value) -> u64 {
    tokens(text_bytes(body))
}

/// Token usage in provider-neutral terms. Each dialect maps it onto its
/// own fields (e.g. OpenAI's `prompt_tokens` includes cached tokens,
/// Anthropic's `input_tokens` does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens neither read from nor written to the cache.
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Visible output tokens.
    pub output: u64,
    pub reasoning: u64,
}

impl Usage {
    /// Every prompt token, cached or not.
    pub(crate) fn prompt_total(&self) -> u64 {
        self.input + self.cache_read + self.cache_write
    }
    /// Output tokens including reasoning (how OpenAI and Anthropic bill).
    pub(crate) fn output_total(&self) -> u64 {
        self.output + self.reasoning
    }
}

/// A function call the mock "decides" to make.
#[derive(Debug, Clone)]
pub(crate) struct ToolCall {
    pub name: String,
    /// The arguments as JSON text (OpenAI style).
    pub arguments: String,
    /// The same arguments as a JSON value (Anthropic / Gemini style).
    pub args: Value,
}

/// The reply content.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    Text(String),
    Tool(ToolCall),
}

/// Decide the reply and its usage. A tool call is made when the request
/// offers a tool (`tool`), its last message is the user's (`user_text`,
/// `None` when the last message is a tool result) and mentions "weather",
/// and no `output_text` override is set.
pub(crate) fn plan(
    b: &Behaviour,
    model: &str,
    body: &Value,
    tool: Option<&str>,
    user_text: Option<&str>,
) -> (Content, Usage) {
    let wants_tool = b.output_text.is_none()
        && tool.is_some()
        && user_text.is_some_and(|t| t.to_ascii_lowercase().contains("weather"));
    let content = match tool {
        Some(name) if wants_tool => {
            let args = serde_json::json!({"location": "Paris, France", "unit": "celsius"});
            Content::Tool(ToolCall {
                name: name.to_owned(),
                arguments: args.to_string(),
                args,
            })
        }
        _ => Content::Text(b.output_text.clone().unwrap_or_else(|| {
            format!("Hello from the mock upstream! This is {model} answering your request.")
        })),
    };
    let output_bytes = match &content {
        Content::Text(t) => t.len(),
        Content::Tool(c) => c.name.len() + c.arguments.len(),
    };
    let usage = Usage {
        input: input_tokens(body),
        cache_read: b.cache_read_tokens.unwrap_or(0),
        cache_write: b.cache_creation_tokens.unwrap_or(0),
        output: tokens(output_bytes),
        reasoning: b.reasoning_tokens.unwrap_or(0),
    };
    (content, usage)
}

/// Split text into stream deltas of about `words` words each; the pieces
/// concatenate back to the text exactly.
pub(crate) fn pieces(text: &str, words: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.match_indices(' ') {
        count += 1;
        if count == words {
            out.push(&text[start..=i]);
            start = i + 1;
            count = 0;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Split text into pieces of about `len` bytes on character boundaries
/// (for streaming tool-call arguments).
pub(crate) fn slices(text: &str, len: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + len.max(1)).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// The text of a message's `content`: a string, or the `text` of its parts
/// (parts typed `text`, `input_text` or untyped).
pub(crate) fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                let ty = p.get("type").and_then(Value::as_str);
                if matches!(ty, None | Some("text" | "input_text"))
                    && let Some(t) = p.get("text").and_then(Value::as_str)
                {
                    out.push_str(t);
                }
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_models() {
        assert_eq!(
            Route::parse(
                "POST",
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
            ),
            Route::Gemini {
                model: "gemini-2.0-flash",
                action: GeminiAction::Stream
            }
        );
        assert_eq!(Route::parse("GET", "/v1/chat/completions"), Route::NotFound);
        assert_eq!(
            Route::parse("POST", "/v1/messages").dialect(),
            Dialect::Anthropic
        );
        assert_eq!(
            request_model("/v1beta/models/g:generateContent", None).as_deref(),
            Some("g")
        );
    }

    #[test]
    fn tokenizer_counts_text_fields_only() {
        let body = serde_json::json!({
            "model": "a-very-long-model-name-that-is-not-counted",
            "messages": [{"role": "user", "content": "12345678"},
                         {"role": "user", "content": [{"type": "text", "text": "abcd"}]}]
        });
        assert_eq!(input_tokens(&body), 3);
        assert_eq!(input_tokens(&serde_json::json!({})), 1);
    }

    #[test]
    fn pieces_rejoin() {
        let t = "one two three four five";
        assert_eq!(pieces(t, 2).concat(), t);
        assert_eq!(pieces(t, 2).len(), 3);
        assert_eq!(slices("héllo wörld", 3).concat(), "héllo wörld");
    }
}
