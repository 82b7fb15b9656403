//! Test support: the same test body runs on SQLite and on PostgreSQL, and on the memory and the
//! Redis shared state.
//!
//! SQLite always runs (a file in a temporary directory). PostgreSQL runs when reachable at
//! `SWITCHYARD_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), each test
//! in a fresh database of its own. When it is not reachable the test says so and skips that
//! backend — unless `CI` is set, where a missing service is a failure.
//!
//! The memory state always runs. Redis runs when reachable at `SWITCHYARD_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), each test under a key prefix of its own (so parallel tests
//! never see each other's keys), with the same skip-or-fail rule.

use crate::db::{ConnectSettings, Database, connect, migrate};
use crate::state::SharedState;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Default PostgreSQL server for tests.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A migrated, empty database for one test.
#[derive(Debug)]
pub struct TestDb {
    /// The connection.
    pub db: Database,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The URL, for starting a gateway process on the same database.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    // Held for its drop: the directory goes when the test database does.
    Sqlite(#[expect(dead_code, reason = "kept only to be dropped")] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// Drops the PostgreSQL database (SQLite files go with their temporary directory).
    pub async fn finish(self) {
        let TestDb { db, cleanup, .. } = self;
        let _ = db.close().await;
        if let Cleanup::Postgres { admin_url, name } = cleanup
            && let Ok(admin) = connect(&admin_url, &ConnectSettings::default()).await
        {
            let _ = admin
                .execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ))
                .await;
            let _ = admin.close().await;
        }
    }
}

/// Whether the environment demands every backend (CI).
pub fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// A fresh, migrated SQLite database.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
    let db = connect(&url, &ConnectSettings::default())
        .await
        .unwrap_or_else(|e| panic!("sqlite connect: {e}"));
    migrate(&db)
        .await
        .unwrap_or_else(|e| panic!("sqlite migrate: {e}"));
    TestDb {
        db,
        backend: "sqlite",
        url,
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// A fresh, migrated PostgreSQL database, or `None` (with a message) when the server is not
/// reachable outside CI.
pub async fn postgres() -> Option<TestDb> {
    let admin_url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let settings = ConnectSettings {
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(3),
    };
    let admin = match connect(&admin_url, &settings).await {
        Ok(admin) => admin,
        Err(e) if services_required() => {
            panic!("PostgreSQL is required (CI is set) but not reachable at {admin_url}: {e}")
        }
        Err(e) => {
            eprintln!("skipping PostgreSQL: not reachable at {admin_url}: {e}");
            return None;
        }
    };
    let name = format!("sy_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("CREATE DATABASE \"{name}\""),
        ))
        .await
        .unwrap_or_else(|e| panic!("create test database: {e}"));
    let _ = admin.close().await;
    let url = database_url(&admin_url, &name);
    let db = connect(&url, &ConnectSettings::default())
        .await
        .unwrap_or_else(|e| panic!("postgres connect: {e}"));
    migrate(&db)
        .await
        .unwrap_or_else(|e| panic!("postgres migrate: {e}"));
    Some(TestDb {
        db,
        backend: "postgres",
        url,
        cleanup: Cleanup::Postgres { admin_url, name },
    })
}

/// Every available backend, SQLite first.
pub async fn all() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    dbs.extend(postgres().await);
    dbs
}

/// The same server URL with another database name.
fn database_url(admin_url: &str, name: &str) -> String {
    match url::Url::parse(admin_url) {
        Ok(mut url) => {
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        Err(_) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
    }
}

/// Default Redis server for tests.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A fresh shared state for one test.
#[derive(Debug)]
pub struct TestState {
    /// The state.
    pub state: SharedState,
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// The Redis URL and key prefix, for starting a gateway process on the same state.
    pub redis: Option<(String, String)>,
}

impl TestState {
    /// Deletes the test's Redis keys (everything under its prefix).
    pub async fn finish(self) {
        if self.redis.is_some()
            && let Err(e) = self.state.clear_all().await
        {
            eprintln!("could not clean up the test's Redis keys: {e}");
        }
    }
}

/// A Redis state under a fresh key prefix, or `None` (with a message) when Redis is not
/// reachable outside CI.
pub async fn redis_state() -> Option<TestState> {
    let url =
        std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let prefix = format!("sy_test:{}:", uuid::Uuid::new_v4().simple());
    match SharedState::redis(&url, &prefix).await {
        Ok(state) => Some(TestState {
            state,
            backend: "redis",
            redis: Some((url, prefix)),
        }),
        // The error already shows the URL, with any password redacted.
        Err(e) if services_required() => panic!("Redis is required (CI is set) but: {e}"),
        Err(e) => {
            eprintln!("skipping Redis: {e}");
            None
        }
    }
}

/// Every available shared-state backend, memory first.
pub async fn state_backends() -> Vec<TestState> {
    let mut states = vec![TestState {
        state: SharedState::memory(),
        backend: "memory",
        redis: None,
    }];
    states.extend(redis_state().await);
    states
}
