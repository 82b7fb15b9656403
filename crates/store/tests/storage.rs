//! Storage behaviour on every backend: migrations, resource operations, catalog, admin token,
//! declarative import. Each test body runs on SQLite and, when available, PostgreSQL.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test code and its helpers: a failed step is a failed test"
)]

use sea_orm::EntityTrait;
use serde_json::json;
use switchyard_store::entity::{global_model, provider, provider_key};
use switchyard_store::manage::{
    self, Endpoints, GatewayKeys, GlobalModels, ListQuery, ManageError, ProviderKeys, Providers,
    Users, WriteContext,
};
use switchyard_store::testing::{self, TestDb};
use switchyard_store::{CatalogHandle, Cipher, admin_token, import};

fn ctx() -> WriteContext {
    WriteContext::new(Cipher::from_key(&[42u8; 32]))
}

async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = TestDb>,
{
    for db in testing::all().await {
        let backend = db.backend;
        eprintln!("running on {backend}");
        test(db).await.finish().await;
    }
}

fn field_of(e: &ManageError) -> (&'static str, String) {
    match e {
        ManageError::Invalid { field, .. } => ("invalid", field.clone()),
        ManageError::Conflict { field, .. } => ("conflict", field.clone()),
        ManageError::NotFound { .. } => ("not_found", String::new()),
        ManageError::Store(e) => panic!("unexpected store error: {e}"),
    }
}

#[tokio::test]
async fn migrations_run_from_empty_and_are_idempotent() {
    for_each_backend(|t| async move {
        // `testing` migrated once already; a second run must find nothing to do.
        switchyard_store::db::migrate(&t.db)
            .await
            .expect("second migrate");
        assert!(
            provider::Entity::find()
                .all(&t.db)
                .await
                .expect("query")
                .is_empty()
        );
        assert!(
            global_model::Entity::find()
                .all(&t.db)
                .await
                .expect("query")
                .is_empty()
        );
        t
    })
    .await;
}

#[tokio::test]
async fn provider_key_round_trip_keeps_the_secret_encrypted_and_masked() {
    for_each_backend(|t| async move {
        let ctx = ctx();
        let p = manage::create::<Providers, _>(&t.db, &ctx, json!({"name": "openai", "priority": 5}))
            .await
            .expect("provider");
        let e = manage::create::<Endpoints, _>(
            &t.db,
            &ctx,
            json!({"provider_id": p.model.id, "api_format": "OPENAI", "base_url": "https://api.example.com"}),
        )
        .await
        .expect("endpoint");
        let secret = "sk-live-abcdefghijklmnopqrstuvwxyz";
        let k = manage::create::<ProviderKeys, _>(
            &t.db,
            &ctx,
            json!({"endpoint_id": e.model.id, "name": "main", "api_key": secret, "max_concurrent": 4}),
        )
        .await
        .expect("key");
        let stored = provider_key::Entity::find_by_id(k.model.id.clone())
            .one(&t.db)
            .await
            .expect("query")
            .expect("row");
        assert!(!stored.secret_encrypted.contains("abcdefgh"), "stored in clear");
        let view = serde_json::to_value(
            <ProviderKeys as manage::Resource>::view(stored.clone()),
        )
        .expect("view");
        let shown = view.to_string();
        assert!(!shown.contains(secret), "view leaks the secret: {shown}");
        assert_eq!(view["api_key_preview"], "sk-l…wxyz");
        assert!(view.get("api_key").is_none());

        // A patch without the secret keeps it; with one replaces it.
        let patched = manage::patch::<ProviderKeys, _>(&t.db, &ctx, &k.model.id, json!({"max_concurrent": null, "note": "n"}))
            .await
            .expect("patch");
        assert_eq!(patched.max_concurrent, None);
        assert_eq!(patched.secret_encrypted, stored.secret_encrypted);
        let handle = CatalogHandle::load(&t.db, ctx.cipher.clone()).await.expect("catalog");
        let key = &handle.current().providers[0].endpoints[0].keys[0];
        assert_eq!(key.secret.expose(), secret);
        assert!(!format!("{key:?}").contains(secret), "Debug leaks the secret");
        t
    })
    .await;
}

#[tokio::test]
async fn every_validation_error_class_names_its_field() {
    for_each_backend(|t| async move {
        let ctx = ctx();
        let create = |body: serde_json::Value| {
            let db = t.db.clone();
            let ctx = ctx.clone();
            async move { manage::create::<Providers, _>(&db, &ctx, body).await }
        };
        let p = create(json!({"name": "a"})).await.expect("first");
        // Wrong type, unknown field, missing field, out of range, blank.
        let cases = [
            (json!({"name": "b", "priority": "high"}), "priority"),
            (json!({"name": "b", "colour": 1}), ""),
            (json!({"priority": 1}), ""),
            (json!({"name": "b", "priority": -1}), "priority"),
            (json!({"name": "  "}), "name"),
        ];
        for (body, field) in cases {
            let e = create(body.clone()).await.expect_err("must fail");
            let (class, got) = field_of(&e);
            assert_eq!(class, "invalid", "{body}");
            if !field.is_empty() {
                assert_eq!(got, field, "{body}: {e}");
            }
            assert!(e.to_string().len() > 3);
        }
        // Unknown field is named in the message.
        let e = create(json!({"name": "b", "colour": 1})).await.expect_err("unknown");
        assert!(e.to_string().contains("colour"), "{e}");
        // Duplicate name → conflict on `name`.
        let e = create(json!({"name": "a"})).await.expect_err("dup");
        assert_eq!(field_of(&e), ("conflict", "name".into()));
        // Reference to a missing parent → invalid on the reference field.
        let e = manage::create::<Endpoints, _>(&t.db, &ctx, json!({"provider_id": "nope", "api_format": "OPENAI", "base_url": "https://x.example"}))
            .await
            .expect_err("missing parent");
        assert_eq!(field_of(&e), ("invalid", "provider_id".into()));
        // One endpoint per provider and format.
        let body = json!({"provider_id": p.model.id, "api_format": "CLAUDE", "base_url": "https://x.example"});
        manage::create::<Endpoints, _>(&t.db, &ctx, body.clone()).await.expect("endpoint");
        let e = manage::create::<Endpoints, _>(&t.db, &ctx, body).await.expect_err("dup endpoint");
        assert_eq!(field_of(&e), ("conflict", "api_format".into()));
        // Reserved header, bad URL.
        let e = manage::create::<Endpoints, _>(&t.db, &ctx, json!({"provider_id": p.model.id, "api_format": "GEMINI", "base_url": "ftp://x"}))
            .await
            .expect_err("bad url");
        assert_eq!(field_of(&e), ("invalid", "base_url".into()));
        let e = manage::create::<Endpoints, _>(&t.db, &ctx, json!({"provider_id": p.model.id, "api_format": "GEMINI", "base_url": "https://x.example", "headers": {"Authorization": "x"}}))
            .await
            .expect_err("reserved header");
        assert_eq!(field_of(&e), ("invalid", "headers.Authorization".into()));
        // Nested pricing path.
        let e = manage::create::<GlobalModels, _>(&t.db, &ctx, json!({"name": "m", "pricing": {"tiers": [{"input_price_per_1m": 1.0, "output_price_per_1m": -2.0}]}}))
            .await
            .expect_err("bad price");
        assert_eq!(field_of(&e), ("invalid", "pricing.tiers[0].output_price_per_1m".into()));
        // Not found on get, patch and delete.
        for e in [
            manage::get::<Providers, _>(&t.db, "missing").await.expect_err("get"),
            manage::patch::<Providers, _>(&t.db, &ctx, "missing", json!({})).await.expect_err("patch"),
            manage::delete::<Providers, _>(&t.db, "missing").await.expect_err("delete"),
        ] {
            assert_eq!(field_of(&e).0, "not_found");
        }
        // A patch cannot move an endpoint to another provider.
        let other = create(json!({"name": "other"})).await.expect("other");
        let endpoints = manage::list::<Endpoints, _>(&t.db, &ListQuery { page: 1, per_page: 10, filters: vec![] })
            .await
            .expect("list");
        let id = endpoints.items[0].id.clone();
        let e = manage::patch::<Endpoints, _>(&t.db, &ctx, &id, json!({"provider_id": other.model.id}))
            .await
            .expect_err("move");
        assert_eq!(field_of(&e), ("invalid", "provider_id".into()));
        t
    })
    .await;
}

#[tokio::test]
async fn lists_paginate_and_filter() {
    for_each_backend(|t| async move {
        let ctx = ctx();
        for i in 0..5 {
            manage::create::<Providers, _>(
                &t.db,
                &ctx,
                json!({"name": format!("p{i}"), "is_active": i % 2 == 0}),
            )
            .await
            .expect("provider");
        }
        let page = |page, per_page, filters: Vec<(String, String)>| {
            let db = t.db.clone();
            async move {
                manage::list::<Providers, _>(
                    &db,
                    &ListQuery {
                        page,
                        per_page,
                        filters,
                    },
                )
                .await
            }
        };
        let second = page(2, 2, vec![]).await.expect("page");
        assert_eq!(second.total, 5);
        assert_eq!(second.items.len(), 2);
        let active = page(1, 50, vec![("is_active".into(), "true".into())])
            .await
            .expect("filter");
        assert_eq!(active.total, 3);
        let e = page(1, 50, vec![("secret".into(), "x".into())])
            .await
            .expect_err("bad filter");
        assert_eq!(field_of(&e), ("invalid", "secret".into()));
        let e = page(1, 0, vec![]).await.expect_err("bad size");
        assert_eq!(field_of(&e), ("invalid", "per_page".into()));
        t
    })
    .await;
}

#[tokio::test]
async fn catalog_reload_reflects_changes_and_deleting_cascades() {
    for_each_backend(|t| async move {
        let ctx = ctx();
        let handle = CatalogHandle::load(&t.db, ctx.cipher.clone()).await.expect("load");
        assert_eq!(handle.current().summary().providers, 0);
        let p = manage::create::<Providers, _>(&t.db, &ctx, json!({"name": "p"})).await.expect("p");
        let e = manage::create::<Endpoints, _>(&t.db, &ctx, json!({"provider_id": p.model.id, "api_format": "OPENAI", "base_url": "http://127.0.0.1:9"}))
            .await
            .expect("e");
        manage::create::<ProviderKeys, _>(&t.db, &ctx, json!({"endpoint_id": e.model.id, "name": "k", "api_key": "secret-value-123456"}))
            .await
            .expect("k");
        let user = manage::create::<Users, _>(&t.db, &ctx, json!({"name": "u"})).await.expect("u");
        let key = manage::create::<GatewayKeys, _>(&t.db, &ctx, json!({"user_id": user.model.id, "name": "cli"}))
            .await
            .expect("gk");
        let plaintext = key.revealed.expect("plaintext revealed once");
        assert!(key.model.key_hash.len() == 64 && !key.model.key_hash.contains(plaintext.expose()));

        let before = handle.current();
        let after = handle.reload(&t.db).await.expect("reload");
        assert!(after.version > before.version);
        let summary = after.summary();
        assert_eq!((summary.providers, summary.endpoints, summary.provider_keys, summary.gateway_keys), (1, 1, 1, 1));
        let hash = switchyard_store::secrets::hash_token(plaintext.expose());
        assert!(after.gateway_keys.contains_key(&hash));

        // Deactivating the user removes their keys from routing; deleting the provider cascades.
        manage::patch::<Users, _>(&t.db, &ctx, &user.model.id, json!({"is_active": false})).await.expect("deactivate");
        manage::delete::<Providers, _>(&t.db, &p.model.id).await.expect("delete");
        let after = handle.reload(&t.db).await.expect("reload");
        assert!(after.gateway_keys.is_empty());
        assert_eq!(after.summary().providers, 0);
        assert!(provider_key::Entity::find().all(&t.db).await.expect("query").is_empty(), "keys not cascaded");
        t
    })
    .await;
}

#[tokio::test]
async fn admin_token_is_generated_once_even_when_two_starts_race() {
    for_each_backend(|t| async move {
        let (a, b) = tokio::join!(
            admin_token::ensure(&t.db, None),
            admin_token::ensure(&t.db, None)
        );
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert_eq!(a.hash(), b.hash());
        let generated = [&a, &b]
            .iter()
            .filter(|t| matches!(t, admin_token::AdminToken::Generated { .. }))
            .count();
        assert!(
            generated <= 1,
            "two starts both claim to have generated the token"
        );
        let again = admin_token::ensure(&t.db, None).await.expect("again");
        assert!(matches!(again, admin_token::AdminToken::Stored { .. }));
        assert_eq!(again.hash(), a.hash());
        t
    })
    .await;
}

const IMPORT: &str = r#"
[[models]]
name = "gpt-4o-mini"
aliases = ["mini"]
pricing = { tiers = [{ input_price_per_1m = 0.15, output_price_per_1m = 0.6 }] }

[[providers]]
name = "openai"
priority = 10

  [[providers.endpoints]]
  api_format = "openai"
  base_url = "https://api.openai.example"

    [[providers.endpoints.keys]]
    name = "main"
    api_key = "${TEST_UPSTREAM_KEY}"
    max_concurrent = 8

  [[providers.models]]
  model = "gpt-4o-mini"
  provider_model_name = "gpt-4o-mini-2024-07-18"
"#;

fn env(name: &str) -> Option<String> {
    (name == "TEST_UPSTREAM_KEY").then(|| "sk-imported-0123456789abcdef".to_owned())
}

#[tokio::test]
async fn import_is_idempotent() {
    for_each_backend(|t| async move {
        let ctx = ctx();
        let first = import::import_toml(&t.db, &ctx, IMPORT, &env)
            .await
            .expect("first import");
        assert_eq!(first.created, 6, "{first:?}");
        let second = import::import_toml(&t.db, &ctx, IMPORT, &env)
            .await
            .expect("second import");
        assert_eq!(
            (second.created, second.updated, second.unchanged),
            (0, 0, 6),
            "{second:?}"
        );
        let changed = IMPORT.replace("priority = 10", "priority = 20");
        let third = import::import_toml(&t.db, &ctx, &changed, &env)
            .await
            .expect("third import");
        assert_eq!((third.created, third.updated), (0, 1));
        let handle = CatalogHandle::load(&t.db, ctx.cipher.clone())
            .await
            .expect("catalog");
        let catalog = handle.current();
        assert_eq!(catalog.providers[0].priority, 20);
        assert_eq!(
            catalog.providers[0].endpoints[0].keys[0].secret.expose(),
            "sk-imported-0123456789abcdef"
        );
        let (model, _) = catalog.resolve_model("mini").expect("alias resolves");
        assert_eq!(model.name, "gpt-4o-mini");
        t
    })
    .await;
}

#[tokio::test]
async fn import_with_an_error_changes_nothing_and_says_where() {
    for_each_backend(|t| async move {
        let ctx = ctx();
        let bad = IMPORT.replace("max_concurrent = 8", "max_concurrent = 0");
        let e = import::import_toml(&t.db, &ctx, &bad, &env)
            .await
            .expect_err("invalid");
        assert_eq!(
            e.location, "providers[0].endpoints[0].keys[0].max_concurrent",
            "{e}"
        );
        assert!(
            provider::Entity::find()
                .all(&t.db)
                .await
                .expect("q")
                .is_empty(),
            "partial import"
        );
        assert!(
            global_model::Entity::find()
                .all(&t.db)
                .await
                .expect("q")
                .is_empty(),
            "partial import"
        );

        let e = import::import_toml(&t.db, &ctx, IMPORT, &|_| None)
            .await
            .expect_err("missing env");
        assert_eq!(e.location, "providers[0].endpoints[0].keys[0].api_key");
        assert!(e.message.contains("TEST_UPSTREAM_KEY"));

        let e = import::import_toml(&t.db, &ctx, "[[providers]]\nname = ", &env)
            .await
            .expect_err("syntax");
        assert!(e.location.starts_with("line 2"), "{e}");
        t
    })
    .await;
}
