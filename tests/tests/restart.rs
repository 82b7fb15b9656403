//! Hot state survives a restart: a circuit that was open when the gateway stopped is still open
//! when it starts again on the same database, so a broken key does not get a fresh burst of
//! traffic after every deploy.

use serde_json::json;
use switchyard_tests::{
    Gateway, GatewayOptions, KeySpec, Mock, ProviderSpec, chat, chat_body, db, key_health, setup,
};

#[tokio::test]
async fn an_open_circuit_is_still_open_after_a_restart() {
    for database in db::all().await {
        let mock = Mock::start("upstream");
        let data_dir = tempfile::tempdir().expect("data dir");
        let options = |data_dir| GatewayOptions {
            data_dir: Some(data_dir),
            env: vec![
                (
                    "SWITCHYARD__HEALTH__INITIAL_RECOVERY_SECS",
                    "600".to_owned(),
                ),
                ("SWITCHYARD__HEALTH__MAX_RECOVERY_SECS", "600".to_owned()),
            ],
            ..GatewayOptions::default()
        };
        let gateway = Gateway::start_with(&database.url, options(data_dir));
        let spec = ProviderSpec {
            name: "only".into(),
            priority: 10,
            base_url: mock.url().to_owned(),
            endpoint: json!({"max_retries": 0}),
            keys: vec![KeySpec::new("k", "sk-restart-key-0001")],
        };
        let setup = setup(&gateway, "m-restart", &[spec]).await;
        let key_id = setup.keys["k"].clone();
        mock.rule(json!({"key": "sk-restart-key-0001", "behaviour": {"status": 500}}))
            .await;
        for _ in 0..5 {
            let (status, _, _) =
                chat(&gateway, &setup.gateway_key, chat_body("m-restart", false)).await;
            assert_eq!(status, 502);
        }
        assert_eq!(
            key_health(&gateway, &key_id).await["circuit"],
            "open",
            "{}",
            database.backend
        );

        // A graceful stop writes the circuit; a new process on the same database reads it back.
        let Gateway {
            process,
            data_dir,
            admin_token: _,
        } = gateway;
        assert!(process.terminate().success());
        let gateway = Gateway::start_with(&database.url, options(data_dir));
        mock.clear_rules().await;
        assert_eq!(
            key_health(&gateway, &key_id).await["circuit"],
            "open",
            "{}",
            database.backend
        );
        let before = mock.count_for("sk-restart-key-0001").await;
        let (status, _, text) =
            chat(&gateway, &setup.gateway_key, chat_body("m-restart", false)).await;
        assert_eq!(
            status, 503,
            "the open key was tried after the restart: {text}"
        );
        assert_eq!(mock.count_for("sk-restart-key-0001").await, before);
        drop(gateway);
        database.finish().await;
    }
}
