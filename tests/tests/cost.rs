//! Cost records against the real binary (spec §7.5 with its fixes): prices found through the
//! resolved model and the serving provider — an alias and a provider-specific upstream name are
//! priced like the canonical name; the per-request price only on success; the key's multiplier
//! in the actual cost, zero for free-tier providers; a price change applies to the next request
//! without a restart.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing"
)]

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_tests::{Gateway, Mock, chat, db, request_id, send, setup, trace};

async fn post(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, answer) = send(gw.admin(Method::POST, path).json(&body)).await;
    assert_eq!(status, 201, "POST {path} {body}: {answer}");
    answer
}

/// A provider with one OpenAI endpoint and one key; returns (provider id, key secret).
async fn provider(gw: &Gateway, mock: &Mock, name: &str, priority: i32, extra: Value) -> String {
    let mut body = json!({"name": name, "priority": priority});
    if let (Some(target), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    let provider = post(gw, "/providers", body).await;
    let endpoint = post(
        gw,
        "/endpoints",
        json!({"provider_id": provider["id"], "api_format": "OPENAI", "base_url": mock.url()}),
    )
    .await;
    post(
        gw,
        "/provider-keys",
        json!({"endpoint_id": endpoint["id"], "name": format!("{name}-key"),
            "api_key": format!("sk-cost-{name}"), "rate_multiplier": 1.5, "cache_ttl_minutes": 0}),
    )
    .await;
    provider["id"].as_str().expect("id").to_owned()
}

fn per_million(tokens: &Value, price: f64) -> f64 {
    tokens.as_f64().expect("token count") * price / 1e6
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_follow_the_serving_provider_and_change_without_restart() {
    switchyard_tests::install_crypto();
    let database = db::sqlite().await;
    let gw = Gateway::start(&database.url);
    let mock = Mock::start("cost");
    // The global model's default prices: 1 $/M in, 2 $/M out (see `setup`).
    let s = setup(&gw, "pc", &[]).await;
    let (_, models) = send(gw.admin(Method::GET, "/global-models")).await;
    let global_id = models["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == "pc")
        .map(|m| m["id"].clone())
        .expect("pc listed");
    post(
        &gw,
        "/aliases",
        json!({"alias": "pc-alias", "global_model_id": global_id}),
    )
    .await;
    let paid = provider(&gw, &mock, "paid", 1, json!({})).await;
    let free = provider(&gw, &mock, "free", 2, json!({"billing_type": "free_tier"})).await;
    // The paid provider knows the model by its own name and has its own prices.
    let paid_model = post(
        &gw,
        "/provider-models",
        json!({"provider_id": paid, "global_model_id": global_id, "provider_model_name": "upstream-pc",
            "pricing": {"tiers": [{"input_price_per_1m": 4.0, "output_price_per_1m": 8.0}]},
            "price_per_request": 0.01}),
    )
    .await;
    post(
        &gw,
        "/provider-models",
        json!({"provider_id": free, "global_model_id": global_id, "provider_model_name": "pc"}),
    )
    .await;
    let body = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "Price me."}]});
    let usage_of = |headers: reqwest::header::HeaderMap| {
        let gw = &gw;
        async move { trace(gw, &request_id(&headers)).await["usage"].clone() }
    };

    // Asked by alias, served by `paid` under its own name: priced with `paid`'s prices.
    let (status, headers, text) = chat(&gw, &s.gateway_key, body("pc-alias")).await;
    assert_eq!(status, 200, "{text}");
    let usage = usage_of(headers).await;
    assert_eq!(usage["target_model"], "upstream-pc", "{usage}");
    let nominal =
        per_million(&usage["input_tokens"], 4.0) + per_million(&usage["output_tokens"], 8.0) + 0.01;
    let total = usage["total_cost_usd"].as_f64().expect("total");
    assert!(close(total, nominal), "{total} vs {nominal}: {usage}");
    assert!(close(
        usage["request_cost_usd"].as_f64().expect("request"),
        0.01
    ));
    // The key's multiplier applies to what the provider is owed.
    let actual = usage["actual_total_cost_usd"].as_f64().expect("actual");
    assert!(close(actual, nominal * 1.5), "{actual}: {usage}");

    // A new price applies to the next request, no restart.
    let (status, patched) = send(
        gw.admin(
            Method::PATCH,
            &format!("/provider-models/{}", paid_model["id"].as_str().expect("id")),
        )
        .json(&json!({"pricing": {"tiers": [{"input_price_per_1m": 10.0, "output_price_per_1m": 20.0}]}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let (status, headers, text) = chat(&gw, &s.gateway_key, body("pc")).await;
    assert_eq!(status, 200, "{text}");
    let usage = usage_of(headers).await;
    let nominal = per_million(&usage["input_tokens"], 10.0)
        + per_million(&usage["output_tokens"], 20.0)
        + 0.01;
    assert!(
        close(usage["total_cost_usd"].as_f64().expect("total"), nominal),
        "{usage}"
    );

    // `paid` fails: `free` serves at the global model's prices, and owes nothing.
    mock.rule(json!({"key": "sk-cost-paid", "behaviour": {"status": 500}}))
        .await;
    let (status, headers, text) = chat(&gw, &s.gateway_key, body("pc")).await;
    assert_eq!(status, 200, "{text}");
    let usage = usage_of(headers).await;
    assert_eq!(usage["provider_name"], "free", "{usage}");
    let nominal =
        per_million(&usage["input_tokens"], 1.0) + per_million(&usage["output_tokens"], 2.0);
    assert!(
        close(usage["total_cost_usd"].as_f64().expect("total"), nominal),
        "{usage}"
    );
    assert_eq!(
        usage["actual_total_cost_usd"].as_f64(),
        Some(0.0),
        "{usage}"
    );

    // Nothing succeeds: no tokens, and no per-request price either.
    mock.rule(json!({"key": "sk-cost-free", "behaviour": {"status": 500}}))
        .await;
    let (status, headers, text) = chat(&gw, &s.gateway_key, body("pc")).await;
    assert_eq!(status, 502, "{text}");
    let usage = usage_of(headers).await;
    assert_eq!(usage["status"], "failed", "{usage}");
    assert_eq!(usage["request_cost_usd"].as_f64(), Some(0.0), "{usage}");
    assert_eq!(usage["total_cost_usd"].as_f64(), Some(0.0), "{usage}");
}
