//! One entry point per job, dispatching on the [`Dialect`]: the body sent upstream (native or
//! converted), usage and stream-event facts of the upstream's dialect, and answers converted to
//! the client's dialect — whole or as a stream.
//!
//! Conversion always goes `client dialect → ir → upstream dialect` and back, through each
//! dialect's codec; a request's neutral form is decoded once and encoded per candidate.

use crate::anthropic::{messages, messages_codec};
use crate::dialect::{ClientRequest, Dialect, StreamEvent};
use crate::gemini::{generate, generate_codec};
use crate::ir::{self, Unsupported};
use crate::openai::{chat, chat_codec, responses, responses_codec};
use crate::request_body::RequestBody;
use crate::sse::{self, SseEvent};
use crate::usage::Usage;
use bytes::Bytes;
use serde::ser::Serialize;
use serde_json::Value;

/// The body for an upstream of the client's own dialect: the client's body with the upstream
/// model name (Gemini: unchanged, the model is in the URL) and, for OpenAI chat streams, usage
/// reporting forced on.
#[must_use]
pub fn native_body(req: &ClientRequest, upstream_model: &str) -> Bytes {
    match req.dialect {
        Dialect::Chat => chat::upstream_body(req, upstream_model),
        // The body as received: a Gemini model is in the URL.
        Dialect::Gemini => req.body.bytes().clone(),
        Dialect::Messages | Dialect::Responses => with_model(&req.body, upstream_model),
    }
}

/// The body with its `model` set to `model` (added when the client sent none).
fn with_model(body: &RequestBody, model: &str) -> Bytes {
    let model = to_bytes(&model);
    let missing = (!body.contains_key("model")).then_some(("model", &model[..]));
    body.rewrite(|name| (name == "model").then_some(&model[..]), missing)
}

/// The client's request in the neutral model.
///
/// # Errors
/// A field or part the neutral model cannot carry.
pub fn decode_request(req: &ClientRequest) -> Result<ir::Request, Unsupported> {
    // The only place a request's whole tree is built: converting needs every part of it.
    let body = req
        .body
        .to_map()
        .map_err(|e| Unsupported::new(format!("the request body ({e})")))?;
    let mut decoded = match req.dialect {
        Dialect::Chat => chat_codec::decode_request(&body),
        Dialect::Responses => responses_codec::decode_request(&body),
        Dialect::Messages => messages_codec::decode_request(&body),
        Dialect::Gemini => generate_codec::decode_request(&body),
    }?;
    // Gemini carries streaming in the path, not the body.
    decoded.stream = req.stream;
    Ok(decoded)
}

/// The body for an upstream of dialect `to`.
///
/// # Errors
/// A part the target dialect cannot express.
pub fn encode_request(
    request: &ir::Request,
    to: Dialect,
    upstream_model: &str,
) -> Result<Bytes, Unsupported> {
    let mut body = match to {
        Dialect::Chat => chat_codec::encode_request(request, upstream_model),
        Dialect::Responses => responses_codec::encode_request(request, upstream_model),
        Dialect::Messages => messages_codec::encode_request(request, upstream_model),
        Dialect::Gemini => generate_codec::encode_request(request, upstream_model),
    }?;
    if to == Dialect::Chat && request.stream {
        // Accounting needs the usage chunk; the client never sees this stream raw.
        body.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    }
    Ok(to_bytes(&body))
}

/// Normalised usage of a whole upstream answer of `dialect`.
#[must_use]
pub fn usage_from_response(dialect: Dialect, body: &Value) -> Option<Usage> {
    match dialect {
        Dialect::Chat => chat::usage_from_response(body),
        Dialect::Responses => responses::usage_from_response(body),
        Dialect::Messages => messages::usage_from_response(body),
        Dialect::Gemini => generate::usage_from_response(body),
    }
}

/// What one upstream stream event of `dialect` means to the gateway.
#[must_use]
pub fn classify_stream_event(dialect: Dialect, event: &SseEvent) -> StreamEvent {
    match dialect {
        Dialect::Chat => chat::classify_stream_event(event),
        Dialect::Responses => responses::classify_stream_event(event),
        Dialect::Messages => messages::classify_stream_event(event),
        Dialect::Gemini => generate::classify_stream_event(event),
    }
}

/// The frame that ends a complete stream of `dialect` when the upstream closed without it
/// (`None`: the dialect has no terminator, or it cannot be made up — Responses' carries the
/// whole answer).
#[must_use]
pub fn terminator(dialect: Dialect) -> Option<Bytes> {
    match dialect {
        Dialect::Chat => Some(chat::done_event()),
        Dialect::Messages => Some(sse::encode(
            Some("message_stop"),
            r#"{"type":"message_stop"}"#,
        )),
        Dialect::Responses | Dialect::Gemini => None,
    }
}

/// A whole upstream answer of dialect `from` as the body a client of dialect `to` expects;
/// `now_unix` stamps the OpenAI dialects' `created` / `created_at` (this crate has no clock).
///
/// # Errors
/// The answer holds something the neutral model or the client's dialect cannot carry.
pub fn convert_response(
    from: Dialect,
    to: Dialect,
    body: &Value,
    now_unix: i64,
) -> Result<Bytes, Unsupported> {
    let answer = match from {
        Dialect::Chat => chat_codec::decode_response(body),
        Dialect::Responses => responses_codec::decode_response(body),
        Dialect::Messages => messages_codec::decode_response(body),
        Dialect::Gemini => generate_codec::decode_response(body),
    }?;
    let mut out = match to {
        Dialect::Chat => chat_codec::encode_response(&answer),
        Dialect::Responses => responses_codec::encode_response(&answer),
        Dialect::Messages => messages_codec::encode_response(&answer),
        Dialect::Gemini => generate_codec::encode_response(&answer),
    };
    let stamp = match to {
        Dialect::Chat => Some("created"),
        Dialect::Responses => Some("created_at"),
        Dialect::Messages | Dialect::Gemini => None,
    };
    if let (Some(field), Some(object)) = (stamp, out.as_object_mut()) {
        object.insert(field.into(), Value::from(now_unix));
    }
    Ok(to_bytes(&out))
}

/// Converts a stream event by event: upstream events of one dialect in, client frames of
/// another out.
#[derive(Debug)]
pub struct StreamConverter {
    decoder: Decoder,
    encoder: Encoder,
}

#[derive(Debug)]
enum Decoder {
    Chat(chat_codec::StreamDecoder),
    Responses(responses_codec::StreamDecoder),
    Messages(messages_codec::StreamDecoder),
    Gemini(generate_codec::StreamDecoder),
}

#[derive(Debug)]
enum Encoder {
    Chat(chat_codec::StreamEncoder),
    Responses(responses_codec::StreamEncoder),
    Messages(messages_codec::StreamEncoder),
    Gemini(generate_codec::StreamEncoder),
}

impl StreamConverter {
    /// Upstream `from`, client `to`; `include_usage` as the OpenAI chat client asked;
    /// `now_unix` stamps the OpenAI dialects' `created` / `created_at`.
    #[must_use]
    pub fn new(from: Dialect, to: Dialect, include_usage: bool, now_unix: i64) -> Self {
        let decoder = match from {
            Dialect::Chat => Decoder::Chat(chat_codec::StreamDecoder::new()),
            Dialect::Responses => Decoder::Responses(responses_codec::StreamDecoder::new()),
            Dialect::Messages => Decoder::Messages(messages_codec::StreamDecoder::new()),
            Dialect::Gemini => Decoder::Gemini(generate_codec::StreamDecoder::new()),
        };
        let encoder = match to {
            Dialect::Chat => {
                Encoder::Chat(chat_codec::StreamEncoder::new(include_usage).created(now_unix))
            }
            Dialect::Responses => Encoder::Responses(
                responses_codec::StreamEncoder::new(include_usage).created_at(now_unix),
            ),
            Dialect::Messages => {
                Encoder::Messages(messages_codec::StreamEncoder::new(include_usage))
            }
            Dialect::Gemini => Encoder::Gemini(generate_codec::StreamEncoder::new(include_usage)),
        };
        Self { decoder, encoder }
    }

    /// One upstream event in, the client's frames out (often none, sometimes several).
    pub fn push(&mut self, event: &SseEvent) -> Vec<Bytes> {
        let deltas = match &mut self.decoder {
            Decoder::Chat(d) => d.push(event),
            Decoder::Responses(d) => d.push(event),
            Decoder::Messages(d) => d.push(event),
            Decoder::Gemini(d) => d.push(event),
        };
        let mut out = Vec::new();
        for delta in &deltas {
            out.extend(match &mut self.encoder {
                Encoder::Chat(e) => e.push(delta),
                Encoder::Responses(e) => e.push(delta),
                Encoder::Messages(e) => e.push(delta),
                Encoder::Gemini(e) => e.push(delta),
            });
        }
        out
    }

    /// The answer is complete: the client's closing frames.
    pub fn finish(&mut self) -> Vec<Bytes> {
        match &mut self.encoder {
            Encoder::Chat(e) => e.finish(),
            Encoder::Responses(e) => e.finish(),
            Encoder::Messages(e) => e.finish(),
            Encoder::Gemini(e) => e.finish(),
        }
    }
}

#[expect(
    clippy::expect_used,
    reason = "serialising serde_json values, whose map keys are strings, into a Vec cannot fail"
)]
fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values always serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(dialect: Dialect, body: Value) -> ClientRequest {
        let Value::Object(body) = body else {
            unreachable!("test bodies are objects")
        };
        ClientRequest {
            dialect,
            model: "client-name".into(),
            stream: false,
            include_usage: false,
            body: body.into(),
        }
    }

    #[test]
    fn converted_openai_answers_carry_the_callers_clock() {
        let answer = json!({"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-x", "content": [{"type": "text", "text": "Hi."}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}});
        let now = 1_764_000_000;
        let chat = json_of(
            &convert_response(Dialect::Messages, Dialect::Chat, &answer, now).expect("converts"),
        );
        assert_eq!(chat["created"], now);
        let responses = json_of(
            &convert_response(Dialect::Messages, Dialect::Responses, &answer, now)
                .expect("converts"),
        );
        assert_eq!(responses["created_at"], now);
        let mut converter = StreamConverter::new(Dialect::Messages, Dialect::Chat, false, now);
        let frames: Vec<Bytes> = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x",
                "usage": {"input_tokens": 1, "output_tokens": 0}}}),
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Hi."}}),
        ]
        .iter()
        .flat_map(|data| {
            converter.push(&SseEvent {
                event: data["type"].as_str().map(str::to_owned),
                data: data.to_string(),
                id: None,
            })
        })
        .collect();
        let first = crate::sse::SseParser::new().push(&frames[0]);
        let chunk: Value = serde_json::from_str(&first[0].data).expect("json");
        assert_eq!(chunk["created"], now);
    }

    #[test]
    fn native_bodies_carry_the_upstream_model_where_the_dialect_puts_it() {
        let messages = request(
            Dialect::Messages,
            json!({"model": "client-name", "max_tokens": 5, "messages": []}),
        );
        let body: Value =
            serde_json::from_slice(&native_body(&messages, "claude-x")).expect("json");
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 5, "messages": []})
        );
        // Streams are not touched (Anthropic always reports usage); a missing model is added.
        let mut streamed = request(
            Dialect::Messages,
            json!({"model": "a", "max_tokens": 5, "messages": [{"role": "user"}], "stream": true}),
        );
        streamed.stream = true;
        assert_eq!(
            json_of(&native_body(&streamed, "b")),
            json!({"model": "b", "max_tokens": 5, "messages": [{"role": "user"}], "stream": true})
        );
        let bare = request(Dialect::Messages, json!({}));
        assert_eq!(json_of(&native_body(&bare, "b")), json!({"model": "b"}));
        let gemini = request(Dialect::Gemini, json!({"contents": []}));
        let body: Value = serde_json::from_slice(&native_body(&gemini, "gemini-x")).expect("json");
        assert_eq!(body, json!({"contents": []}));
    }

    fn json_of(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).expect("json")
    }

    /// An Anthropic answer shown to a Responses client, handed back on its next turn, reaches
    /// Anthropic with its original signature — and never OpenAI.
    #[test]
    fn a_foreign_signature_returns_to_its_provider_through_another_client() {
        let signature = "EqQBCkYIBxgCKkA+/x==";
        let answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "Plan.", "signature": signature},
                {"type": "text", "text": "Hi"}
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1}
        });
        let shown = json_of(
            &convert_response(Dialect::Messages, Dialect::Responses, &answer, 0).expect("converts"),
        );
        let reasoning = shown["output"][0].clone();
        assert_eq!(
            reasoning["encrypted_content"],
            json!(format!("swy1.messages.{signature}"))
        );

        let next = request(
            Dialect::Responses,
            json!({"model": "client-name", "input": [
                {"role": "user", "content": "Hello"},
                reasoning,
                shown["output"][1].clone(),
                {"role": "user", "content": "Again"}
            ]}),
        );
        let decoded = decode_request(&next).expect("decodes");
        let to_anthropic =
            json_of(&encode_request(&decoded, Dialect::Messages, "claude-x").expect("encodes"));
        assert_eq!(
            to_anthropic["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "Plan.", "signature": signature})
        );
        let to_openai =
            json_of(&encode_request(&decoded, Dialect::Responses, "gpt-x").expect("encodes"));
        assert!(
            !to_openai.to_string().contains("EqQB"),
            "an Anthropic signature never reaches OpenAI: {to_openai}"
        );
    }

    /// Through a Gemini client, streamed: the foreign signature is written as base64 of its
    /// marked form (google-genai decodes `thoughtSignature` as base64 bytes), comes back — even
    /// re-encoded URL-safe by the SDK — and reaches Anthropic as it was issued; Gemini gets the
    /// thought without it.
    #[test]
    fn a_streamed_foreign_signature_survives_a_gemini_client() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let signature = "EqQB+/sig==";
        let mut converter = StreamConverter::new(Dialect::Messages, Dialect::Gemini, false, 0);
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x",
                "usage": {"input_tokens": 1, "output_tokens": 0}}}),
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Plan."}}),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": signature}}),
            json!({"type": "content_block_stop", "index": 0}),
        ];
        let mut frames: String = events
            .iter()
            .flat_map(|data| {
                converter.push(&SseEvent {
                    event: data["type"].as_str().map(str::to_owned),
                    data: data.to_string(),
                    id: None,
                })
            })
            .map(|frame| String::from_utf8_lossy(&frame).into_owned())
            .collect();
        frames.extend(
            converter
                .finish()
                .iter()
                .map(|frame| String::from_utf8_lossy(frame).into_owned()),
        );
        let written = STANDARD.encode(format!("swy1.messages.{signature}"));
        assert!(frames.contains(&written), "{frames}");

        // The SDK holds it as bytes and sends it back URL-safe.
        let sent_back = URL_SAFE.encode(STANDARD.decode(&written).expect("base64"));
        let next = request(
            Dialect::Gemini,
            json!({"contents": [
                {"role": "user", "parts": [{"text": "Hello"}]},
                {"role": "model", "parts": [
                    {"thought": true, "text": "Plan.", "thoughtSignature": sent_back}
                ]},
                {"role": "user", "parts": [{"text": "Again"}]}
            ]}),
        );
        let decoded = decode_request(&next).expect("decodes");
        let to_anthropic =
            json_of(&encode_request(&decoded, Dialect::Messages, "claude-x").expect("encodes"));
        assert_eq!(
            to_anthropic["messages"][1]["content"][0]["signature"],
            json!(signature)
        );
        let to_gemini =
            json_of(&encode_request(&decoded, Dialect::Gemini, "gemini-x").expect("encodes"));
        assert_eq!(
            to_gemini["contents"][1]["parts"][0],
            json!({"thought": true, "text": "Plan."})
        );
    }
}
