//! Shared hot state on every backend: each test body runs on the memory state and, when
//! reachable, on Redis (under a key prefix of its own).
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test code and its helpers: a failed step is a failed test"
)]

use chrono::{DateTime, Duration as Delta, Utc};
use std::sync::Arc;
use std::time::Duration;
use switchyard_store::state::{
    AffinityKey, AffinityTargetIds, LeaseOutcome, LeaseRequest, RpmOutcome, SharedState,
};
use switchyard_store::testing;

async fn for_each_state<F, Fut>(test: F)
where
    F: Fn(SharedState) -> Fut,
    Fut: Future<Output = ()>,
{
    for t in testing::state_backends().await {
        eprintln!("running on {}", t.backend);
        test(t.state.clone()).await;
        t.finish().await;
    }
}

fn lease(
    key: &str,
    endpoint: &str,
    id: &str,
    key_limit: Option<u32>,
    endpoint_limit: Option<u32>,
) -> LeaseRequest {
    LeaseRequest {
        key_id: key.into(),
        endpoint_id: endpoint.into(),
        lease_id: id.into(),
        key_limit,
        endpoint_limit,
        ttl: Duration::from_secs(60),
    }
}

fn granted(key: u32, endpoint: u32) -> LeaseOutcome {
    LeaseOutcome::Granted {
        key_in_flight: key,
        endpoint_in_flight: endpoint,
    }
}

/// Polls `check` until it holds or `within` passes; the backends expire on their own clocks,
/// so tests wait for the effect instead of sleeping a fixed time.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A wall-clock instant with the millisecond precision the backends keep.
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("in range")
}

#[tokio::test]
async fn leases_are_granted_up_to_each_limit() {
    for_each_state(|s| async move {
        assert_eq!(
            s.acquire(&lease("k1", "e1", "a", Some(2), None))
                .await
                .expect("a"),
            granted(1, 1)
        );
        assert_eq!(
            s.acquire(&lease("k1", "e1", "b", Some(2), None))
                .await
                .expect("b"),
            granted(2, 2)
        );
        assert_eq!(
            s.acquire(&lease("k1", "e1", "c", Some(2), None))
                .await
                .expect("c"),
            LeaseOutcome::KeyFull { in_flight: 2 }
        );
        // Another key on the same endpoint, which allows 3.
        assert_eq!(
            s.acquire(&lease("k2", "e1", "d", None, Some(3)))
                .await
                .expect("d"),
            granted(1, 3)
        );
        assert_eq!(
            s.acquire(&lease("k3", "e1", "e", None, Some(3)))
                .await
                .expect("e"),
            LeaseOutcome::EndpointFull { in_flight: 3 }
        );
        // A limit of 0 admits nothing; no limit admits anything.
        assert_eq!(
            s.acquire(&lease("k4", "e2", "f", Some(0), None))
                .await
                .expect("f"),
            LeaseOutcome::KeyFull { in_flight: 0 }
        );
        assert_eq!(
            s.acquire(&lease("k4", "e2", "g", None, None))
                .await
                .expect("g"),
            granted(1, 1)
        );
        assert_eq!(s.in_flight("k1").await.expect("k1"), 2);
        assert_eq!(s.in_flight("k2").await.expect("k2"), 1);
        assert_eq!(s.in_flight("k3").await.expect("k3"), 0);
        assert_eq!(s.in_flight("nobody").await.expect("nobody"), 0);
        assert_eq!(s.endpoint_in_flight("e1").await.expect("e1"), 3);
        assert_eq!(s.endpoint_in_flight("e2").await.expect("e2"), 1);
    })
    .await;
}

#[tokio::test]
async fn a_refused_lease_takes_nothing_anywhere() {
    for_each_state(|s| async move {
        // Endpoint full: the key gets no lease.
        assert_eq!(
            s.acquire(&lease("k1", "e1", "a", None, Some(1)))
                .await
                .expect("a"),
            granted(1, 1)
        );
        assert_eq!(
            s.acquire(&lease("k2", "e1", "b", Some(5), Some(1)))
                .await
                .expect("b"),
            LeaseOutcome::EndpointFull { in_flight: 1 }
        );
        assert_eq!(s.in_flight("k2").await.expect("k2"), 0);
        // Key full: the endpoint gets no lease.
        assert_eq!(
            s.acquire(&lease("k1", "e2", "c", Some(1), Some(5)))
                .await
                .expect("c"),
            LeaseOutcome::KeyFull { in_flight: 1 }
        );
        assert_eq!(s.endpoint_in_flight("e2").await.expect("e2"), 0);
        assert_eq!(s.in_flight("k1").await.expect("k1"), 1);
        // The endpoint limit is checked first.
        assert_eq!(
            s.acquire(&lease("k1", "e1", "d", Some(1), Some(1)))
                .await
                .expect("d"),
            LeaseOutcome::EndpointFull { in_flight: 1 }
        );
    })
    .await;
}

#[tokio::test]
async fn release_frees_the_slot_and_is_idempotent() {
    for_each_state(|s| async move {
        s.acquire(&lease("k", "e", "a", Some(1), Some(1)))
            .await
            .expect("a");
        assert!(matches!(
            s.acquire(&lease("k", "e", "b", Some(1), Some(1)))
                .await
                .expect("b"),
            LeaseOutcome::EndpointFull { .. }
        ));
        s.release("k", "e", "a").await.expect("release");
        assert_eq!(s.in_flight("k").await.expect("k"), 0);
        assert_eq!(s.endpoint_in_flight("e").await.expect("e"), 0);
        // Twice, or a lease never taken: not an error, and nothing else is freed.
        s.acquire(&lease("k", "e", "b", Some(1), Some(1)))
            .await
            .expect("b again");
        s.release("k", "e", "a").await.expect("double release");
        s.release("k", "e", "never").await.expect("unknown release");
        assert_eq!(s.in_flight("k").await.expect("k"), 1);
        assert_eq!(s.endpoint_in_flight("e").await.expect("e"), 1);
    })
    .await;
}

#[tokio::test]
async fn leases_that_are_never_released_stop_counting_after_their_ttl() {
    for_each_state(|s| async move {
        let short = |id: &str| LeaseRequest {
            ttl: Duration::from_millis(300),
            ..lease("k", "e", id, Some(2), Some(2))
        };
        s.acquire(&short("a")).await.expect("a");
        s.acquire(&short("b")).await.expect("b");
        assert!(matches!(
            s.acquire(&short("c")).await.expect("c"),
            LeaseOutcome::EndpointFull { .. }
        ));
        eventually(Duration::from_secs(5), "leases expire", || {
            let s = s.clone();
            async move {
                s.in_flight("k").await.expect("k") == 0
                    && s.endpoint_in_flight("e").await.expect("e") == 0
            }
        })
        .await;
        assert_eq!(s.acquire(&short("d")).await.expect("d"), granted(1, 1));
    })
    .await;
}

#[tokio::test]
async fn renew_keeps_a_lease_alive_and_never_resurrects_one() {
    for_each_state(|s| async move {
        let ttl = Duration::from_millis(400);
        let req = LeaseRequest {
            ttl,
            ..lease("k", "e", "long", Some(1), None)
        };
        s.acquire(&req).await.expect("acquire");
        // Renew well past the original ttl.
        let until = tokio::time::Instant::now() + Duration::from_millis(1000);
        while tokio::time::Instant::now() < until {
            assert!(
                s.renew("k", "e", "long", ttl).await.expect("renew"),
                "renew of a live lease"
            );
            assert_eq!(s.in_flight("k").await.expect("k"), 1);
            assert_eq!(s.endpoint_in_flight("e").await.expect("e"), 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Left alone, it lapses; renewing it then changes nothing.
        eventually(Duration::from_secs(5), "the lease lapses", || {
            let s = s.clone();
            async move { s.in_flight("k").await.expect("k") == 0 }
        })
        .await;
        assert!(!s.renew("k", "e", "long", ttl).await.expect("late renew"));
        assert!(
            !s.renew("k", "e", "never", ttl)
                .await
                .expect("unknown renew")
        );
        assert_eq!(s.in_flight("k").await.expect("k"), 0);
        assert_eq!(s.endpoint_in_flight("e").await.expect("e"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_acquires_never_exceed_the_limit() {
    for_each_state(|s| async move {
        // 50 tasks race for a key limit of 7 …
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.acquire(&lease("k", "e", &format!("l{i}"), Some(7), Some(100)))
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            if matches!(
                t.await.expect("join").expect("acquire"),
                LeaseOutcome::Granted { .. }
            ) {
                won += 1;
            }
        }
        assert_eq!(won, 7);
        assert_eq!(s.in_flight("k").await.expect("k"), 7);
        assert_eq!(s.endpoint_in_flight("e").await.expect("e"), 7);

        // … and 50 keys race for an endpoint limit of 5.
        let winners = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (s, winners) = (s.clone(), winners.clone());
                tokio::spawn(async move {
                    let key = format!("key{i}");
                    let out = s
                        .acquire(&lease(&key, "e2", "x", Some(3), Some(5)))
                        .await
                        .expect("acquire");
                    if matches!(out, LeaseOutcome::Granted { .. }) {
                        winners.lock().expect("lock").push(key);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join");
        }
        let winners = winners.lock().expect("lock").clone();
        assert_eq!(winners.len(), 5);
        assert_eq!(s.endpoint_in_flight("e2").await.expect("e2"), 5);
        for key in winners {
            assert_eq!(s.in_flight(&key).await.expect("winner"), 1);
        }
    })
    .await;
}

#[tokio::test]
async fn reset_frees_one_key_everywhere_or_everything() {
    for_each_state(|s| async move {
        s.acquire(&lease("k1", "e1", "a", None, None))
            .await
            .expect("a");
        s.acquire(&lease("k1", "e2", "b", None, None))
            .await
            .expect("b");
        s.acquire(&lease("k2", "e1", "c", None, None))
            .await
            .expect("c");
        s.reset_leases(Some("k1")).await.expect("reset k1");
        assert_eq!(s.in_flight("k1").await.expect("k1"), 0);
        assert_eq!(s.in_flight("k2").await.expect("k2"), 1);
        assert_eq!(
            s.endpoint_in_flight("e1").await.expect("e1"),
            1,
            "k1's lease left e1 too"
        );
        assert_eq!(s.endpoint_in_flight("e2").await.expect("e2"), 0);
        s.reset_leases(None).await.expect("reset all");
        assert_eq!(s.in_flight("k2").await.expect("k2"), 0);
        assert_eq!(s.endpoint_in_flight("e1").await.expect("e1"), 0);
    })
    .await;
}

#[tokio::test]
async fn ids_that_would_break_the_member_format_are_refused() {
    for_each_state(|s| async move {
        let bad = lease("k\u{1f}x", "e", "a", None, None);
        assert!(s.acquire(&bad).await.is_err());
        assert_eq!(s.in_flight("k\u{1f}x").await.expect("count"), 0);
    })
    .await;
}

#[tokio::test]
async fn rpm_window_admits_the_limit_per_sixty_seconds() {
    for_each_state(|s| async move {
        let t0 = now_ms();
        let at = |secs: i64| t0 + Delta::seconds(secs);
        for (i, secs) in [0, 1, 2].into_iter().enumerate() {
            assert_eq!(
                s.rpm_admit("k", 3, &format!("r{i}"), at(secs))
                    .await
                    .expect("admit"),
                RpmOutcome::Admitted
            );
        }
        assert_eq!(
            s.rpm_admit("k", 3, "r3", at(3)).await.expect("full"),
            RpmOutcome::Full { retry_at: at(60) }
        );
        // A request already counted is admitted again without counting twice.
        assert_eq!(
            s.rpm_admit("k", 3, "r1", at(4)).await.expect("again"),
            RpmOutcome::Admitted
        );
        // Other keys have their own window.
        assert_eq!(
            s.rpm_admit("other", 3, "r3", at(3)).await.expect("other"),
            RpmOutcome::Admitted
        );
        // At retry_at the oldest has left: one more fits, then the next oldest sets retry_at.
        assert_eq!(
            s.rpm_admit("k", 3, "r3", at(60)).await.expect("slid"),
            RpmOutcome::Admitted
        );
        assert_eq!(
            s.rpm_admit("k", 3, "r4", at(60)).await.expect("full again"),
            RpmOutcome::Full { retry_at: at(61) }
        );
        // Limit 0 never admits.
        assert!(matches!(
            s.rpm_admit("zero", 0, "r", t0).await.expect("zero"),
            RpmOutcome::Full { .. }
        ));
    })
    .await;
}

#[tokio::test]
async fn cooldowns_keep_the_later_time_and_expire() {
    for_each_state(|s| async move {
        let t0 = now_ms();
        let at = |secs: i64| t0 + Delta::seconds(secs);
        s.set_cooldown("k1", at(10)).await.expect("set");
        s.set_cooldown("k1", at(5))
            .await
            .expect("earlier is ignored");
        assert_eq!(
            s.cooldowns(t0).await.expect("list"),
            vec![("k1".to_owned(), at(10))]
        );
        s.set_cooldown("k1", at(20)).await.expect("later wins");
        s.set_cooldown("k2", at(1)).await.expect("k2");
        assert_eq!(
            s.cooldowns(t0).await.expect("list"),
            vec![("k1".to_owned(), at(20)), ("k2".to_owned(), at(1))]
        );
        // Past its end a cool-down is gone (and stays gone for an earlier `now` too: it was purged).
        assert_eq!(
            s.cooldowns(at(2)).await.expect("list"),
            vec![("k1".to_owned(), at(20))]
        );
        assert_eq!(
            s.cooldowns(t0).await.expect("list"),
            vec![("k1".to_owned(), at(20))]
        );
        s.clear_cooldown("k1").await.expect("clear");
        s.clear_cooldown("never").await.expect("clear unknown");
        assert!(s.cooldowns(t0).await.expect("list").is_empty());
    })
    .await;
}

fn aff(client: &str, format: &str) -> AffinityKey {
    AffinityKey {
        affinity_key: client.into(),
        api_format: format.into(),
        global_model_id: "gm-1".into(),
    }
}

fn target(n: u32) -> AffinityTargetIds {
    AffinityTargetIds {
        provider_id: format!("p{n}"),
        endpoint_id: format!("e{n}"),
        provider_key_id: format!("pk{n}"),
    }
}

#[tokio::test]
async fn affinity_slides_overwrites_and_invalidates_only_its_target() {
    for_each_state(|s| async move {
        let k = aff("client", "CLAUDE");
        let ttl = Duration::from_secs(60);
        let t0 = Utc::now();
        assert_eq!(s.affinity_get(&k, t0).await.expect("miss"), None);

        let first = s.affinity_set(&k, &target(1), ttl, t0).await.expect("set");
        assert_eq!((first.request_count, first.created_at), (1, t0));
        assert_eq!(first.target(), target(1));
        assert_eq!(first.expires_at, t0 + Delta::seconds(60));

        // Same target: created_at kept, one more request, expiry pushed.
        let t1 = t0 + Delta::seconds(1);
        let slid = s
            .affinity_set(&k, &target(1), ttl, t1)
            .await
            .expect("slide");
        assert_eq!(
            (slid.request_count, slid.created_at, slid.expires_at),
            (2, t0, t1 + Delta::seconds(60))
        );
        assert_eq!(
            s.affinity_get(&k, t1).await.expect("get"),
            Some(slid.clone())
        );

        // A failure of another target leaves it alone.
        assert!(
            !s.affinity_invalidate(&k, "pk2", "e2")
                .await
                .expect("other target")
        );
        assert!(
            !s.affinity_invalidate(&k, "pk1", "e2")
                .await
                .expect("other endpoint")
        );
        assert!(s.affinity_get(&k, t1).await.expect("get").is_some());

        // Another target overwrites and restarts the count.
        let t2 = t0 + Delta::seconds(2);
        let moved = s
            .affinity_set(&k, &target(2), ttl, t2)
            .await
            .expect("overwrite");
        assert_eq!((moved.request_count, moved.created_at), (1, t2));
        assert_eq!(moved.target(), target(2));
        // The old target's failure no longer erases it; the current target's does.
        assert!(!s.affinity_invalidate(&k, "pk1", "e1").await.expect("stale"));
        assert!(
            s.affinity_invalidate(&k, "pk2", "e2")
                .await
                .expect("current")
        );
        assert_eq!(s.affinity_get(&k, t2).await.expect("gone"), None);
        assert!(
            !s.affinity_invalidate(&k, "pk2", "e2")
                .await
                .expect("already gone")
        );

        // An entry past its expiry (by the caller's clock) reads as a miss, and setting again
        // starts afresh rather than sliding.
        s.affinity_set(&k, &target(3), ttl, t2).await.expect("set");
        let late = t2 + Delta::seconds(61);
        assert_eq!(s.affinity_get(&k, late).await.expect("expired"), None);
        let fresh = s
            .affinity_set(&k, &target(3), ttl, late)
            .await
            .expect("fresh");
        assert_eq!((fresh.request_count, fresh.created_at), (1, late));
    })
    .await;
}

/// Many requests of one client finishing at once (a coding agent's parallel calls) all count,
/// and none of them fails: the entry is one hot key every success updates.
#[tokio::test]
async fn concurrent_successes_of_one_client_all_count() {
    for_each_state(|s| async move {
        let k = aff("busy-client", "OPENAI");
        let ttl = Duration::from_secs(60);
        let now = Utc::now();
        let updates: Vec<_> = (0..64)
            .map(|_| {
                let (s, k) = (s.clone(), k.clone());
                tokio::spawn(async move { s.affinity_set(&k, &target(1), ttl, now).await })
            })
            .collect();
        for update in updates {
            update
                .await
                .expect("task")
                .expect("a concurrent success is recorded");
        }
        let entry = s.affinity_get(&k, now).await.expect("get").expect("live");
        assert_eq!((entry.request_count, entry.created_at), (64, now));
        assert_eq!(entry.target(), target(1));
    })
    .await;
}

#[tokio::test]
async fn affinity_entries_lapse_after_their_ttl() {
    for_each_state(|s| async move {
        let k = aff("client", "OPENAI");
        s.affinity_set(&k, &target(1), Duration::from_millis(300), Utc::now())
            .await
            .expect("set");
        assert!(s.affinity_get(&k, Utc::now()).await.expect("get").is_some());
        eventually(Duration::from_secs(5), "the entry lapses", || {
            let (s, k) = (s.clone(), k.clone());
            async move { s.affinity_get(&k, Utc::now()).await.expect("get").is_none() }
        })
        .await;
        assert!(s.affinity_list(100).await.expect("list").is_empty());
    })
    .await;
}

#[tokio::test]
async fn affinity_admin_lists_and_clears_per_client() {
    for_each_state(|s| async move {
        let ttl = Duration::from_secs(60);
        let now = Utc::now();
        // "client:1" shares a prefix with "client" once joined with ':'; clearing one must not
        // touch the other.
        let keys = [
            aff("client", "CLAUDE"),
            aff("client", "OPENAI"),
            aff("client:1", "CLAUDE"),
        ];
        for (i, k) in keys.iter().enumerate() {
            s.affinity_set(k, &target(i as u32), ttl, now)
                .await
                .expect("set");
        }
        let all = s.affinity_list(100).await.expect("list");
        assert_eq!(
            all.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            keys.to_vec()
        );
        assert_eq!(all[2].1.target(), target(2));
        assert_eq!(s.affinity_list(2).await.expect("limited").len(), 2);

        assert_eq!(
            s.affinity_clear(Some("client")).await.expect("clear one"),
            2
        );
        let left = s.affinity_list(100).await.expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, keys[2]);
        assert_eq!(
            s.affinity_clear(Some("nobody")).await.expect("clear none"),
            0
        );
        assert_eq!(s.affinity_clear(None).await.expect("clear all"), 1);
        assert!(s.affinity_list(100).await.expect("list").is_empty());
    })
    .await;
}

#[tokio::test]
async fn clear_all_forgets_everything() {
    for_each_state(|s| async move {
        let now = Utc::now();
        s.acquire(&lease("k", "e", "a", None, None))
            .await
            .expect("lease");
        s.rpm_admit("k", 5, "r", now).await.expect("rpm");
        s.set_cooldown("k", now + Delta::seconds(30))
            .await
            .expect("cool");
        s.affinity_set(
            &aff("c", "CLAUDE"),
            &target(1),
            Duration::from_secs(60),
            now,
        )
        .await
        .expect("aff");
        assert!(s.clear_all().await.expect("clear") > 0);
        assert_eq!(s.in_flight("k").await.expect("k"), 0);
        assert_eq!(s.endpoint_in_flight("e").await.expect("e"), 0);
        assert!(s.cooldowns(now).await.expect("cool").is_empty());
        assert!(s.affinity_list(10).await.expect("aff").is_empty());
        assert_eq!(
            s.rpm_admit("k", 1, "r2", now).await.expect("rpm"),
            RpmOutcome::Admitted
        );
    })
    .await;
}

#[tokio::test]
async fn redis_errors_and_debug_never_show_the_password() {
    // Nothing listens on port 1: the connect fails, and must not print the password.
    let err = SharedState::redis("redis://user:hunter2-secret@127.0.0.1:1/0", "p:")
        .await
        .expect_err("nothing listens there");
    let shown = format!("{err} {err:?}");
    eprintln!("{err}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(
        shown.contains("redis") && shown.contains("connect"),
        "{shown}"
    );

    if let Some(t) = testing::redis_state().await {
        let shown = format!("{:?}", t.state);
        assert!(shown.contains("RedisState"), "{shown}");
        assert_eq!(t.state.backend(), "redis");
        t.finish().await;
    }
    assert_eq!(SharedState::memory().backend(), "memory");
}
