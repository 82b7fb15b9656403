//! The control API, behaviour selection (rules, header, `/_b/` prefix),
//! stats, the request log, and the binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code and its helpers: a failed step is a failed test"
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchyard_mock_upstream::{Behaviour, LoggedRequest, MockConfig, RuleSpec, StatsSnapshot};

async fn add_rule(url: &str, rule: Value) -> u64 {
    let (status, v) = post_json(&format!("{url}/_mock/rules"), &rule).await;
    assert_eq!(status, 200, "{v}");
    v["id"].as_u64().unwrap()
}

async fn stats(url: &str) -> StatsSnapshot {
    serde_json::from_value(get_json(&format!("{url}/_mock/stats")).await).unwrap()
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.json(&chat("m", "hi"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn rules_with_times_expire() {
    let mock = start().await;
    let url = mock.url();
    add_rule(&url, json!({"times": 2, "behaviour": {"status": 503}})).await;
    let c = client();
    let chat_url = format!("{url}/v1/chat/completions");
    assert_eq!(status_of(c.post(&chat_url)).await, 503);
    assert_eq!(status_of(c.post(&chat_url)).await, 503);
    assert_eq!(status_of(c.post(&chat_url)).await, 200);
    let rules = get_json(&format!("{url}/_mock/rules")).await;
    assert_eq!(rules, json!([]), "spent rules are removed");
    // `times` inside the behaviour works too.
    add_rule(&url, json!({"behaviour": {"status": 500, "times": 1}})).await;
    assert_eq!(status_of(c.post(&chat_url)).await, 500);
    assert_eq!(status_of(c.post(&chat_url)).await, 200);
}

#[tokio::test]
async fn rules_match_each_credential_style() {
    let mock = start().await;
    let url = mock.url();
    add_rule(
        &url,
        json!({"key": "bearer-key", "behaviour": {"status": 401}}),
    )
    .await;
    add_rule(
        &url,
        json!({"key": "anthropic-key", "behaviour": {"status": 402}}),
    )
    .await;
    add_rule(
        &url,
        json!({"key": "goog-key", "behaviour": {"status": 403}}),
    )
    .await;
    add_rule(
        &url,
        json!({"key": "query-key", "behaviour": {"status": 429}}),
    )
    .await;
    let c = client();
    let chat_url = format!("{url}/v1/chat/completions");
    assert_eq!(
        status_of(c.post(&chat_url).bearer_auth("bearer-key")).await,
        401
    );
    assert_eq!(
        status_of(
            c.post(format!("{url}/v1/messages"))
                .header("x-api-key", "anthropic-key")
        )
        .await,
        402
    );
    let gem = format!("{url}/v1beta/models/g:generateContent");
    assert_eq!(
        status_of(c.post(&gem).header("x-goog-api-key", "goog-key")).await,
        403
    );
    assert_eq!(
        status_of(c.post(format!("{gem}?alt=json&key=query-key"))).await,
        429
    );
    assert_eq!(
        status_of(c.post(&chat_url).bearer_auth("other-key")).await,
        200
    );
    assert_eq!(status_of(c.post(&chat_url)).await, 200);
    let s = stats(&url).await;
    for k in [
        "bearer-key",
        "anthropic-key",
        "goog-key",
        "query-key",
        "other-key",
        "-",
    ] {
        assert_eq!(s.by_key[k], 1, "{k}");
    }
}

#[tokio::test]
async fn rules_match_path_prefix_and_model_first_match_wins_and_can_be_deleted() {
    let mock = start().await;
    let url = mock.url();
    let gpt = add_rule(
        &url,
        json!({"model": "gpt-bad", "behaviour": {"status": 500}}),
    )
    .await;
    add_rule(
        &url,
        json!({"path_prefix": "/v1/messages", "behaviour": {"status": 529}}),
    )
    .await;
    add_rule(
        &url,
        json!({"path_prefix": "/v1/", "model": "gpt-bad", "behaviour": {"status": 418}}),
    )
    .await;
    add_rule(
        &url,
        json!({"model": "gemini-bad", "behaviour": {"status": 503}}),
    )
    .await;
    let (s, _) = post_json(&format!("{url}/v1/chat/completions"), &chat("gpt-bad", "x")).await;
    assert_eq!(s, 500, "first matching rule wins");
    let (s, _) = post_json(
        &format!("{url}/v1/chat/completions"),
        &chat("gpt-good", "x"),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = post_json(&format!("{url}/v1/messages"), &chat("claude", "x")).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (529, Some("overloaded_error"))
    );
    let (s, _) = post_json(
        &format!("{url}/v1beta/models/gemini-bad:generateContent"),
        &json!({"contents": []}),
    )
    .await;
    assert_eq!(s, 503, "the Gemini model comes from the path");

    let resp = client()
        .delete(format!("{url}/_mock/rules/{gpt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client()
        .delete(format!("{url}/_mock/rules/{gpt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (s, _) = post_json(&format!("{url}/v1/chat/completions"), &chat("gpt-bad", "x")).await;
    assert_eq!(s, 418, "the next rule now matches");
    let resp = client()
        .delete(format!("{url}/_mock/rules"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (s, _) = post_json(&format!("{url}/v1/chat/completions"), &chat("gpt-bad", "x")).await;
    assert_eq!(s, 200);
    let (s, _) = post_json(
        &format!("{url}/_mock/rules"),
        &json!({"behaviour": {"stauts": 500}}),
    )
    .await;
    assert_eq!(s, 400, "typos in rules are rejected");
}

#[tokio::test]
async fn precedence_rule_then_header_then_path() {
    let mock = start().await;
    let url = mock.url();
    let c = client();
    let path = format!("{url}/_b/status=502/v1/chat/completions");
    assert_eq!(status_of(c.post(&path)).await, 502);
    assert_eq!(
        status_of(
            c.post(&path)
                .header("x-mock-behaviour", r#"{"status":504}"#)
        )
        .await,
        504
    );
    mock.add_rule(RuleSpec {
        behaviour: Behaviour {
            status: Some(500),
            ..Behaviour::default()
        },
        times: Some(1),
        ..RuleSpec::default()
    });
    assert_eq!(
        status_of(
            c.post(&path)
                .header("x-mock-behaviour", r#"{"status":504}"#)
        )
        .await,
        500
    );
    // A bad spec is a 400 in the route's envelope.
    let resp = c
        .post(format!("{url}/_b/status=oops/v1/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid /_b/ behaviour"),
        "{v}"
    );
}

#[tokio::test]
async fn path_prefix_is_stripped_in_both_forms() {
    let mock = start().await;
    let b = Behaviour {
        output_text: Some("via path".into()),
        cache_read_tokens: Some(3),
        ..Behaviour::default()
    };
    // As a gateway would build it: base_url + "/chat/completions".
    let base = format!("{}/_b/{}/v1", mock.url(), b.to_path_segment());
    let (s, v) = post_json(&format!("{base}/chat/completions"), &chat("m", "hi")).await;
    assert_eq!(s, 200);
    assert_eq!(v["choices"][0]["message"]["content"], "via path");
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    let (s, v) = post_json(
        &format!("{}/_b/output_text=compact/v1/messages", mock.url()),
        &chat("c", "hi"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["content"][0]["text"], "compact");
    let resp = client()
        .get(format!("{}/_b/status=503/health", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "health obeys behaviours");
    let s = mock.stats();
    assert_eq!(s.by_path["/v1/chat/completions"], 1);
    assert_eq!(s.by_path["/v1/messages"], 1);
    assert_eq!(s.total, 2, "health is not counted");
}

#[tokio::test]
async fn stats_count_paths_keys_and_in_flight() {
    let mock = start().await;
    let url = mock.url();
    let c = client();
    c.post(format!("{url}/v1/chat/completions"))
        .bearer_auth("a")
        .json(&chat("m", "x"))
        .send()
        .await
        .unwrap();
    c.post(format!("{url}/_b/status=500/v1/chat/completions"))
        .bearer_auth("a")
        .send()
        .await
        .unwrap();
    c.post(format!("{url}/v1/messages"))
        .header("x-api-key", "b")
        .json(&chat("m", "x"))
        .send()
        .await
        .unwrap();
    c.get(format!("{url}/nope")).send().await.unwrap();
    // Control requests are not counted.
    for _ in 0..3 {
        stats(&url).await;
    }
    get_json(&format!("{url}/_mock/requests")).await;
    let s = stats(&url).await;
    assert_eq!(s.total, 4);
    assert_eq!(s.by_path["/v1/chat/completions"], 2);
    assert_eq!(s.by_path["/v1/messages"], 1);
    assert_eq!(s.by_path["/nope"], 1);
    assert_eq!(s.by_key["a"], 2);
    assert_eq!(s.by_key["b"], 1);
    assert_eq!(s.by_key["-"], 1);
    assert_eq!(s.in_flight, 0);

    // Three hanging requests of one key are in flight together, and leave
    // when their clients give up.
    mock.add_rule(RuleSpec {
        key: Some("slow".into()),
        behaviour: Behaviour {
            fault: Some(switchyard_mock_upstream::Fault::Hang),
            ..Behaviour::default()
        },
        ..RuleSpec::default()
    });
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let _ = client()
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth("slow")
                    .send()
                    .await;
            })
        })
        .collect();
    eventually("3 in flight", || async {
        let s = stats(&url).await;
        (s.in_flight_by_key.get("slow") == Some(&3)).then_some(())
    })
    .await;
    for t in &tasks {
        t.abort();
    }
    eventually("all left", || async {
        let s = stats(&url).await;
        (s.in_flight == 0).then_some(s)
    })
    .await;
    let s = stats(&url).await;
    assert_eq!(s.max_in_flight_by_key["slow"], 3);
    assert!(s.max_in_flight >= 3);
    assert_eq!(s.in_flight_by_key["slow"], 0);
}

#[tokio::test]
async fn a_long_stream_stays_in_flight_until_its_last_byte() {
    let mock = start().await;
    let resp = client()
        .post(format!(
            "{}/_b/event_interval_ms=100/v1/messages",
            mock.url()
        ))
        .json(
            &json!({"model": "c", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    // The head has arrived; the body takes over a second more.
    assert_eq!(mock.stats().in_flight, 1);
    let text = resp.text().await.unwrap();
    assert!(text.contains("message_stop"));
    eventually("stream done", || async {
        (mock.stats().in_flight == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn request_log_records_what_was_sent() {
    let mock = start_with(MockConfig::default().with_request_log_capacity(3)).await;
    let url = mock.url();
    let c = client();
    c.post(format!("{url}/_b/status=500/v1/chat/completions?x=1"))
        .bearer_auth("sk-upstream")
        .header("X-Custom", "Yes")
        .json(&chat("upstream-model", "hello"))
        .send()
        .await
        .unwrap();
    c.post(format!("{url}/v1/messages"))
        .header("x-api-key", "ak")
        .body("plain text")
        .send()
        .await
        .unwrap();
    let v = get_json(&format!("{url}/_mock/requests?limit=2")).await;
    let logged: Vec<LoggedRequest> = serde_json::from_value(v).unwrap();
    assert_eq!(logged.len(), 2);
    let first = &logged[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.target, "/_b/status=500/v1/chat/completions?x=1");
    assert_eq!(first.query.as_deref(), Some("x=1"));
    assert_eq!(first.key.as_deref(), Some("sk-upstream"));
    assert_eq!(first.model.as_deref(), Some("upstream-model"));
    assert_eq!(first.header("authorization"), Some("Bearer sk-upstream"));
    assert!(
        first
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-custom") && v == "Yes")
    );
    assert_eq!(first.body, chat("upstream-model", "hello"));
    assert_eq!(logged[1].body, json!("plain text"));
    assert_eq!(logged[1].key.as_deref(), Some("ak"));
    assert!(logged[1].seq > first.seq);

    // The ring keeps the last 3; Gemini keys and models are found too.
    for i in 0..3 {
        c.post(format!(
            "{url}/v1beta/models/gem-{i}:generateContent?key=gk"
        ))
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    }
    let all = mock.requests(100);
    assert_eq!(all.len(), 3);
    let models: Vec<_> = all.iter().map(|r| r.model.clone().unwrap()).collect();
    assert_eq!(models, ["gem-0", "gem-1", "gem-2"]);
    assert!(all.iter().all(|r| r.key.as_deref() == Some("gk")));
}

#[tokio::test]
async fn reset_clears_rules_stats_and_log() {
    let mock = start().await;
    let url = mock.url();
    add_rule(&url, json!({"behaviour": {"status": 500}})).await;
    post(&format!("{url}/v1/chat/completions"), &chat("m", "x")).await;
    assert_eq!(stats(&url).await.total, 1);
    let (s, v) = post_json(&format!("{url}/_mock/reset"), &json!({})).await;
    assert_eq!((s, v), (200, json!({"reset": true})));
    assert_eq!(stats(&url).await, StatsSnapshot::default());
    assert_eq!(get_json(&format!("{url}/_mock/requests")).await, json!([]));
    assert_eq!(get_json(&format!("{url}/_mock/rules")).await, json!([]));
    let (s, _) = post_json(&format!("{url}/v1/chat/completions"), &chat("m", "x")).await;
    assert_eq!(s, 200);
    let resp = client()
        .get(format!("{url}/_mock/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let mock = start().await;
    let addr = mock.addr();
    mock.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn binary_announces_its_url_names_itself_and_exits_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--name", "bin-mock"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(PROMPT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("mock-upstream listening on ")
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{line}"
    );
    let (_, headers, _) = post(&format!("{url}/v1/chat/completions"), &chat("m", "x")).await;
    assert_eq!(headers["x-mock-name"], "bin-mock");

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PROMPT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), lines.next_line())
            .await
            .unwrap()
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_client_leaving_during_latency_leaves_in_flight_at_once() {
    let mock = start().await;
    let impatient = client_builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = impatient
        .post(format!(
            "{}/_b/latency_ms=60000/v1/chat/completions",
            mock.url()
        ))
        .json(&chat("m", "x"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    drop(impatient);
    // Far sooner than the 60 s latency.
    eventually("in-flight drops when the client leaves", || async {
        (mock.stats().in_flight == 0).then_some(())
    })
    .await;
}
