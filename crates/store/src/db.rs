//! Connecting to SQLite or PostgreSQL and running the migrations.

use crate::error::StoreError;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use std::time::Duration;
use switchyard_migrations::Migrator;

/// Prepared statements kept per connection: room for the record writer's fixed statement shapes
/// (seven sizes per table, see `records`) and the few other statements of the request path.
/// Not the driver's default of 100: with statements of every batch size it once held hundreds
/// of MiB under load.
const STATEMENT_CACHE: usize = 32;

/// The database handle used everywhere.
pub type Database = DatabaseConnection;

/// Pool and timeout settings for [`connect`].
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection.
    pub acquire_timeout: Duration,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Opens a pool. SQLite runs in WAL mode with `synchronous=NORMAL`, a busy timeout and foreign
/// keys on (the default journal costs ~17 ms per insert on this kind of machine, WAL ~0.4 ms);
/// the file is created if missing. Its temporary files stay in memory: a multi-row insert inside
/// the record writer's transaction keeps a statement journal (a copy of every page it changes,
/// to undo that one statement), which past 64 KiB SQLite spills to a file — one more `pwrite`
/// per page, ~1.5 per request under load, for a journal that lives a few milliseconds.
pub async fn connect(url: &str, settings: &ConnectSettings) -> Result<Database, StoreError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.acquire_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .create_if_missing(true)
                .statement_cache_capacity(STATEMENT_CACHE)
                .pragma("temp_store", "memory")
        })
        .map_sqlx_postgres_opts(|opts| opts.statement_cache_capacity(STATEMENT_CACHE));
    Ok(sea_orm::Database::connect(options).await?)
}

/// Brings the schema up to date. On PostgreSQL an advisory lock makes concurrent starts of
/// several gateways safe: one migrates, the others wait and then find nothing to do. SQLite
/// serialises writers itself.
pub async fn migrate(db: &Database) -> Result<(), StoreError> {
    // An arbitrary constant that names "Switchyard migrations" among advisory locks.
    const LOCK_ID: i64 = 0x5377_6974_6368_7964;
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    if postgres {
        // Hold one connection for lock, migrate and unlock: advisory locks are per session.
        let conn = db.begin().await?;
        conn.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_advisory_xact_lock({LOCK_ID})"),
        ))
        .await?;
        Migrator::up(&conn, None).await?;
        conn.commit().await?;
        return Ok(());
    }
    Migrator::up(db, None).await?;
    Ok(())
}

/// A cheap round trip, for readiness checks.
pub async fn ping(db: &Database) -> Result<(), StoreError> {
    Ok(db.ping().await?)
}

use sea_orm::TransactionTrait;

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sqlx::Row;

    #[tokio::test]
    async fn sqlite_connections_keep_the_settings_the_record_writer_relies_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/settings.db?mode=rwc", dir.path().display());
        let db = connect(&url, &ConnectSettings::default())
            .await
            .expect("connect");
        let pool = db.get_sqlite_connection_pool();
        // Several connections at once, so a setting applied to only the first one would show.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.expect("acquire"));
        }
        for conn in &mut held {
            for (pragma, expected) in [
                ("PRAGMA journal_mode", "wal"),
                ("PRAGMA synchronous", "1"),
                ("PRAGMA temp_store", "2"),
                ("PRAGMA foreign_keys", "1"),
            ] {
                let row = sea_orm::sqlx::query(pragma)
                    .fetch_one(&mut **conn)
                    .await
                    .expect("pragma");
                let value: String = row
                    .try_get::<String, _>(0)
                    .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))
                    .expect("pragma value");
                assert_eq!(value, expected, "{pragma}");
            }
        }
        drop(held);
        db.close().await.expect("close");
    }
}
