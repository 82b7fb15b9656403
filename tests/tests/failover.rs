//! Failover end to end: the real gateway (on SQLite) in front of mock upstreams that fail in every
//! way an upstream fails, over real sockets. Each test shows what the client got, what reached
//! each upstream (mock counters per credential and the mock's request log) and what the gateway
//! recorded (the request's trace: attempt rows and the final usage row).

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_tests::{
    Gateway, KeySpec, Mock, ProviderSpec, attempt_rows, chat, chat_body, client, closed_port_url,
    eventually, gateway_status, pair, request_id, secret, send, setup, slots_reach, sqlite_gateway,
    trace, tried,
};

fn json_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The OpenAI error envelope `{"error":{"message","type","param","code"}}`; returns `error`.
fn envelope(text: &str) -> Value {
    let body = json_body(text);
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {text}"));
    let mut fields: Vec<&str> = error.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["code", "message", "param", "type"], "{text}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    assert!(
        error["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{text}"
    );
    body["error"].clone()
}

/// A successful Chat Completions body from a mock.
fn assert_completion(text: &str) -> Value {
    let body = json_body(text);
    assert_eq!(body["object"], "chat.completion", "{text}");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{text}"
    );
    body
}

/// Every provider key's slot was given back (`GET /admin/slots`).
async fn assert_no_slot_held(gw: &Gateway) {
    let free = eventually(Duration::from_secs(5), || async {
        let (_, slots) = send(gw.admin(Method::GET, "/slots")).await;
        let keys = slots["keys"].as_array().cloned().unwrap_or_default();
        keys.iter()
            .all(|k| k["in_flight"].as_u64() == Some(0))
            .then_some(())
    })
    .await;
    assert!(free.is_some(), "a slot leaked");
}

fn assert_no_secret_logged(gw: &Gateway, secrets: &[String]) {
    let logs = gw.process.logs();
    for secret in secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a provider key appeared in the gateway log"
        );
    }
}

/// Arrival times (Unix ms) of the requests `mock` received with credential `key`.
async fn arrivals(mock: &Mock, key: &str) -> Vec<i64> {
    mock.requests(256)
        .await
        .iter()
        .filter(|r| r["key"] == key)
        .filter_map(|r| r["unix_ms"].as_i64())
        .collect()
}

#[tokio::test]
async fn transient_failures_retry_the_same_candidate_with_back_off_then_fail_over() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let refused = closed_port_url();
    // (case, the primary's behaviour — `None`: nothing listens —, error type, attempt status code)
    let cases = [
        ("refused", None, "connect", "-"),
        ("reset", Some(json!({"fault": "reset"})), "connect", "-"),
        ("500", Some(json!({"status": 500})), "server_error", "500"),
        ("502", Some(json!({"status": 502})), "server_error", "502"),
        ("503", Some(json!({"status": 503})), "server_error", "503"),
        ("529", Some(json!({"status": 529})), "server_error", "529"),
        (
            "error-in-200",
            Some(json!({"fault": "error_in_200"})),
            "error_in_body",
            "200",
        ),
        ("html", Some(json!({"fault": "html"})), "html", "200"),
        // The head, then half the body and a closed connection.
        (
            "body-cut",
            Some(json!({"fault": "stream_cut"})),
            "connect",
            "200",
        ),
    ];
    let mut secrets = Vec::new();
    for (case, behaviour, kind, code) in cases {
        let (p, f) = (secret("primary", case), secret("fallback", case));
        let base = match behaviour {
            Some(_) => primary.url().to_owned(),
            None => refused.clone(),
        };
        let s = setup(
            &gw,
            &format!("model-{case}"),
            &pair(case, &base, json!({"max_retries": 2}), fallback.url()),
        )
        .await;
        if let Some(b) = &behaviour {
            primary.rule(json!({"key": p, "behaviour": b})).await;
        }

        let started = Instant::now();
        let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, false)).await;
        let elapsed = started.elapsed();
        assert_eq!(
            status, 200,
            "{case}: the client must get the fallback's answer: {text}"
        );
        assert_completion(&text);

        // The same candidate was tried 1 + max_retries times, then the fallback once.
        let expected = if behaviour.is_some() { 3 } else { 0 };
        assert_eq!(primary.count_for(&p).await, expected, "{case}");
        assert_eq!(fallback.count_for(&f).await, 1, "{case}");
        // Back-off between retries: at least half of 100 ms, then half of 200 ms.
        assert!(
            elapsed >= Duration::from_millis(150),
            "{case}: retried without back-off ({elapsed:?})"
        );
        if behaviour.is_some() {
            let at = arrivals(&primary, &p).await;
            assert_eq!(at.len(), 3, "{case}");
            assert!(
                at[1] - at[0] >= 45 && at[2] - at[1] >= 95,
                "{case}: retries too close together: {at:?}"
            );
        }

        let t = trace(&gw, &request_id(&headers)).await;
        let failed = format!("failed:{kind}:{code}");
        assert_eq!(
            attempt_rows(&t),
            [
                format!("0:0:{failed}"),
                format!("0:1:{failed}"),
                format!("0:2:{failed}"),
                "1:0:success:-:200".to_owned()
            ],
            "{case}: {t}"
        );
        assert_eq!(t["usage"]["status"], "completed", "{case}: {t}");
        assert_eq!(t["usage"]["status_code"], 200, "{case}: {t}");
        assert_eq!(
            t["usage"]["provider_name"],
            format!("fallback-{case}"),
            "{t}"
        );
        secrets.extend([p, f]);
    }
    assert_no_secret_logged(&gw, &secrets);
    assert_no_slot_held(&gw).await;
}

#[tokio::test]
async fn a_silent_route_fails_over_at_once_and_is_not_tried_again() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    // (case, behaviour, streamed, error type, attempt status code)
    let cases = [
        (
            "hang",
            json!({"fault": "hang"}),
            false,
            "header_timeout",
            "-",
        ),
        (
            "latency",
            json!({"latency_ms": 4000}),
            false,
            "header_timeout",
            "-",
        ),
        (
            "hang-stream",
            json!({"fault": "hang"}),
            true,
            "header_timeout",
            "-",
        ),
        (
            "first-byte",
            json!({"first_byte_ms": 4000}),
            true,
            "first_byte_timeout",
            "200",
        ),
        // The head, half the body, then silence past the endpoint's `timeout_secs`.
        (
            "body-stall",
            json!({"fault": "stream_stall"}),
            false,
            "header_timeout",
            "200",
        ),
    ];
    for (case, behaviour, stream, kind, code) in cases {
        let (p, f) = (secret("primary", case), secret("fallback", case));
        let s = setup(
            &gw,
            &format!("model-{case}"),
            &pair(
                case,
                primary.url(),
                json!({"max_retries": 2, "header_timeout_secs": 1, "first_byte_timeout_secs": 1, "timeout_secs": 1}),
                fallback.url(),
            ),
        )
        .await;
        primary
            .rule(json!({"key": p, "behaviour": behaviour}))
            .await;

        let started = Instant::now();
        let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, stream)).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 200, "{case}: {text}");
        if stream {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{case}: {text}");
        } else {
            assert_completion(&text);
        }
        // One timeout, then the fallback at once: never a second wait on the silent route.
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2900),
            "{case}: took {elapsed:?}"
        );
        assert_eq!(
            primary.count_for(&p).await,
            1,
            "{case}: the silent key was retried"
        );
        assert_eq!(fallback.count_for(&f).await, 1, "{case}");

        let t = trace(&gw, &request_id(&headers)).await;
        assert_eq!(
            attempt_rows(&t),
            [
                format!("0:0:failed:{kind}:{code}"),
                "1:0:success:-:200".to_owned()
            ],
            "{case}: {t}"
        );
        assert_eq!(t["usage"]["status"], "completed", "{case}: {t}");
        assert_eq!(t["usage"]["status_code"], 200, "{case}: {t}");
    }
    // The gateway hung up on the silent connections.
    let idle = eventually(Duration::from_secs(10), || async {
        (primary.stats().await["in_flight_by_key"][secret("primary", "hang")] == 0).then_some(())
    })
    .await;
    assert!(
        idle.is_some(),
        "the hung upstream connection was never closed"
    );
    assert_no_slot_held(&gw).await;
}

#[tokio::test]
async fn key_errors_go_to_the_next_candidate_at_once() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    for status in [401, 403, 402] {
        let case = status.to_string();
        let (p, f) = (secret("primary", &case), secret("fallback", &case));
        let s = setup(
            &gw,
            &format!("model-{case}"),
            &pair(
                &case,
                primary.url(),
                json!({"max_retries": 2}),
                fallback.url(),
            ),
        )
        .await;
        primary
            .rule(json!({"key": p, "behaviour": {"status": status}}))
            .await;
        let started = Instant::now();
        let (code, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, false)).await;
        assert_eq!(code, 200, "{case}: {text}");
        assert_completion(&text);
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "{case}: no back-off or wait expected"
        );
        assert_eq!(
            primary.count_for(&p).await,
            1,
            "{case}: the bad key was retried"
        );
        assert_eq!(fallback.count_for(&f).await, 1, "{case}");
        let t = trace(&gw, &request_id(&headers)).await;
        assert_eq!(
            attempt_rows(&t),
            [
                format!("0:0:failed:auth:{status}"),
                "1:0:success:-:200".to_owned()
            ],
            "{case}: {t}"
        );
        assert_eq!(t["usage"]["status"], "completed");
    }
}

#[tokio::test]
async fn compatibility_errors_and_404_go_to_the_next_candidate() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let cases = [
        (
            "unsupported",
            json!({"status": 400, "error_type": "invalid_request_error", "code": "unsupported_parameter",
                   "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."}),
            "unsupported:400",
        ),
        (
            "404",
            json!({"status": 404, "message": "The model `gpt-x` does not exist or you do not have access to it."}),
            "not_found:404",
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
                json!({"max_retries": 2}),
                fallback.url(),
            ),
        )
        .await;
        primary
            .rule(json!({"key": p, "behaviour": behaviour}))
            .await;
        for stream in [false, true] {
            let (status, headers, text) =
                chat(&gw, &s.gateway_key, chat_body(&s.model, stream)).await;
            assert_eq!(status, 200, "{case}: {text}");
            let t = trace(&gw, &request_id(&headers)).await;
            assert_eq!(
                attempt_rows(&t),
                [
                    format!("0:0:failed:{failed}"),
                    "1:0:success:-:200".to_owned()
                ],
                "{case} stream={stream}: {t}"
            );
        }
        assert_eq!(
            primary.count_for(&p).await,
            2,
            "{case}: one attempt per request"
        );
        assert_eq!(fallback.count_for(&f).await, 2, "{case}");
    }
}

#[tokio::test]
async fn a_client_error_stops_after_one_attempt_with_the_upstream_status_and_message() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let cases = [
        (
            400,
            json!({"status": 400, "error_type": "invalid_request_error", "code": "context_length_exceeded",
                   "message": "prompt is too long: 212000 tokens > 200000 maximum"}),
        ),
        (
            413,
            json!({"status": 413, "error_type": "invalid_request_error",
                   "message": "Request too large: the input is too long for this model."}),
        ),
        (
            422,
            json!({"status": 422, "error_type": "invalid_request_error",
                   "message": "messages.0.content: message is too long"}),
        ),
    ];
    for (status, behaviour) in cases {
        for stream in [false, true] {
            let case = format!("{status}-{}", if stream { "stream" } else { "json" });
            let (p, f) = (secret("primary", &case), secret("fallback", &case));
            let s = setup(
                &gw,
                &format!("model-{case}"),
                &pair(
                    &case,
                    primary.url(),
                    json!({"max_retries": 2}),
                    fallback.url(),
                ),
            )
            .await;
            primary
                .rule(json!({"key": p, "behaviour": behaviour}))
                .await;
            let (code, headers, text) =
                chat(&gw, &s.gateway_key, chat_body(&s.model, stream)).await;
            assert_eq!(code, status, "{case}: {text}");
            let error = envelope(&text);
            assert_eq!(error["message"], behaviour["message"], "{case}: {text}");
            assert_eq!(error["type"], "invalid_request_error", "{case}: {text}");
            if status == 400 {
                assert_eq!(error["code"], "context_length_exceeded", "{case}: {text}");
            }
            assert_eq!(
                primary.count_for(&p).await,
                1,
                "{case}: a bad request was retried"
            );
            assert_eq!(
                fallback.count_for(&f).await,
                0,
                "{case}: a bad request was failed over"
            );
            let t = trace(&gw, &request_id(&headers)).await;
            assert_eq!(
                attempt_rows(&t),
                [format!("0:0:failed:client_error:{status}")],
                "{case}: {t}"
            );
            assert_eq!(t["usage"]["status"], "failed", "{case}: {t}");
            assert_eq!(t["usage"]["status_code"], status, "{case}: {t}");
        }
    }

    // The same refusal inside a 200 (an error object as the body, or as the first stream
    // event) stops too, as a 400.
    let refusal = json!({"status": 400, "error_type": "invalid_request_error", "code": "context_length_exceeded",
                         "message": "prompt is too long: 212000 tokens > 200000 maximum"});
    for (case, fault, stream) in [
        ("in-200", "error_in_200", false),
        ("in-stream", "stream_error_event", true),
    ] {
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
        let mut behaviour = refusal.clone();
        behaviour["fault"] = json!(fault);
        primary
            .rule(json!({"key": p, "behaviour": behaviour}))
            .await;
        let (code, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, stream)).await;
        assert_eq!(code, 400, "{case}: {text}");
        assert_eq!(
            envelope(&text)["message"],
            refusal["message"],
            "{case}: {text}"
        );
        assert_eq!(
            (primary.count_for(&p).await, fallback.count_for(&f).await),
            (1, 0),
            "{case}"
        );
        let t = trace(&gw, &request_id(&headers)).await;
        assert_eq!(
            attempt_rows(&t),
            ["0:0:failed:client_error:200"],
            "{case}: {t}"
        );
        assert_eq!(t["usage"]["status_code"], 400, "{case}: {t}");
    }
    assert_no_slot_held(&gw).await;
}

#[tokio::test]
async fn a_short_retry_after_on_the_best_candidate_is_waited_out_once() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let (p, f) = (secret("primary", "429"), secret("fallback", "429"));
    let s = setup(
        &gw,
        "model-429",
        &pair(
            "429",
            primary.url(),
            json!({"max_retries": 2}),
            fallback.url(),
        ),
    )
    .await;

    // One 429 with Retry-After: 1 → waited out, then the same key serves.
    primary
        .rule(json!({"key": p, "times": 1, "behaviour": {"status": 429, "retry_after": 1}}))
        .await;
    let started = Instant::now();
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, false)).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{text}");
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(2900),
        "the Retry-After was not waited out: {elapsed:?}"
    );
    assert_eq!(primary.count_for(&p).await, 2);
    assert_eq!(
        fallback.count_for(&f).await,
        0,
        "went to the fallback instead of waiting"
    );
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        attempt_rows(&t),
        ["0:0:failed:rate_limited:429", "0:1:success:-:200"],
        "{t}"
    );
    let at = arrivals(&primary, &p).await;
    assert!(
        at[1] - at[0] >= 950,
        "retried before the Retry-After passed: {at:?}"
    );

    // Waited out only once per request: a second 429 goes to the fallback.
    primary
        .rule(json!({"key": p, "times": 2, "behaviour": {"status": 429, "retry_after": 1}}))
        .await;
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, false)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(primary.count_for(&p).await, 4);
    assert_eq!(fallback.count_for(&f).await, 1);
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        attempt_rows(&t),
        [
            "0:0:failed:rate_limited:429",
            "0:1:failed:rate_limited:429",
            "1:0:success:-:200"
        ],
        "{t}"
    );

    // A 429 is not a health failure.
    let (_, health) = send(gw.admin(Method::GET, "/health")).await;
    let key = health["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["key_id"] == s.keys["primary-429"].as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(key["consecutive_failures"], 0, "{health}");
    assert_eq!(key["error_rate"], 0.0, "{health}");
    assert_eq!(key["circuit"], "closed", "{health}");
}

#[tokio::test]
async fn a_long_retry_after_fails_over_at_once_and_the_key_cools_down_until_it_ends() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let (p, f) = (secret("primary", "429"), secret("fallback", "429"));
    let s = setup(
        &gw,
        "model-429",
        &pair(
            "429",
            primary.url(),
            json!({"max_retries": 2}),
            fallback.url(),
        ),
    )
    .await;
    let key_id = s.keys["primary-429"].clone();
    // Longer than the 3 s the gateway waits out.
    primary
        .rule(json!({"key": p, "times": 1, "behaviour": {"status": 429, "retry_after": 4}}))
        .await;

    let started = Instant::now();
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, false)).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for a long Retry-After"
    );
    assert_eq!(
        (primary.count_for(&p).await, fallback.count_for(&f).await),
        (1, 1)
    );
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        attempt_rows(&t),
        ["0:0:failed:rate_limited:429", "1:0:success:-:200"],
        "{t}"
    );

    // While it cools down, following requests skip the key without calling it.
    for _ in 0..2 {
        let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body(&s.model, false)).await;
        assert_eq!(status, 200, "{text}");
        let t = trace(&gw, &request_id(&headers)).await;
        assert_eq!(
            attempt_rows(&t),
            ["0:0:skipped:-:-", "1:0:success:-:200"],
            "{t}"
        );
        assert!(
            t["attempts"][0]["skip_reason"]
                .as_str()
                .is_some_and(|r| r.contains("cooling")),
            "{t}"
        );
    }
    assert_eq!(
        (primary.count_for(&p).await, fallback.count_for(&f).await),
        (1, 3)
    );
    let (_, slots) = send(gw.admin(Method::GET, "/slots")).await;
    assert!(
        slots.to_string().contains("cooling_until")
            && slots["keys"].as_array().is_some_and(|keys| keys
                .iter()
                .any(|k| k["key_id"] == key_id.as_str() && !k["cooling_until"].is_null())),
        "{slots}"
    );

    // When the cool-down ends, the primary serves again.
    let served = eventually(Duration::from_secs(8), || async {
        let (status, _, _) = chat(&gw, &s.gateway_key, chat_body(&s.model, false)).await;
        (status == 200 && primary.count_for(&p).await == 2).then_some(())
    })
    .await;
    assert!(
        served.is_some(),
        "the key never came back after its cool-down"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(3900),
        "the cool-down ended early"
    );
}

#[tokio::test]
async fn unknown_and_forbidden_models_get_404_and_403() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let mock = Mock::start("upstream");
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url())
            .key(KeySpec::new("only", "sk-only-SECRET-0123456789"))],
    )
    .await;

    let (status, headers, text) =
        chat(&gw, &s.gateway_key, chat_body("no-such-model", false)).await;
    assert_eq!(status, 404, "{text}");
    let error = envelope(&text);
    assert_eq!(error["code"], "model_not_found", "{text}");
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(404)),
        "{t}"
    );

    let (_, user) = send(
        gw.admin(Method::POST, "/users")
            .json(&json!({"name": "restricted"})),
    )
    .await;
    let (created, key) =
        send(gw.admin(Method::POST, "/gateway-keys").json(
            &json!({"user_id": user["id"], "name": "restricted", "allowed_models": ["other"]}),
        ))
        .await;
    assert_eq!(created, 201, "{key}");
    let restricted = key["key"].as_str().expect("plaintext key");
    let (status, headers, text) = chat(&gw, restricted, chat_body("gpt-test", false)).await;
    assert_eq!(status, 403, "{text}");
    envelope(&text);
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(403)),
        "{t}"
    );

    assert_eq!(
        mock.stats().await["total"],
        0,
        "a refused request reached the upstream"
    );
}

#[tokio::test]
async fn every_candidate_rate_limited_gets_429_with_retry_after() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let mock = Mock::start("upstream");
    let (a, b) = (
        "sk-a-SECRET-0123456789abcdef",
        "sk-b-SECRET-0123456789abcdef",
    );
    let s = setup(
        &gw,
        "gpt-test",
        &[
            ProviderSpec::new("a", 1, mock.url()).key(KeySpec::new("a", a)),
            ProviderSpec::new("b", 2, mock.url()).key(KeySpec::new("b", b)),
        ],
    )
    .await;
    // Retry-After in seconds, and as an HTTP date (the earlier one: it decides the answer's).
    mock.rule(json!({"key": a, "behaviour": {"status": 429, "retry_after": 70}}))
        .await;
    mock.rule(json!({"key": b, "behaviour": {"status": 429, "retry_after": 60, "retry_after_date": true}}))
        .await;
    // Both answer 429: the client is told to come back later, not that the upstreams broke.
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body("gpt-test", false)).await;
    assert_eq!(status, 429, "{text}");
    let error = envelope(&text);
    assert_eq!(error["type"], "rate_limit_error", "{text}");
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("Retry-After on a 429");
    assert!(
        (50..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!((mock.count_for(a).await, mock.count_for(b).await), (1, 1));
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        attempt_rows(&t),
        ["0:0:failed:rate_limited:429", "1:0:failed:rate_limited:429"],
        "{t}"
    );
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(429)),
        "{t}"
    );

    // Both keys now cool down: the next request calls nobody and gets the same answer.
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body("gpt-test", false)).await;
    assert_eq!(status, 429, "{text}");
    envelope(&text);
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("Retry-After on a 429");
    assert!(
        (50..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(mock.stats().await["total"], 2, "a cooling key was called");
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        attempt_rows(&t),
        ["0:0:skipped:-:-", "1:0:skipped:-:-"],
        "{t}"
    );
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(429)),
        "{t}"
    );
}

#[tokio::test]
async fn a_full_key_makes_the_next_request_wait_then_get_429() {
    let (gw, _db) = sqlite_gateway(&[("SWITCHYARD__ROUTING__QUEUE_TIMEOUT_SECS", "1")]).await;
    let mock = Mock::start("upstream");
    let k = "sk-only-SECRET-0123456789abcdef";
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url())
            .key(KeySpec::new("only", k).with(json!({"max_concurrent": 1})))],
    )
    .await;
    let key_id = s.keys["only"].clone();
    mock.rule(json!({"key": k, "times": 1, "behaviour": {"latency_ms": 2500}}))
        .await;

    let slow = chat(&gw, &s.gateway_key, chat_body("gpt-test", false));
    let refused = async {
        let held = slots_reach(&gw, &key_id, 1).await;
        assert!(held, "the slow request never took the slot");
        let started = Instant::now();
        let answer = chat(&gw, &s.gateway_key, chat_body("gpt-test", false)).await;
        (answer, started.elapsed())
    };
    let ((slow_status, _, slow_text), ((status, headers, text), waited)) =
        tokio::join!(slow, refused);
    assert_eq!(slow_status, 200, "{slow_text}");
    assert_eq!(status, 429, "{text}");
    envelope(&text);
    assert!(
        headers.contains_key("retry-after"),
        "429 without Retry-After"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(3000),
        "the queue wait was not the configured 1 s: {waited:?}"
    );
    assert_eq!(mock.count_for(k).await, 1, "the full key was called anyway");
    let t = trace(&gw, &request_id(&headers)).await;
    assert!(tried(&t).is_empty(), "{t}");
    assert!(
        t["attempts"][0]["skip_reason"]
            .as_str()
            .is_some_and(|r| r.contains("concurrency")),
        "{t}"
    );
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(429)),
        "{t}"
    );
    // The slot came back.
    let free = slots_reach(&gw, &key_id, 0).await;
    assert!(free, "the slot leaked");
}

#[tokio::test]
async fn a_client_that_leaves_while_queued_for_a_slot_stops_waiting_at_once() {
    let (gw, _db) = sqlite_gateway(&[("SWITCHYARD__ROUTING__QUEUE_TIMEOUT_SECS", "20")]).await;
    let mock = Mock::start("upstream");
    let k = "sk-queued-SECRET-0123456789abcdef";
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url())
            .key(KeySpec::new("only", k).with(json!({"max_concurrent": 1})))],
    )
    .await;
    let key_id = s.keys["only"].clone();
    mock.rule(json!({"key": k, "times": 1, "behaviour": {"latency_ms": 4000}}))
        .await;
    let slow = chat(&gw, &s.gateway_key, chat_body("gpt-test", false));
    let leaver = async {
        let held = slots_reach(&gw, &key_id, 1).await;
        assert!(held, "the slow request never took the slot");
        // Queued behind the slow request, the client gives up after 300 ms.
        let gone = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&s.gateway_key)
            .json(&chat_body("gpt-test", false))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(gone.is_err(), "the queued request was answered: {gone:?}");
        // Recorded as 499 while the slow request still holds the slot, not when it ends.
        let left = Instant::now();
        let recorded = eventually(Duration::from_secs(3), || async {
            let (_, usage) = send(gw.admin(Method::GET, "/usage")).await;
            usage["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|u| u["status_code"] == 499)
                .cloned()
        })
        .await;
        (recorded, left.elapsed())
    };
    let ((slow_status, _, slow_text), (recorded, after)) = tokio::join!(slow, leaver);
    assert_eq!(slow_status, 200, "{slow_text}");
    let recorded = recorded.expect("the queued request that left was never recorded");
    assert_eq!(recorded["status"], "failed", "{recorded}");
    assert!(
        after < Duration::from_secs(2),
        "recorded only after {after:?}"
    );
    // Only the slow request reached the upstream, and its slot came back.
    assert_eq!(mock.count_for(k).await, 1);
    let free = slots_reach(&gw, &key_id, 0).await;
    assert!(
        free,
        "the slot leaked: {}",
        switchyard_tests::admin_get(&gw, "/slots").await
    );
}

#[tokio::test]
async fn when_everything_fails_the_client_gets_502_naming_the_attempts_and_the_last_cause() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let (p, f) = (secret("primary", "all"), secret("fallback", "all"));
    let s = setup(
        &gw,
        "gpt-test",
        &pair(
            "all",
            primary.url(),
            json!({"max_retries": 1}),
            fallback.url(),
        ),
    )
    .await;
    primary
        .rule(json!({"key": p, "behaviour": {"status": 503}}))
        .await;
    // The fallback keeps its default two retries; the last upstream echoes its credential in
    // the message, as some do.
    fallback
        .rule(json!({"key": f, "behaviour": {"status": 500, "message": format!("internal error for key {f}")}}))
        .await;
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body("gpt-test", false)).await;
    assert_eq!(status, 502, "{text}");
    let error = envelope(&text);
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message
            .split(|c: char| !c.is_ascii_digit())
            .any(|n| n == "5"),
        "the number of failed attempts is missing: {message}"
    );
    assert!(
        message.contains("500"),
        "the last cause is missing: {message}"
    );
    assert!(
        !text.contains(&p) && !text.contains(&f),
        "a provider key reached the client"
    );
    assert_eq!(
        (primary.count_for(&p).await, fallback.count_for(&f).await),
        (2, 3)
    );
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        attempt_rows(&t),
        [
            "0:0:failed:server_error:503",
            "0:1:failed:server_error:503",
            "1:0:failed:server_error:500",
            "1:1:failed:server_error:500",
            "1:2:failed:server_error:500"
        ],
        "{t}"
    );
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(502)),
        "{t}"
    );
    assert!(!t.to_string().contains(&f), "a provider key was recorded");
    assert_no_secret_logged(&gw, &[p, f]);
    assert_no_slot_held(&gw).await;
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_504() {
    let (gw, _db) = sqlite_gateway(&[("SWITCHYARD__ROUTING__REQUEST_DEADLINE_SECS", "1")]).await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let (p, f) = (secret("primary", "slow"), secret("fallback", "slow"));
    let s = setup(
        &gw,
        "gpt-test",
        &pair("slow", primary.url(), json!({}), fallback.url()),
    )
    .await;
    primary
        .rule(json!({"key": p, "behaviour": {"latency_ms": 3000}}))
        .await;
    let started = Instant::now();
    let (status, headers, text) = chat(&gw, &s.gateway_key, chat_body("gpt-test", false)).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 504, "{text}");
    envelope(&text);
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2900),
        "{elapsed:?}"
    );
    assert_eq!(
        (primary.count_for(&p).await, fallback.count_for(&f).await),
        (1, 0)
    );
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(504)),
        "{t}"
    );
    assert_no_slot_held(&gw).await;
}

#[tokio::test]
async fn bad_input_is_refused_in_the_openai_envelope_before_any_upstream_call() {
    let (gw, _db) = sqlite_gateway(&[("SWITCHYARD__SERVER__MAX_BODY_BYTES", "4096")]).await;
    let mock = Mock::start("upstream");
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url())
            .key(KeySpec::new("only", "sk-only-SECRET-0123456789"))],
    )
    .await;
    let url = gw.url("/v1/chat/completions");
    let body = chat_body("gpt-test", false);

    let (status, answer) = send(client().post(&url).json(&body)).await;
    assert_eq!(status, 401, "{answer}");
    envelope(&answer.to_string());
    let (status, answer) = send(client().post(&url).bearer_auth("sk-sy-wrong").json(&body)).await;
    assert_eq!(status, 401, "{answer}");
    envelope(&answer.to_string());
    let (status, answer) = send(
        client()
            .get(gw.url("/v1/models"))
            .bearer_auth("sk-sy-wrong"),
    )
    .await;
    assert_eq!(status, 401, "{answer}");

    let (status, answer) = send(
        client()
            .post(&url)
            .bearer_auth(&s.gateway_key)
            .header("content-type", "application/json")
            .body("{oops"),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    envelope(&answer.to_string());

    let (status, answer) = send(
        client()
            .post(&url)
            .bearer_auth(&s.gateway_key)
            .json(&json!({"model": "gpt-test"})),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let error = envelope(&answer.to_string());
    assert_eq!(error["param"], "messages", "{answer}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("messages")),
        "{answer}"
    );

    let big =
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x".repeat(8192)}]});
    let (status, answer) = send(client().post(&url).bearer_auth(&s.gateway_key).json(&big)).await;
    assert_eq!(status, 413, "{answer}");
    envelope(&answer.to_string());

    assert_eq!(
        mock.stats().await["total"],
        0,
        "refused input reached the upstream"
    );
    // Each refusal is counted under its reason (the 401s, the model list's too, are recorded
    // nowhere else).
    let refused = &gateway_status(&gw).await["requests"]["refused"];
    assert_eq!(
        refused,
        &json!({"unauthorized": 3, "quota_exceeded": 0, "overloaded": 0,
                "body_refused": 1, "invalid_request": 2}),
    );
    let metrics = metrics_text(&gw).await;
    for line in [
        r#"switchyard_requests_refused_total{reason="unauthorized"} 3"#,
        r#"switchyard_requests_refused_total{reason="body_refused"} 1"#,
        r#"switchyard_requests_refused_total{reason="invalid_request"} 2"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn past_the_in_flight_limit_a_request_gets_503_with_retry_after_and_is_recorded() {
    let (gw, _db) = sqlite_gateway(&[("SWITCHYARD__ROUTING__MAX_IN_FLIGHT", "1")]).await;
    let mock = Mock::start("upstream");
    let k = "sk-only-SECRET-0123456789";
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url()).key(KeySpec::new("only", k))],
    )
    .await;
    mock.rule(json!({"key": k, "times": 1, "behaviour": {"latency_ms": 3000}}))
        .await;
    let slow = chat(&gw, &s.gateway_key, chat_body("gpt-test", false));
    let refused = async {
        // The slow request is in flight once the upstream has it.
        eventually(Duration::from_secs(5), || async {
            (mock.stats().await["total"] == 1).then_some(())
        })
        .await
        .expect("the slow request reached the upstream");
        chat(&gw, &s.gateway_key, chat_body("gpt-test", false)).await
    };
    let ((slow_status, _, slow_text), (status, headers, text)) = tokio::join!(slow, refused);
    assert_eq!(slow_status, 200, "{slow_text}");
    assert_eq!(status, 503, "{text}");
    let error = envelope(&text);
    assert_eq!(error["code"], "overloaded", "{text}");
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(
        mock.stats().await["total"],
        1,
        "the refused request reached the upstream"
    );
    // On the books with the status the client received, and counted.
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(503)),
        "{t}"
    );
    let refused = &gateway_status(&gw).await["requests"]["refused"];
    assert_eq!(refused["overloaded"], 1, "{refused}");
}

#[tokio::test]
async fn a_success_is_the_upstreams_body_and_the_upstream_gets_the_clients_request() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let mock = Mock::start("upstream");
    let k = "sk-only-SECRET-0123456789abcdef";
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url()).key(KeySpec::new("only", k))],
    )
    .await;
    let (_, models) = send(gw.admin(Method::GET, "/global-models")).await;
    let model_id = models["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == "gpt-test")
        .map(|m| m["id"].clone())
        .expect("gpt-test listed");
    let (status, created) = send(
        gw.admin(Method::POST, "/aliases")
            .json(&json!({"alias": "fast", "global_model_id": model_id})),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let request = json!({
        "model": "fast",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        "temperature": 0.25,
        "user": "end-user-7",
        "x_vendor_extension": {"keep": [1, 2, 3]}
    });
    let (status, headers, text) = chat(&gw, &s.gateway_key, request.clone()).await;
    assert_eq!(status, 200, "{text}");
    let body = assert_completion(&text);
    // The upstream's body: its model name (not the alias asked for), its id and fingerprint.
    assert_eq!(body["model"], "gpt-test", "{text}");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-")),
        "{text}"
    );
    assert_eq!(body["system_fingerprint"], "fp_mock0001", "{text}");

    // What the upstream received: the client's body with only `model` replaced, the provider
    // key as credential, and nothing of the gateway key.
    let logged = mock.requests(1).await;
    let sent = &logged[0];
    assert!(sent["key"] == k, "the upstream got another credential");
    let mut expected = request.clone();
    expected["model"] = json!("gpt-test");
    assert_eq!(sent["body"], expected, "the body was changed on the way");
    assert!(
        !sent.to_string().contains(&s.gateway_key),
        "the gateway key was forwarded"
    );

    // Byte for byte: member order, a number beyond f64's precision, a trailing zero, escapes
    // and the spacing inside values reach the upstream as the client wrote them; only the
    // model is replaced (and the space between top-level members dropped).
    let raw = r#"{"temperature":0.70,"model":"fast","seed":12345678901234567890123,"messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"x_vendor":{"z": 1, "a": [ ]}}"#;
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&s.gateway_key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status().as_u16(), 200);
    let logged = mock.requests(1).await;
    assert_eq!(
        logged[0]["body_text"],
        raw.replace(r#""model":"fast""#, r#""model":"gpt-test""#),
        "the body was rewritten on the way"
    );

    // The tokens the upstream reported are recorded.
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(t["usage"]["status"], "completed");
    assert_eq!(
        t["usage"]["input_tokens"], body["usage"]["prompt_tokens"],
        "{t}"
    );
    assert_eq!(
        t["usage"]["output_tokens"], body["usage"]["completion_tokens"],
        "{t}"
    );
    assert!(
        t["usage"]["total_cost_usd"]
            .as_f64()
            .is_some_and(|c| c > 0.0),
        "{t}"
    );
}

/// `GET /metrics` (no token needed).
async fn metrics_text(gw: &Gateway) -> String {
    client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of the `/metrics` line `name` (labels included), if there is one.
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

#[tokio::test]
async fn metrics_show_how_long_requests_took_and_how_soon_streams_began() {
    let (gw, _db) = sqlite_gateway(&[]).await;
    let mock = Mock::start("upstream");
    let k = "sk-only-SECRET-0123456789";
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("only", 1, mock.url()).key(KeySpec::new("only", k))],
    )
    .await;
    // One answer takes 300 ms upstream; the others come at once.
    mock.rule(json!({"key": k, "times": 1, "behaviour": {"latency_ms": 300}}))
        .await;
    for stream in [false, false, true] {
        let (status, _, text) = chat(&gw, &s.gateway_key, chat_body("gpt-test", stream)).await;
        assert_eq!(status, 200, "{text}");
    }
    let metrics = eventually(Duration::from_secs(5), || async {
        let text = metrics_text(&gw).await;
        (metric(&text, "switchyard_request_duration_seconds_count") == Some(3.0)).then_some(text)
    })
    .await
    .expect("three requests in the duration histogram");
    let d = "switchyard_request_duration_seconds";
    assert_eq!(
        metric(&metrics, &format!(r#"{d}_bucket{{le="+Inf"}}"#)),
        Some(3.0)
    );
    // The slow one is above 250 ms, all three within 10 s.
    assert_eq!(
        metric(&metrics, &format!(r#"{d}_bucket{{le="0.25"}}"#)),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, &format!(r#"{d}_bucket{{le="10"}}"#)),
        Some(3.0),
        "{metrics}"
    );
    let sum = metric(&metrics, &format!("{d}_sum")).expect("sum");
    assert!((0.3..10.0).contains(&sum), "{sum}");
    // Buckets only grow.
    let buckets: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{d}_bucket")))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    // Only the streamed request has a first byte of its own.
    let f = "switchyard_request_first_byte_seconds";
    assert_eq!(
        metric(&metrics, &format!("{f}_count")),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, &format!(r#"{f}_bucket{{le="+Inf"}}"#)),
        Some(1.0)
    );
}
