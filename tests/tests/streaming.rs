//! Streaming end to end: the real gateway (on SQLite) relaying mock upstream streams over real
//! sockets. Failover is possible until the first chunk; after it the stream is the client's, and
//! whatever breaks it ends in an in-band error and a `failed` record — never a silent truncated
//! success. Slots and upstream connections are freed however a stream ends.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_tests::{
    Gateway, KeySpec, Mock, ProviderSpec, attempt_rows, chat, chat_body, chat_response, client,
    eventually, pair, request_id, secret, setup, slot_in_flight, sqlite_gateway, sse_data, trace,
};

/// The parsed JSON events of an SSE body; `[DONE]` stays a string.
fn events(body: &str) -> Vec<Value> {
    sse_data(body)
        .into_iter()
        .map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d)))
        .collect()
}

fn is_done(event: &Value) -> bool {
    event == &json!("[DONE]")
}

/// The text of every content delta, joined.
fn content(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// What the mock answers for `model` when asked directly: (reply text, usage object, the
/// stream's events with `include_usage`).
async fn direct(mock: &Mock, model: &str) -> (String, Value, Vec<Value>) {
    let url = format!("{}/v1/chat/completions", mock.url());
    let body: Value = client()
        .post(&url)
        .bearer_auth("direct")
        .json(&chat_body(model, false))
        .send()
        .await
        .expect("direct call")
        .json()
        .await
        .expect("direct JSON");
    let mut stream_body = chat_body(model, true);
    stream_body["stream_options"] = json!({"include_usage": true});
    let text = client()
        .post(&url)
        .bearer_auth("direct")
        .json(&stream_body)
        .send()
        .await
        .expect("direct stream")
        .text()
        .await
        .expect("direct stream body");
    (
        body["choices"][0]["message"]["content"]
            .as_str()
            .expect("reply text")
            .to_owned(),
        body["usage"].clone(),
        events(&text),
    )
}

/// Asserts that a trace's usage row is final with `status`/`status_code` and carries the tokens
/// the upstream reported.
fn assert_usage(t: &Value, status: &str, code: u16, usage: &Value) {
    assert_eq!(t["usage"]["status"], status, "{t}");
    assert_eq!(t["usage"]["status_code"], code, "{t}");
    assert_eq!(t["usage"]["is_stream"], true, "{t}");
    assert_eq!(t["usage"]["input_tokens"], usage["prompt_tokens"], "{t}");
    assert_eq!(
        t["usage"]["output_tokens"], usage["completion_tokens"],
        "{t}"
    );
}

/// A gateway with one provider (one key, `secret("only", case)`) on its own mock, serving
/// `gpt-test`.
struct One {
    gw: Gateway,
    _db: switchyard_tests::db::TestDb,
    mock: Mock,
    k: String,
    s: switchyard_tests::Setup,
}

async fn one_provider(case: &str) -> One {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let mock = Mock::start("upstream");
    let k = secret("only", case);
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url()).key(KeySpec::new("only", &k))],
    )
    .await;
    One {
        gw,
        _db,
        mock,
        k,
        s,
    }
}

#[tokio::test]
async fn a_stream_is_relayed_whole_and_its_usage_recorded_whether_or_not_the_client_asked() {
    let One {
        gw,
        _db,
        mock,
        k,
        s,
    } = one_provider("ok").await;
    let (reply, usage, upstream_events) = direct(&mock, "gpt-test").await;
    assert!(
        usage["prompt_tokens"].as_u64().is_some_and(|n| n > 0),
        "{usage}"
    );
    // Without the usage-only chunk the mock sends because `include_usage` is on.
    let plain: Vec<&Value> = upstream_events
        .iter()
        .filter(|e| e["choices"] != json!([]))
        .collect();

    // 1. The client did not ask for usage: every chunk but the usage one, then [DONE].
    let response = chat_response(&gw, &s.gateway_key, chat_body("gpt-test", true)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/event-stream")),
        "{:?}",
        response.headers()
    );
    let id = request_id(response.headers());
    let got = events(&response.text().await.expect("body"));
    assert_eq!(got.len(), plain.len(), "chunks were lost or added: {got:?}");
    for (g, u) in got.iter().zip(&plain) {
        assert_eq!(g["choices"], u["choices"], "a chunk changed on the way");
    }
    assert!(is_done(got.last().expect("events")), "{got:?}");
    assert_eq!(got.iter().filter(|e| is_done(e)).count(), 1, "{got:?}");
    assert!(
        got.iter()
            .all(|e| e.get("usage").is_none_or(Value::is_null)),
        "a usage chunk reached a client that did not ask for it: {got:?}"
    );
    assert_eq!(content(&got), reply);
    // The gateway asked the upstream for usage anyway, and recorded it.
    let sent = mock.requests(1).await;
    assert!(
        sent[0]["key"] == k.as_str(),
        "the upstream got another credential"
    );
    assert_eq!(
        sent[0]["body"]["stream_options"]["include_usage"], true,
        "{}",
        sent[0]["body"]
    );
    let t = trace(&gw, &id).await;
    assert_eq!(attempt_rows(&t), ["0:0:success:-:200"], "{t}");
    assert_usage(&t, "completed", 200, &usage);

    // 2. The client asked for usage: the usage chunk is relayed too, just before [DONE].
    let mut body = chat_body("gpt-test", true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = chat(&gw, &s.gateway_key, body).await;
    assert_eq!(status, 200, "{text}");
    let got = events(&text);
    assert_eq!(got.len(), upstream_events.len(), "{got:?}");
    let usage_chunk = &got[got.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]), "{got:?}");
    assert_eq!(usage_chunk["usage"], usage, "{got:?}");
    assert!(is_done(&got[got.len() - 1]));
    let t = trace(&gw, &request_id(&headers)).await;
    assert_usage(&t, "completed", 200, &usage);
}

#[tokio::test]
async fn an_error_before_the_first_chunk_fails_over_before_anything_is_sent() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    // (case, the primary's behaviour, its attempt rows)
    let cases = [
        (
            "error-event",
            json!({"fault": "stream_error_event", "after_events": 0}),
            "error_in_body:200",
        ),
        ("503", json!({"status": 503}), "server_error:503"),
        (
            "malformed",
            json!({"fault": "stream_malformed", "after_events": 0}),
            "malformed:200",
        ),
        ("html", json!({"fault": "html"}), "html:200"),
        (
            "cut-before-first",
            json!({"fault": "stream_cut", "after_events": 0}),
            "connect:200",
        ),
    ];
    for (case, behaviour, failed) in cases {
        let (p, f) = (secret("primary", case), secret("fallback", case));
        let s = setup(
            &gw,
            &format!("model-{case}"),
            &pair(
                case,
                primary.url(),
                json!({"max_retries": 1}),
                fallback.url(),
            ),
        )
        .await;
        primary
            .rule(json!({"key": p, "behaviour": behaviour}))
            .await;
        let (reply, usage, _) = direct(&fallback, &s.model).await;

        let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, true)).await;
        assert_eq!(status, 200, "{case}: {text}");
        let got = events(&text);
        // Nothing of the failed upstream: one clean stream from the fallback.
        assert!(
            got.iter().all(|e| e.get("error").is_none()),
            "{case}: an error reached the client: {text}"
        );
        assert_eq!(
            got.iter()
                .filter(|e| e["choices"][0]["delta"]["role"] == "assistant")
                .count(),
            1,
            "{case}: {text}"
        );
        assert_eq!(content(&got), reply, "{case}");
        assert!(is_done(got.last().expect("events")), "{case}: {text}");
        assert_eq!(
            primary.count_for(&p).await,
            2,
            "{case}: 1 + max_retries attempts"
        );
        assert_eq!(fallback.count_for(&f).await, 1, "{case}");
        let t = trace(&gw, &request_id(&headers)).await;
        assert_eq!(
            attempt_rows(&t),
            [
                format!("0:0:failed:{failed}"),
                format!("0:1:failed:{failed}"),
                "1:0:success:-:200".to_owned()
            ],
            "{case}: {t}"
        );
        assert_usage(&t, "completed", 200, &usage);
    }
}

#[tokio::test]
async fn a_stream_broken_after_its_first_chunk_ends_with_an_in_band_error_and_is_recorded_failed() {
    let (gw, _db) = sqlite_gateway(&[("SWITCHYARD__ROUTING__STREAM_IDLE_TIMEOUT_SECS", "1")]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let cases = [
        ("cut", json!({"fault": "stream_cut", "after_events": 3})),
        ("stall", json!({"fault": "stream_stall", "after_events": 3})),
        (
            "malformed",
            json!({"fault": "stream_malformed", "after_events": 3}),
        ),
        (
            "error-event",
            json!({"fault": "stream_error_event", "after_events": 3}),
        ),
    ];
    for (case, behaviour) in cases {
        let (p, f) = (secret("primary", case), secret("fallback", case));
        let s = setup(
            &gw,
            &format!("model-{case}"),
            &pair(
                case,
                primary.url(),
                json!({"max_retries": 2}),
                fallback.url(),
            ),
        )
        .await;
        let key_id = s.keys[&format!("primary-{case}")].clone();
        let mut behaviour = behaviour;
        if case == "error-event" {
            // An upstream that quotes the credential in its error must not leak it.
            behaviour["message"] = json!(format!("rejected key {p}"));
        }
        primary
            .rule(json!({"key": p, "behaviour": behaviour}))
            .await;

        let started = Instant::now();
        let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, true)).await;
        let elapsed = started.elapsed();
        assert!(
            !text.contains(&p),
            "{case}: the provider key reached the client: {text}"
        );
        // The stream was committed: 200, the chunks sent before the break, then an error event.
        assert_eq!(status, 200, "{case}: {text}");
        let got = events(&text);
        assert!(got.len() >= 4, "{case}: {text}");
        assert!(
            got[..3]
                .iter()
                .all(|e| e["object"] == "chat.completion.chunk"),
            "{case}: {text}"
        );
        let last = got.last().expect("events");
        assert!(
            last["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{case}: the stream did not end with an in-band error: {text}"
        );
        assert!(
            !got.iter().any(is_done),
            "{case}: a broken stream ended like a complete one: {text}"
        );
        if case == "stall" {
            assert!(
                elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
                "{case}: the idle timeout did not end the stall: {elapsed:?}"
            );
        }
        // Nothing can be failed over once the client has chunks.
        assert_eq!(primary.count_for(&p).await, 1, "{case}");
        assert_eq!(fallback.count_for(&f).await, 0, "{case}");
        let t = trace(&gw, &request_id(&headers)).await;
        assert_eq!(t["usage"]["status"], "failed", "{case}: {t}");
        assert_eq!(t["usage"]["status_code"], 200, "{case}: {t}");
        assert!(
            !t.to_string().contains(&p),
            "{case}: the provider key is in the records: {t}"
        );
        assert!(
            t["usage"]["error_message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{case}: {t}"
        );
        let rows = attempt_rows(&t);
        assert_eq!(rows.len(), 1, "{case}: {t}");
        assert!(rows[0].starts_with("0:0:failed:"), "{case}: {t}");
        // The upstream connection and the slot were given back.
        let freed = eventually(Duration::from_secs(5), || async {
            let upstream = primary.stats().await["in_flight_by_key"][&p]
                .as_u64()
                .unwrap_or(0);
            (upstream == 0 && slot_in_flight(&gw, &key_id).await == 0).then_some(())
        })
        .await;
        assert!(
            freed.is_some(),
            "{case}: the upstream connection or the slot leaked"
        );
    }
}

#[tokio::test]
async fn a_finished_stream_without_done_still_ends_with_done_and_is_completed() {
    let One {
        gw,
        _db,
        mock,
        k,
        s,
    } = one_provider("no-done").await;
    let (reply, usage, _) = direct(&mock, "gpt-test").await;
    mock.rule(json!({"key": k, "behaviour": {"fault": "stream_no_done"}}))
        .await;
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body("gpt-test", true)).await;
    assert_eq!(status, 200, "{text}");
    let got = events(&text);
    assert!(
        is_done(got.last().expect("events")),
        "no [DONE] for the client: {text}"
    );
    assert_eq!(got.iter().filter(|e| is_done(e)).count(), 1, "{text}");
    assert!(got.iter().all(|e| e.get("error").is_none()), "{text}");
    assert_eq!(content(&got), reply);
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(attempt_rows(&t), ["0:0:success:-:200"], "{t}");
    assert_usage(&t, "completed", 200, &usage);
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_recorded_499_and_every_slot_is_freed() {
    let One {
        gw,
        _db,
        mock,
        k,
        s,
    } = one_provider("gone").await;
    let key_id = s.keys["only"].clone();
    mock.rule(json!({"key": k, "behaviour": {"event_interval_ms": 400}}))
        .await;

    let mut response = chat_response(&gw, &s.gateway_key, chat_body("gpt-test", true)).await;
    assert_eq!(response.status(), 200);
    let id = request_id(response.headers());
    let mut seen = String::new();
    while sse_data(&seen).len() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("a chunk in time")
            .expect("read a chunk")
            .expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // While the stream is relayed, its slot is held (not released at the first byte).
    assert_eq!(slot_in_flight(&gw, &key_id).await, 1);
    assert_eq!(mock.stats().await["in_flight_by_key"][&k], 1);
    drop(response);

    let t = trace(&gw, &id).await;
    assert_eq!(t["usage"]["status"], "failed", "{t}");
    assert_eq!(t["usage"]["status_code"], 499, "{t}");
    let rows = attempt_rows(&t);
    assert_eq!(rows.len(), 1, "{t}");
    assert!(rows[0].starts_with("0:0:failed:"), "{t}");
    let freed = eventually(Duration::from_secs(5), || async {
        let upstream = mock.stats().await["in_flight_by_key"][&k]
            .as_u64()
            .unwrap_or(0);
        (upstream == 0 && slot_in_flight(&gw, &key_id).await == 0).then_some(())
    })
    .await;
    assert!(
        freed.is_some(),
        "the upstream connection or the slot leaked"
    );
    no_secret_logged(&gw, &k);
}

fn no_secret_logged(gw: &Gateway, secret: &str) {
    assert!(
        !gw.process.logs().contains(secret),
        "a provider key appeared in the gateway log"
    );
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_is_recorded_499_and_the_upstream_call_is_dropped() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    for (case, stream) in [("json", false), ("stream", true)] {
        let (p, f) = (secret("primary", case), secret("fallback", case));
        let s = setup(
            &gw,
            &format!("model-{case}"),
            &pair(
                case,
                primary.url(),
                json!({"max_retries": 2}),
                fallback.url(),
            ),
        )
        .await;
        let key_id = s.keys[&format!("primary-{case}")].clone();
        primary
            .rule(json!({"key": p, "behaviour": {"latency_ms": 3000}}))
            .await;
        let gone = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&s.gateway_key)
            .header("x-request-id", format!("client-{case}"))
            .timeout(Duration::from_millis(500))
            .json(&chat_body(&s.model, stream))
            .send()
            .await;
        assert!(
            gone.is_err(),
            "{case}: the answer came before the client left"
        );
        // The gateway lets go of the upstream call and the slot, and tries nobody else.
        let freed = eventually(Duration::from_secs(2), || async {
            let upstream = primary.stats().await["in_flight_by_key"][&p]
                .as_u64()
                .unwrap_or(1);
            (upstream == 0 && slot_in_flight(&gw, &key_id).await == 0).then_some(())
        })
        .await;
        assert!(
            freed.is_some(),
            "{case}: the upstream call outlived the client"
        );
        // One final record, with the 499 the client "received".
        let row = eventually(Duration::from_secs(10), || async {
            let (_, page) =
                switchyard_tests::send(gw.admin(reqwest::Method::GET, "/usage?per_page=500")).await;
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|u| {
                    u["client_request_id"] == format!("client-{case}")
                        && (u["status"] == "failed" || u["status"] == "completed")
                })
                .cloned()
        })
        .await
        .unwrap_or_else(|| panic!("{case}: no final usage row"));
        assert_eq!(row["status"], "failed", "{case}: {row}");
        assert_eq!(row["status_code"], 499, "{case}: {row}");
        assert_eq!(
            fallback.count_for(&f).await,
            0,
            "{case}: failed over for a client that left"
        );
    }
}
