//! The admin API over HTTP, on SQLite and PostgreSQL: CRUD round trips of every resource, every
//! error class, secrets never shown, and the catalog following every change without a restart.

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_tests::{Gateway, db, send};

const UPSTREAM_SECRET: &str = "sk-upstream-SECRET-0123456789abcdefXYZ";

async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(Gateway) -> Fut,
    Fut: Future<Output = ()>,
{
    for database in db::all().await {
        eprintln!("running on {}", database.backend);
        let gateway = Gateway::start(&database.url);
        test(gateway).await;
        database.finish().await;
    }
}

async fn create(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, created) = send(gw.admin(Method::POST, path).json(&body)).await;
    assert_eq!(status, 201, "POST {path} {body}: {created}");
    created
}

async fn catalog(gw: &Gateway) -> Value {
    let (status, body) = send(gw.admin(Method::GET, "/catalog")).await;
    assert_eq!(status, 200);
    body["summary"].clone()
}

#[tokio::test]
async fn every_resource_round_trips_and_the_catalog_follows() {
    for_each_backend(|gw| async move {
        assert_eq!(catalog(&gw).await["providers"], 0);
        let provider = create(&gw, "/providers", json!({"name": "openai", "priority": 10})).await;
        let pid = provider["id"].as_str().expect("id").to_owned();
        let endpoint = create(
            &gw,
            "/endpoints",
            json!({"provider_id": pid, "api_format": "OPENAI", "base_url": "http://127.0.0.1:9", "max_concurrent": 8}),
        )
        .await;
        let eid = endpoint["id"].as_str().expect("id").to_owned();
        let key = create(
            &gw,
            "/provider-keys",
            json!({"endpoint_id": eid, "name": "main", "api_key": UPSTREAM_SECRET, "capabilities": {"cache_1h": true}}),
        )
        .await;
        assert_eq!(key["api_key_preview"], "sk-u…fXYZ");
        let model = create(
            &gw,
            "/global-models",
            json!({"name": "gpt-4o-mini", "pricing": {"tiers": [{"input_price_per_1m": 0.15, "output_price_per_1m": 0.6}]}}),
        )
        .await;
        let mid = model["id"].as_str().expect("id").to_owned();
        create(
            &gw,
            "/provider-models",
            json!({"provider_id": pid, "global_model_id": mid, "provider_model_name": "gpt-4o-mini-2024-07-18",
                   "mappings": [{"name": "gpt-4o-mini-alt", "priority": 2, "api_formats": ["OPENAI"]}]}),
        )
        .await;
        create(&gw, "/aliases", json!({"alias": "mini", "global_model_id": mid})).await;
        let user = create(&gw, "/users", json!({"name": "alice", "quota_usd": 10.0})).await;
        let uid = user["id"].as_str().expect("id").to_owned();
        let gateway_key = create(&gw, "/gateway-keys", json!({"user_id": uid, "name": "laptop"})).await;
        let plaintext = gateway_key["key"].as_str().expect("plaintext shown at creation").to_owned();
        assert!(plaintext.starts_with("sk-sy-"));

        // The catalog saw every change without a restart.
        let summary = catalog(&gw).await;
        assert_eq!(
            (&summary["providers"], &summary["endpoints"], &summary["provider_keys"], &summary["global_models"], &summary["gateway_keys"]),
            (&json!(1), &json!(1), &json!(1), &json!(1), &json!(1)),
            "{summary}"
        );
        // canonical name, alias and both upstream names resolve.
        assert_eq!(summary["model_names"], 3, "{summary}");

        // Read back, list, patch.
        let (status, got) = send(gw.admin(Method::GET, &format!("/providers/{pid}"))).await;
        assert_eq!((status, &got["name"]), (200, &json!("openai")));
        let (status, page) = send(gw.admin(Method::GET, &format!("/endpoints?provider_id={pid}&per_page=1"))).await;
        assert_eq!((status, &page["total"], page["items"].as_array().map(Vec::len)), (200, &json!(1), Some(1)));
        let (status, patched) = send(gw.admin(Method::PATCH, &format!("/provider-keys/{}", key["id"].as_str().expect("id"))).json(&json!({"is_active": false}))).await;
        assert_eq!((status, &patched["is_active"], &patched["api_key_preview"]), (200, &json!(false), &json!("sk-u…fXYZ")));
        assert_eq!(catalog(&gw).await["provider_keys"], 0, "deactivated key still routed");
        let (status, gk) = send(gw.admin(Method::GET, &format!("/gateway-keys/{}", gateway_key["id"].as_str().expect("id")))).await;
        assert_eq!(status, 200);
        assert!(gk.get("key").is_none() && !gk.to_string().contains(&plaintext), "plaintext shown again: {gk}");

        // Settings.
        let (status, settings) = send(gw.admin(Method::PATCH, "/settings").json(&json!({"priority_mode": "global_key"}))).await;
        assert_eq!((status, &settings["priority_mode"]), (200, &json!("global_key")));
        let (_, cat) = send(gw.admin(Method::GET, "/catalog")).await;
        assert_eq!(cat["settings"]["priority_mode"], "global_key");

        // Delete cascades and the catalog follows.
        let (status, _) = send(gw.admin(Method::DELETE, &format!("/providers/{pid}"))).await;
        assert_eq!(status, 204);
        let (status, _) = send(gw.admin(Method::GET, &format!("/endpoints/{eid}"))).await;
        assert_eq!(status, 404, "endpoint survived its provider");
        let summary = catalog(&gw).await;
        assert_eq!((&summary["providers"], &summary["endpoints"]), (&json!(0), &json!(0)));

        // The upstream secret never appeared in any log line, even at debug level.
        let logs = gw.process.logs();
        assert!(!logs.contains(UPSTREAM_SECRET), "secret in logs");
        assert!(!logs.contains(&plaintext), "gateway key in logs");
    })
    .await;
}

#[tokio::test]
async fn every_error_class_has_its_status_code_and_field() {
    for_each_backend(|gw| async move {
        let client = switchyard_tests::client();
        // 401: no token, wrong token.
        let (status, body) = send(client.get(gw.url("/admin/providers"))).await;
        assert_eq!((status, &body["error"]["code"]), (401, &json!("unauthorized")));
        let (status, _) = send(client.get(gw.url("/admin/providers")).bearer_auth("nope")).await;
        assert_eq!(status, 401);

        // 400 with the failing field: type, range, unknown field, nested path, bad reference.
        let cases = [
            ("/providers", json!({"name": "p", "priority": "high"}), "priority"),
            ("/providers", json!({"name": "p", "priority": 99999}), "priority"),
            ("/endpoints", json!({"provider_id": "missing", "api_format": "OPENAI", "base_url": "http://x.example"}), "provider_id"),
            ("/global-models", json!({"name": "m", "pricing": {"tiers": []}}), "pricing.tiers"),
            ("/provider-keys", json!({"endpoint_id": "missing", "name": "k", "api_key": "x"}), "endpoint_id"),
            ("/users", json!({"name": "u", "model_capability_settings": {"m": {"context_1m": true}}}), "model_capability_settings.m.context_1m"),
        ];
        for (path, body, field) in cases {
            let (status, answer) = send(gw.admin(Method::POST, path).json(&body)).await;
            assert_eq!(status, 400, "{path} {body}: {answer}");
            assert_eq!(answer["error"]["code"], "invalid_request");
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
        let (status, answer) = send(gw.admin(Method::POST, "/providers").json(&json!({"name": "p", "colour": "red"}))).await;
        assert_eq!(status, 400);
        assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("colour")), "{answer}");
        // Malformed JSON and a non-JSON body.
        let (status, answer) = send(gw.admin(Method::POST, "/providers").header("content-type", "application/json").body("{oops")).await;
        assert_eq!((status, &answer["error"]["code"]), (400, &json!("invalid_request")));
        let (status, answer) = send(gw.admin(Method::POST, "/providers").header("content-type", "text/plain").body("name=p")).await;
        assert_eq!((status, &answer["error"]["code"]), (415, &json!("unsupported_media_type")));

        // 409 on a duplicate, naming the field.
        create(&gw, "/providers", json!({"name": "dup"})).await;
        let (status, answer) = send(gw.admin(Method::POST, "/providers").json(&json!({"name": "dup"}))).await;
        assert_eq!((status, &answer["error"]["code"], &answer["error"]["field"]), (409, &json!("conflict"), &json!("name")));

        // 404 for unknown ids and routes.
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let request = gw.admin(method.clone(), "/users/does-not-exist");
            let request = if method == Method::PATCH { request.json(&json!({})) } else { request };
            let (status, answer) = send(request).await;
            assert_eq!((status, &answer["error"]["code"]), (404, &json!("not_found")), "{method}");
        }
        let (status, _) = send(gw.admin(Method::GET, "/no-such-thing")).await;
        assert_eq!(status, 404);

        // Bad list parameters and settings.
        let (status, answer) = send(gw.admin(Method::GET, "/providers?per_page=0")).await;
        assert_eq!((status, &answer["error"]["field"]), (400, &json!("per_page")));
        let (status, answer) = send(gw.admin(Method::PATCH, "/settings").json(&json!({"scheduling_mode": "random"}))).await;
        assert_eq!((status, &answer["error"]["field"]), (400, &json!("scheduling_mode")));
    })
    .await;
}
