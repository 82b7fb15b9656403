//! Batched record writes on every backend: each test body runs on SQLite and, when available,
//! PostgreSQL.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test code and its helpers: a failed step is a failed test"
)]

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use switchyard_store::Database;
use switchyard_store::entity::{gateway_key, provider, request_attempt, usage, user};
use switchyard_store::records::{
    AttemptRow, AttemptStatus, Batch, SpendDelta, UsageRow, UsageStatus, write_batch,
};
use switchyard_store::testing::{self, TestDb};

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

/// A time with the microsecond precision PostgreSQL keeps.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("in range")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A user with a normal key and a standalone key, and two providers.
async fn seed(db: &Database) {
    let now = t0();
    user::Entity::insert(
        user::Model {
            id: "u1".into(),
            name: "alice".into(),
            email: None,
            role: "user".into(),
            is_active: true,
            allowed_providers: None,
            allowed_endpoints: None,
            allowed_models: None,
            model_capability_settings: None,
            quota_usd: None,
            used_usd: 0.0,
            total_usd: 0.0,
            created_at: now,
            updated_at: now,
        }
        .into_active_model(),
    )
    .exec(db)
    .await
    .expect("user");
    for (id, standalone) in [("gk1", false), ("gk2", true)] {
        gateway_key::Entity::insert(
            gateway_key::Model {
                id: id.into(),
                user_id: "u1".into(),
                name: id.into(),
                key_hash: format!("hash-{id}"),
                key_prefix: "sk-sy".into(),
                is_active: true,
                expires_at: None,
                is_standalone: standalone,
                balance_usd: standalone.then_some(10.0),
                balance_used_usd: 0.0,
                total_requests: 0,
                total_cost_usd: 0.0,
                allowed_providers: None,
                allowed_endpoints: None,
                allowed_api_formats: None,
                allowed_models: None,
                force_capabilities: None,
                last_used_at: None,
                created_at: now,
                updated_at: now,
            }
            .into_active_model(),
        )
        .exec(db)
        .await
        .expect("gateway key");
    }
    for id in ["p1", "p2"] {
        provider::Entity::insert(
            provider::Model {
                id: id.into(),
                name: id.into(),
                description: None,
                is_active: true,
                priority: 0,
                billing_type: "pay_as_you_go".into(),
                monthly_quota_usd: None,
                monthly_used_usd: 0.0,
                quota_reset_day: 1,
                quota_last_reset_at: None,
                quota_expires_at: None,
                created_at: now,
                updated_at: now,
            }
            .into_active_model(),
        )
        .exec(db)
        .await
        .expect("provider");
    }
}

fn usage_row(request_id: &str, status: UsageStatus, at: DateTime<Utc>) -> UsageRow {
    let mut row = UsageRow::new(request_id, "claude-x", "CLAUDE", status, at);
    row.user_id = Some("u1".into());
    row.gateway_key_id = Some("gk1".into());
    row
}

/// A final row with numbers, as the finaliser would send it.
fn finished(request_id: &str, status: UsageStatus, at: DateTime<Utc>) -> UsageRow {
    let mut row = usage_row(request_id, status, at);
    row.provider_id = Some("p1".into());
    row.provider_name = Some("p1".into());
    row.status_code = Some(if status == UsageStatus::Completed {
        200
    } else {
        503
    });
    row.input_tokens = 100;
    row.output_tokens = 20;
    row.total_tokens = 120;
    row.total_cost_usd = 0.5;
    row.actual_total_cost_usd = 0.25;
    row.metadata = Some(serde_json::json!({"client_request_id": "abc"}));
    row.response_time_ms = Some(1234);
    row.finished_at = Some(at + Duration::seconds(1));
    row
}

fn spend(
    request_id: &str,
    key: &str,
    standalone: bool,
    cost: f64,
    at: DateTime<Utc>,
) -> SpendDelta {
    SpendDelta {
        request_id: request_id.into(),
        gateway_key_id: key.into(),
        user_id: "u1".into(),
        standalone,
        cost_usd: cost,
        actual_cost_usd: cost / 2.0,
        provider_id: Some("p1".into()),
        requests: 1,
        last_used_at: at,
    }
}

async fn usage_of(db: &Database, request_id: &str) -> usage::Model {
    usage::Entity::find()
        .filter(usage::Column::RequestId.eq(request_id))
        .one(db)
        .await
        .expect("query")
        .expect("usage row")
}

async fn key(db: &Database, id: &str) -> gateway_key::Model {
    gateway_key::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("key")
}

async fn user_u1(db: &Database) -> user::Model {
    user::Entity::find_by_id("u1")
        .one(db)
        .await
        .expect("query")
        .expect("user")
}

async fn provider_used(db: &Database, id: &str) -> f64 {
    provider::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("provider")
        .monthly_used_usd
}

/// A batch holding only `id`'s pending row.
fn opened(id: &str, at: DateTime<Utc>) -> Batch {
    Batch {
        usage: vec![usage_row(id, UsageStatus::Pending, at)],
        ..Batch::default()
    }
}

#[tokio::test]
async fn pending_then_completed_in_a_later_batch_leaves_one_final_row() {
    for_each_backend(|t| async move {
        seed(&t.db).await;
        let at = t0();
        let opened = opened("r1", at);
        let report = write_batch(&t.db, &opened).await.expect("pending");
        assert_eq!((report.usage_written, report.final_written), (1, 0));
        assert_eq!(usage_of(&t.db, "r1").await.status, "pending");

        let settled = Batch {
            // The final row carries a later created_at: the stored one is kept.
            usage: vec![finished(
                "r1",
                UsageStatus::Completed,
                at + Duration::seconds(5),
            )],
            spend: vec![spend("r1", "gk1", false, 0.5, at)],
            ..Batch::default()
        };
        let report = write_batch(&t.db, &settled).await.expect("completed");
        assert_eq!(
            (
                report.usage_written,
                report.final_written,
                report.spend_applied
            ),
            (1, 1, 1)
        );
        let row = usage_of(&t.db, "r1").await;
        assert_eq!(row.status, "completed");
        assert_eq!(row.status_code, Some(200));
        assert_eq!(
            (row.input_tokens, row.output_tokens, row.total_tokens),
            (100, 20, 120)
        );
        assert!(close(row.total_cost_usd, 0.5));
        assert_eq!(row.provider_id.as_deref(), Some("p1"));
        assert_eq!(
            row.metadata,
            Some(serde_json::json!({"client_request_id": "abc"}))
        );
        assert_eq!(row.created_at, at);
        assert_eq!(usage::Entity::find().count(&t.db).await.expect("count"), 1);
        t
    })
    .await;
}

#[tokio::test]
async fn a_chunk_of_new_rows_and_one_stored_row_is_written_and_charged_exactly_once() {
    for_each_backend(|t| async move {
        seed(&t.db).await;
        let at = t0();
        // r1 was written unfinished by an earlier batch; r2 and r3 are new.
        let opened = opened("r1", at);
        write_batch(&t.db, &opened).await.expect("pending");
        let mut settled = Batch::default();
        for id in ["r1", "r2", "r3"] {
            settled.usage.push(finished(id, UsageStatus::Completed, at));
            settled.spend.push(spend(id, "gk1", false, 0.5, at));
        }
        let report = write_batch(&t.db, &settled).await.expect("settled");
        assert_eq!(
            (
                report.usage_written,
                report.final_written,
                report.spend_applied
            ),
            (3, 3, 3)
        );
        assert_eq!(usage::Entity::find().count(&t.db).await.expect("count"), 3);
        for id in ["r1", "r2", "r3"] {
            assert_eq!(usage_of(&t.db, id).await.status, "completed");
        }
        assert_eq!(key(&t.db, "gk1").await.total_requests, 3);

        // The new rows alone go in as one plain insert.
        let fresh = Batch {
            usage: vec![
                finished("r4", UsageStatus::Completed, at),
                finished("r5", UsageStatus::Failed, at),
            ],
            ..Batch::default()
        };
        let report = write_batch(&t.db, &fresh).await.expect("fresh");
        assert_eq!(
            (
                report.usage_written,
                report.final_written,
                report.statements
            ),
            (2, 2, 1)
        );

        // Replayed: every row is stored and final; nothing moves, nothing is charged again.
        let report = write_batch(&t.db, &settled).await.expect("replay");
        assert_eq!(
            (
                report.usage_written,
                report.final_ignored,
                report.spend_applied
            ),
            (0, 3, 0)
        );
        assert_eq!(key(&t.db, "gk1").await.total_requests, 3);
        t
    })
    .await;
}

#[tokio::test]
async fn a_whole_chain_in_one_batch_ends_final() {
    for_each_backend(|t| async move {
        seed(&t.db).await;
        let at = t0();
        let batch = Batch {
            usage: vec![
                usage_row("r1", UsageStatus::Pending, at),
                usage_row("r1", UsageStatus::Streaming, at),
                finished("r1", UsageStatus::Completed, at),
                // Stale events after the end change nothing.
                usage_row("r1", UsageStatus::Streaming, at),
                finished("r1", UsageStatus::Failed, at),
            ],
            ..Batch::default()
        };
        let report = write_batch(&t.db, &batch).await.expect("batch");
        assert_eq!(report.usage_written, 1);
        assert_eq!(report.usage_ignored, 4);
        assert_eq!((report.final_written, report.final_ignored), (1, 1));
        let row = usage_of(&t.db, "r1").await;
        assert_eq!(
            (row.status.as_str(), row.status_code),
            ("completed", Some(200))
        );

        // A stored streaming row accepts pending-then-completed: the pending is dropped.
        write_batch(
            &t.db,
            &Batch {
                usage: vec![usage_row("r2", UsageStatus::Streaming, at)],
                ..Batch::default()
            },
        )
        .await
        .expect("streaming");
        let report = write_batch(
            &t.db,
            &Batch {
                usage: vec![
                    usage_row("r2", UsageStatus::Pending, at),
                    finished("r2", UsageStatus::Failed, at),
                ],
                ..Batch::default()
            },
        )
        .await
        .expect("settle");
        assert_eq!((report.usage_written, report.final_written), (1, 1));
        assert_eq!(usage_of(&t.db, "r2").await.status, "failed");
        // And a late pending for a streaming row is refused by the stored status.
        write_batch(
            &t.db,
            &Batch {
                usage: vec![usage_row("r3", UsageStatus::Streaming, at)],
                ..Batch::default()
            },
        )
        .await
        .expect("streaming");
        let report = write_batch(
            &t.db,
            &Batch {
                usage: vec![usage_row("r3", UsageStatus::Pending, at)],
                ..Batch::default()
            },
        )
        .await
        .expect("late pending");
        assert_eq!((report.usage_written, report.usage_ignored), (0, 1));
        assert_eq!(usage_of(&t.db, "r3").await.status, "streaming");
        t
    })
    .await;
}

#[tokio::test]
async fn a_late_completed_after_failed_is_ignored_and_charges_nothing() {
    for_each_backend(|t| async move {
        seed(&t.db).await;
        let at = t0();
        let failed = Batch {
            usage: vec![finished("r1", UsageStatus::Failed, at)],
            spend: vec![spend("r1", "gk1", false, 0.5, at)],
            ..Batch::default()
        };
        let report = write_batch(&t.db, &failed).await.expect("failed");
        assert_eq!((report.final_written, report.spend_applied), (1, 1));

        let mut late = finished("r1", UsageStatus::Completed, at);
        late.total_cost_usd = 9.0;
        let report = write_batch(
            &t.db,
            &Batch {
                usage: vec![late],
                spend: vec![spend("r1", "gk1", false, 9.0, at)],
                ..Batch::default()
            },
        )
        .await
        .expect("late completed");
        assert_eq!(
            (
                report.usage_written,
                report.final_written,
                report.final_ignored
            ),
            (0, 0, 1)
        );
        assert_eq!((report.spend_applied, report.spend_ignored), (0, 1));
        let row = usage_of(&t.db, "r1").await;
        assert_eq!(
            (row.status.as_str(), row.status_code),
            ("failed", Some(503))
        );
        assert!(close(row.total_cost_usd, 0.5));
        let k = key(&t.db, "gk1").await;
        assert_eq!(k.total_requests, 1);
        assert!(close(k.total_cost_usd, 0.5));
        assert!(close(user_u1(&t.db).await.used_usd, 0.5));
        t
    })
    .await;
}

#[tokio::test]
async fn attempt_rows_upsert_forward_only() {
    for_each_backend(|t| async move {
        let at = t0();
        let row = |candidate: i32, retry: i32, status: AttemptStatus| {
            let mut r = AttemptRow::new("r1", candidate, retry, "p1", "e1", status, at);
            r.provider_key_id = Some(format!("pk{candidate}").into());
            r
        };
        let mut skipped = row(1, 0, AttemptStatus::Skipped);
        skipped.skip_reason = Some("concurrency_limit".into());
        skipped.required_capabilities = Some(serde_json::json!({"cache_1h": true}));
        let report = write_batch(
            &t.db,
            &Batch {
                attempts: vec![row(0, 0, AttemptStatus::Pending), skipped],
                ..Batch::default()
            },
        )
        .await
        .expect("first");
        assert_eq!(report.attempts_written, 2);

        let mut success = row(0, 0, AttemptStatus::Success);
        success.status_code = Some(200);
        success.latency_ms = Some(321);
        success.finished_at = Some(at + Duration::seconds(1));
        let report = write_batch(
            &t.db,
            &Batch {
                attempts: vec![
                    row(0, 0, AttemptStatus::Streaming),
                    success,
                    row(1, 0, AttemptStatus::Pending), // skipped is final
                    row(0, 1, AttemptStatus::Failed),  // a new retry row
                ],
                ..Batch::default()
            },
        )
        .await
        .expect("second");
        assert_eq!((report.attempts_written, report.attempts_ignored), (2, 2));
        let report = write_batch(
            &t.db,
            &Batch {
                attempts: vec![row(0, 0, AttemptStatus::Failed)],
                ..Batch::default()
            },
        )
        .await
        .expect("third");
        assert_eq!((report.attempts_written, report.attempts_ignored), (0, 1));

        let rows = request_attempt::Entity::find()
            .filter(request_attempt::Column::RequestId.eq("r1"))
            .all(&t.db)
            .await
            .expect("query");
        assert_eq!(rows.len(), 3);
        let get = |c: i32, r: i32| {
            rows.iter()
                .find(|x| x.candidate_index == c && x.retry_index == r)
                .expect("row")
        };
        let first = get(0, 0);
        assert_eq!(
            (first.status.as_str(), first.status_code, first.latency_ms),
            ("success", Some(200), Some(321))
        );
        assert_eq!(first.provider_id.as_deref(), Some("p1"));
        let second = get(1, 0);
        assert_eq!(second.status, "skipped");
        assert_eq!(second.skip_reason.as_deref(), Some("concurrency_limit"));
        assert_eq!(
            second.required_capabilities,
            Some(serde_json::json!({"cache_1h": true}))
        );
        assert_eq!(get(0, 1).status, "failed");
        t
    })
    .await;
}

#[tokio::test]
async fn spend_is_applied_once_and_coalesced() {
    for_each_backend(|t| async move {
        seed(&t.db).await;
        let at = t0();
        let mut batch = Batch::default();
        // Three requests on the normal key, one on the standalone key; one on provider p2.
        for (i, (key_id, standalone, cost)) in [
            ("gk1", false, 0.5),
            ("gk1", false, 0.25),
            ("gk1", false, 1.0),
            ("gk2", true, 2.0),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("r{i}");
            batch.usage.push(finished(&id, UsageStatus::Completed, at));
            let mut delta = spend(
                &id,
                key_id,
                standalone,
                cost,
                at + Duration::seconds(i as i64),
            );
            if i == 2 {
                delta.provider_id = Some("p2".into());
            }
            batch.spend.push(delta);
        }
        // A second delta for a request already charged, and one whose request is not final here.
        batch.spend.push(spend("r0", "gk1", false, 100.0, at));
        batch
            .spend
            .push(spend("not-in-batch", "gk1", false, 100.0, at));

        let report = write_batch(&t.db, &batch).await.expect("batch");
        assert_eq!((report.spend_applied, report.spend_ignored), (4, 2));
        // 1 usage upsert + 2 keys + 1 user + 2 providers: one UPDATE per distinct row.
        assert_eq!(report.statements, 6);

        let k1 = key(&t.db, "gk1").await;
        assert_eq!(k1.total_requests, 3);
        assert!(close(k1.total_cost_usd, 1.75));
        assert!(close(k1.balance_used_usd, 0.0));
        assert_eq!(k1.last_used_at, Some(at + Duration::seconds(2)));
        let k2 = key(&t.db, "gk2").await;
        assert_eq!(k2.total_requests, 1);
        assert!(close(k2.total_cost_usd, 2.0));
        assert!(close(k2.balance_used_usd, 2.0));
        assert_eq!(k2.last_used_at, Some(at + Duration::seconds(3)));
        let u = user_u1(&t.db).await;
        // The standalone key's spend is not the user's.
        assert!(close(u.used_usd, 1.75) && close(u.total_usd, 1.75), "{u:?}");
        assert!(close(
            provider_used(&t.db, "p1").await,
            (0.5 + 0.25 + 2.0) / 2.0
        ));
        assert!(close(provider_used(&t.db, "p2").await, 0.5));

        // The same batch again (a retried flush): every row is already final, nothing is charged.
        let report = write_batch(&t.db, &batch).await.expect("replay");
        assert_eq!((report.usage_written, report.final_ignored), (0, 4));
        assert_eq!((report.spend_applied, report.spend_ignored), (0, 6));
        assert_eq!(key(&t.db, "gk1").await.total_requests, 3);
        assert!(close(user_u1(&t.db).await.used_usd, 1.75));

        // An older last_used_at does not move the stored one back.
        let report = write_batch(
            &t.db,
            &Batch {
                usage: vec![finished("r9", UsageStatus::Completed, at)],
                spend: vec![spend("r9", "gk1", false, 0.0, at - Duration::hours(1))],
                ..Batch::default()
            },
        )
        .await
        .expect("older");
        assert_eq!(report.spend_applied, 1);
        let k1 = key(&t.db, "gk1").await;
        assert_eq!(k1.total_requests, 4);
        assert_eq!(k1.last_used_at, Some(at + Duration::seconds(2)));
        t
    })
    .await;
}

#[tokio::test]
async fn a_thousand_rows_go_in_a_few_statements() {
    for_each_backend(|t| async move {
        let at = t0();
        let n = 1000;
        let batch = Batch {
            usage: (0..n)
                .map(|i| usage_row(&format!("req-{i:04}"), UsageStatus::Pending, at))
                .collect(),
            attempts: (0..n)
                .map(|i| {
                    AttemptRow::new(
                        format!("req-{i:04}"),
                        0,
                        0,
                        "p1",
                        "e1",
                        AttemptStatus::Pending,
                        at,
                    )
                })
                .collect(),
            ..Batch::default()
        };
        let started = std::time::Instant::now();
        let report = write_batch(&t.db, &batch).await.expect("opened");
        let opened_in = started.elapsed();
        assert_eq!((report.usage_written, report.attempts_written), (n, n));
        // Multi-row statements of at most 256 rows (then the powers of two of the rest) —
        // never one per row: 7 per table here (3 × 256, 128, 64, 32, 8).
        assert_eq!(report.statements, 2 * 7, "{report:?}");

        let settled = Batch {
            usage: (0..n)
                .map(|i| finished(&format!("req-{i:04}"), UsageStatus::Completed, at))
                .collect(),
            ..Batch::default()
        };
        let report = write_batch(&t.db, &settled).await.expect("settled");
        assert_eq!(report.final_written, n);
        eprintln!(
            "{}: 1000 usage + 1000 attempt rows in {opened_in:?}",
            t.backend
        );
        assert!(
            opened_in < std::time::Duration::from_secs(20),
            "too slow: {opened_in:?}"
        );
        assert_eq!(usage::Entity::find().count(&t.db).await.expect("count"), n);
        let completed = usage::Entity::find()
            .filter(usage::Column::Status.eq("completed"))
            .count(&t.db)
            .await
            .expect("count");
        assert_eq!(completed, n);
        assert_eq!(
            request_attempt::Entity::find()
                .count(&t.db)
                .await
                .expect("count"),
            n
        );
        t
    })
    .await;
}

#[tokio::test]
async fn an_empty_batch_does_nothing() {
    for_each_backend(|t| async move {
        let report = write_batch(&t.db, &Batch::default()).await.expect("empty");
        assert_eq!(report, Default::default());
        t
    })
    .await;
}

/// Every column of the `table` row of `request_id` but `id`, as the database prints it: what a
/// query comparing stored values sees.
async fn stored_text(
    db: &Database,
    table: &str,
    columns: &[&str],
    request_id: &str,
) -> Vec<Option<String>> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = db.get_database_backend();
    let printed: Vec<String> = columns
        .iter()
        .map(|c| match backend {
            DbBackend::Postgres => format!("\"{c}\"::text"),
            _ => format!("CAST(\"{c}\" AS TEXT)"),
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM \"{table}\" WHERE request_id = '{request_id}'",
        printed.join(", ")
    );
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .expect("query")
        .expect("row");
    (0..columns.len())
        .map(|i| row.try_get_by_index::<Option<String>>(i).expect("text"))
        .collect()
}

fn column_names<C: sea_orm::Iterable + sea_orm::IdenStatic>(skip: &[&str]) -> Vec<&'static str> {
    C::iter()
        .map(|c| c.as_str())
        .filter(|c| !skip.contains(c))
        .collect()
}

/// A usage row with every column set (fractions, JSON, nanosecond times).
fn every_usage_field(request_id: &str, status: UsageStatus, at: DateTime<Utc>) -> UsageRow {
    let mut row = finished(request_id, status, at);
    row.client_request_id = Some("client-1".into());
    row.endpoint_id = Some("e1".into());
    row.provider_key_id = Some("pk1".into());
    row.target_model = Some("claude-x-2025".into());
    row.global_model_id = Some("gm1".into());
    row.upstream_format = Some("OPENAI".into());
    row.is_stream = true;
    row.error_message = Some("it's \"quoted\"".into());
    row.cache_creation_input_tokens = 7;
    row.cache_read_input_tokens = 11;
    row.reasoning_tokens = 3;
    row.input_cost_usd = 0.1234567;
    row.output_cost_usd = 0.0000015;
    row.rate_multiplier = 1.5;
    row.input_price_per_1m = Some(3.0);
    row.output_price_per_1m = Some(15.0);
    row.cache_creation_price_per_1m = Some(3.75);
    row.cache_read_price_per_1m = Some(0.3);
    row.price_per_request = Some(0.01);
    row.first_byte_time_ms = Some(321);
    row.created_at = at + Duration::nanoseconds(123_456_789);
    row.finished_at = Some(at + Duration::nanoseconds(1_987_654_321));
    row
}

fn every_attempt_field(request_id: &str, status: AttemptStatus, at: DateTime<Utc>) -> AttemptRow {
    let mut row = AttemptRow::new(request_id, 0, 0, "p1", "e1", status, at);
    row.user_id = Some("u1".into());
    row.gateway_key_id = Some("gk1".into());
    row.provider_key_id = Some("pk1".into());
    row.skip_reason = Some("none".into());
    row.is_cached = true;
    row.status_code = Some(200);
    row.error_type = Some("none".into());
    row.error_message = Some("ünïcode".into());
    row.latency_ms = Some(42);
    row.concurrent_requests = Some(3);
    row.required_capabilities = Some(serde_json::json!(["vision"]));
    row.extra = Some(serde_json::json!({"converted": {"from": "CLAUDE", "to": "OPENAI"}}));
    row.started_at = Some(at + Duration::microseconds(1));
    row.finished_at = Some(at + Duration::nanoseconds(2_000_000_001));
    row
}

#[tokio::test]
async fn a_row_is_stored_alike_by_a_fresh_insert_and_by_an_update() {
    for_each_backend(|t| async move {
        seed(&t.db).await;
        let at = t0();
        // "fresh" goes in once, final: the usual insert. "updated" is stored pending first, so
        // its final row takes the guarded upsert, built and bound the other way.
        let fresh = Batch {
            usage: vec![every_usage_field("fresh", UsageStatus::Completed, at)],
            attempts: vec![every_attempt_field("fresh", AttemptStatus::Success, at)],
            ..Batch::default()
        };
        write_batch(&t.db, &fresh).await.expect("fresh");
        let opened = Batch {
            usage: vec![every_usage_field("updated", UsageStatus::Pending, at)],
            attempts: vec![every_attempt_field("updated", AttemptStatus::Pending, at)],
            ..Batch::default()
        };
        write_batch(&t.db, &opened).await.expect("opened");
        let settled = Batch {
            usage: vec![every_usage_field("updated", UsageStatus::Completed, at)],
            attempts: vec![every_attempt_field("updated", AttemptStatus::Success, at)],
            ..Batch::default()
        };
        let report = write_batch(&t.db, &settled).await.expect("settled");
        assert_eq!((report.usage_written, report.attempts_written), (1, 1));

        let skip = ["id", "request_id"];
        let columns = column_names::<usage::Column>(&skip);
        let a = stored_text(&t.db, "usage", &columns, "fresh").await;
        let b = stored_text(&t.db, "usage", &columns, "updated").await;
        for ((column, a), b) in columns.iter().zip(&a).zip(&b) {
            assert_eq!(a, b, "usage.{column}");
            assert!(a.is_some(), "usage.{column} is set in the row, so not NULL");
        }
        let columns = column_names::<request_attempt::Column>(&skip);
        let a = stored_text(&t.db, "request_attempts", &columns, "fresh").await;
        let b = stored_text(&t.db, "request_attempts", &columns, "updated").await;
        for ((column, a), b) in columns.iter().zip(&a).zip(&b) {
            assert_eq!(a, b, "request_attempts.{column}");
            assert!(
                a.is_some(),
                "request_attempts.{column} is set in the row, so not NULL"
            );
        }
        // And it reads back as written.
        let stored = usage_of(&t.db, "fresh").await;
        let row = every_usage_field("fresh", UsageStatus::Completed, at);
        assert_eq!(
            stored.client_request_id.as_deref(),
            row.client_request_id.as_deref()
        );
        assert_eq!(stored.metadata, row.metadata);
        assert!(close(stored.input_cost_usd, row.input_cost_usd));
        assert_eq!(
            stored.error_message.as_deref(),
            row.error_message.as_deref()
        );
        t
    })
    .await;
}
