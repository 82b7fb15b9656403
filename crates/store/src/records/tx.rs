//! The transaction a batch of records is written in, held on sqlx directly.
//!
//! Through sea-orm, each value of a row was copied three times before the database copied it
//! once more: row → sea-query value → sea-orm's copy of the statement's values → the driver's
//! argument. The rows of the usual path (fresh inserts, nearly every row) are bound here
//! straight from their fields, which copies a string once into the driver's argument and builds
//! no value vectors at all. The rare statements (upserts of rows already stored, spend updates)
//! are still built by sea-query and bound through its sqlx binding.

use super::{AttemptRow, Text, UsageRow};
use crate::db::Database;
use crate::error::StoreError;
use sea_orm::sqlx::postgres::PgArguments;
use sea_orm::sqlx::sqlite::SqliteArguments;
use sea_orm::sqlx::{self, AssertSqlSafe, Postgres, Row as _, Sqlite};
use sea_orm::{DbBackend, DbErr, RuntimeErr, StatementBuilder};
use sea_query_sqlx::SqlxValues;
use std::sync::Arc;

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// A row whose columns are bound straight from its fields, in the column order of its
/// `values()` (which the statement texts are built from).
pub(super) trait BindRow {
    fn bind_sqlite<'q>(&self, query: SqliteQuery<'q>) -> SqliteQuery<'q>;
    fn bind_postgres<'q>(&self, query: PgQuery<'q>) -> PgQuery<'q>;
}

/// Runs the same code on whichever backend's transaction `$tx` holds (the arms differ only in
/// their types).
macro_rules! on_either {
    ($tx:expr, $t:ident => $body:expr) => {
        match $tx {
            Tx::Sqlite($t) => $body,
            Tx::Postgres($t) => $body,
        }
    };
}

/// One open transaction on the database's own pool.
pub(super) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(super) async fn begin(db: &Database) -> Result<Self, StoreError> {
        match db.get_database_backend() {
            DbBackend::Sqlite => Ok(Self::Sqlite(
                db.get_sqlite_connection_pool()
                    .begin()
                    .await
                    .map_err(conn_error)?,
            )),
            DbBackend::Postgres => Ok(Self::Postgres(
                db.get_postgres_connection_pool()
                    .begin()
                    .await
                    .map_err(conn_error)?,
            )),
            other => Err(StoreError::Db(DbErr::Custom(format!(
                "records are not written to {other:?}"
            )))),
        }
    }

    pub(super) fn backend(&self) -> DbBackend {
        match self {
            Self::Sqlite(_) => DbBackend::Sqlite,
            Self::Postgres(_) => DbBackend::Postgres,
        }
    }

    pub(super) async fn commit(self) -> Result<(), StoreError> {
        on_either!(self, tx => tx.commit().await).map_err(exec_error)
    }

    /// Runs `sql` with no arguments.
    async fn plain(&mut self, sql: &'static str) -> Result<(), StoreError> {
        on_either!(self, tx => sqlx::query(sql).execute(&mut **tx).await.map(drop))
            .map_err(exec_error)
    }

    pub(super) async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.plain("SAVEPOINT fresh_rows").await
    }

    pub(super) async fn release(&mut self) -> Result<(), StoreError> {
        self.plain("RELEASE SAVEPOINT fresh_rows").await
    }

    /// Undoes everything since [`Tx::savepoint`] and ends the savepoint.
    pub(super) async fn roll_back_savepoint(&mut self) -> Result<(), StoreError> {
        self.plain("ROLLBACK TO SAVEPOINT fresh_rows").await?;
        self.release().await
    }

    /// Runs the multi-row insert `sql` with `rows` bound in order; returns the rows inserted.
    pub(super) async fn insert_rows<R: BindRow>(
        &mut self,
        sql: &Arc<str>,
        rows: &[&R],
    ) -> Result<u64, StoreError> {
        let sql = AssertSqlSafe(Arc::clone(sql));
        match self {
            Self::Sqlite(tx) => {
                let query = rows
                    .iter()
                    .fold(sqlx::query(sql), |query, row| row.bind_sqlite(query));
                query.execute(&mut **tx).await.map(|r| r.rows_affected())
            }
            Self::Postgres(tx) => {
                let query = rows
                    .iter()
                    .fold(sqlx::query(sql), |query, row| row.bind_postgres(query));
                query.execute(&mut **tx).await.map(|r| r.rows_affected())
            }
        }
        .map_err(exec_error)
    }

    /// Runs a statement sea-query built; returns the rows it affected.
    pub(super) async fn execute(
        &mut self,
        statement: &impl StatementBuilder,
    ) -> Result<u64, StoreError> {
        let (sql, values) = self.build(statement);
        on_either!(self, tx => sqlx::query_with(sql, values)
            .execute(&mut **tx)
            .await
            .map(|r| r.rows_affected()))
        .map_err(exec_error)
    }

    /// Runs a statement sea-query built whose `RETURNING` lists text columns; returns those
    /// columns of each returned row, in order.
    pub(super) async fn returning(
        &mut self,
        statement: &impl StatementBuilder,
        columns: &[&str],
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let (sql, values) = self.build(statement);
        on_either!(self, tx => {
            let rows = sqlx::query_with(sql, values).fetch_all(&mut **tx).await;
            rows.and_then(|rows| {
                rows.iter()
                    .map(|row| columns.iter().map(|c| row.try_get::<String, _>(*c)).collect())
                    .collect()
            })
        })
        .map_err(query_error)
    }

    fn build(&self, statement: &impl StatementBuilder) -> (AssertSqlSafe<String>, SqlxValues) {
        let built = self.backend().build(statement);
        let values = built.values.unwrap_or(sea_orm::Values(Vec::new()));
        (AssertSqlSafe(built.sql), SqlxValues(values))
    }
}

fn conn_error(e: sqlx::Error) -> StoreError {
    StoreError::Db(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))
}

fn exec_error(e: sqlx::Error) -> StoreError {
    StoreError::Db(DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e))))
}

fn query_error(e: sqlx::Error) -> StoreError {
    StoreError::Db(DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))
}

/// A text value for SQLite: sqlx takes an `Arc<str>` as it is (a borrowed string it would copy
/// into a new `String` and box that in an `Arc`: two allocations per value).
fn sqlite_text(text: &Text) -> Arc<str> {
    Arc::clone(text)
}

/// A fixed text (a status name) for SQLite, shared (see [`super::fixed_text`]).
fn sqlite_fixed(text: &'static str) -> Arc<str> {
    super::fixed_text(text)
}

/// A text value for PostgreSQL, whose arguments copy a borrowed string into their buffer.
fn postgres_text(text: &Text) -> &str {
    text
}

/// A fixed text for PostgreSQL.
fn postgres_fixed(text: &'static str) -> &'static str {
    text
}

/// Binds the columns of a [`UsageRow`] in the order of `UsageRow::values`, for one backend.
/// The types are those sea-query's sqlx binding gives the same values, so a row is stored the
/// same whichever path writes it.
macro_rules! bind_usage {
    ($query:expr, $r:expr, $text:path, $fixed:path) => {
        $query
            .bind($text(&$r.request_id))
            .bind($r.client_request_id.as_ref().map($text))
            .bind($r.user_id.as_ref().map($text))
            .bind($r.gateway_key_id.as_ref().map($text))
            .bind($r.provider_name.as_ref().map($text))
            .bind($r.provider_id.as_ref().map($text))
            .bind($r.endpoint_id.as_ref().map($text))
            .bind($r.provider_key_id.as_ref().map($text))
            .bind($text(&$r.model))
            .bind($r.target_model.as_ref().map($text))
            .bind($r.global_model_id.as_ref().map($text))
            .bind($text(&$r.api_format))
            .bind($r.upstream_format.as_ref().map($text))
            .bind($text(&$r.request_type))
            .bind($r.is_stream)
            .bind($fixed($r.status.as_str()))
            .bind($r.status_code)
            .bind($r.error_message.as_ref().map($text))
            .bind($r.input_tokens)
            .bind($r.output_tokens)
            .bind($r.total_tokens)
            .bind($r.cache_creation_input_tokens)
            .bind($r.cache_read_input_tokens)
            .bind($r.reasoning_tokens)
            .bind($r.input_cost_usd)
            .bind($r.output_cost_usd)
            .bind($r.cache_creation_cost_usd)
            .bind($r.cache_read_cost_usd)
            .bind($r.cache_cost_usd)
            .bind($r.request_cost_usd)
            .bind($r.total_cost_usd)
            .bind($r.actual_input_cost_usd)
            .bind($r.actual_output_cost_usd)
            .bind($r.actual_cache_creation_cost_usd)
            .bind($r.actual_cache_read_cost_usd)
            .bind($r.actual_cache_cost_usd)
            .bind($r.actual_request_cost_usd)
            .bind($r.actual_total_cost_usd)
            .bind($r.rate_multiplier)
            .bind($r.input_price_per_1m)
            .bind($r.output_price_per_1m)
            .bind($r.cache_creation_price_per_1m)
            .bind($r.cache_read_price_per_1m)
            .bind($r.price_per_request)
            .bind($r.response_time_ms)
            .bind($r.first_byte_time_ms)
            .bind($r.metadata.as_ref())
            .bind($r.created_at)
            .bind($r.finished_at)
    };
}

/// Binds the columns of an [`AttemptRow`] in the order of `AttemptRow::values`.
macro_rules! bind_attempt {
    ($query:expr, $r:expr, $text:path, $fixed:path) => {
        $query
            .bind($text(&$r.request_id))
            .bind($r.candidate_index)
            .bind($r.retry_index)
            .bind($r.user_id.as_ref().map($text))
            .bind($r.gateway_key_id.as_ref().map($text))
            .bind($text(&$r.provider_id))
            .bind($text(&$r.endpoint_id))
            .bind($r.provider_key_id.as_ref().map($text))
            .bind($fixed($r.status.as_str()))
            .bind($r.skip_reason.as_ref().map($text))
            .bind($r.is_cached)
            .bind($r.status_code)
            .bind($r.error_type.as_ref().map($text))
            .bind($r.error_message.as_ref().map($text))
            .bind($r.latency_ms)
            .bind($r.concurrent_requests)
            .bind($r.required_capabilities.as_ref())
            .bind($r.extra.as_ref())
            .bind($r.created_at)
            .bind($r.started_at)
            .bind($r.finished_at)
    };
}

impl BindRow for UsageRow {
    fn bind_sqlite<'q>(&self, query: SqliteQuery<'q>) -> SqliteQuery<'q> {
        bind_usage!(query, self, sqlite_text, sqlite_fixed)
    }

    fn bind_postgres<'q>(&self, query: PgQuery<'q>) -> PgQuery<'q> {
        bind_usage!(query, self, postgres_text, postgres_fixed)
    }
}

impl BindRow for AttemptRow {
    fn bind_sqlite<'q>(&self, query: SqliteQuery<'q>) -> SqliteQuery<'q> {
        bind_attempt!(query, self, sqlite_text, sqlite_fixed)
    }

    fn bind_postgres<'q>(&self, query: PgQuery<'q>) -> PgQuery<'q> {
        bind_attempt!(query, self, postgres_text, postgres_fixed)
    }
}
