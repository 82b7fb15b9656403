//! A Redis outage does not stop the gateway: while its private Redis is down, leases are taken
//! from process-local state (and the status endpoint says so); when Redis is back, new leases go
//! to it again.

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchyard_tests::{
    Gateway, GatewayOptions, KeySpec, Mock, ProviderSpec, chat, chat_body, db, eventually,
    gateway_status, setup,
};

/// A private redis-server on `port`, killed on drop.
struct PrivateRedis(Child);

impl PrivateRedis {
    fn start(port: u16) -> Option<PrivateRedis> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let ready = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        ready.then_some(PrivateRedis(child))
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn requests_are_served_through_a_redis_outage_and_redis_is_used_again_after() {
    let port = free_port();
    let Some(redis) = PrivateRedis::start(port) else {
        assert!(
            !switchyard_store::testing::services_required(),
            "redis-server is required (CI is set) but could not be started"
        );
        eprintln!("skipping the Redis outage test: redis-server is not installed");
        return;
    };
    let database = db::sqlite().await;
    let mock = Mock::start("upstream");
    let gateway = Gateway::start_with(
        &database.url,
        GatewayOptions {
            env: vec![
                ("SWITCHYARD__STATE__BACKEND", "redis".to_owned()),
                (
                    "SWITCHYARD__STATE__REDIS_URL",
                    format!("redis://127.0.0.1:{port}"),
                ),
            ],
            ..GatewayOptions::default()
        },
    );
    let spec = ProviderSpec {
        name: "p".into(),
        priority: 10,
        base_url: mock.url().to_owned(),
        endpoint: json!({}),
        keys: vec![KeySpec::new("k", "sk-outage-0001").with(json!({"max_concurrent": 4}))],
    };
    let setup = setup(&gateway, "m-outage", &[spec]).await;
    let ask = || chat(&gateway, &setup.gateway_key, chat_body("m-outage", false));

    let (status, _, text) = ask().await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(gateway_status(&gateway).await["state_degraded"], false);

    drop(redis);
    for _ in 0..3 {
        let (status, _, text) = ask().await;
        assert_eq!(status, 200, "a Redis outage stopped the gateway: {text}");
    }
    let status = gateway_status(&gateway).await;
    assert_eq!(status["state_backend"], "redis");
    assert_eq!(status["state_degraded"], true, "{status}");
    let fallbacks = status["state_fallbacks"].as_u64().expect("counter");
    assert!(fallbacks >= 3, "{status}");

    // Redis is back: new leases go to it (the fallback counter stops growing).
    let _redis = PrivateRedis::start(port).expect("redis restarts on its port");
    let back = eventually(Duration::from_secs(10), || async {
        let (status, _, _) = ask().await;
        let now = gateway_status(&gateway).await["state_fallbacks"].as_u64();
        let (_, _, _) = ask().await;
        let later = gateway_status(&gateway).await["state_fallbacks"].as_u64();
        (status == 200 && now == later).then_some(())
    })
    .await;
    assert!(back.is_some(), "the gateway never went back to Redis");
    drop(gateway);
    database.finish().await;
}
