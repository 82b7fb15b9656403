//! Routing state end to end: cache affinity, the reservation for cache-warm clients, adaptive
//! concurrency, 429 cool-downs, the circuit breaker and the bounded wait for a slot — the real
//! gateway (SQLite, memory state) in front of mock upstreams over real sockets. Each test shows
//! what reached each upstream key (mock counters per credential), what the client got, and what
//! the gateway's records and admin views say.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_tests::{
    Gateway, KeySpec, Mock, ProviderSpec, admin_get, chat, chat_body, eventually, gateway_key,
    gateway_status, key_health, key_slots, request_id, send, setup, slot_in_flight, slots_reach,
    sqlite_gateway, trace, tried,
};

/// Short back-offs and a 1 s queue wait, so that every test runs in seconds.
const FAST: [(&str, &str); 3] = [
    ("SWITCHYARD__ROUTING__RETRY_BASE_MS", "10"),
    ("SWITCHYARD__ROUTING__RETRY_MAX_MS", "50"),
    ("SWITCHYARD__ROUTING__QUEUE_TIMEOUT_SECS", "1"),
];

fn env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    FAST.iter().chain(extra).copied().collect()
}

fn secret(name: &str) -> String {
    format!("sk-{name}-SECRET-0123456789abcdef")
}

/// Requests the mock received per credential, for the given credentials.
async fn counts(mock: &Mock, keys: &[&str]) -> Vec<u64> {
    let stats = mock.stats().await;
    keys.iter()
        .map(|k| stats["by_key"][*k].as_u64().unwrap_or(0))
        .collect()
}

/// One chat request that must succeed; returns its request id.
async fn ok(gw: &Gateway, key: &str, model: &str) -> String {
    let (status, headers, text) = chat(gw, key, chat_body(model, false)).await;
    assert_eq!(status, 200, "{text}");
    request_id(&headers)
}

/// The affinity entries of the gateway (`GET /admin/affinity`).
async fn affinity_entries(gw: &Gateway) -> Vec<Value> {
    admin_get(gw, "/affinity").await["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until an affinity entry points at `key_id` and satisfies `check`; returns it.
async fn affinity_points_at(gw: &Gateway, key_id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let found = eventually(Duration::from_secs(5), || async {
        affinity_entries(gw)
            .await
            .into_iter()
            .find(|e| e["entry"]["provider_key_id"] == key_id && check(&e["entry"]))
    })
    .await;
    match found {
        Some(entry) => entry,
        None => panic!(
            "no affinity entry on {key_id} as expected: {:?}",
            affinity_entries(gw).await
        ),
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
}

#[tokio::test]
async fn affinity_keeps_each_client_on_one_key_and_clients_spread_over_equal_keys() {
    let (gw, _db) = sqlite_gateway(&env(&[])).await;
    let mock = Mock::start("upstream");
    let (one, two) = (secret("aff-one"), secret("aff-two"));
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("p", 10, mock.url())
            .key(KeySpec::new("one", &one).with(json!({"cache_ttl_minutes": 5})))
            .key(KeySpec::new("two", &two).with(json!({"cache_ttl_minutes": 5})))],
    )
    .await;
    let keys = [one.as_str(), two.as_str()];
    let ids = [s.keys["one"].clone(), s.keys["two"].clone()];

    // Client A: every request on one key, the other key never sees it.
    let mut request_ids = Vec::new();
    for _ in 0..8 {
        request_ids.push(ok(&gw, &s.gateway_key, "gpt-test").await);
    }
    let seen = counts(&mock, &keys).await;
    assert!(
        seen == [8, 0] || seen == [0, 8],
        "client A was spread: {seen:?}"
    );
    let a = usize::from(seen[1] == 8);
    let first = trace(&gw, &request_ids[0]).await;
    assert_eq!(first["attempts"][0]["is_cached"], false, "{first}");
    let last = trace(&gw, &request_ids[7]).await;
    let served = tried(&last);
    assert_eq!(served.len(), 1, "{last}");
    assert_eq!(
        (&served[0]["is_cached"], &served[0]["provider_key_id"]),
        (&json!(true), &json!(ids[a])),
        "the later requests are affinity hits: {last}"
    );
    affinity_points_at(&gw, &ids[a], |e| e["request_count"] == 8).await;
    let status = gateway_status(&gw).await;
    let affinity = &status["affinity"];
    assert_eq!(
        (&affinity["hits"], &affinity["misses"]),
        (&json!(7), &json!(1)),
        "{status}"
    );
    let rate_after_a = affinity["hit_rate"].as_f64().expect("hit rate");
    assert!((rate_after_a - 7.0 / 8.0).abs() < 1e-9, "{status}");

    // More clients: each stays on its key; the hash spreads them, so one lands on the other key.
    let mut other_found = false;
    for client in 0..20 {
        let key = gateway_key(&gw).await;
        let before = counts(&mock, &keys).await;
        for _ in 0..3 {
            ok(&gw, &key, "gpt-test").await;
        }
        let after = counts(&mock, &keys).await;
        let delta = [after[0] - before[0], after[1] - before[1]];
        assert!(
            delta == [3, 0] || delta == [0, 3],
            "client {client} was spread: {delta:?}"
        );
        if delta[1 - a] == 3 {
            other_found = true;
            break;
        }
    }
    assert!(other_found, "20 clients all landed on the same key");
    // Client A did not move meanwhile.
    let before = counts(&mock, &keys).await;
    ok(&gw, &s.gateway_key, "gpt-test").await;
    let after = counts(&mock, &keys).await;
    assert_eq!(after[a] - before[a], 1, "client A moved");
    let status = gateway_status(&gw).await;
    let rate = status["affinity"]["hit_rate"].as_f64().expect("hit rate");
    assert!(rate > 0.6, "the hit rate fell: {status}");

    // An operator clears client A's entry: its next request is a miss, then it is sticky again.
    let entry = affinity_points_at(&gw, &ids[a], |e| e["request_count"] == 9).await;
    let client_id = entry["client"].as_str().expect("client").to_owned();
    let (code, cleared) = send(gw.admin(
        reqwest::Method::DELETE,
        &format!("/affinity?client={client_id}"),
    ))
    .await;
    assert_eq!((code, &cleared["cleared"]), (200, &json!(1)), "{cleared}");
    assert!(
        affinity_entries(&gw)
            .await
            .iter()
            .all(|e| e["client"] != json!(client_id)),
        "the entry survived"
    );
    let misses = status["affinity"]["misses"].as_u64().expect("misses");
    ok(&gw, &s.gateway_key, "gpt-test").await;
    let status = gateway_status(&gw).await;
    assert_eq!(status["affinity"]["misses"], misses + 1, "{status}");
    affinity_points_at(&gw, &ids[a], |e| e["request_count"] == 1).await;
}

#[tokio::test]
async fn a_failing_sticky_key_loses_its_clients_who_stay_on_the_new_key_after_it_recovers() {
    let (gw, _db) = sqlite_gateway(&env(&[])).await;
    let mock = Mock::start("upstream");
    let (one, two) = (secret("inv-one"), secret("inv-two"));
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("p", 10, mock.url())
            .key(KeySpec::new("one", &one).with(json!({"cache_ttl_minutes": 5})))
            .key(KeySpec::new("two", &two).with(json!({"cache_ttl_minutes": 5})))],
    )
    .await;
    let keys = [one.as_str(), two.as_str()];
    let ids = [s.keys["one"].clone(), s.keys["two"].clone()];
    for _ in 0..3 {
        ok(&gw, &s.gateway_key, "gpt-test").await;
    }
    let seen = counts(&mock, &keys).await;
    assert!(seen == [3, 0] || seen == [0, 3], "{seen:?}");
    // The key the hash order (and then affinity) picked, and the other one.
    let (sticky, other) = if seen[0] == 3 { (0, 1) } else { (1, 0) };
    let old = affinity_points_at(&gw, &ids[sticky], |e| e["request_count"] == 3).await;

    // The sticky key starts failing: the client is served by the other key.
    let rule = mock
        .rule(json!({"key": keys[sticky], "behaviour": {"status": 500}}))
        .await;
    let id = ok(&gw, &s.gateway_key, "gpt-test").await;
    let t = trace(&gw, &id).await;
    let attempts = tried(&t);
    let last = attempts.last().expect("attempts");
    assert_eq!(last["provider_key_id"], json!(ids[other]), "{t}");
    assert_eq!(last["status"], "success", "{t}");
    assert!(
        attempts[..attempts.len() - 1]
            .iter()
            .all(|a| a["provider_key_id"] == json!(ids[sticky]) && a["status_code"] == 500),
        "{t}"
    );
    assert_eq!(attempts[0]["is_cached"], true, "{t}");
    // The entry was invalidated and rewritten for the other key: a new entry, counted afresh.
    let new = affinity_points_at(&gw, &ids[other], |e| e["request_count"] == 1).await;
    assert_ne!(
        new["entry"]["created_at"], old["entry"]["created_at"],
        "{new}"
    );

    // The failure is removed and the key's circuit recovered: it is as good as the other one
    // (and first in this client's hash order), yet the client stays where its cache is warm.
    let (status, _) =
        send(switchyard_tests::client().delete(format!("{}/_mock/rules/{rule}", mock.url()))).await;
    assert_eq!(status, 200);
    let (status, body) = send(
        gw.admin(reqwest::Method::POST, "/health/recover")
            .json(&json!({"key_id": ids[sticky]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(key_health(&gw, &ids[sticky]).await["circuit"], "closed");
    let before = counts(&mock, &keys).await;
    for _ in 0..5 {
        let id = ok(&gw, &s.gateway_key, "gpt-test").await;
        let t = trace(&gw, &id).await;
        assert_eq!(tried(&t)[0]["is_cached"], true, "{t}");
    }
    let after = counts(&mock, &keys).await;
    assert_eq!(
        (after[sticky] - before[sticky], after[other] - before[other]),
        (0, 5),
        "the client left its warm key"
    );
    affinity_points_at(&gw, &ids[other], |e| e["request_count"] == 6).await;
}

#[tokio::test]
async fn affinity_does_not_trap_a_client_on_the_fallback_once_the_primary_recovers() {
    let (gw, _db) = sqlite_gateway(&env(&[
        ("SWITCHYARD__HEALTH__INITIAL_RECOVERY_SECS", "1"),
        ("SWITCHYARD__HEALTH__MAX_RECOVERY_SECS", "2"),
        ("SWITCHYARD__HEALTH__HALF_OPEN_PROBES", "1"),
        ("SWITCHYARD__HEALTH__HALF_OPEN_SUCCESSES", "1"),
    ]))
    .await;
    let primary_mock = Mock::start("primary");
    let fallback_mock = Mock::start("fallback");
    let (p, f) = (secret("trap-primary"), secret("trap-fallback"));
    let s = setup(
        &gw,
        "gpt-test",
        &[
            ProviderSpec::new("primary", 10, primary_mock.url())
                .endpoint(json!({"max_retries": 0}))
                .key(KeySpec::new("primary", &p).with(json!({"cache_ttl_minutes": 5}))),
            ProviderSpec::new("fallback", 20, fallback_mock.url())
                .key(KeySpec::new("fallback", &f).with(json!({"cache_ttl_minutes": 5}))),
        ],
    )
    .await;
    let (pid, fid) = (s.keys["primary"].clone(), s.keys["fallback"].clone());
    for _ in 0..3 {
        ok(&gw, &s.gateway_key, "gpt-test").await;
    }
    assert_eq!(primary_mock.count_for(&p).await, 3);
    affinity_points_at(&gw, &pid, |_| true).await;

    // The primary fails: clients move to the fallback (and its circuit opens).
    primary_mock
        .rule(json!({"key": p, "behaviour": {"status": 503}}))
        .await;
    for _ in 0..6 {
        ok(&gw, &s.gateway_key, "gpt-test").await;
    }
    assert_eq!(fallback_mock.count_for(&f).await, 6);
    affinity_points_at(&gw, &fid, |_| true).await;

    // The primary is back: within seconds (its circuit's short recovery), not after the 5 min
    // affinity TTL, the client is served by it again, and stays there.
    primary_mock.clear_rules().await;
    let started = Instant::now();
    let back = eventually(Duration::from_secs(8), || async {
        let fallback_before = fallback_mock.count_for(&f).await;
        ok(&gw, &s.gateway_key, "gpt-test").await;
        // Served by the primary: the fallback was not needed.
        (fallback_mock.count_for(&f).await == fallback_before).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "the client stayed on the fallback for {:?}: {}",
        started.elapsed(),
        key_health(&gw, &pid).await
    );
    let fallback_before = fallback_mock.count_for(&f).await;
    let primary_before = primary_mock.count_for(&p).await;
    for _ in 0..3 {
        let id = ok(&gw, &s.gateway_key, "gpt-test").await;
        let t = trace(&gw, &id).await;
        assert_eq!(tried(&t).len(), 1, "{t}");
    }
    assert_eq!(primary_mock.count_for(&p).await - primary_before, 3);
    assert_eq!(fallback_mock.count_for(&f).await, fallback_before);
    affinity_points_at(&gw, &pid, |_| true).await;
}

#[tokio::test]
async fn a_cache_warm_client_may_use_the_slot_reserved_for_it_and_no_more() {
    let (gw, _db) = sqlite_gateway(&env(&[])).await;
    let mock = Mock::start("upstream");
    let k = secret("reserve");
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("p", 10, mock.url())
            .key(KeySpec::new("k", &k).with(json!({"max_concurrent": 4, "cache_ttl_minutes": 5})))],
    )
    .await;
    let key_id = s.keys["k"].clone();
    let warm = s.gateway_key.clone();
    let holder = gateway_key(&gw).await;
    let cold = gateway_key(&gw).await;

    // The warm client's cache is on the key.
    ok(&gw, &warm, "gpt-test").await;
    affinity_points_at(&gw, &key_id, |_| true).await;

    // Probe phase: the reservation ratio is 0.10, so requests without a warm cache may use
    // max(1, ⌊4 × 0.9⌋) = 3 slots; the 4th is kept for cache-warm clients.
    mock.rule(json!({"key": k, "times": 3, "behaviour": {"latency_ms": 6000}}))
        .await;
    let holders = async {
        tokio::join!(
            chat(&gw, &holder, chat_body("gpt-test", false)),
            chat(&gw, &holder, chat_body("gpt-test", false)),
            chat(&gw, &holder, chat_body("gpt-test", false)),
        )
    };
    let probe = async {
        let held = eventually(Duration::from_secs(5), || async {
            let stats = mock.stats().await;
            (stats["in_flight_by_key"][k.as_str()] == 3).then_some(())
        })
        .await;
        assert!(held.is_some(), "the holders never reached the upstream");
        assert_eq!(slot_in_flight(&gw, &key_id).await, 3);

        // A client without a warm cache: refused after the 1 s queue wait.
        let started = Instant::now();
        let (status, headers, text) = chat(&gw, &cold, chat_body("gpt-test", false)).await;
        let waited = started.elapsed();
        assert_eq!(status, 429, "{text}");
        assert!(retry_after(&headers).is_some(), "429 without Retry-After");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
        let t = trace(&gw, &request_id(&headers)).await;
        assert!(tried(&t).is_empty(), "{t}");
        assert!(
            t["attempts"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|a| a["skip_reason"].as_str().is_some_and(|r| r.contains("3/3"))),
            "the cold client's cap is 3: {t}"
        );

        // The warm client gets the reserved 4th slot (held here by a slow request)…
        mock.rule(json!({"key": k, "times": 1, "behaviour": {"latency_ms": 3000}}))
            .await;
        let warm_slow = chat(&gw, &warm, chat_body("gpt-test", false));
        let warm_second = async {
            let held = eventually(Duration::from_secs(5), || async {
                let stats = mock.stats().await;
                (stats["in_flight_by_key"][k.as_str()] == 4).then_some(())
            })
            .await;
            assert!(held.is_some(), "the warm client did not get the 4th slot");
            // … but no 5th: the key's limit binds cache-warm clients too.
            let started = Instant::now();
            let answer = chat(&gw, &warm, chat_body("gpt-test", false)).await;
            (answer, started.elapsed())
        };
        let ((slow_status, _, slow_text), ((status, headers, text), waited)) =
            tokio::join!(warm_slow, warm_second);
        assert_eq!(slow_status, 200, "{slow_text}");
        assert_eq!(status, 429, "{text}");
        assert!(waited >= Duration::from_millis(900), "{waited:?}");
        let t = trace(&gw, &request_id(&headers)).await;
        assert!(
            t["attempts"][0]["skip_reason"]
                .as_str()
                .is_some_and(|r| r.contains("4/4")),
            "{t}"
        );
        assert_eq!(t["attempts"][0]["is_cached"], true, "{t}");
    };
    let ((a, b, c), ()) = tokio::join!(holders, probe);
    for (status, _, text) in [a, b, c] {
        assert_eq!(status, 200, "{text}");
    }
    let stats = mock.stats().await;
    assert_eq!(stats["max_in_flight_by_key"][k.as_str()], 4, "{stats}");
    let free = slots_reach(&gw, &key_id, 0).await;
    assert!(free, "a slot leaked");
}

#[tokio::test]
async fn a_clients_next_request_runs_on_the_slot_its_last_one_left_and_an_idle_one_goes_back() {
    let (gw, _db) = sqlite_gateway(&env(&[])).await;
    let mock = Mock::start("upstream");
    let k = secret("handover");
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("p", 10, mock.url())
            .key(KeySpec::new("k", &k).with(json!({"max_concurrent": 8})))],
    )
    .await;
    let key_id = s.keys["k"].clone();
    // One kept-alive connection, so every request is served by the same HTTP worker.
    let client = switchyard_tests::client();
    // Rounds of 20 requests back to back, until one took its predecessor's slot (the first
    // round does, unless the machine stalls each gap past the hold); after each, every attempt
    // ran on one slot: granted by KeySlots, or left on the worker by the request before it
    // (what each attempt taught reaches KeySlots a few milliseconds later).
    const ROUND: u64 = 20;
    let counted = |slots: &Value, name: &str| slots[name].as_u64().unwrap_or(0);
    let mut sent = 0;
    let slots = loop {
        for _ in 0..ROUND {
            let response = client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(&s.gateway_key)
                .json(&chat_body("gpt-test", false))
                .send()
                .await
                .expect("request sent");
            assert_eq!(response.status(), 200);
            let _ = response.text().await;
        }
        sent += ROUND;
        let slots = eventually(Duration::from_secs(5), || async {
            let slots = gateway_status(&gw).await["slots"].clone();
            (counted(&slots, "granted") + counted(&slots, "handed_over") == sent).then_some(slots)
        })
        .await;
        let slots = slots.unwrap_or_else(|| panic!("{sent} attempts, and slots disagree"));
        if counted(&slots, "handed_over") >= 1 || sent >= 10 * ROUND {
            break slots;
        }
    };
    assert!(
        counted(&slots, "handed_over") >= 1,
        "no request of {sent} took the slot its predecessor left: {slots}"
    );
    // The slot left by the last request goes back by itself.
    assert!(
        slots_reach(&gw, &key_id, 0).await,
        "the kept slot was never given back"
    );
    let stats = mock.stats().await;
    assert_eq!(stats["max_in_flight_by_key"][k.as_str()], 1, "{stats}");
    assert_eq!(stats["by_key"][k.as_str()], sent, "{stats}");
}

#[tokio::test]
async fn concurrency_429s_teach_a_key_its_limit_and_rpm_429s_do_not() {
    let (gw, _db) =
        sqlite_gateway(&env(&[("SWITCHYARD__ROUTING__DEFAULT_COOLDOWN_SECS", "1")])).await;
    let mock = Mock::start("upstream");
    let k = secret("adaptive");
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("p", 10, mock.url())
            .endpoint(json!({"max_retries": 0}))
            .key(KeySpec::new("k", &k).with(json!({"cache_ttl_minutes": 0})))],
    )
    .await;
    let key_id = s.keys["k"].clone();
    let gk = s.gateway_key.clone();

    // `holders` slow requests in flight, then one 429 with `behaviour`; returns the client's
    // answer to the 429'd request.
    let burst = |holders: usize, behaviour: Value| {
        let (gw, mock, k, gk, key_id) = (&gw, &mock, k.clone(), gk.clone(), key_id.clone());
        async move {
            mock.rule(json!({"key": k, "times": holders, "behaviour": {"latency_ms": 2500}}))
                .await;
            let slow = async {
                let mut answers = Vec::new();
                let calls: Vec<_> = (0..holders)
                    .map(|_| chat(gw, &gk, chat_body("gpt-test", false)))
                    .collect();
                for (status, _, text) in join_all(calls).await {
                    answers.push((status, text));
                }
                answers
            };
            let limited = async {
                let held = eventually(Duration::from_secs(5), || async {
                    (slot_in_flight(gw, &key_id).await == holders as u64).then_some(())
                })
                .await;
                assert!(held.is_some(), "the holders never took their slots");
                mock.rule(json!({"key": k, "times": 1, "behaviour": behaviour}))
                    .await;
                chat(gw, &gk, chat_body("gpt-test", false)).await
            };
            let (answers, limited) = tokio::join!(slow, limited);
            for (status, text) in answers {
                assert_eq!(status, 200, "{text}");
            }
            limited
        }
    };

    // Nothing learned yet: the key is uncapped.
    ok(&gw, &gk, "gpt-test").await;
    assert_eq!(key_slots(&gw, &key_id).await["learned_limit"], Value::Null);

    // A 429 with requests left in the window, no Retry-After and 10 requests in flight: a
    // concurrency limit. The key learns ⌊10 × 0.85⌋ = 8.
    let (status, headers, text) = burst(
        9,
        json!({"status": 429, "ratelimit_limit": 1000, "ratelimit_remaining": 500}),
    )
    .await;
    assert_eq!(status, 429, "{text}");
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(tried(&t)[0]["concurrent_requests"], 10, "{t}");
    let slots = key_slots(&gw, &key_id).await;
    assert_eq!(slots["learned_limit"], 8, "{slots}");
    assert_eq!(
        (
            &slots["adaptive"]["concurrent_429s"],
            &slots["adaptive"]["rpm_429s"]
        ),
        (&json!(1), &json!(0)),
        "{slots}"
    );
    assert_eq!(slots["adaptive"]["last_429_kind"], "concurrent", "{slots}");

    // The cool-down (1 s, the default without Retry-After) passes.
    let cooled = eventually(Duration::from_secs(5), || async {
        key_slots(&gw, &key_id).await["cooling_until"]
            .is_null()
            .then_some(())
    })
    .await;
    assert!(cooled.is_some(), "the key never stopped cooling");

    // A 429 with the window spent is a request-per-minute limit: it does not lower the limit,
    // even with 6 requests in flight (a concurrency 429 would have made it ⌊6 × 0.85⌋ = 5).
    let (status, _, text) = burst(
        5,
        json!({"status": 429, "ratelimit_limit": 1000, "ratelimit_remaining": 0, "ratelimit_reset": 1}),
    )
    .await;
    assert_eq!(status, 429, "{text}");
    let slots = key_slots(&gw, &key_id).await;
    assert_eq!(slots["learned_limit"], 8, "{slots}");
    assert_eq!(
        (
            &slots["adaptive"]["concurrent_429s"],
            &slots["adaptive"]["rpm_429s"]
        ),
        (&json!(1), &json!(1)),
        "{slots}"
    );
    assert_eq!(slots["adaptive"]["last_429_kind"], "rpm", "{slots}");
    let status = gateway_status(&gw).await;
    assert_eq!(status["slots"]["rate_limited"], 2, "{status}");
    assert_eq!(status["slots"]["limit_decreases"], 1, "{status}");

    // An operator resets what was learned: the key is uncapped again.
    let (code, body) = send(gw.admin(reqwest::Method::DELETE, &format!("/slots/{key_id}"))).await;
    assert_eq!((code, &body["reset"]), (200, &json!(1)), "{body}");
    let slots = key_slots(&gw, &key_id).await;
    assert_eq!(slots["learned_limit"], Value::Null, "{slots}");
    assert_eq!(
        (
            &slots["adaptive"]["concurrent_429s"],
            &slots["adaptive"]["rpm_429s"]
        ),
        (&json!(0), &json!(0)),
        "{slots}"
    );
    assert!(slots["cooling_until"].is_null(), "{slots}");
    ok(&gw, &gk, "gpt-test").await;
}

/// Polls every future to completion (the tests crate has no `futures` dependency).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}

#[tokio::test]
async fn retry_after_is_waited_out_once_or_the_key_is_skipped_while_it_cools() {
    let (gw, _db) = sqlite_gateway(&env(&[])).await;
    let mock = Mock::start("upstream");
    let fallback = Mock::start("fallback");
    let (only, p, f) = (
        secret("ra-only"),
        secret("ra-primary"),
        secret("ra-fallback"),
    );
    let s = setup(
        &gw,
        "solo",
        &[ProviderSpec::new("solo", 10, mock.url())
            .key(KeySpec::new("only", &only).with(json!({"cache_ttl_minutes": 0})))],
    )
    .await;

    // The only key says "429, retry after 2 s": the request waits it out once and succeeds.
    mock.rule(json!({"key": only, "times": 1, "behaviour": {"status": 429, "retry_after": 2}}))
        .await;
    let started = Instant::now();
    let id = ok(&gw, &s.gateway_key, "solo").await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "did not wait: {took:?}");
    assert!(took < Duration::from_secs(4), "waited too long: {took:?}");
    assert_eq!(mock.count_for(&only).await, 2);
    let t = trace(&gw, &id).await;
    let attempts = tried(&t);
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a["status_code"].as_i64(), a["status"].as_str()))
            .collect::<Vec<_>>(),
        [(Some(429), Some("failed")), (Some(200), Some("success"))],
        "{t}"
    );

    // A long Retry-After with a fallback: the fallback at once, and the cooling key is skipped
    // by the next requests.
    let primary_id = {
        let (status, body) = send(
            gw.admin(reqwest::Method::POST, "/providers")
                .json(&json!({"name": "primary", "priority": 1})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    };
    let fallback_id = {
        let (status, body) = send(
            gw.admin(reqwest::Method::POST, "/providers")
                .json(&json!({"name": "fallback", "priority": 2})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    };
    let mut key_ids = Vec::new();
    for (pid, url, name, secret) in [
        (&primary_id, mock.url(), "primary", &p),
        (&fallback_id, fallback.url(), "fallback", &f),
    ] {
        let (status, endpoint) = send(
            gw.admin(reqwest::Method::POST, "/endpoints")
                .json(&json!({"provider_id": pid, "api_format": "OPENAI", "base_url": url})),
        )
        .await;
        assert_eq!(status, 201, "{endpoint}");
        let (status, key) = send(gw.admin(reqwest::Method::POST, "/provider-keys").json(
            &json!({"endpoint_id": endpoint["id"], "name": name, "api_key": secret, "cache_ttl_minutes": 0}),
        ))
        .await;
        assert_eq!(status, 201, "{key}");
        key_ids.push(key["id"].as_str().expect("id").to_owned());
    }
    switchyard_tests::add_model(&gw, "pair", &[&primary_id, &fallback_id]).await;
    mock.rule(json!({"key": p, "behaviour": {"status": 429, "retry_after": 30}}))
        .await;
    let started = Instant::now();
    ok(&gw, &s.gateway_key, "pair").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the long Retry-After was waited: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (mock.count_for(&p).await, fallback.count_for(&f).await),
        (1, 1)
    );
    let slots = key_slots(&gw, &key_ids[0]).await;
    assert!(slots["cooling_until"].is_string(), "{slots}");
    for _ in 0..3 {
        let id = ok(&gw, &s.gateway_key, "pair").await;
        let t = trace(&gw, &id).await;
        let primary_row = t["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["provider_key_id"] == json!(key_ids[0]))
            .cloned()
            .unwrap_or_default();
        assert_eq!(primary_row["status"], "skipped", "{t}");
        assert!(
            primary_row["skip_reason"]
                .as_str()
                .is_some_and(|r| r.contains("cooling down")),
            "{t}"
        );
    }
    assert_eq!(
        (mock.count_for(&p).await, fallback.count_for(&f).await),
        (1, 4),
        "the cooling key was called again"
    );
}

#[tokio::test]
async fn the_breaker_opens_on_failures_probes_a_bounded_few_closes_and_ignores_429s() {
    let (gw, _db) = sqlite_gateway(&env(&[
        ("SWITCHYARD__HEALTH__INITIAL_RECOVERY_SECS", "2"),
        ("SWITCHYARD__HEALTH__MAX_RECOVERY_SECS", "4"),
        ("SWITCHYARD__HEALTH__HALF_OPEN_PROBES", "2"),
        ("SWITCHYARD__HEALTH__HALF_OPEN_SUCCESSES", "2"),
    ]))
    .await;
    let primary = Mock::start("primary");
    let fallback = Mock::start("fallback");
    let (p, f) = (secret("cb-primary"), secret("cb-fallback"));
    let s = setup(
        &gw,
        "gpt-test",
        &[
            ProviderSpec::new("primary", 10, primary.url())
                .endpoint(json!({"max_retries": 0}))
                .key(KeySpec::new("primary", &p).with(json!({"cache_ttl_minutes": 0}))),
            ProviderSpec::new("fallback", 20, fallback.url())
                .key(KeySpec::new("fallback", &f).with(json!({"cache_ttl_minutes": 0}))),
        ],
    )
    .await;
    let pid = s.keys["primary"].clone();
    let gk = s.gateway_key.clone();

    // Failures: with the default window (5 outcomes at least, half of them failures) the
    // fifth failure opens the circuit.
    primary
        .rule(json!({"key": p, "behaviour": {"status": 500}}))
        .await;
    for i in 1..=5 {
        ok(&gw, &gk, "gpt-test").await;
        let circuit = key_health(&gw, &pid).await["circuit"].clone();
        let expected = if i < 5 { "closed" } else { "open" };
        assert_eq!(circuit, expected, "after {i} failures");
    }
    assert_eq!(primary.count_for(&p).await, 5);

    // Open: the key is skipped (the mock count stops growing), the reason is in the trace.
    for _ in 0..3 {
        let id = ok(&gw, &gk, "gpt-test").await;
        let t = trace(&gw, &id).await;
        assert_eq!(t["attempts"][0]["status"], "skipped", "{t}");
        assert!(
            t["attempts"][0]["skip_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("circuit open")),
            "{t}"
        );
    }
    assert_eq!(primary.count_for(&p).await, 5);

    // The upstream recovers (slowly answering); after the recovery time the circuit is
    // half-open and of six concurrent requests only two probe the key.
    primary.clear_rules().await;
    primary
        .rule(json!({"key": p, "behaviour": {"latency_ms": 1500}}))
        .await;
    let half_open = eventually(Duration::from_secs(5), || async {
        (key_health(&gw, &pid).await["circuit"] == "half_open").then_some(())
    })
    .await;
    assert!(half_open.is_some(), "{}", key_health(&gw, &pid).await);
    let calls: Vec<_> = (0..6)
        .map(|_| chat(&gw, &gk, chat_body("gpt-test", false)))
        .collect();
    let answers = join_all(calls).await;
    let mut probe_busy = 0;
    for (status, headers, text) in answers {
        assert_eq!(status, 200, "{text}");
        let t = trace(&gw, &request_id(&headers)).await;
        if t["attempts"][0]["skip_reason"]
            .as_str()
            .is_some_and(|r| r.contains("probe slots are busy"))
        {
            probe_busy += 1;
        }
    }
    assert_eq!(primary.count_for(&p).await, 7, "more probes than allowed");
    assert_eq!(probe_busy, 4);
    let stats = primary.stats().await;
    assert_eq!(stats["max_in_flight_by_key"][p.as_str()], 2, "{stats}");

    // Two probe successes close it; traffic returns.
    let closed = eventually(Duration::from_secs(5), || async {
        (key_health(&gw, &pid).await["circuit"] == "closed").then_some(())
    })
    .await;
    assert!(closed.is_some(), "{}", key_health(&gw, &pid).await);
    primary.clear_rules().await;
    ok(&gw, &gk, "gpt-test").await;
    assert_eq!(primary.count_for(&p).await, 8);

    // 429s are rate limits, not ill health: many of them never open the circuit.
    primary
        .rule(json!({"key": p, "behaviour": {"status": 429, "retry_after": 0}}))
        .await;
    for _ in 0..6 {
        ok(&gw, &gk, "gpt-test").await;
    }
    assert!(primary.count_for(&p).await >= 8 + 6);
    let health = key_health(&gw, &pid).await;
    assert_eq!(health["circuit"], "closed", "{health}");
    assert_eq!(health["error_rate"], 0.0, "{health}");
    let status = gateway_status(&gw).await;
    assert_eq!(
        (
            &status["circuits"]["opened"],
            &status["circuits"]["half_opened"],
            &status["circuits"]["closed"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{status}"
    );
    // Operators see the whole episode, in order.
    let events = admin_get(&gw, "/health/events").await;
    let episode: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["key_id"] == json!(pid))
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(episode, ["opened", "half_opened", "closed"], "{events}");
}

#[tokio::test]
async fn requests_wait_in_line_for_a_full_key_and_get_it_in_order() {
    wait_in_line(&[]).await;
    // With the shared state in Redis every slot operation is a round trip: the line must hold.
    let Some(redis) = switchyard_tests::db::redis_state().await else {
        return;
    };
    let (url, _) = redis.redis.clone().expect("a Redis state has its URL");
    redis.finish().await;
    wait_in_line(&[
        ("SWITCHYARD__STATE__BACKEND", "redis"),
        ("SWITCHYARD__STATE__REDIS_URL", &url),
    ])
    .await;
}

async fn wait_in_line(state: &[(&'static str, &str)]) {
    let mut env = vec![("SWITCHYARD__ROUTING__QUEUE_TIMEOUT_SECS", "5")];
    env.extend_from_slice(state);
    let (gw, _db) = sqlite_gateway(&env).await;
    let backend = gateway_status(&gw).await["state_backend"].clone();
    eprintln!("waiting in line on the {backend} state");
    let mock = Mock::start("upstream");
    let k = secret("queue");
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("p", 10, mock.url())
            .key(KeySpec::new("k", &k).with(json!({"max_concurrent": 1, "cache_ttl_minutes": 0})))],
    )
    .await;
    let key_id = s.keys["k"].clone();
    mock.rule(json!({"key": k, "behaviour": {"latency_ms": 600}}))
        .await;
    let origin = Instant::now();
    // Request i starts 150 ms after request i-1: the first holds the slot, the others queue.
    let calls: Vec<_> = (0..4u64)
        .map(|i| {
            let (gw, gk) = (&gw, s.gateway_key.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(150 * i)).await;
                let started = Instant::now();
                let (status, headers, text) = chat(gw, &gk, chat_body("gpt-test", false)).await;
                (status, headers, text, started.elapsed(), origin.elapsed())
            }
        })
        .collect();
    let answers = join_all(calls).await;
    let mut done = Vec::new();
    for (i, (status, headers, text, took, at)) in answers.into_iter().enumerate() {
        assert_eq!(status, 200, "request {i}: {text}");
        done.push(at);
        if i > 0 {
            assert!(
                took > Duration::from_millis(700),
                "request {i} did not wait: {took:?}"
            );
            let t = trace(&gw, &request_id(&headers)).await;
            let rows = t["attempts"].as_array().cloned().unwrap_or_default();
            assert_eq!(tried(&t).len(), 1, "{t}");
            assert!(
                rows.iter().any(|a| a["skip_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("concurrency limit"))),
                "{t}"
            );
        }
    }
    assert!(
        done.windows(2).all(|w| w[0] < w[1]),
        "not served in order on the {backend} state: {done:?}"
    );
    let stats = mock.stats().await;
    assert_eq!(stats["max_in_flight_by_key"][k.as_str()], 1, "{stats}");
    assert_eq!(stats["by_key"][k.as_str()], 4, "{stats}");
    let status = gateway_status(&gw).await;
    assert_eq!(status["slots"]["waited"], 3, "{status}");
    assert_eq!(slot_in_flight(&gw, &key_id).await, 0);
}

#[tokio::test]
async fn a_queue_wait_shorter_than_the_slow_request_ends_in_429_with_retry_after() {
    let (gw, _db) = sqlite_gateway(&[("SWITCHYARD__ROUTING__QUEUE_TIMEOUT_SECS", "1")]).await;
    let mock = Mock::start("upstream");
    let k = secret("queue-short");
    let s = setup(
        &gw,
        "gpt-test",
        &[ProviderSpec::new("p", 10, mock.url())
            .key(KeySpec::new("k", &k).with(json!({"max_concurrent": 1, "cache_ttl_minutes": 0})))],
    )
    .await;
    let key_id = s.keys["k"].clone();
    mock.rule(json!({"key": k, "times": 1, "behaviour": {"latency_ms": 3000}}))
        .await;
    let slow = chat(&gw, &s.gateway_key, chat_body("gpt-test", false));
    let waiting = async {
        let held = slots_reach(&gw, &key_id, 1).await;
        assert!(held);
        let started = Instant::now();
        let answer = chat(&gw, &s.gateway_key, chat_body("gpt-test", false)).await;
        (answer, started.elapsed())
    };
    let ((slow_status, _, slow_text), ((status, headers, text), waited)) =
        tokio::join!(slow, waiting);
    assert_eq!(slow_status, 200, "{slow_text}");
    assert_eq!(status, 429, "{text}");
    assert!(retry_after(&headers).is_some_and(|s| s >= 1), "{headers:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
    assert_eq!(mock.count_for(&k).await, 1);
    let status = gateway_status(&gw).await;
    assert_eq!(status["slots"]["wait_timeouts"], 1, "{status}");
    let t = trace(&gw, &request_id(&headers)).await;
    assert_eq!(
        (&t["usage"]["status"], &t["usage"]["status_code"]),
        (&json!("failed"), &json!(429)),
        "{t}"
    );
}
