//! Wire formats of every route, over real sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code and its helpers: a failed step is a failed test"
)]

mod common;

use common::*;
use serde_json::{Value, json};

/// 40 bytes of prompt text → 10 input tokens.
const PROMPT_40: &str = "0123456789012345678901234567890123456789";

#[tokio::test]
async fn chat_completion_json_shape_and_usage() {
    let mock = start().await;
    let body = json!({"model": "gpt-test", "messages": [
        {"role": "system", "content": PROMPT_40},
        {"role": "user", "content": [{"type": "text", "text": PROMPT_40}]}
    ]});
    let (status, headers, text) = post(&format!("{}/v1/chat/completions", mock.url()), &body).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(headers.contains_key("content-length"));
    assert!(headers.contains_key("x-request-id"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-test");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("gpt-test"),
        "reply echoes the model: {content}"
    );
    let u = &v["usage"];
    assert_eq!(u["prompt_tokens"], 20);
    assert_eq!(u["completion_tokens"], (content.len() / 4) as u64);
    assert_eq!(u["total_tokens"], 20 + (content.len() / 4) as u64);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn chat_usage_overrides_follow_openai_accounting() {
    let mock = start().await;
    let b = r#"{"cache_read_tokens":30,"cache_creation_tokens":5,"reasoning_tokens":7,"output_text":"exactly sixteen!"}"#;
    let resp = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .header("x-mock-behaviour", b)
        .json(&chat("m", PROMPT_40))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "exactly sixteen!");
    let u = &v["usage"];
    // prompt = 10 from the body + 30 cached + 5 cache writes.
    assert_eq!(u["prompt_tokens"], 45);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 30);
    // completion = 4 visible + 7 reasoning.
    assert_eq!(u["completion_tokens"], 11);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 7);
    assert_eq!(u["total_tokens"], 56);
}

#[tokio::test]
async fn chat_stream_sequence_with_usage_and_done() {
    let mock = start().await;
    let mut body = chat("gpt-s", PROMPT_40);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = post(&format!("{}/v1/chat/completions", mock.url()), &body).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["transfer-encoding"], "chunked");
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Sse::json).collect();
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "gpt-s");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let n = chunks.len();
    let text: String = chunks[1..n - 2]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert!(n - 3 >= 3, "several content deltas");
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    let usage_chunk = &chunks[n - 1];
    assert_eq!(usage_chunk["choices"], json!([]));
    let u = &usage_chunk["usage"];
    assert_eq!(u["prompt_tokens"], 10);
    assert_eq!(u["completion_tokens"], (text.len() / 4) as u64);
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    // Without include_usage: no usage chunk, and no usage key at all.
    body["stream_options"] = json!({"include_usage": false});
    let (_, _, text) = post(&format!("{}/v1/chat/completions", mock.url()), &body).await;
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let last_chunk = events[events.len() - 2].json();
    assert_eq!(last_chunk["choices"][0]["finish_reason"], "stop");
    assert!(last_chunk.get("usage").is_none());
}

fn weather_tools_chat() -> Value {
    json!({
        "model": "gpt-t",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "What is the Weather in Paris?"}]
    })
}

#[tokio::test]
async fn chat_tool_calls_plain_and_streamed() {
    let mock = start().await;
    let url = format!("{}/v1/chat/completions", mock.url());
    let (_, v) = post_json(&url, &weather_tools_chat()).await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["location"].is_string());

    let mut body = weather_tools_chat();
    body["stream"] = json!(true);
    let (_, _, text) = post(&url, &body).await;
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Sse::json).collect();
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["function"]["name"], "get_weather");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&streamed).unwrap(), args);
    assert!(chunks.len() > 3);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // Without tools, or once the last message is a tool result: text.
    let mut no_tools = weather_tools_chat();
    no_tools.as_object_mut().unwrap().remove("tools");
    let (_, v) = post_json(&url, &no_tools).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let mut answered = weather_tools_chat();
    answered["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "18C sunny"}),
    ]);
    let (_, v) = post_json(&url, &answered).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn responses_json_shape_and_usage() {
    let mock = start().await;
    let b = json!({"cache_read_tokens": 4, "reasoning_tokens": 3});
    let resp = client()
        .post(format!("{}/v1/responses", mock.url()))
        .header("x-mock-behaviour", b.to_string())
        .json(&json!({"model": "gpt-r", "input": PROMPT_40}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-r");
    let item = &v["output"][0];
    assert_eq!(item["type"], "message");
    assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["status"], "completed");
    let part = &item["content"][0];
    assert_eq!(part["type"], "output_text");
    assert_eq!(part["annotations"], json!([]));
    let text = part["text"].as_str().unwrap();
    let u = &v["usage"];
    assert_eq!(u["input_tokens"], 14);
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(u["output_tokens"], (text.len() / 4) as u64 + 3);
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 3);
    assert_eq!(u["total_tokens"], 14 + (text.len() / 4) as u64 + 3);
}

#[tokio::test]
async fn responses_stream_event_sequence() {
    let mock = start().await;
    let body = json!({"model": "gpt-r", "stream": true, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": PROMPT_40}]}
    ]});
    let (_, _, text) = post(&format!("{}/v1/responses", mock.url()), &body).await;
    let events = parse_sse(&text);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert!(deltas >= 3);
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    let mut joined = String::new();
    for (i, e) in events.iter().enumerate() {
        let d = e.json();
        assert_eq!(d["type"], e.event.as_deref().unwrap());
        assert_eq!(d["sequence_number"], i);
        if let Some(delta) = d["delta"].as_str() {
            joined.push_str(delta);
        }
    }
    let created = events[0].json();
    assert_eq!(created["response"]["status"], "in_progress");
    let done = events[deltas + 4].json();
    assert_eq!(done["text"], joined);
    let completed = events.last().unwrap().json();
    let r = &completed["response"];
    assert_eq!(r["status"], "completed");
    assert_eq!(r["output"][0]["content"][0]["text"], joined);
    assert_eq!(r["usage"]["input_tokens"], 10);
    assert_eq!(r["usage"]["output_tokens"], (joined.len() / 4) as u64);
    assert_eq!(r["usage"]["total_tokens"], 10 + (joined.len() / 4) as u64);
}

#[tokio::test]
async fn responses_function_call() {
    let mock = start().await;
    let body = json!({
        "model": "gpt-r",
        "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
        "input": "weather in Oslo?"
    });
    let (_, v) = post_json(&format!("{}/v1/responses", mock.url()), &body).await;
    let item = &v["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "get_weather");
    assert!(item["call_id"].as_str().unwrap().starts_with("call_"));
    serde_json::from_str::<Value>(item["arguments"].as_str().unwrap()).unwrap();
}

fn anthropic_body(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 100, "stream": stream, "system": PROMPT_40,
           "messages": [{"role": "user", "content": PROMPT_40}]})
}

#[tokio::test]
async fn anthropic_message_json_shape_and_count_tokens() {
    let mock = start().await;
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header(
            "x-mock-behaviour",
            "cache_read_tokens=8,cache_creation_tokens=2",
        )
        .json(&anthropic_body(false))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("request-id"));
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-x");
    assert_eq!(v["content"][0]["type"], "text");
    let text = v["content"][0]["text"].as_str().unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    let u = &v["usage"];
    assert_eq!(
        u["input_tokens"], 20,
        "Anthropic input excludes cache tokens"
    );
    assert_eq!(u["cache_read_input_tokens"], 8);
    assert_eq!(u["cache_creation_input_tokens"], 2);
    assert_eq!(u["output_tokens"], (text.len() / 4) as u64);

    let (status, count) = post_json(
        &format!("{}/v1/messages/count_tokens", mock.url()),
        &anthropic_body(false),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(count, json!({"input_tokens": 20}));
}

#[tokio::test]
async fn anthropic_stream_event_sequence() {
    let mock = start().await;
    let (_, headers, text) = post(
        &format!("{}/v1/messages", mock.url()),
        &anthropic_body(true),
    )
    .await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = parse_sse(&text);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert!(deltas >= 3);
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for e in &events {
        assert_eq!(e.json()["type"], e.event.as_deref().unwrap());
    }
    let start = events[0].json();
    assert_eq!(start["message"]["usage"]["input_tokens"], 20);
    assert_eq!(start["message"]["usage"]["output_tokens"], 1);
    assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 0);
    let joined: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let d = e.json();
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], (joined.len() / 4) as u64);
}

#[tokio::test]
async fn anthropic_tool_use_plain_and_streamed() {
    let mock = start().await;
    let url = format!("{}/v1/messages", mock.url());
    let mut body = json!({"model": "claude-x", "max_tokens": 100,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "weather please"}]}]});
    let (_, v) = post_json(&url, &body).await;
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert!(block["input"]["location"].is_string());

    body["stream"] = json!(true);
    let (_, _, text) = post(&url, &body).await;
    let events = parse_sse(&text);
    let start = events
        .iter()
        .find(|e| e.event.as_deref() == Some("content_block_start"))
        .unwrap()
        .json();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["input"], json!({}));
    let partial: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .map(|e| {
            e.json()["delta"]["partial_json"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        block["input"]
    );
    let delta = events
        .iter()
        .find(|e| e.event.as_deref() == Some("message_delta"))
        .unwrap()
        .json();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    // A tool_result turn gets a text answer.
    body["stream"] = json!(false);
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": [block]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "weather: sunny"}]}),
    ]);
    let (_, v) = post_json(&url, &body).await;
    assert_eq!(v["stop_reason"], "end_turn");
}

fn gemini_body() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": PROMPT_40}]}],
           "systemInstruction": {"parts": [{"text": PROMPT_40}]}})
}

#[tokio::test]
async fn gemini_generate_content_shape_and_usage() {
    let mock = start().await;
    let resp = client()
        .post(format!(
            "{}/v1beta/models/gemini-t:generateContent",
            mock.url()
        ))
        .header("x-mock-behaviour", "cache_read_tokens=6,reasoning_tokens=9")
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(c["index"], 0);
    let text = c["content"]["parts"][0]["text"].as_str().unwrap();
    assert!(text.contains("gemini-t"));
    let u = &v["usageMetadata"];
    let out = (text.len() / 4) as u64;
    assert_eq!(
        u["promptTokenCount"], 26,
        "Gemini prompt includes cached tokens"
    );
    assert_eq!(u["cachedContentTokenCount"], 6);
    assert_eq!(u["candidatesTokenCount"], out);
    assert_eq!(u["thoughtsTokenCount"], 9);
    assert_eq!(u["totalTokenCount"], 26 + out + 9);
    assert_eq!(v["modelVersion"], "gemini-t");
    assert!(v["responseId"].as_str().is_some_and(|s| !s.is_empty()));

    let (_, count) = post_json(
        &format!("{}/v1beta/models/gemini-t:countTokens", mock.url()),
        &gemini_body(),
    )
    .await;
    assert_eq!(count["totalTokens"], 20);
}

fn check_gemini_chunks(chunks: &[Value]) {
    assert!(chunks.len() >= 2);
    let mut last_count = 0;
    let mut joined = String::new();
    for (i, c) in chunks.iter().enumerate() {
        let u = &c["usageMetadata"];
        assert_eq!(u["promptTokenCount"], 20, "usage on every chunk");
        let n = u["candidatesTokenCount"].as_u64().unwrap();
        assert!(n >= last_count, "usage grows");
        last_count = n;
        assert_eq!(u["totalTokenCount"], 20 + n);
        joined.push_str(
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap(),
        );
        let finish = &c["candidates"][0]["finishReason"];
        if i + 1 == chunks.len() {
            assert_eq!(finish, "STOP");
        } else {
            assert!(finish.is_null());
        }
    }
    assert_eq!(last_count, (joined.len() / 4) as u64);
}

#[tokio::test]
async fn gemini_stream_sse_and_json_array() {
    let mock = start().await;
    let base = format!(
        "{}/v1beta/models/gemini-t:streamGenerateContent",
        mock.url()
    );
    let (status, headers, text) = post(&format!("{base}?alt=sse"), &gemini_body()).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(text.contains("\r\n\r\n"), "Gemini frames end in CRLF");
    let chunks: Vec<Value> = parse_sse(&text).iter().map(Sse::json).collect();
    check_gemini_chunks(&chunks);

    let (_, headers, text) = post(&base, &gemini_body()).await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert!(text.starts_with('[') && text.ends_with(']'));
    let chunks: Vec<Value> = serde_json::from_str(&text).unwrap();
    check_gemini_chunks(&chunks);
}

#[tokio::test]
async fn gemini_function_call() {
    let mock = start().await;
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "What's the weather?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}]
    });
    let (_, v) = post_json(
        &format!("{}/v1beta/models/g:generateContent", mock.url()),
        &body,
    )
    .await;
    let part = &v["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"], "get_weather");
    assert!(part["functionCall"]["args"]["location"].is_string());
    let (_, _, text) = post(
        &format!(
            "{}/v1beta/models/g:streamGenerateContent?alt=sse",
            mock.url()
        ),
        &body,
    )
    .await;
    let chunks = parse_sse(&text);
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0].json()["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn models_health_and_unknown_paths() {
    let mock = start().await;
    let v = get_json(&format!("{}/v1/models", mock.url())).await;
    assert_eq!(v["object"], "list");
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["object"] == "model" && m["id"].is_string())
    );
    let v: Value = client()
        .get(format!("{}/v1/models", mock.url()))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);

    let resp = client()
        .get(format!("{}/health", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");

    let resp = client()
        .post(format!("{}/v2/nothing", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v2/nothing")
    );

    // A bad body gets the route's own envelope.
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let mock = start().await;
    let mut raw = Raw::connect(&mock).await;
    raw.post("/v1/chat/completions", "", &chat("first", "hi"))
        .await;
    let a = raw.read_response().await.unwrap();
    assert_eq!(a.status, 200);
    assert!(a.header("connection").is_none());
    assert!(a.text().contains("first"));
    // A chunked stream, then a plain request, still on the same socket.
    let mut streamed = chat("second", "hi");
    streamed["stream"] = json!(true);
    raw.post("/v1/chat/completions", "", &streamed).await;
    let b = raw.read_response().await.unwrap();
    assert_eq!(b.header("transfer-encoding").as_deref(), Some("chunked"));
    assert!(b.text().ends_with("data: [DONE]\n\n"));
    raw.post("/v1/chat/completions", "", &chat("third", "hi"))
        .await;
    assert!(raw.read_response().await.unwrap().text().contains("third"));
    // Two pipelined requests in one write.
    let one = chat("p1", "hi").to_string();
    let two = chat("p2", "hi").to_string();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{one}POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{two}",
        one.len(),
        two.len()
    );
    raw.send(req.as_bytes()).await;
    assert!(raw.read_response().await.unwrap().text().contains("p1"));
    let last = raw.read_response().await.unwrap();
    assert!(last.text().contains("p2"));
    assert_eq!(last.header("connection").as_deref(), Some("close"));
    let (rest, end) = raw.read_to_end().await;
    assert!(
        rest.is_empty() && end.is_ok(),
        "server closes after connection: close"
    );
    assert_eq!(mock.stats().total, 5);
}

#[tokio::test]
async fn chunked_request_bodies_are_accepted() {
    let mock = start().await;
    let body = chat("chunky", PROMPT_40).to_string();
    let (a, b) = body.split_at(10);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let mut raw = Raw::connect(&mock).await;
    raw.send(req.as_bytes()).await;
    let resp = raw.read_response().await.unwrap();
    assert_eq!(resp.status, 200);
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["model"], "chunky");
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    let logged = mock.requests(1);
    assert_eq!(logged[0].body, chat("chunky", PROMPT_40));
}

#[tokio::test]
async fn named_mocks_identify_themselves() {
    let a = start_with(switchyard_mock_upstream::MockConfig::default().with_name("alpha")).await;
    let b = start_with(switchyard_mock_upstream::MockConfig::default().with_name("beta")).await;
    for (mock, name) in [(&a, "alpha"), (&b, "beta")] {
        let (_, headers, _) = post(
            &format!("{}/v1/chat/completions", mock.url()),
            &chat("m", "hi"),
        )
        .await;
        assert_eq!(headers["x-mock-name"], name);
        let resp = client()
            .post(format!("{}/_b/status=500/v1/messages", mock.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["x-mock-name"],
            name,
            "errors carry the name too"
        );
    }
    let unnamed = start().await;
    let (_, headers, _) = post(
        &format!("{}/v1/chat/completions", unnamed.url()),
        &chat("m", "hi"),
    )
    .await;
    assert!(!headers.contains_key("x-mock-name"));
}
