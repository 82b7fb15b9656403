//! The gateway's life cycle as an operator sees it: first start, admin token, import, key
//! creation, secrets at rest, readiness and graceful shutdown.

use reqwest::Method;
use serde_json::json;
use switchyard_tests::{Gateway, GatewayOptions, client, db, run_switchyard, send};

const PROVIDERS: &str = r#"
[[models]]
name = "claude-sonnet"
aliases = ["sonnet"]
pricing = { tiers = [{ input_price_per_1m = 3.0, output_price_per_1m = 15.0 }] }

[[providers]]
name = "anthropic"

  [[providers.endpoints]]
  api_format = "CLAUDE"
  base_url = "http://127.0.0.1:9"

    [[providers.endpoints.keys]]
    name = "primary"
    api_key = "${LIFECYCLE_UPSTREAM_KEY}"

  [[providers.models]]
  model = "claude-sonnet"
  provider_model_name = "claude-sonnet-4-5"
"#;

const SECRET: &str = "sk-ant-lifecycle-secret-0123456789";

#[tokio::test]
async fn first_start_generates_the_admin_token_once_and_it_works() {
    for database in db::all().await {
        let data_dir = tempfile::tempdir().expect("data dir");
        let dir_path = data_dir.path().to_owned();
        let first = Gateway::start_with(
            &database.url,
            GatewayOptions {
                generate_admin_token: true,
                data_dir: Some(data_dir),
                ..GatewayOptions::default()
            },
        );
        let token = first
            .process
            .stdout_head
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("sy-admin-")
                    .map(|rest| format!("sy-admin-{rest}"))
            })
            .expect("generated token printed on first start");
        assert!(
            !first.process.logs().contains(&token),
            "token in the log stream"
        );
        let (status, _) = send(
            client()
                .get(first.url("/admin/providers"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 200, "{}", database.backend);
        let Gateway {
            process, data_dir, ..
        } = first;
        assert!(process.terminate().success());

        // A second start on the same database prints no token and accepts the first one.
        let second = Gateway::start_with(
            &database.url,
            GatewayOptions {
                generate_admin_token: true,
                data_dir: Some(data_dir),
                ..GatewayOptions::default()
            },
        );
        assert!(
            second
                .process
                .stdout_head
                .iter()
                .all(|l| !l.contains("sy-admin-")),
            "token printed twice"
        );
        let (status, _) = send(
            client()
                .get(second.url("/admin/providers"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 200);
        assert!(dir_path.join("secret.key").exists());
        drop(second);
        database.finish().await;
    }
}

#[tokio::test]
async fn import_cli_is_idempotent_all_or_nothing_and_keeps_secrets_encrypted() {
    for database in db::all().await {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("providers.toml");
        std::fs::write(&file, PROVIDERS).expect("write");
        let file = file.to_str().expect("utf-8");
        let env = [
            ("SWITCHYARD__DATABASE__URL", database.url.as_str()),
            ("SWITCHYARD__DATA_DIR", "data"),
            ("LIFECYCLE_UPSTREAM_KEY", SECRET),
        ];
        for _ in 0..2 {
            let out = run_switchyard(&["import", file], &env, dir.path());
            assert!(out.status.success(), "{}", out.stderr);
            assert!(!out.stderr.contains(SECRET));
        }
        let out = run_switchyard(&["import", file], &env, dir.path());
        assert!(
            out.stdout.contains("0 created, 0 updated, 6 unchanged"),
            "{}",
            out.stdout
        );

        // A broken file changes nothing and says where the problem is.
        let broken = dir.path().join("broken.toml");
        std::fs::write(
            &broken,
            PROVIDERS
                .replace("claude-sonnet-4-5", "")
                .replace("name = \"anthropic\"", "name = \"other\""),
        )
        .expect("write");
        let out = run_switchyard(
            &["import", broken.to_str().expect("utf-8")],
            &env,
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(
            out.stderr
                .contains("providers[0].models[0].provider_model_name"),
            "{}",
            out.stderr
        );

        // The gateway sees exactly the first import: one provider, and the key decrypts.
        let gateway = Gateway::start_with(
            &database.url,
            GatewayOptions {
                env: vec![(
                    "SWITCHYARD__DATA_DIR",
                    dir.path().join("data").display().to_string(),
                )],
                ..GatewayOptions::default()
            },
        );
        let (_, catalog) = send(gateway.admin(Method::GET, "/catalog")).await;
        assert_eq!(catalog["summary"]["providers"], 1, "{catalog}");
        assert_eq!(
            catalog["summary"]["provider_keys"], 1,
            "key not decryptable: {catalog}"
        );
        let (_, keys) = send(gateway.admin(Method::GET, "/provider-keys")).await;
        assert!(!keys.to_string().contains(SECRET));
        drop(gateway);

        if database.backend == "sqlite" {
            // Nothing in the database files carries the secret in clear.
            for entry in std::fs::read_dir(dir.path().join("data")).expect("data dir") {
                let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
                let hay = String::from_utf8_lossy(&bytes);
                assert!(!hay.contains(SECRET), "secret stored in clear");
            }
        }
        database.finish().await;
    }
}

#[tokio::test]
async fn keys_create_prints_a_working_key_once() {
    let database = db::sqlite().await;
    let dir = tempfile::tempdir().expect("dir");
    let env = [
        ("SWITCHYARD__DATABASE__URL", database.url.as_str()),
        ("SWITCHYARD__DATA_DIR", "data"),
    ];
    let out = run_switchyard(&["keys", "create", "--user", "bob"], &env, dir.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "no such user without --create-user"
    );
    let out = run_switchyard(
        &[
            "keys",
            "create",
            "--user",
            "bob",
            "--create-user",
            "--name",
            "ci",
        ],
        &env,
        dir.path(),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let key = out.stdout.trim().to_owned();
    assert!(
        key.starts_with("sk-sy-") && key.len() == "sk-sy-".len() + 32,
        "{key}"
    );

    let gateway = Gateway::start(&database.url);
    let (_, keys) = send(gateway.admin(Method::GET, "/gateway-keys")).await;
    assert_eq!(keys["total"], 1);
    assert!(
        !keys.to_string().contains(&key),
        "plaintext shown by the admin API"
    );
    let (_, catalog) = send(gateway.admin(Method::GET, "/catalog")).await;
    assert_eq!(catalog["summary"]["gateway_keys"], 1);
    drop(gateway);
    database.finish().await;
}

#[tokio::test]
async fn ready_reports_the_catalog_and_sigterm_stops_gracefully() {
    let database = db::sqlite().await;
    let gateway = Gateway::start(&database.url);
    let (status, health) = send(client().get(gateway.url("/health"))).await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")));
    let (status, ready) = send(client().get(gateway.url("/ready"))).await;
    assert_eq!(
        (status, &ready["status"], &ready["database"]),
        (200, &json!("ready"), &json!("ok"))
    );
    assert!(ready["catalog"]["version"].as_u64().is_some());
    let Gateway { process, .. } = gateway;
    let status = process.terminate();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    database.finish().await;
}
