//! Spend is recorded once per request and enforced: a user past their quota and a standalone key
//! past its balance get 429 `quota_exceeded` with the remaining amount, in the OpenAI envelope,
//! before any upstream call.

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_tests::{
    Gateway, KeySpec, Mock, ProviderSpec, chat, chat_body, db, eventually, gateway_status,
    request_id, send, setup, trace,
};

async fn admin(gw: &Gateway, method: Method, path: &str, body: Value) -> Value {
    let (status, answer) = send(gw.admin(method, path).json(&body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

#[tokio::test]
async fn spend_is_charged_once_and_quota_and_balance_are_enforced() {
    let database = db::sqlite().await;
    let mock = Mock::start("upstream");
    let gateway = Gateway::start(&database.url);
    let spec = ProviderSpec {
        name: "p".into(),
        priority: 10,
        base_url: mock.url().to_owned(),
        endpoint: json!({}),
        keys: vec![KeySpec::new("k", "sk-quota-0001")],
    };
    let setup = setup(&gateway, "m-quota", &[spec]).await;
    // Expensive per request, so one request spends a visible amount.
    let models = admin(
        &gateway,
        Method::GET,
        "/global-models?name=m-quota",
        json!(null),
    )
    .await;
    let model_id = models["items"][0]["id"]
        .as_str()
        .expect("model id")
        .to_owned();
    admin(
        &gateway,
        Method::PATCH,
        &format!("/global-models/{model_id}"),
        json!({"price_per_request": 0.5}),
    )
    .await;

    // A user with a quota of 1 USD: two requests spend it, the third is refused.
    let user = admin(
        &gateway,
        Method::POST,
        "/users",
        json!({"name": "q", "quota_usd": 1.0}),
    )
    .await;
    let key = admin(
        &gateway,
        Method::POST,
        "/gateway-keys",
        json!({"user_id": user["id"], "name": "q"}),
    )
    .await;
    let plaintext = key["key"].as_str().expect("key").to_owned();
    // An invalid body from an authenticated client is recorded as a failed 400.
    let (status, headers, _) = chat(&gateway, &plaintext, json!({"model": "m-quota"})).await;
    assert_eq!(status, 400);
    let invalid = trace(&gateway, &request_id(&headers)).await;
    assert_eq!(
        (&invalid["usage"]["status_code"], &invalid["usage"]["model"]),
        (&json!(400), &json!("m-quota")),
        "{invalid}"
    );
    for _ in 0..2 {
        let (status, _, text) = chat(&gateway, &plaintext, chat_body("m-quota", false)).await;
        assert_eq!(status, 200, "{text}");
    }
    // Spend reaches the database in batches (checked here), and the catalog snapshot only on its
    // next refresh — which this test does not wait for.
    let charged = eventually(std::time::Duration::from_secs(10), || async {
        let user = admin(
            &gateway,
            Method::GET,
            &format!("/users/{}", user["id"].as_str().unwrap_or_default()),
            json!(null),
        )
        .await;
        (user["used_usd"].as_f64() >= Some(1.0)).then_some(user)
    })
    .await
    .expect("spend recorded");
    // Two requests at 0.5 each, plus a few tokens at 1–2 USD per million: charged once each.
    let used = charged["used_usd"].as_f64().unwrap_or_default();
    assert!(
        (1.0..1.01).contains(&used),
        "charged once per request: {charged}"
    );
    // No catalog reload: the gateway counts what it spent since its snapshot.
    let before = mock.count_for("sk-quota-0001").await;
    let (status, headers, text) = chat(&gateway, &plaintext, chat_body("m-quota", false)).await;
    assert_eq!(status, 429, "{text}");
    // The refusal is on the books too, with the status the client received.
    let refused = trace(&gateway, &request_id(&headers)).await;
    assert_eq!(
        (
            &refused["usage"]["status"],
            &refused["usage"]["status_code"]
        ),
        (&json!("failed"), &json!(429)),
        "{refused}"
    );
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("remaining")),
        "{body}"
    );
    assert_eq!(
        mock.count_for("sk-quota-0001").await,
        before,
        "a refused request reached the upstream"
    );

    // A standalone key with a balance of 0.5 USD: one request, then refused; its user is not charged.
    let owner = admin(
        &gateway,
        Method::POST,
        "/users",
        json!({"name": "s", "quota_usd": 100.0}),
    )
    .await;
    let standalone = admin(
        &gateway,
        Method::POST,
        "/gateway-keys",
        json!({"user_id": owner["id"], "name": "s", "is_standalone": true, "balance_usd": 0.5}),
    )
    .await;
    let plaintext = standalone["key"].as_str().expect("key").to_owned();
    let (status, _, text) = chat(&gateway, &plaintext, chat_body("m-quota", false)).await;
    assert_eq!(status, 200, "{text}");
    let key_id = standalone["id"].as_str().expect("id").to_owned();
    eventually(std::time::Duration::from_secs(10), || async {
        let key = admin(
            &gateway,
            Method::GET,
            &format!("/gateway-keys/{key_id}"),
            json!(null),
        )
        .await;
        (key["balance_used_usd"].as_f64() >= Some(0.5)).then_some(())
    })
    .await
    .expect("balance charged");
    let owner_now = admin(
        &gateway,
        Method::GET,
        &format!("/users/{}", owner["id"].as_str().unwrap_or_default()),
        json!(null),
    )
    .await;
    assert_eq!(
        owner_now["used_usd"], 0.0,
        "a standalone key's spend was charged to its user"
    );
    let (status, _, text) = chat(&gateway, &plaintext, chat_body("m-quota", false)).await;
    assert_eq!(status, 429, "{text}");
    // Both refusals (the user's quota, the key's balance) are counted under their reason.
    let refused = &gateway_status(&gateway).await["requests"]["refused"];
    assert_eq!(refused["quota_exceeded"], 2, "{refused}");
    let _ = setup;
    drop(gateway);
    database.finish().await;
}
