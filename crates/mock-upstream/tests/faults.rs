//! Every injected fault, status, header and delay, observed from a client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code and its helpers: a failed step is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use switchyard_mock_upstream::{Behaviour, Fault};

fn stream_chat() -> Value {
    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "tell me a story"}]})
}

fn anthropic_stream() -> Value {
    json!({"model": "c", "max_tokens": 9, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

fn gemini() -> Value {
    json!({"contents": [{"parts": [{"text": "hello there"}]}]})
}

/// POST with a behaviour header; return status and body text (the body
/// must end cleanly).
async fn with_behaviour(
    url: &str,
    b: &Behaviour,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = client()
        .post(url)
        .header("x-mock-behaviour", b.to_header_value())
        .json(body)
        .send()
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("complete body"))
}

#[tokio::test]
async fn reset_is_a_connection_reset_and_close_is_a_clean_eof() {
    let mock = start().await;
    let reset = Behaviour {
        fault: Some(Fault::Reset),
        ..Behaviour::default()
    };
    let mut raw = Raw::connect(&mock).await;
    raw.post(
        "/v1/chat/completions",
        &format!("x-mock-behaviour: {}\r\n", reset.to_header_value()),
        &json!({}),
    )
    .await;
    let (got, end) = raw.read_to_end().await;
    assert!(got.is_empty());
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
    // And through an HTTP client: a connection error, not a response.
    let err = client()
        .post(format!("{}/_b/fault=reset/v1/chat/completions", mock.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");

    let mut raw = Raw::connect(&mock).await;
    raw.post("/_b/fault=close/v1/chat/completions", "", &json!({}))
        .await;
    let (got, end) = raw.read_to_end().await;
    assert!(got.is_empty());
    assert!(end.is_ok(), "clean FIN, no RST: {end:?}");
    assert_eq!(mock.stats().total, 3, "faulted requests are counted");
}

#[tokio::test]
async fn hang_times_the_client_out_and_leaves_in_flight_when_it_goes() {
    let mock = start().await;
    let quick = client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = quick
        .post(format!("{}/_b/fault=hang/v1/messages", mock.url()))
        .header("x-api-key", "hang-key")
        .json(&json!({}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    drop(quick);
    let stats = mock.stats();
    assert_eq!(stats.max_in_flight_by_key["hang-key"], 1);
    eventually("hang leaves in-flight once the client is gone", || async {
        (mock.stats().in_flight == 0).then_some(())
    })
    .await;
}

/// Read a streamed body chunk by chunk; return what arrived and whether the
/// body ended cleanly.
async fn read_stream(resp: reqwest::Response) -> (String, Result<(), reqwest::Error>) {
    let mut resp = resp;
    let mut got = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => return (String::from_utf8_lossy(&got).into_owned(), Ok(())),
            Err(e) => return (String::from_utf8_lossy(&got).into_owned(), Err(e)),
        }
    }
}

#[tokio::test]
async fn stream_cut_ends_the_body_early() {
    let mock = start().await;
    let b = Behaviour {
        fault: Some(Fault::StreamCut),
        after_events: Some(3),
        ..Behaviour::default()
    };
    let resp = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .header("x-mock-behaviour", b.to_header_value())
        .json(&stream_chat())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (text, end) = read_stream(resp).await;
    assert!(end.is_err(), "the chunked body must end abruptly");
    let events = parse_sse(&text);
    assert_eq!(events.len(), 3);
    assert!(!text.contains("[DONE]"));

    // On a non-stream request: half a JSON body, then EOF.
    let resp = client()
        .post(format!(
            "{}/_b/fault=stream_cut/v1/chat/completions",
            mock.url()
        ))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.is_err());
}

#[tokio::test]
async fn stream_stall_is_a_read_timeout_after_n_events() {
    let mock = start().await;
    let slow_reader = client_builder()
        .read_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let resp = slow_reader
        .post(format!(
            "{}/_b/fault=stream_stall,after_events=2/v1/messages",
            mock.url()
        ))
        .json(&anthropic_stream())
        .send()
        .await
        .unwrap();
    let (text, end) = read_stream(resp).await;
    let err = end.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let events = parse_sse(&text);
    let names: Vec<_> = events.iter().map(|e| e.event.clone().unwrap()).collect();
    assert_eq!(names, ["message_start", "content_block_start"]);
    drop(slow_reader);
    eventually("stall ends when the client leaves", || async {
        (mock.stats().in_flight == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn stream_malformed_injects_garbage_and_goes_on() {
    let mock = start().await;
    let b = Behaviour {
        fault: Some(Fault::StreamMalformed),
        after_events: Some(2),
        ..Behaviour::default()
    };
    let (_, _, text) = with_behaviour(
        &format!("{}/v1/chat/completions", mock.url()),
        &b,
        &stream_chat(),
    )
    .await;
    let events = parse_sse(&text);
    assert!(serde_json::from_str::<Value>(&events[0].data).is_ok());
    assert!(serde_json::from_str::<Value>(&events[1].data).is_ok());
    assert!(
        serde_json::from_str::<Value>(&events[2].data).is_err(),
        "event 3 is garbage"
    );
    assert!(
        events[3..events.len() - 1]
            .iter()
            .all(|e| serde_json::from_str::<Value>(&e.data).is_ok())
    );
    assert_eq!(events.last().unwrap().data, "[DONE]");
    // Gemini's JSON array becomes unparseable.
    let (_, _, text) = with_behaviour(
        &format!("{}/v1beta/models/g:streamGenerateContent", mock.url()),
        &b,
        &gemini(),
    )
    .await;
    assert!(text.ends_with(']'));
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn stream_no_done_omits_only_the_end_marker() {
    let mock = start().await;
    let b = Behaviour {
        fault: Some(Fault::StreamNoDone),
        ..Behaviour::default()
    };
    let mut raw = Raw::connect(&mock).await;
    let header = format!("x-mock-behaviour: {}\r\n", b.to_header_value());
    raw.post("/v1/chat/completions", &header, &stream_chat())
        .await;
    let resp = raw.read_response().await.expect("body ends properly");
    let events = parse_sse(&resp.text());
    assert!(!resp.text().contains("[DONE]"));
    assert_eq!(
        events.last().unwrap().json()["choices"][0]["finish_reason"],
        "stop"
    );
    // The connection is still usable afterwards.
    raw.post("/v1/messages", &header, &anthropic_stream()).await;
    let resp = raw.read_response().await.expect("second response");
    let names: Vec<_> = parse_sse(&resp.text())
        .into_iter()
        .map(|e| e.event.unwrap())
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("message_delta"));
    assert!(!names.iter().any(|n| n == "message_stop"));

    let (_, _, text) = with_behaviour(
        &format!("{}/v1/responses", mock.url()),
        &b,
        &json!({"model": "m", "input": "x", "stream": true}),
    )
    .await;
    assert!(!text.contains("response.completed"));
    let (_, _, text) = with_behaviour(
        &format!("{}/v1beta/models/g:streamGenerateContent", mock.url()),
        &b,
        &gemini(),
    )
    .await;
    assert!(text.starts_with('[') && !text.ends_with(']'));
    let (_, _, text) = with_behaviour(
        &format!(
            "{}/v1beta/models/g:streamGenerateContent?alt=sse",
            mock.url()
        ),
        &b,
        &gemini(),
    )
    .await;
    assert!(!text.contains("finishReason"));
}

#[tokio::test]
async fn stream_error_event_in_each_dialect() {
    let mock = start().await;
    let url = mock.url();
    let b = Behaviour {
        fault: Some(Fault::StreamErrorEvent),
        after_events: Some(1),
        message: Some("boom".into()),
        ..Behaviour::default()
    };

    let (status, _, text) =
        with_behaviour(&format!("{url}/v1/chat/completions"), &b, &stream_chat()).await;
    assert_eq!(status, 200);
    let events = parse_sse(&text);
    assert_eq!(events.len(), 2);
    let e = events[1].json();
    assert_eq!(e["error"]["message"], "boom");
    assert_eq!(e["error"]["type"], "server_error");

    let (_, _, text) = with_behaviour(&format!("{url}/v1/messages"), &b, &anthropic_stream()).await;
    let events = parse_sse(&text);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event.as_deref(), Some("error"));
    let e = events[1].json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "api_error");
    assert_eq!(e["error"]["message"], "boom");

    let (_, _, text) = with_behaviour(
        &format!("{url}/v1/responses"),
        &b,
        &json!({"model": "m", "input": "x", "stream": true}),
    )
    .await;
    let events = parse_sse(&text);
    assert_eq!(events[1].event.as_deref(), Some("error"));
    assert_eq!(events[1].json()["sequence_number"], 1);
    assert_eq!(events[1].json()["message"], "boom");

    // First event (after_events 0), Gemini SSE and array; a custom status.
    let first = Behaviour {
        after_events: None,
        status: Some(503),
        fault: Some(Fault::StreamErrorEvent),
        ..Behaviour::default()
    };
    let (status, _, text) = with_behaviour(
        &format!("{url}/v1beta/models/g:streamGenerateContent?alt=sse"),
        &first,
        &gemini(),
    )
    .await;
    assert_eq!(status, 200, "a stream fault does not change the status");
    let events = parse_sse(&text);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].json()["error"]["status"], "UNAVAILABLE");
    let (_, _, text) = with_behaviour(
        &format!("{url}/v1beta/models/g:streamGenerateContent"),
        &b,
        &gemini(),
    )
    .await;
    let array: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(array.len(), 2);
    assert_eq!(array[1]["error"]["code"], 500);
}

#[tokio::test]
async fn html_and_error_in_200() {
    let mock = start().await;
    let resp = client()
        .post(format!("{}/_b/fault=html/v1/chat/completions", mock.url()))
        .json(&stream_chat())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.text().await.unwrap().contains("<html>"));
    let resp = client()
        .post(format!(
            "{}/_b/fault=html,status=502/v1/messages",
            mock.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("502 Bad Gateway"));

    for (path, check) in [
        ("/v1/chat/completions", "/error/type"),
        ("/v1/messages", "/error/type"),
        ("/v1beta/models/g:generateContent", "/error/status"),
    ] {
        let (status, v) = post_json(
            &format!("{}/_b/fault=error_in_200,status=429{path}", mock.url()),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200);
        let expected = match path {
            "/v1/chat/completions" => "requests",
            "/v1/messages" => "rate_limit_error",
            _ => "RESOURCE_EXHAUSTED",
        };
        assert_eq!(v.pointer(check).unwrap(), expected, "{path}: {v}");
    }
}

#[tokio::test]
async fn status_with_retry_after_and_rate_limit_headers() {
    let mock = start().await;
    let b = "status=429,retry_after=7,ratelimit_limit=100,ratelimit_remaining=0,ratelimit_reset=30";
    let resp = client()
        .post(format!("{}/_b/{b}/v1/chat/completions", mock.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let h = resp.headers().clone();
    assert_eq!(h["retry-after"], "7");
    assert_eq!(h["x-ratelimit-limit-requests"], "100");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    assert_eq!(h["x-ratelimit-reset-requests"], "30s");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    let resp = client()
        .post(format!("{}/_b/{b}/v1/messages", mock.url()))
        .send()
        .await
        .unwrap();
    let h = resp.headers().clone();
    assert_eq!(h["anthropic-ratelimit-requests-limit"], "100");
    assert_eq!(h["anthropic-ratelimit-requests-remaining"], "0");
    let reset = h["anthropic-ratelimit-requests-reset"].to_str().unwrap();
    assert!(
        reset.len() == 20 && reset.ends_with('Z') && reset.as_bytes()[10] == b'T',
        "{reset}"
    );
    assert!(!h.contains_key("x-ratelimit-limit-requests"));

    // Retry-After as an HTTP date: "Sun, 06 Nov 1994 08:49:37 GMT".
    let resp = client()
        .post(format!(
            "{}/_b/status=503,retry_after=60,retry_after_date/v1/chat/completions",
            mock.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let date = resp.headers()["retry-after"].to_str().unwrap().to_owned();
    assert_eq!(date.len(), 29, "{date}");
    assert!(
        date.ends_with(" GMT") && date.as_bytes()[3] == b',',
        "{date}"
    );
}

#[tokio::test]
async fn error_type_code_and_message_are_configurable() {
    let mock = start().await;
    let b = Behaviour {
        status: Some(400),
        message: Some("This model's maximum context length is 128000 tokens.".into()),
        error_type: Some("invalid_request_error".into()),
        error_code: Some("context_length_exceeded".into()),
        error_param: Some("messages".into()),
        ..Behaviour::default()
    };
    let (status, _, text) = with_behaviour(
        &format!("{}/v1/chat/completions", mock.url()),
        &b,
        &json!({}),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "This model's maximum context length is 128000 tokens.",
                         "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
    );
    let (status, _, text) = with_behaviour(
        &format!("{}/v1beta/models/g:generateContent", mock.url()),
        &Behaviour {
            status: Some(404),
            ..Behaviour::default()
        },
        &gemini(),
    )
    .await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], 404);
    assert_eq!(v["error"]["status"], "NOT_FOUND");
    // An unsupported-parameter style error through the compact form.
    let resp = client()
        .post(format!(
            "{}/_b/status=400,message=Unsupported%20parameter%3A%20'temperature'%2C%20sorry,param=temperature,code=unsupported_parameter/v1/chat/completions",
            mock.url()
        ))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "Unsupported parameter: 'temperature', sorry"
    );
    assert_eq!(v["error"]["param"], "temperature");
    assert_eq!(v["error"]["code"], "unsupported_parameter");
}

#[tokio::test]
async fn latency_first_byte_and_event_interval_delay_the_answer() {
    let mock = start().await;
    let started = Instant::now();
    let (status, _, _) = with_behaviour(
        &format!("{}/v1/chat/completions", mock.url()),
        &Behaviour {
            latency_ms: Some(300),
            ..Behaviour::default()
        },
        &chat("m", "hi"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // first_byte_ms: the head arrives alone, the body after the delay.
    let mut raw = Raw::connect(&mock).await;
    raw.post(
        "/_b/first_byte_ms=1500/v1/chat/completions",
        "",
        &chat("m", "hi"),
    )
    .await;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut byte)
            .await
            .unwrap();
        head.push(byte[0]);
    }
    let head_at = Instant::now();
    let mut probe = [0u8; 1];
    let early = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::io::AsyncReadExt::read(&mut raw.stream, &mut probe),
    )
    .await;
    assert!(early.is_err(), "no body byte right after the head");
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    tokio::time::timeout(
        PROMPT,
        tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut body),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(head_at.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["object"],
        "chat.completion"
    );

    let started = Instant::now();
    let (_, _, text) = with_behaviour(
        &format!("{}/v1/messages", mock.url()),
        &Behaviour {
            event_interval_ms: Some(20),
            ..Behaviour::default()
        },
        &anthropic_stream(),
    )
    .await;
    let n = parse_sse(&text).len() as u32;
    assert!(n > 5);
    assert!(started.elapsed() >= Duration::from_millis(20) * (n - 1));
}

#[tokio::test]
async fn two_xx_status_changes_only_the_status_line() {
    let mock = start().await;
    let (status, v) = post_json(
        &format!("{}/_b/status=201/v1/chat/completions", mock.url()),
        &chat("m", "hi"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(v["object"], "chat.completion");
}
