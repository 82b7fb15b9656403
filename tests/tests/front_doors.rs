//! Every front door against the real binary and the mock upstream: OpenAI chat and Responses,
//! Anthropic messages (and count_tokens), Gemini, the model lists — each served by an upstream
//! of its own format and, with conversion allowed, by upstreams of the other formats; errors in
//! each caller's envelope; usage normalised right for every provider shape.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing"
)]

use serde_json::{Value, json};
use switchyard_tests::{
    Gateway, Mock, add_model, client, db, request_id, send, setup, sse_data, trace,
};

/// The upstream formats a test model can be served by, with the endpoint format name.
const UPSTREAMS: [(&str, &str); 4] = [
    ("openai", "OPENAI"),
    ("responses", "OPENAI_CLI"),
    ("claude", "CLAUDE"),
    ("gemini", "GEMINI"),
];

/// One gateway whose catalog has, per upstream format, a provider and a model `fd-<format>`
/// served only by it; conversion allowed globally.
struct World {
    gw: Gateway,
    _db: db::TestDb,
    mock: Mock,
    key: String,
}

impl World {
    async fn start() -> World {
        let database = db::sqlite().await;
        let gw = Gateway::start(&database.url);
        let mock = Mock::start("front-doors");
        let first = setup(&gw, "fd-unused", &[]).await;
        for (name, format) in UPSTREAMS {
            let provider_id = provider(&gw, name, format, mock.url()).await;
            add_model(&gw, &format!("fd-{name}"), &[&provider_id]).await;
            // The same upstream reporting cache and reasoning tokens in its own shape (Anthropic
            // reports cache writes; the mock's other shapes have no separate field for them).
            let writes = if name == "claude" {
                ",cache_creation_tokens=200"
            } else {
                ""
            };
            let caching = format!(
                "{}/_b/cache_read_tokens=1000,reasoning_tokens=64{writes}",
                mock.url()
            );
            let provider_id = provider(&gw, &format!("u-{name}"), format, &caching).await;
            add_model(&gw, &format!("fu-{name}"), &[&provider_id]).await;
        }
        // An OpenAI upstream that cuts its streams after two events.
        let cutting = format!("{}/_b/fault=stream_cut,after_events=2", mock.url());
        let provider_id = provider(&gw, "cut-openai", "OPENAI", &cutting).await;
        add_model(&gw, "fc-openai", &[&provider_id]).await;
        let (status, body) = send(
            gw.admin(reqwest::Method::PUT, "/settings/format_conversion")
                .json(&json!({"value": true})),
        )
        .await;
        assert_eq!(status, 200, "enable conversion: {body}");
        World {
            gw,
            _db: database,
            mock,
            key: first.gateway_key,
        }
    }

    /// POSTs `body` to `path` as a client of the door's kind and returns status, request id and
    /// body text.
    async fn call(&self, door: Door, path: &str, body: &Value) -> (u16, String, String) {
        let mut request = client().post(self.gw.url(path)).json(body);
        request = match door {
            Door::OpenAi => request.bearer_auth(&self.key),
            Door::Anthropic => request
                .header("x-api-key", &self.key)
                .header("anthropic-version", "2023-06-01"),
            Door::Gemini => request.header("x-goog-api-key", &self.key),
        };
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        let id = response
            .headers()
            .get("x-request-id")
            .map(|_| request_id(response.headers()))
            .unwrap_or_default();
        (status, id, response.text().await.unwrap_or_default())
    }
}

#[derive(Debug, Clone, Copy)]
enum Door {
    OpenAi,
    Anthropic,
    Gemini,
}

async fn provider(gw: &Gateway, name: &str, format: &str, base_url: &str) -> String {
    let post = |path: &'static str, body: Value| async move {
        let (status, answer) = send(gw.admin(reqwest::Method::POST, path).json(&body)).await;
        assert_eq!(status, 201, "POST {path} {body}: {answer}");
        answer
    };
    let provider = post(
        "/providers",
        json!({"name": format!("fd-{name}"), "priority": 1}),
    )
    .await;
    let endpoint = post(
        "/endpoints",
        json!({"provider_id": provider["id"], "api_format": format, "base_url": base_url}),
    )
    .await;
    post(
        "/provider-keys",
        json!({"endpoint_id": endpoint["id"], "name": format!("key-{name}"), "api_key": format!("sk-fd-{name}")}),
    )
    .await;
    provider["id"].as_str().expect("id").to_owned()
}

fn user_text() -> &'static str {
    "Say hello to the gateway."
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": user_text()},
    ]})
}

fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 256, "stream": stream, "system": "Be brief.",
        "messages": [{"role": "user", "content": user_text()}]})
}

fn responses_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "instructions": "Be brief.", "input": user_text()})
}

fn gemini_body() -> Value {
    json!({"systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": user_text()}]}]})
}

/// The answer text of a whole (non-streamed) body in the client's dialect.
fn answer_text(door: &str, body: &Value) -> String {
    match door {
        "chat" => body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        "messages" => body["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .collect(),
        "responses" => body["output"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| item["type"] == "message")
            .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect(),
        "gemini" => body["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["text"].as_str())
            .collect(),
        other => panic!("unknown door {other}"),
    }
}

/// The answer text of a streamed body in the client's dialect, and whether the dialect's end
/// signal arrived.
fn streamed_text(door: &str, body: &str) -> (String, bool) {
    let events: Vec<Value> = sse_data(body)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad event {d}: {e}")))
        .collect();
    match door {
        "chat" => (
            events
                .iter()
                .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
                .collect(),
            body.contains("data: [DONE]"),
        ),
        "messages" => (
            events
                .iter()
                .filter(|e| e["type"] == "content_block_delta")
                .filter_map(|e| e["delta"]["text"].as_str())
                .collect(),
            events.iter().any(|e| e["type"] == "message_stop"),
        ),
        "responses" => (
            events
                .iter()
                .filter(|e| e["type"] == "response.output_text.delta")
                .filter_map(|e| e["delta"].as_str())
                .collect(),
            events.iter().any(|e| e["type"] == "response.completed"),
        ),
        "gemini" => (
            events
                .iter()
                .flat_map(|e| {
                    e["candidates"][0]["content"]["parts"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|p| p["text"].as_str().map(str::to_owned))
                .collect(),
            events
                .iter()
                .any(|e| e["candidates"][0]["finishReason"].is_string()),
        ),
        other => panic!("unknown door {other}"),
    }
}

/// Path, door and body of a request through front door `door` for model `model`.
fn request(door: &str, model: &str, stream: bool) -> (String, Door, Value) {
    match door {
        "chat" => (
            "/v1/chat/completions".into(),
            Door::OpenAi,
            chat_body(model, stream),
        ),
        "responses" => (
            "/v1/responses".into(),
            Door::OpenAi,
            responses_body(model, stream),
        ),
        "messages" => (
            "/v1/messages".into(),
            Door::Anthropic,
            messages_body(model, stream),
        ),
        "gemini" => {
            let action = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            (
                format!("/v1beta/models/{model}:{action}"),
                Door::Gemini,
                gemini_body(),
            )
        }
        other => panic!("unknown door {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_door_is_served_by_every_upstream_format_streamed_or_not() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    let mut failures = Vec::new();
    for door in ["chat", "responses", "messages", "gemini"] {
        for (upstream, format) in UPSTREAMS {
            for stream in [false, true] {
                let model = format!("fd-{upstream}");
                let (path, kind, body) = request(door, &model, stream);
                let (status, id, text) = world.call(kind, &path, &body).await;
                let case = format!("{door} client → {upstream} upstream, stream={stream}");
                if status != 200 {
                    failures.push(format!("{case}: {status} {text}"));
                    continue;
                }
                let (answer, complete) = if stream {
                    streamed_text(door, &text)
                } else {
                    let body: Value = serde_json::from_str(&text).expect("JSON answer");
                    (answer_text(door, &body), true)
                };
                // The mock answers with a sentence naming the upstream model.
                if !answer.contains("Hello from the mock upstream") || !answer.contains(&model) {
                    failures.push(format!("{case}: unexpected answer {answer:?} in {text}"));
                }
                if !complete {
                    failures.push(format!("{case}: the stream has no end signal: {text}"));
                }
                let trace = trace(&world.gw, &id).await;
                let usage = &trace["usage"];
                if usage["status"] != "completed"
                    || usage["input_tokens"].as_i64().unwrap_or(0) <= 0
                    || usage["output_tokens"].as_i64().unwrap_or(0) <= 0
                    || usage["upstream_format"] != format
                {
                    failures.push(format!("{case}: usage row {usage}"));
                }
                let converted = trace["attempts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| !a["extra"]["converted"].is_null());
                let same = matches!(
                    (door, upstream),
                    ("chat", "openai")
                        | ("responses", "responses")
                        | ("messages", "claude")
                        | ("gemini", "gemini")
                );
                if converted == same {
                    failures.push(format!(
                        "{case}: attempt rows should say converted={}: {}",
                        !same, trace["attempts"]
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 32 combinations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    drop(world.mock);
}

/// The door that speaks each upstream's own format.
fn native_door(upstream: &str) -> &'static str {
    match upstream {
        "openai" => "chat",
        "responses" => "responses",
        "claude" => "messages",
        _ => "gemini",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_normalised_and_priced_exactly_for_every_provider_shape() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    for (upstream, _) in UPSTREAMS {
        for stream in [false, true] {
            let door = native_door(upstream);
            let model = format!("fu-{upstream}");
            let (path, kind, body) = request(door, &model, stream);
            let (status, id, text) = world.call(kind, &path, &body).await;
            let case = format!("{upstream}, stream={stream}");
            assert_eq!(status, 200, "{case}: {text}");
            let answer = if stream {
                streamed_text(door, &text).0
            } else {
                answer_text(door, &serde_json::from_str(&text).expect("JSON"))
            };
            // The mock counts max(1, bytes / 4) for the answer, plus the reasoning tokens.
            let text_tokens = (answer.len() as i64 / 4).max(1);
            let usage = trace(&world.gw, &id).await["usage"].clone();
            let count = |field: &str| usage[field].as_i64().unwrap_or(-1);
            // Cached tokens are moved out of the input (OpenAI and Gemini report them inside
            // it): billed twice otherwise.
            assert_eq!(count("cache_read_input_tokens"), 1000, "{case}: {usage}");
            let input = count("input_tokens");
            assert!(
                (1..100).contains(&input),
                "{case}: input {input} in {usage}"
            );
            let writes = if upstream == "claude" { 200 } else { 0 };
            assert_eq!(
                count("cache_creation_input_tokens"),
                writes,
                "{case}: {usage}"
            );
            // Output includes reasoning; the reasoning count is informational.
            assert_eq!(count("output_tokens"), text_tokens + 64, "{case}: {usage}");
            let reported = if upstream == "claude" { 0 } else { 64 };
            assert_eq!(count("reasoning_tokens"), reported, "{case}: {usage}");
            // 1 $/M input, 2 $/M output, cache reads at 0.1 × input, writes at 1.25 × input.
            let expected = (input as f64 * 1.0
                + count("output_tokens") as f64 * 2.0
                + 1000.0 * 0.1
                + writes as f64 * 1.25)
                / 1e6;
            let cost = usage["total_cost_usd"].as_f64().expect("cost");
            assert!(
                (cost - expected).abs() < 1e-9,
                "{case}: cost {cost}, expected {expected}: {usage}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_in_each_callers_envelope() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    let parse = |text: &str| -> Value { serde_json::from_str(text).expect("JSON error body") };

    // Unknown model.
    let (status, _, text) = world
        .call(
            Door::OpenAi,
            "/v1/chat/completions",
            &chat_body("nope", false),
        )
        .await;
    assert_eq!(
        (status, parse(&text)["error"]["code"].clone()),
        (404, json!("model_not_found"))
    );
    let (status, _, text) = world
        .call(
            Door::OpenAi,
            "/v1/responses",
            &responses_body("nope", false),
        )
        .await;
    assert_eq!(
        (status, parse(&text)["error"]["code"].clone()),
        (404, json!("model_not_found"))
    );
    let (status, _, text) = world
        .call(
            Door::Anthropic,
            "/v1/messages",
            &messages_body("nope", false),
        )
        .await;
    let body = parse(&text);
    assert_eq!(status, 404, "{text}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
    let (status, _, text) = world
        .call(
            Door::Gemini,
            "/v1beta/models/nope:generateContent",
            &gemini_body(),
        )
        .await;
    let body = parse(&text);
    assert_eq!(status, 404, "{text}");
    assert_eq!(body["error"]["code"], 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");

    // No key.
    let response = client()
        .post(world.gw.url("/v1/messages"))
        .json(&messages_body("fd-claude", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["type"], "authentication_error");
    let response = client()
        .post(world.gw.url("/v1beta/models/fd-gemini:generateContent"))
        .json(&gemini_body())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    // Gemini clients may put the key in the query string.
    let response = client()
        .post(world.gw.url(&format!(
            "/v1beta/models/fd-gemini:generateContent?key={}",
            world.key
        )))
        .json(&gemini_body())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);

    // Invalid body: the field is named.
    let (status, _, text) = world
        .call(
            Door::Anthropic,
            "/v1/messages",
            &json!({"model": "fd-claude", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let body = parse(&text);
    assert_eq!(status, 400, "{text}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_tokens")),
        "{text}"
    );
    // An unknown Gemini action.
    let (status, _, text) = world
        .call(
            Door::Gemini,
            "/v1beta/models/fd-gemini:embedContent",
            &gemini_body(),
        )
        .await;
    assert_eq!(status, 404, "{text}");
    assert!(parse(&text)["error"]["status"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_upstream_can_express_is_refused_with_the_reason_recorded() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    // Log probabilities exist only in OpenAI's dialects; the model is served by Anthropic only.
    let mut body = chat_body("fd-claude", false);
    body["logprobs"] = json!(true);
    let (status, id, text) = world
        .call(Door::OpenAi, "/v1/chat/completions", &body)
        .await;
    assert_eq!(status, 400, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(answer["error"]["code"], "unsupported_by_upstreams");
    assert!(text.contains("logprobs"), "{text}");
    let trace = trace(&world.gw, &id).await;
    assert_eq!(trace["usage"]["status"], "failed");
    assert_eq!(trace["usage"]["status_code"], 400);
    let attempts = trace["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{trace}");
    assert_eq!(attempts[0]["status"], "skipped");
    assert!(
        attempts[0]["skip_reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot convert") && r.contains("logprobs")),
        "{trace}"
    );
    // Nothing was sent upstream.
    assert_eq!(world.mock.count_for("sk-fd-claude").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_lists_come_in_the_callers_format_and_show_only_what_its_key_may_use() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    let get = |path: &str| client().get(world.gw.url(path));

    let (status, body) = send(get("/v1/models").bearer_auth(&world.key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"fd-claude") && ids.contains(&"fd-gemini"),
        "{body}"
    );
    // `fd-unused` has no provider: nothing could serve it.
    assert!(!ids.contains(&"fd-unused"), "{body}");
    assert_eq!(body["data"][0]["object"], "model");

    let (status, body) = send(
        get("/v1/models")
            .header("x-api-key", &world.key)
            .header("anthropic-version", "2023-06-01"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["type"], "model");
    assert_eq!(body["has_more"], false);

    let (status, body) = send(get("/v1beta/models").header("x-goog-api-key", &world.key)).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"models/fd-gemini"), "{body}");

    let (status, body) = send(get("/v1/models/fd-claude").bearer_auth(&world.key)).await;
    assert_eq!((status, body["id"].clone()), (200, json!("fd-claude")));

    // A key restricted to one model sees only it, and gets 404 in its format for the rest.
    let (_, keys) = send(world.gw.admin(reqwest::Method::GET, "/gateway-keys")).await;
    let user_id = keys["items"][0]["user_id"].clone();
    let (status, restricted) = send(world.gw.admin(reqwest::Method::POST, "/gateway-keys").json(
        &json!({"user_id": user_id, "name": "only-claude", "allowed_models": ["fd-claude"]}),
    ))
    .await;
    assert_eq!(status, 201, "{restricted}");
    let restricted = restricted["key"].as_str().expect("plaintext");
    let (_, body) = send(get("/v1/models").bearer_auth(restricted)).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["data"][0]["id"], "fd-claude");
    let (status, body) =
        send(get("/v1beta/models/fd-gemini").header("x-goog-api-key", restricted)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["status"], "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_is_answered_by_an_anthropic_upstream_or_clearly_refused() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    let body = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "How many tokens is this?"}]});
    let (status, _, text) = world
        .call(
            Door::Anthropic,
            "/v1/messages/count_tokens",
            &body("fd-claude"),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let counted: Value = serde_json::from_str(&text).expect("json");
    assert!(
        counted["input_tokens"].as_u64().is_some_and(|n| n > 0),
        "{text}"
    );
    assert_eq!(world.mock.count_for("sk-fd-claude").await, 1);

    // Served only by an OpenAI upstream: no Anthropic tokenizer to ask.
    let (status, _, text) = world
        .call(
            Door::Anthropic,
            "/v1/messages/count_tokens",
            &body("fd-openai"),
        )
        .await;
    assert_eq!(status, 502, "{text}");
    let refused: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(refused["type"], "error");
    assert!(text.contains("Anthropic-format"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_named_by_the_request_get_their_own_affinity() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    let cached_attempt = |trace: &Value| trace["attempts"][0]["is_cached"].as_bool();
    let mut body = chat_body("fd-openai", false);
    body["prompt_cache_key"] = json!("conversation-1");
    for round in 0..2 {
        let (status, id, text) = world
            .call(Door::OpenAi, "/v1/chat/completions", &body)
            .await;
        assert_eq!(status, 200, "{text}");
        let trace = trace(&world.gw, &id).await;
        // The second request of the session goes to its cache-warm key.
        assert_eq!(cached_attempt(&trace), Some(round == 1), "{trace}");
    }
    // Claude Code names its session in metadata.user_id.
    let mut claude = messages_body("fd-claude", false);
    claude["metadata"] = json!({"user_id": "user_1a2b_account_42_session_abc-def"});
    for _ in 0..2 {
        let (status, _, text) = world.call(Door::Anthropic, "/v1/messages", &claude).await;
        assert_eq!(status, 200, "{text}");
    }
    let status = switchyard_tests::gateway_status(&world.gw).await;
    let rule = |name: &str| {
        status["affinity"]["by_rule"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["rule"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(rule("prompt_cache_key")["lookups"], 2, "{status}");
    assert_eq!(rule("prompt_cache_key")["hits"], 1, "{status}");
    assert_eq!(rule("metadata_user_id")["lookups"], 2, "{status}");
    assert_eq!(rule("metadata_user_id")["hits"], 1, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_stream_cut_midway_ends_with_the_callers_own_error_event() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    for door in ["messages", "gemini", "responses"] {
        let (path, kind, body) = request(door, "fc-openai", true);
        let (status, id, text) = world.call(kind, &path, &body).await;
        // Committed at the first event: the status is already 200.
        assert_eq!(status, 200, "{door}: {text}");
        let events = switchyard_tests::sse_data(&text);
        let last: Value = serde_json::from_str(events.last().expect("events")).expect("json");
        match door {
            "messages" => {
                assert!(text.contains("event: error"), "{text}");
                assert_eq!(last["type"], "error", "{text}");
                assert!(last["error"]["message"].is_string(), "{text}");
                assert!(!text.contains("message_stop"), "{text}");
            }
            "gemini" => assert!(last["error"]["status"].is_string(), "{text}"),
            _ => {
                assert_eq!(last["type"], "error", "{text}");
                assert!(!text.contains("response.completed"), "{text}");
            }
        }
        let trace = trace(&world.gw, &id).await;
        assert_eq!(trace["usage"]["status"], "failed", "{door}: {trace}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_beta_context_1m_and_cache_1h_pick_the_keys_that_have_them() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    let gw = &world.gw;
    let post = |path: &'static str, body: Value| async move {
        let (status, answer) = send(gw.admin(reqwest::Method::POST, path).json(&body)).await;
        assert_eq!(status, 201, "POST {path} {body}: {answer}");
        answer
    };
    let provider = post("/providers", json!({"name": "caps", "priority": 1})).await;
    let endpoint = post(
        "/endpoints",
        json!({"provider_id": provider["id"], "api_format": "CLAUDE", "base_url": world.mock.url()}),
    )
    .await;
    for (name, priority, caps) in [
        ("plain", 1, json!({})),
        ("long", 2, json!({"context_1m": true})),
        ("hour", 3, json!({"cache_1h": true})),
    ] {
        post(
            "/provider-keys",
            json!({"endpoint_id": endpoint["id"], "name": format!("caps-{name}"),
                "api_key": format!("sk-caps-{name}"), "internal_priority": priority,
                "capabilities": caps, "cache_ttl_minutes": 0}),
        )
        .await;
    }
    add_model(gw, "fcap", &[provider["id"].as_str().expect("id")]).await;
    let served_by = |before: [u64; 3], after: [u64; 3]| {
        ["plain", "long", "hour"]
            .iter()
            .zip(before.iter().zip(after))
            .filter(|(_, (b, a))| a > *b)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
    };
    let counts = || async {
        [
            world.mock.count_for("sk-caps-plain").await,
            world.mock.count_for("sk-caps-long").await,
            world.mock.count_for("sk-caps-hour").await,
        ]
    };
    let call = |beta: Option<&'static str>, require: Option<&'static str>| {
        let mut request = client()
            .post(gw.url("/v1/messages"))
            .header("x-api-key", &world.key)
            .header("anthropic-version", "2023-06-01")
            .json(&messages_body("fcap", false));
        if let Some(beta) = beta {
            request = request.header("anthropic-beta", beta);
        }
        if let Some(require) = require {
            // Read case-insensitively, whatever the client's spelling.
            request = request.header("X-Require-Capability", require);
        }
        async move {
            let response = request.send().await.expect("sent");
            assert_eq!(response.status().as_u16(), 200);
        }
    };
    let before = counts().await;
    call(None, None).await;
    let after = counts().await;
    assert_eq!(served_by(before, after), ["plain"]);
    // The 1M-context beta needs a key that has the capability (compatible: others are skipped).
    call(
        Some("context-1m-2025-08-07,prompt-caching-2024-07-31"),
        None,
    )
    .await;
    let later = counts().await;
    assert_eq!(served_by(after, later), ["long"]);
    // cache_1h is exclusive: only requests that ask for it use the keys that have it.
    call(None, Some("cache_1h")).await;
    let last = counts().await;
    assert_eq!(served_by(later, last), ["hour"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_chain_follows_previous_response_id_back_to_its_key() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    for stream in [false, true] {
        let (status, _, text) = world
            .call(
                Door::OpenAi,
                "/v1/responses",
                &responses_body("fd-responses", stream),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        // The id the client will name in its next turn.
        let response_id = if stream {
            sse_data(&text)
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find(|e| e["type"] == "response.created")
                .and_then(|e| e["response"]["id"].as_str().map(str::to_owned))
        } else {
            serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|b| b["id"].as_str().map(str::to_owned))
        }
        .expect("a response id");
        let mut next = responses_body("fd-responses", stream);
        next["previous_response_id"] = json!(response_id);
        let (status, id, text) = world.call(Door::OpenAi, "/v1/responses", &next).await;
        assert_eq!(status, 200, "{text}");
        let trace = trace(&world.gw, &id).await;
        assert_eq!(
            trace["attempts"][0]["is_cached"], true,
            "stream={stream}: the next turn goes to the key that holds the previous response: {trace}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coding_agents_are_recognised_and_recorded_as_their_cli_formats() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    // Claude Code: `x-app: cli`, the key as a bearer token.
    let response = client()
        .post(world.gw.url("/v1/messages"))
        .bearer_auth(&world.key)
        .header("x-app", "cli")
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("fd-claude", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let usage = trace(&world.gw, &request_id(response.headers())).await["usage"].clone();
    assert_eq!(usage["api_format"], "CLAUDE_CLI", "{usage}");
    // The Gemini CLI, by its user agent; served by a Gemini endpoint without conversion.
    let response = client()
        .post(world.gw.url("/v1beta/models/fd-gemini:generateContent"))
        .header("x-goog-api-key", &world.key)
        .header("user-agent", "GeminiCLI/0.1.0 (linux; x64)")
        .json(&gemini_body())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let trace = trace(&world.gw, &request_id(response.headers())).await;
    assert_eq!(trace["usage"]["api_format"], "GEMINI_CLI", "{trace}");
    assert!(trace["attempts"][0]["extra"].is_null(), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_stream_without_alt_sse_is_one_streamed_json_array() {
    switchyard_tests::install_crypto();
    let world = World::start().await;
    for model in ["fd-gemini", "fd-claude"] {
        let response = client()
            .post(
                world
                    .gw
                    .url(&format!("/v1beta/models/{model}:streamGenerateContent")),
            )
            .header("x-goog-api-key", &world.key)
            .json(&gemini_body())
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().ok(),
            Some("application/json")
        );
        let text = response.text().await.expect("body");
        let elements: Vec<Value> = serde_json::from_str(&text).expect("one JSON array");
        let answer: String = elements
            .iter()
            .flat_map(|e| {
                e["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["text"].as_str().map(str::to_owned))
            .collect();
        assert!(answer.contains("Hello from the mock upstream"), "{text}");
        assert!(
            elements
                .iter()
                .any(|e| e["candidates"][0]["finishReason"].is_string()),
            "{text}"
        );
    }
}
