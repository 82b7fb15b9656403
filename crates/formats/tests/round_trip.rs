#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code"
)]
//! Property tests: a round trip through any dialect keeps what every dialect can express.
//!
//! Requests: a neutral request restricted to the features all four dialects carry — system
//! texts, alternating user/assistant text turns, function tools with object schemas and a tool
//! choice, assistant tool calls with ids answered in the next user turn by results with the same
//! ids and text content, `max_tokens`, `temperature` in [0, 1], `top_p`, the stream flag — is
//! encoded for dialect D with [`convert::encode_request`], read back through D's front door
//! (`parse_request`; Gemini's model and stream flag from the URL path) and decoded with
//! [`convert::decode_request`]. It must come back equal after this normalisation:
//!
//! - consecutive turns of one role are merged: OpenAI chat writes a user turn's tool results as
//!   `tool` messages and its text as a separate `user` message, which decode as two turns;
//! - Responses has one `instructions` string: several system texts come back joined by a blank
//!   line.
//!
//! Not generated, because some dialect cannot express them or maps them lossily by design: stop
//! sequences (Responses), `top_k` (both OpenAI dialects), reasoning (effort ↔ budget), response
//! formats (Anthropic has no `json_object`), images in tool results (chat, Gemini), error flags
//! on tool results (chat, Responses), empty texts (Anthropic drops them), a missing `max_tokens`
//! (Anthropic requires one, so it comes back as the default) or one below 16 (Responses' floor),
//! temperatures above 1 (Anthropic).
//!
//! Gemini ids: the Gemini encoder sends `functionCall.id` / `functionResponse.id`, so ids survive
//! a Gemini round trip unchanged. A separate property strips those ids from the Gemini body (as
//! a client that never sends them would) and checks that the calls get generated ids and each
//! result still answers its own call: ids are compared by the order calls first appear.
//!
//! Answers: a neutral answer (texts, tool calls with ids, a stop reason, usage) is encoded with
//! each codec's `encode_response` and decoded back with the same codec's `decode_response`.
//! Normalisation: adjacent texts are concatenated (chat has one `content` string; Responses
//! splits a message into `output_text` parts); for OpenAI chat and Gemini, which have no cache
//! write count, cache writes come back as ordinary input tokens (the prompt count includes
//! them). The stop reason is generated consistent with the content (a natural end with tool
//! calls is tool use, which is how every dialect but Anthropic reports it).

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use switchyard_formats::anthropic::{messages, messages_codec};
use switchyard_formats::convert;
use switchyard_formats::gemini::{generate, generate_codec};
use switchyard_formats::ir::{
    Message, Part, Request, Response, Role, StopReason, Tool, ToolCall, ToolChoice, ToolResult,
};
use switchyard_formats::openai::{chat, chat_codec, responses, responses_codec};
use switchyard_formats::{ClientRequest, Dialect, Usage};

/// The model name every upstream body is encoded with.
const MODEL: &str = "upstream-model";

// ---------------------------------------------------------------------------------------------
// Generators

/// Non-empty text, with some non-ASCII and a line break now and then.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?'\"é中😀\n-]{1,24}"
}

/// A JSON value that survives any JSON round trip exactly (no floats).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-10_000i64..10_000).prop_map(Value::from),
        "[a-z é]{0,10}".prop_map(Value::from),
    ]
}

/// Tool-call arguments: an object.
fn arguments() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,8}", leaf(), 0..=3)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

/// An object schema with a few typed properties.
fn schema() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just("string"),
        Just("integer"),
        Just("number"),
        Just("boolean")
    ];
    prop::collection::btree_map("[a-z_]{1,8}", (kind, any::<bool>()), 0..=3).prop_map(|props| {
        let required: Vec<&String> = props
            .iter()
            .filter(|(_, (_, required))| *required)
            .map(|(name, _)| name)
            .collect();
        let properties: Map<String, Value> = props
            .iter()
            .map(|(name, (kind, _))| (name.clone(), json!({ "type": kind })))
            .collect();
        json!({"type": "object", "properties": properties, "required": required})
    })
}

fn tools() -> impl Strategy<Value = Vec<Tool>> {
    prop::collection::btree_map(
        "[a-z][a-z_]{0,10}",
        (prop::option::of(text()), schema()),
        0..=3,
    )
    .prop_map(|tools| {
        tools
            .into_iter()
            .map(|(name, (description, parameters))| Tool {
                name,
                description,
                parameters,
                // Gemini does not carry `strict`.
                strict: false,
            })
            .collect()
    })
}

/// A value in [0, 1] with two decimals: printed and parsed back exactly by any JSON library.
fn unit_interval() -> impl Strategy<Value = f64> {
    (0u32..=100).prop_map(|k| f64::from(k) / 100.0)
}

/// One assistant turn and the user turn that answers it, before ids are given out.
#[derive(Debug, Clone)]
struct Exchange {
    /// The assistant's texts (before its calls: chat cannot keep text after a call).
    said: Vec<String>,
    /// The calls: tool name and arguments.
    calls: Vec<(String, Value)>,
    /// The result text of each call (used in call order).
    results: Vec<String>,
    /// Text the user adds after the results (or says, when there were no calls).
    user_texts: Vec<String>,
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        prop::collection::vec(text(), 0..=2),
        prop::collection::vec(("[a-z][a-z_]{0,8}", arguments()), 0..=2),
        prop::collection::vec(text(), 2),
        prop::collection::vec(text(), 0..=2),
    )
        .prop_map(|(mut said, calls, results, mut user_texts)| {
            if said.is_empty() && calls.is_empty() {
                said.push("Okay.".to_owned());
            }
            if calls.is_empty() && user_texts.is_empty() {
                user_texts.push("Go on.".to_owned());
            }
            Exchange {
                said,
                calls,
                results,
                user_texts,
            }
        })
}

/// Ids of the shapes the dialects write (`call_…`, `toolu_…`, Gemini's generated `call_<n>`).
fn id_prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        "call_[A-Za-z0-9]{0,12}",
        "toolu_01[A-Za-z0-9]{0,12}",
        Just("call".to_owned()),
    ]
}

/// The turns: a user turn, then exchanges (an assistant turn; the user's results and/or text).
fn conversation() -> impl Strategy<Value = Vec<Message>> {
    (
        prop::collection::vec(text(), 1..=2),
        prop::collection::vec(exchange(), 0..=3),
        id_prefix(),
    )
        .prop_map(|(first, exchanges, prefix)| {
            let texts = |texts: &[String]| texts.iter().cloned().map(Part::Text).collect();
            let mut messages = vec![Message {
                role: Role::User,
                content: texts(&first),
            }];
            let mut next_id = 0;
            for exchange in exchanges {
                let mut said: Vec<Part> = texts(&exchange.said);
                let mut answer = Vec::new();
                for ((name, arguments), result) in exchange
                    .calls
                    .into_iter()
                    .zip(exchange.results.iter().cycle())
                {
                    let id = format!("{prefix}_{next_id}");
                    next_id += 1;
                    said.push(Part::ToolCall(ToolCall {
                        id: id.clone(),
                        name,
                        arguments,
                    }));
                    answer.push(Part::ToolResult(ToolResult {
                        call_id: id,
                        content: vec![Part::Text(result.clone())],
                        is_error: false,
                    }));
                }
                answer.extend(exchange.user_texts.into_iter().map(Part::Text));
                messages.push(Message {
                    role: Role::Assistant,
                    content: said,
                });
                messages.push(Message {
                    role: Role::User,
                    content: answer,
                });
            }
            messages
        })
}

fn tool_choice(tools: &[Tool]) -> BoxedStrategy<Option<ToolChoice>> {
    match tools.first() {
        None => Just(None).boxed(),
        Some(tool) => prop::option::of(prop_oneof![
            Just(ToolChoice::Auto),
            Just(ToolChoice::None),
            Just(ToolChoice::Required),
            Just(ToolChoice::Tool(tool.name.clone())),
        ])
        .boxed(),
    }
}

/// A neutral request every dialect expresses exactly (see the module documentation).
fn request() -> impl Strategy<Value = Request> {
    (
        prop::collection::vec(text(), 0..=2),
        conversation(),
        tools(),
        16u64..=65_536,
        prop::option::of(unit_interval()),
        prop::option::of(unit_interval()),
        any::<bool>(),
    )
        .prop_flat_map(
            |(system, messages, tools, max_tokens, temperature, top_p, stream)| {
                tool_choice(&tools).prop_map(move |tool_choice| Request {
                    system: system.clone(),
                    messages: messages.clone(),
                    tools: tools.clone(),
                    tool_choice,
                    max_tokens: Some(max_tokens),
                    temperature,
                    top_p,
                    stream,
                    ..Request::default()
                })
            },
        )
}

fn usage() -> impl Strategy<Value = Usage> {
    (
        0u64..1_000_000,
        0u64..100_000,
        0u64..1_000_000,
        0u64..100_000,
        0u64..=100,
    )
        .prop_map(|(input, output, read, written, reasoning_percent)| Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_creation_tokens: written,
            // Part of the output, never more.
            reasoning_tokens: output * reasoning_percent / 100,
        })
}

/// How an answer ended: naturally (tool use when it calls tools), at the limit, or filtered.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Natural,
    MaxTokens,
    ContentFilter,
}

/// A neutral answer: texts then tool calls (chat's order), a stop reason, usage.
fn answer() -> impl Strategy<Value = Response> {
    (
        "[A-Za-z0-9_-]{1,24}",
        "[a-z0-9.-]{1,20}",
        prop::collection::vec(text(), 0..=2),
        prop::collection::vec(("[a-z][a-z_]{0,8}", arguments()), 0..=3),
        id_prefix(),
        prop_oneof![
            Just(Ending::Natural),
            Just(Ending::MaxTokens),
            Just(Ending::ContentFilter)
        ],
        usage(),
    )
        .prop_map(|(id, model, texts, calls, prefix, ending, usage)| {
            let called = !calls.is_empty();
            let mut content: Vec<Part> = texts.into_iter().map(Part::Text).collect();
            content.extend(calls.into_iter().enumerate().map(|(n, (name, arguments))| {
                Part::ToolCall(ToolCall {
                    id: format!("{prefix}_{n}"),
                    name,
                    arguments,
                })
            }));
            let stop_reason = match ending {
                Ending::Natural if called => StopReason::ToolUse,
                Ending::Natural => StopReason::EndTurn,
                Ending::MaxTokens => StopReason::MaxTokens,
                Ending::ContentFilter => StopReason::ContentFilter,
            };
            Response {
                id,
                model,
                content,
                stop_reason: Some(stop_reason),
                usage,
            }
        })
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// The body `encode_request` produced, as the JSON object an upstream (or a client) would send.
fn encoded(req: &Request, dialect: Dialect) -> Map<String, Value> {
    let bytes = convert::encode_request(req, dialect, MODEL)
        .unwrap_or_else(|refusal| panic!("{dialect} refused a common request: {refusal}"));
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(body)) => body,
        other => panic!("{dialect} encoded {other:?}"),
    }
}

/// A body read back through the dialect's front door and decoded.
fn decoded(body: &Map<String, Value>, dialect: Dialect, stream: bool) -> Request {
    let raw = serde_json::to_vec(body).expect("JSON");
    let client: ClientRequest = match dialect {
        Dialect::Chat => chat::parse_request(raw.clone()),
        Dialect::Responses => responses::parse_request(raw.clone()),
        Dialect::Messages => messages::parse_request(raw.clone()),
        Dialect::Gemini => {
            let action = if stream {
                "streamGenerateContent"
            } else {
                "generateContent"
            };
            let (model, stream) =
                generate::parse_path(&format!("models/{MODEL}:{action}")).expect("a Gemini path");
            generate::parse_request(raw.clone(), &model, stream)
        }
    }
    .unwrap_or_else(|e| panic!("the {dialect} front door rejects what its encoder wrote: {e}"));
    convert::decode_request(&client)
        .unwrap_or_else(|refusal| panic!("{dialect} cannot decode what it encoded: {refusal}"))
}

/// Consecutive turns of one role as one turn.
fn merge_turns(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for message in messages {
        match out.last_mut() {
            Some(last) if last.role == message.role => last.content.extend(message.content),
            _ => out.push(message),
        }
    }
    out
}

/// The request as it must come back from `dialect` (see the module documentation).
fn normalise_request(mut req: Request, dialect: Dialect) -> Request {
    req.messages = merge_turns(req.messages);
    if dialect == Dialect::Responses && !req.system.is_empty() {
        req.system = vec![req.system.join("\n\n")];
    }
    req
}

/// Call ids replaced by `#<k>`, k the order in which the call first appears; a result takes its
/// call's new id (or `unanswered:<id>`), so two requests compare equal exactly when their calls
/// and the linkage of results to calls agree.
fn canonical_ids(mut req: Request) -> Request {
    let mut ids: HashMap<String, String> = HashMap::new();
    for message in &mut req.messages {
        for part in &mut message.content {
            match part {
                Part::ToolCall(call) => {
                    let next = format!("#{}", ids.len());
                    call.id = ids.entry(call.id.clone()).or_insert(next).clone();
                }
                Part::ToolResult(result) => {
                    result.call_id = ids
                        .get(&result.call_id)
                        .cloned()
                        .unwrap_or_else(|| format!("unanswered:{}", result.call_id));
                }
                _ => {}
            }
        }
    }
    req
}

/// Removes `id` from every `functionCall` and `functionResponse` of a Gemini body.
fn strip_gemini_ids(body: &mut Map<String, Value>) {
    let contents = body.get_mut("contents").and_then(Value::as_array_mut);
    for content in contents.into_iter().flatten() {
        let parts = content.get_mut("parts").and_then(Value::as_array_mut);
        for part in parts.into_iter().flatten() {
            for kind in ["functionCall", "functionResponse"] {
                if let Some(Value::Object(data)) = part.get_mut(kind) {
                    data.remove("id");
                }
            }
        }
    }
}

/// Adjacent texts joined.
fn merge_texts(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for part in parts {
        match (out.last_mut(), part) {
            (Some(Part::Text(last)), Part::Text(more)) => last.push_str(&more),
            (_, part) => out.push(part),
        }
    }
    out
}

/// The answer as it must come back from `dialect` (see the module documentation).
fn normalise_answer(mut resp: Response, dialect: Dialect) -> Response {
    resp.content = merge_texts(resp.content);
    if matches!(dialect, Dialect::Chat | Dialect::Gemini) {
        resp.usage.input_tokens += resp.usage.cache_creation_tokens;
        resp.usage.cache_creation_tokens = 0;
    }
    resp
}

/// The answer encoded and decoded by `dialect`'s own codec.
fn answer_round_trip(resp: &Response, dialect: Dialect) -> Response {
    let back = match dialect {
        Dialect::Chat => chat_codec::decode_response(&chat_codec::encode_response(resp)),
        Dialect::Responses => {
            responses_codec::decode_response(&responses_codec::encode_response(resp))
        }
        Dialect::Messages => {
            messages_codec::decode_response(&messages_codec::encode_response(resp))
        }
        Dialect::Gemini => generate_codec::decode_response(&generate_codec::encode_response(resp)),
    };
    back.unwrap_or_else(|refusal| panic!("{dialect} cannot decode its own answer: {refusal}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn requests_survive_every_dialect(req in request()) {
        for dialect in Dialect::ALL {
            let back = decoded(&encoded(&req, dialect), dialect, req.stream);
            prop_assert_eq!(
                normalise_request(back, dialect),
                normalise_request(req.clone(), dialect),
                "round trip through {}", dialect
            );
        }
    }

    #[test]
    fn gemini_without_ids_keeps_each_result_with_its_call(req in request()) {
        let mut body = encoded(&req, Dialect::Gemini);
        strip_gemini_ids(&mut body);
        let back = decoded(&body, Dialect::Gemini, req.stream);
        // Every call got an id of the generated form.
        for part in back.messages.iter().flat_map(|message| &message.content) {
            if let Part::ToolCall(call) = part {
                prop_assert!(
                    call.id.strip_prefix("call_").is_some_and(|n| n.parse::<usize>().is_ok()),
                    "generated id {}", call.id
                );
            }
        }
        prop_assert_eq!(
            canonical_ids(normalise_request(back, Dialect::Gemini)),
            canonical_ids(normalise_request(req, Dialect::Gemini))
        );
    }

    #[test]
    fn answers_survive_their_own_dialect(resp in answer()) {
        for dialect in Dialect::ALL {
            prop_assert_eq!(
                normalise_answer(answer_round_trip(&resp, dialect), dialect),
                normalise_answer(resp.clone(), dialect),
                "round trip through {}", dialect
            );
        }
    }
}
