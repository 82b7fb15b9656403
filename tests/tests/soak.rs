//! Soak: a thousand mixed requests at a concurrency of 32 against two providers — successes,
//! upstream failures with failover, 429s, streams, client disconnects mid-stream and client
//! errors — then the books must balance: every concurrency slot is free again (gateway and
//! upstreams), and every request has exactly one final usage row whose status is what its client
//! saw. Runs on SQLite with the memory state, and on PostgreSQL with Redis.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchyard_tests::{
    Gateway, GatewayOptions, KeySpec, Mock, ProviderSpec, TestDb, add_model, admin_get, db,
    eventually, gateway_key, gateway_status, install_crypto, setup,
};

const REQUESTS: usize = 1000;
const CONCURRENCY: usize = 32;
const CLIENTS: usize = 8;

/// What one soak request does, and what its client must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// A plain success.
    Ok,
    /// A streamed success.
    Stream,
    /// The primary answers 503: failover to the secondary.
    Failover,
    /// The same, streamed.
    FailoverStream,
    /// The primary answers 429 (Retry-After 1): waited once, then the secondary.
    RateLimited,
    /// Every upstream says the request is too long: 400 for the client.
    BadRequest,
    /// A slow stream the client leaves after its first chunk: 499 in the records.
    Disconnect,
    /// A stream whose upstream stalls after two events; the client leaves while nothing moves.
    DisconnectStalled,
    /// A model nobody serves: 404.
    UnknownModel,
    /// A slow answer the client gives up on before its head: 499 in the records.
    Abandoned,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 20 {
            0..=5 => Kind::Ok,
            6 => Kind::Abandoned,
            7..=9 => Kind::Stream,
            10 | 11 => Kind::Failover,
            12 | 13 => Kind::RateLimited,
            14 | 15 => Kind::BadRequest,
            16 => Kind::Disconnect,
            17 => Kind::DisconnectStalled,
            18 => Kind::UnknownModel,
            _ => Kind::FailoverStream,
        }
    }

    fn model(self) -> &'static str {
        match self {
            Kind::Ok | Kind::Stream => "soak-ok",
            Kind::Failover | Kind::FailoverStream => "soak-flaky",
            Kind::RateLimited => "soak-429",
            Kind::BadRequest => "soak-bad",
            Kind::Disconnect => "soak-slow",
            Kind::DisconnectStalled => "soak-stall",
            Kind::UnknownModel => "soak-nope",
            Kind::Abandoned => "soak-wait",
        }
    }

    fn stream(self) -> bool {
        matches!(
            self,
            Kind::Stream | Kind::FailoverStream | Kind::Disconnect | Kind::DisconnectStalled
        )
    }

    /// The status the client must get, and the one recorded (499: the client left).
    fn expected(self) -> (u16, u16) {
        match self {
            Kind::BadRequest => (400, 400),
            Kind::UnknownModel => (404, 404),
            Kind::Disconnect | Kind::DisconnectStalled => (200, 499),
            // No answer at all.
            Kind::Abandoned => (0, 499),
            _ => (200, 200),
        }
    }
}

/// What one client saw.
#[derive(Debug)]
struct Seen {
    index: usize,
    kind: Kind,
    request_id: Option<String>,
    status: u16,
    /// Non-streamed: a chat completion or an error envelope; streamed: ended with `[DONE]`.
    body_ok: bool,
    detail: String,
}

struct Target {
    label: String,
    base: String,
    keys: Vec<String>,
    client: reqwest::Client,
}

/// The client's own request id (`x-request-id`), kept by the gateway as `client_request_id`: it
/// finds the records of requests that never got an answer.
fn client_id(label: &str, index: usize) -> String {
    format!("soak-{label}-{index}")
}

async fn one(target: &Target, index: usize) -> Seen {
    let kind = Kind::of(index);
    let key = &target.keys[index % target.keys.len()];
    let body = json!({
        "model": kind.model(),
        "stream": kind.stream(),
        "messages": [{"role": "user", "content": format!("Soak request {index}: say hello.")}],
    });
    let mut request = target
        .client
        .post(format!("{}/v1/chat/completions", target.base))
        .bearer_auth(key)
        .header("x-request-id", client_id(&target.label, index))
        .json(&body);
    if kind == Kind::Abandoned {
        request = request.timeout(Duration::from_millis(300));
    }
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) if kind == Kind::Abandoned && e.is_timeout() => {
            return Seen {
                index,
                kind,
                request_id: None,
                status: 0,
                body_ok: true,
                detail: "gave up waiting".into(),
            };
        }
        Err(e) => {
            return Seen {
                index,
                kind,
                request_id: None,
                status: 0,
                body_ok: false,
                detail: format!("send failed: {e}"),
            };
        }
    };
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if matches!(kind, Kind::Disconnect | Kind::DisconnectStalled) && status == 200 {
        // Read the head and the first chunk, then go away mid-stream.
        let first = response.chunk().await;
        let body_ok = matches!(&first, Ok(Some(bytes)) if bytes.starts_with(b"data:"));
        drop(response);
        return Seen {
            index,
            kind,
            request_id,
            status,
            body_ok,
            detail: format!("{first:?}"),
        };
    }
    let text = response.text().await.unwrap_or_default();
    let body_ok = if kind.stream() && status == 200 {
        text.trim_end().ends_with("data: [DONE]") && !text.contains("\"error\"")
    } else {
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        if status == 200 {
            value["object"] == "chat.completion"
        } else {
            value["error"]["message"].is_string()
        }
    };
    Seen {
        index,
        kind,
        request_id,
        status,
        body_ok,
        detail: text.chars().take(300).collect(),
    }
}

async fn rule(mock: &Mock, model: &str, behaviour: Value) {
    mock.rule(json!({"model": model, "behaviour": behaviour}))
        .await;
}

/// Every usage row, by the client's request id.
async fn usage_rows(gw: &Gateway) -> HashMap<String, Value> {
    let mut rows = HashMap::new();
    for page in 1.. {
        let body = admin_get(gw, &format!("/usage?per_page=500&page={page}")).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for row in items {
            let id = row["client_request_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                rows.insert(id.clone(), row).is_none(),
                "two usage rows for request {id}"
            );
        }
    }
    rows
}

async fn usage_total(gw: &Gateway, filter: &str) -> u64 {
    admin_get(gw, &format!("/usage?per_page=1{filter}")).await["total"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

async fn soak(database: TestDb, extra_env: Vec<(&'static str, String)>) {
    let state = if extra_env.is_empty() {
        "memory"
    } else {
        "redis"
    };
    let label = format!("{} + {state}", database.backend);
    eprintln!("soak on {label}");
    let mut env: Vec<(&str, String)> = vec![
        ("SWITCHYARD__ROUTING__RETRY_BASE_MS", "10".into()),
        ("SWITCHYARD__ROUTING__RETRY_MAX_MS", "50".into()),
        ("SWITCHYARD__ROUTING__QUEUE_TIMEOUT_SECS", "2".into()),
        ("SWITCHYARD__HEALTH__INITIAL_RECOVERY_SECS", "1".into()),
        ("SWITCHYARD__HEALTH__MAX_RECOVERY_SECS", "2".into()),
        // Debug logs of a thousand requests only slow the run down.
        ("RUST_LOG", "info".into()),
    ];
    env.extend(extra_env);
    let gw = Gateway::start_with(
        &database.url,
        GatewayOptions {
            env,
            ..GatewayOptions::default()
        },
    );
    assert_eq!(
        gateway_status(&gw).await["state_backend"],
        state,
        "the gateway does not run on the {state} state"
    );
    let primary = Mock::start("primary");
    let secondary = Mock::start("secondary");
    let secrets: Vec<String> = ["a1", "a2", "b1", "b2"]
        .iter()
        .map(|k| format!("sk-soak-{k}-SECRET-0123456789abcdef"))
        .collect();
    let s = setup(
        &gw,
        "soak-ok",
        &[
            ProviderSpec::new("primary", 10, primary.url())
                .endpoint(json!({"max_retries": 1}))
                .key(KeySpec::new("a1", &secrets[0]).with(json!({"max_concurrent": 6})))
                .key(KeySpec::new("a2", &secrets[1])),
            ProviderSpec::new("secondary", 20, secondary.url())
                .key(KeySpec::new("b1", &secrets[2]).with(json!({"max_concurrent": 24})))
                .key(KeySpec::new("b2", &secrets[3])),
        ],
    )
    .await;
    let providers = [
        s.providers["primary"].as_str(),
        s.providers["secondary"].as_str(),
    ];
    for model in ["soak-flaky", "soak-429", "soak-bad"] {
        add_model(&gw, model, &providers).await;
    }
    // Clients leave these streams early; only the secondary serves them, so that the primary's
    // upstream count of requests in flight is exactly the gateway's count of its leases.
    for model in ["soak-slow", "soak-stall", "soak-wait"] {
        add_model(&gw, model, &providers[1..]).await;
    }
    rule(&primary, "soak-flaky", json!({"status": 503})).await;
    rule(
        &primary,
        "soak-429",
        json!({"status": 429, "retry_after": 1, "ratelimit_limit": 100, "ratelimit_remaining": 10}),
    )
    .await;
    for mock in [&primary, &secondary] {
        rule(
            mock,
            "soak-bad",
            json!({"status": 400, "error_type": "invalid_request_error", "error_code": "context_length_exceeded",
                   "message": "This model's maximum context length is 8192 tokens."}),
        )
        .await;
        rule(mock, "soak-slow", json!({"event_interval_ms": 100})).await;
        rule(
            mock,
            "soak-stall",
            json!({"fault": "stream_stall", "after_events": 2}),
        )
        .await;
        rule(mock, "soak-wait", json!({"latency_ms": 1500})).await;
        // Successes take a little while, so that slots fill up and requests overlap.
        rule(mock, "soak-ok", json!({"latency_ms": 30})).await;
    }
    let mut keys = vec![s.gateway_key.clone()];
    for _ in 1..CLIENTS {
        keys.push(gateway_key(&gw).await);
    }
    install_crypto();
    let target = Arc::new(Target {
        label: label.replace(' ', ""),
        base: gw.url(""),
        keys,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .expect("client"),
    });

    // The load.
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (target, next) = (target.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= REQUESTS {
                        return seen;
                    }
                    seen.push(one(&target, i).await);
                }
            })
        })
        .collect();
    let mut seen = Vec::with_capacity(REQUESTS);
    for worker in workers {
        seen.extend(worker.await.expect("worker"));
    }
    let took = started.elapsed();
    eprintln!("soak on {label}: {REQUESTS} requests in {took:?}");
    assert_eq!(seen.len(), REQUESTS);
    assert!(took < Duration::from_secs(90), "the soak took {took:?}");

    // Every client got what its request deserved.
    let wrong: Vec<String> = seen
        .iter()
        .filter(|s| {
            s.status != s.kind.expected().0
                || !s.body_ok
                || s.request_id.is_none() != (s.kind == Kind::Abandoned)
        })
        .map(|s| {
            format!(
                "#{} {:?}: {} ok={} id={:?} {}",
                s.index, s.kind, s.status, s.body_ok, s.request_id, s.detail
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {REQUESTS} requests got the wrong answer on {label}, e.g.:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Every slot is free again: the gateway's leases and the upstreams' connections.
    let free = eventually(Duration::from_secs(20), || async {
        let slots = admin_get(&gw, "/slots").await;
        let keys = slots["keys"].as_array().cloned().unwrap_or_default();
        let all_free = !keys.is_empty() && keys.iter().all(|k| k["in_flight"] == 0);
        (all_free && keys.iter().all(|k| k["waiting"] == 0)).then_some(())
    })
    .await;
    assert!(
        free.is_some(),
        "slots still held on {label}: {}",
        admin_get(&gw, "/slots").await
    );
    for mock in [&primary, &secondary] {
        let idle = eventually(Duration::from_secs(10), || async {
            (mock.stats().await["in_flight"] == 0).then_some(())
        })
        .await;
        assert!(
            idle.is_some(),
            "upstream still busy: {}",
            mock.stats().await
        );
    }
    assert_eq!(gateway_status(&gw).await["in_flight"], 0);

    // Exactly one final usage row per request, with the status its client saw.
    let settled = eventually(Duration::from_secs(30), || async {
        let total = usage_total(&gw, "").await;
        let open =
            usage_total(&gw, "&status=pending").await + usage_total(&gw, "&status=streaming").await;
        (total == REQUESTS as u64 && open == 0).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "usage rows on {label}: {} in all, {} pending, {} streaming (want {REQUESTS}, 0, 0)",
        usage_total(&gw, "").await,
        usage_total(&gw, "&status=pending").await,
        usage_total(&gw, "&status=streaming").await
    );
    let rows = usage_rows(&gw).await;
    assert_eq!(rows.len(), REQUESTS);
    let mut by_kind: HashMap<Kind, usize> = HashMap::new();
    let mut mismatched = Vec::new();
    for s in &seen {
        *by_kind.entry(s.kind).or_default() += 1;
        let id = client_id(&target.label, s.index);
        let Some(row) = rows.get(&id) else {
            mismatched.push(format!("#{} {:?}: no usage row for {id}", s.index, s.kind));
            continue;
        };
        if let Some(request_id) = &s.request_id
            && row["request_id"] != request_id.as_str()
        {
            mismatched.push(format!(
                "#{} {:?}: answered as {request_id}, recorded as {}",
                s.index, s.kind, row["request_id"]
            ));
        }
        let recorded = s.kind.expected().1;
        let status = if recorded == 200 {
            "completed"
        } else {
            "failed"
        };
        if row["status_code"] != recorded || row["status"] != status {
            mismatched.push(format!(
                "#{} {:?}: client saw {}, recorded {} {} ({})",
                s.index, s.kind, s.status, row["status"], row["status_code"], row["error_message"]
            ));
        }
    }
    assert!(
        mismatched.is_empty(),
        "{} usage rows disagree with their clients on {label}, e.g.:\n{}",
        mismatched.len(),
        mismatched
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("soak on {label}: {by_kind:?}");

    // The load really went through both providers, failed over and hit 429s.
    let status = gateway_status(&gw).await;
    assert!(
        status["requests"]["failovers"].as_u64() > Some(0),
        "{status}"
    );
    assert!(
        status["slots"]["rate_limited"].as_u64() > Some(0),
        "{status}"
    );
    assert!(
        status["requests"]["client_gone"].as_u64()
            == Some(
                (by_kind[&Kind::Disconnect]
                    + by_kind[&Kind::DisconnectStalled]
                    + by_kind[&Kind::Abandoned]) as u64
            ),
        "{status}"
    );
    // The fixed limit held under load: never more than 6 requests at once on a1.
    let stats = primary.stats().await;
    let a1_peak = stats["max_in_flight_by_key"][secrets[0].as_str()]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (1..=6).contains(&a1_peak),
        "a1 (max_concurrent 6) had {a1_peak} requests at once"
    );
    // Every actor's mailbox drained, and each kind did its share.
    let drained = eventually(Duration::from_secs(10), || async {
        let actors = gateway_status(&gw).await["actors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        actors
            .iter()
            .all(|a| a["depth"] == 0 && a["sent"] == a["handled"])
            .then_some(actors)
    })
    .await;
    let Some(actors) = drained else {
        panic!(
            "mailboxes not drained on {label}: {}",
            gateway_status(&gw).await["actors"]
        );
    };
    // One Resolve per request; a record or more per request. KeySlots and HealthMonitor get
    // batches (the slot requests and releases of one round of a worker's tasks, and the health
    // outcomes those releases carry), so how many messages they handle depends on timing: each
    // must have handled some, and every attempt must have held a slot.
    let least = [
        ("Scheduler", REQUESTS),
        ("Recorder", REQUESTS),
        ("KeySlots", 1),
        ("HealthMonitor", 1),
    ];
    for (kind, least) in least {
        let handled: u64 = actors
            .iter()
            .filter(|a| a["actor"] == kind)
            .filter_map(|a| a["handled"].as_u64())
            .sum();
        assert!(
            handled >= least as u64,
            "{kind} handled only {handled} messages"
        );
    }
    let status = gateway_status(&gw).await;
    let attempts = status["requests"]["attempts"].as_u64().unwrap_or(0);
    // Every attempt ran on a slot: granted by KeySlots or handed over on its worker.
    let slots = &status["slots"];
    let granted =
        slots["granted"].as_u64().unwrap_or(0) + slots["handed_over"].as_u64().unwrap_or(0);
    assert!(
        attempts >= REQUESTS as u64 / 2 && granted >= attempts,
        "{attempts} attempts, {granted} slots granted or handed over: {status}"
    );
    for (mock, name) in [(&primary, "primary"), (&secondary, "secondary")] {
        assert!(
            mock.stats().await["total"].as_u64() > Some(0),
            "{name} got nothing"
        );
    }
    drop(gw);
    database.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mixed_requests_leave_no_slot_held_and_one_record_each_on_sqlite_and_memory() {
    soak(db::sqlite().await, Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mixed_requests_leave_no_slot_held_and_one_record_each_on_postgres_and_redis() {
    let Some(database) = db::postgres().await else {
        return;
    };
    let Some(redis) = db::redis_state().await else {
        database.finish().await;
        return;
    };
    let (url, _) = redis.redis.clone().expect("a Redis state has its URL");
    redis.finish().await;
    soak(
        database,
        vec![
            ("SWITCHYARD__STATE__BACKEND", "redis".into()),
            ("SWITCHYARD__STATE__REDIS_URL", url),
        ],
    )
    .await;
}
