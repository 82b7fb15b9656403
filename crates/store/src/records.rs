//! Batched writes of per-request records: usage rows, attempt (candidate) rows, and the spend
//! they add to gateway keys, users and providers.
//!
//! The `Recorder` actor buffers per-request events and hands them over as a [`Batch`];
//! [`write_batch`] writes it. Nothing on the request path waits for this.
//!
//! Invariants:
//! - One transaction per batch: a batch lands whole or not at all, so the caller can keep it and
//!   retry after a database outage without double counting.
//! - A usage row's status only moves forward (fixes reference §11.1 #6): `pending → streaming →
//!   completed | failed`, or `pending → completed | failed`; never back, never out of a final
//!   state. A late duplicate `completed` after `failed` is ignored, whatever batch it comes in.
//!   Attempt rows follow the same rule (`skipped`, `success`, `failed` are final).
//! - Spend is applied exactly once per request: by the batch in which its usage row *became*
//!   final, and by no other.
//! - Few statements: rows go in multi-row upserts chunked under the bind-parameter limits, and
//!   spend is one `UPDATE … SET col = col + ?` per distinct gateway key, user and provider.
//!
//! How a batch is written:
//! 1. Usage rows of the same request are collapsed in batch order with the transition rule; the
//!    survivor ("winner") is what the chain would leave whatever the stored status is (the rule
//!    is monotone), so only it needs writing.
//! 2. Winners are written a chunk at a time. First as fresh rows: `INSERT … ON CONFLICT DO
//!    NOTHING` inside a savepoint; when every row of the chunk went in (the usual case: the
//!    Recorder holds unfinished rows back, so most requests are written once), each one was
//!    inserted, and each final one became final here. Otherwise the savepoint is rolled back and
//!    the chunk is upserted with `INSERT … ON CONFLICT (request_id) DO UPDATE … WHERE <stored
//!    status may become the new one> RETURNING request_id, status`. The guard runs in the
//!    database, so it holds even against a concurrent writer; `RETURNING` tells which rows were
//!    inserted or moved (a refused update returns nothing), on SQLite and PostgreSQL alike. The
//!    fresh path exists because returned rows are not free: each crosses from the database
//!    driver to the writer one by one. Fresh rows are bound straight from their fields on the
//!    transaction's sqlx connection ([`tx`]), not through sea-query values.
//! 3. Attempt rows, the same way, keyed by `(request_id, candidate_index, retry_index)`.
//! 4. Spend deltas whose request became final in step 2 are summed per gateway key, user and
//!    provider and applied in id order (a fixed lock order, so concurrent batches on PostgreSQL
//!    cannot deadlock each other).

mod tx;

use crate::db::Database;
use crate::entity::{gateway_key, provider, request_attempt, usage, user};
use crate::error::StoreError;
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashSet};
use sea_orm::DbErr;
use sea_orm::sea_query::{
    Alias, Condition, Expr, ExprTrait, IntoIden, OnConflict, Query, SimpleExpr, Value,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use tx::{BindRow, Tx};

/// Most rows in one multi-row statement. Statements come in a few fixed sizes (this one, then
/// the powers of two below it for the rest of a batch), so each size is parsed once per
/// connection and then served from the prepared-statement cache: with a statement per batch
/// size, parsing thousands of placeholders every batch cost more than writing the rows. Each
/// statement (with its savepoint) is a round trip to the database driver's thread: 256 rows
/// rather than 64 cut a 1024-row batch from ~55 round trips to ~17 (in alternating runs ~5 %
/// less gateway CPU per request, at concurrency 1 and 64 alike). 256 rows of the widest table
/// (usage, 49 columns: 12 544 parameters) stay well below SQLite's 32 766 bind parameters and
/// PostgreSQL's 65 535.
const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Where a request stands, as stored in `usage.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageStatus {
    /// Opened; no byte relayed yet.
    Pending,
    /// A stream is being relayed.
    Streaming,
    /// Final: the client got a successful response.
    Completed,
    /// Final: the client got an error.
    Failed,
}

/// Where one attempt stands, as stored in `request_attempts.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptStatus {
    /// Final: not tried (filtered at resolution, or no concurrency slot).
    Skipped,
    /// Sent upstream, no answer yet.
    Pending,
    /// The upstream stream was accepted and is being relayed.
    Streaming,
    /// Final: this attempt served the request.
    Success,
    /// Final: this attempt failed.
    Failed,
}

/// The forward-only status rule shared by usage and attempt rows.
trait Status: Copy + Sized + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    /// 0 = opened, 1 = relaying, 2 = final.
    fn stage(self) -> u8;

    fn is_final(self) -> bool {
        self.stage() == 2
    }

    /// Whether a row in `self` may be overwritten by a row in `next`: never out of a final
    /// state, never backwards; the same non-final stage may refresh the row.
    fn can_become(self, next: Self) -> bool {
        !self.is_final() && next.stage() >= self.stage()
    }
}

impl Status for UsageStatus {
    const ALL: &'static [Self] = &[
        Self::Pending,
        Self::Streaming,
        Self::Completed,
        Self::Failed,
    ];

    fn as_str(self) -> &'static str {
        UsageStatus::as_str(self)
    }

    fn stage(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Streaming => 1,
            Self::Completed | Self::Failed => 2,
        }
    }
}

impl Status for AttemptStatus {
    const ALL: &'static [Self] = &[
        Self::Skipped,
        Self::Pending,
        Self::Streaming,
        Self::Success,
        Self::Failed,
    ];

    fn as_str(self) -> &'static str {
        AttemptStatus::as_str(self)
    }

    fn stage(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Streaming => 1,
            Self::Skipped | Self::Success | Self::Failed => 2,
        }
    }
}

impl UsageStatus {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Streaming => "streaming",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Back from the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        <Self as Status>::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
    }

    /// `completed` or `failed`.
    pub fn is_final(self) -> bool {
        Status::is_final(self)
    }

    /// Whether a stored row in `self` may be replaced by one in `next`.
    pub fn can_become(self, next: Self) -> bool {
        Status::can_become(self, next)
    }
}

impl AttemptStatus {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Pending => "pending",
            Self::Streaming => "streaming",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }

    /// Back from the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        <Self as Status>::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
    }

    /// `skipped`, `success` or `failed`.
    pub fn is_final(self) -> bool {
        Status::is_final(self)
    }

    /// Whether a stored row in `self` may be replaced by one in `next`.
    pub fn can_become(self, next: Self) -> bool {
        Status::can_become(self, next)
    }
}

/// A text value of a record row. Shared, not owned: the request's ids and names are made once
/// per request and every row repeats them, and SQLite takes an `Arc<str>` argument as it is —
/// so a row's text costs no copy between the request and the database driver.
pub type Text = Arc<str>;

/// The [`Text`] of a fixed name (a format, a status, `chat`): made once per thread, then shared.
pub fn fixed_text(name: &'static str) -> Text {
    thread_local! {
        static MADE: RefCell<Vec<(&'static str, Text)>> = const { RefCell::new(Vec::new()) };
    }
    MADE.with(|made| {
        let mut made = made.borrow_mut();
        if let Some((_, shared)) = made.iter().find(|(made, _)| *made == name) {
            return Arc::clone(shared);
        }
        let shared: Text = Arc::from(name);
        made.push((name, Arc::clone(&shared)));
        shared
    })
}

/// A text column's value for a statement sea-query builds (the rare upsert path).
fn text_value(text: Option<&str>) -> Value {
    text.map(str::to_owned).into()
}

/// One attempt (candidate × retry) of a request, as a full row; a later row for the same
/// `(request_id, candidate_index, retry_index)` replaces an earlier one.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    /// The request (128-bit, gateway-generated).
    pub request_id: Text,
    /// Position in the ordered candidate list, 0-based.
    pub candidate_index: i32,
    /// Attempt on this candidate, 0-based.
    pub retry_index: i32,
    /// The key's owner.
    pub user_id: Option<Text>,
    /// The client's gateway key.
    pub gateway_key_id: Option<Text>,
    /// Candidate provider.
    pub provider_id: Text,
    /// Candidate endpoint.
    pub endpoint_id: Text,
    /// Candidate provider key.
    pub provider_key_id: Option<Text>,
    /// Where the attempt stands.
    pub status: AttemptStatus,
    /// Why it was skipped.
    pub skip_reason: Option<Text>,
    /// Whether the candidate was the client's cache-affinity target.
    pub is_cached: bool,
    /// Upstream HTTP status.
    pub status_code: Option<i32>,
    /// Error class name.
    pub error_type: Option<Text>,
    /// Error detail.
    pub error_message: Option<Text>,
    /// Time to the upstream answer.
    pub latency_ms: Option<i64>,
    /// Key concurrency observed when the attempt started.
    pub concurrent_requests: Option<i32>,
    /// Capabilities the request required (only the `true` ones; `None` if none).
    pub required_capabilities: Option<serde_json::Value>,
    /// Anything else worth keeping.
    pub extra: Option<serde_json::Value>,
    /// When the candidate was resolved.
    pub created_at: DateTime<Utc>,
    /// When the attempt was sent.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl AttemptRow {
    /// A row with every optional field empty.
    pub fn new(
        request_id: impl Into<Text>,
        candidate_index: i32,
        retry_index: i32,
        provider_id: impl Into<Text>,
        endpoint_id: impl Into<Text>,
        status: AttemptStatus,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            candidate_index,
            retry_index,
            user_id: None,
            gateway_key_id: None,
            provider_id: provider_id.into(),
            endpoint_id: endpoint_id.into(),
            provider_key_id: None,
            status,
            skip_reason: None,
            is_cached: false,
            status_code: None,
            error_type: None,
            error_message: None,
            latency_ms: None,
            concurrent_requests: None,
            required_capabilities: None,
            extra: None,
            created_at,
            started_at: None,
            finished_at: None,
        }
    }

    fn values(&self) -> Vec<(request_attempt::Column, Value)> {
        use request_attempt::Column as C;
        vec![
            (C::RequestId, text_value(Some(&self.request_id))),
            (C::CandidateIndex, self.candidate_index.into()),
            (C::RetryIndex, self.retry_index.into()),
            (C::UserId, text_value(self.user_id.as_deref())),
            (C::GatewayKeyId, text_value(self.gateway_key_id.as_deref())),
            (C::ProviderId, text_value(Some(&self.provider_id))),
            (C::EndpointId, text_value(Some(&self.endpoint_id))),
            (
                C::ProviderKeyId,
                text_value(self.provider_key_id.as_deref()),
            ),
            (C::Status, self.status.as_str().into()),
            (C::SkipReason, text_value(self.skip_reason.as_deref())),
            (C::IsCached, self.is_cached.into()),
            (C::StatusCode, self.status_code.into()),
            (C::ErrorType, text_value(self.error_type.as_deref())),
            (C::ErrorMessage, text_value(self.error_message.as_deref())),
            (C::LatencyMs, self.latency_ms.into()),
            (C::ConcurrentRequests, self.concurrent_requests.into()),
            (
                C::RequiredCapabilities,
                self.required_capabilities.clone().into(),
            ),
            (C::Extra, self.extra.clone().into()),
            (C::CreatedAt, self.created_at.into()),
            (C::StartedAt, self.started_at.into()),
            (C::FinishedAt, self.finished_at.into()),
        ]
    }
}

/// One request's usage record, as a full row (every column of [`usage::Model`] but `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// The request (unique).
    pub request_id: Text,
    /// The id the client sent, kept as metadata only (never a key).
    pub client_request_id: Option<Text>,
    /// The key's owner.
    pub user_id: Option<Text>,
    /// The client's gateway key.
    pub gateway_key_id: Option<Text>,
    /// Serving provider's name at the time.
    pub provider_name: Option<Text>,
    /// Serving provider.
    pub provider_id: Option<Text>,
    /// Serving endpoint.
    pub endpoint_id: Option<Text>,
    /// Serving provider key.
    pub provider_key_id: Option<Text>,
    /// Model as requested by the client.
    pub model: Text,
    /// Model name sent upstream, if mapped.
    pub target_model: Option<Text>,
    /// Resolved global model.
    pub global_model_id: Option<Text>,
    /// The client's API format.
    pub api_format: Text,
    /// The upstream's API format, if converted.
    pub upstream_format: Option<Text>,
    /// `chat`, …
    pub request_type: Text,
    /// Whether the client asked for a stream.
    pub is_stream: bool,
    /// Where the request stands.
    pub status: UsageStatus,
    /// The status code the client received.
    pub status_code: Option<i32>,
    /// Error detail for failed requests.
    pub error_message: Option<Text>,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Input + output.
    pub total_tokens: i64,
    /// Tokens written to the upstream cache.
    pub cache_creation_input_tokens: i64,
    /// Tokens read from the upstream cache.
    pub cache_read_input_tokens: i64,
    /// Reasoning tokens (part of output).
    pub reasoning_tokens: i64,
    /// Nominal input cost.
    pub input_cost_usd: f64,
    /// Nominal output cost.
    pub output_cost_usd: f64,
    /// Nominal cache-write cost.
    pub cache_creation_cost_usd: f64,
    /// Nominal cache-read cost.
    pub cache_read_cost_usd: f64,
    /// Creation + read.
    pub cache_cost_usd: f64,
    /// Nominal per-request cost.
    pub request_cost_usd: f64,
    /// Nominal total: what the user is charged.
    pub total_cost_usd: f64,
    /// Actual input cost (× multiplier).
    pub actual_input_cost_usd: f64,
    /// Actual output cost.
    pub actual_output_cost_usd: f64,
    /// Actual cache-write cost.
    pub actual_cache_creation_cost_usd: f64,
    /// Actual cache-read cost.
    pub actual_cache_read_cost_usd: f64,
    /// Actual cache cost.
    pub actual_cache_cost_usd: f64,
    /// Actual per-request cost.
    pub actual_request_cost_usd: f64,
    /// Actual total: what the provider accumulates.
    pub actual_total_cost_usd: f64,
    /// Provider rate multiplier applied.
    pub rate_multiplier: f64,
    /// Price snapshot: input per million tokens.
    pub input_price_per_1m: Option<f64>,
    /// Price snapshot: output per million tokens.
    pub output_price_per_1m: Option<f64>,
    /// Price snapshot: cache write per million tokens.
    pub cache_creation_price_per_1m: Option<f64>,
    /// Price snapshot: cache read per million tokens.
    pub cache_read_price_per_1m: Option<f64>,
    /// Price snapshot: per request.
    pub price_per_request: Option<f64>,
    /// Total time to the last byte.
    pub response_time_ms: Option<i64>,
    /// Time to the first byte.
    pub first_byte_time_ms: Option<i64>,
    /// Free-form request metadata.
    pub metadata: Option<serde_json::Value>,
    /// When the request arrived. Kept from the first write of the row.
    pub created_at: DateTime<Utc>,
    /// When it was settled.
    pub finished_at: Option<DateTime<Utc>>,
}

impl UsageRow {
    /// A `chat` row with zero tokens and costs, a rate multiplier of 1 and no optional field.
    pub fn new(
        request_id: impl Into<Text>,
        model: impl Into<Text>,
        api_format: impl Into<Text>,
        status: UsageStatus,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            client_request_id: None,
            user_id: None,
            gateway_key_id: None,
            provider_name: None,
            provider_id: None,
            endpoint_id: None,
            provider_key_id: None,
            model: model.into(),
            target_model: None,
            global_model_id: None,
            api_format: api_format.into(),
            upstream_format: None,
            request_type: fixed_text("chat"),
            is_stream: false,
            status,
            status_code: None,
            error_message: None,
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            reasoning_tokens: 0,
            input_cost_usd: 0.0,
            output_cost_usd: 0.0,
            cache_creation_cost_usd: 0.0,
            cache_read_cost_usd: 0.0,
            cache_cost_usd: 0.0,
            request_cost_usd: 0.0,
            total_cost_usd: 0.0,
            actual_input_cost_usd: 0.0,
            actual_output_cost_usd: 0.0,
            actual_cache_creation_cost_usd: 0.0,
            actual_cache_read_cost_usd: 0.0,
            actual_cache_cost_usd: 0.0,
            actual_request_cost_usd: 0.0,
            actual_total_cost_usd: 0.0,
            rate_multiplier: 1.0,
            input_price_per_1m: None,
            output_price_per_1m: None,
            cache_creation_price_per_1m: None,
            cache_read_price_per_1m: None,
            price_per_request: None,
            response_time_ms: None,
            first_byte_time_ms: None,
            metadata: None,
            created_at,
            finished_at: None,
        }
    }

    fn values(&self) -> Vec<(usage::Column, Value)> {
        use usage::Column as C;
        vec![
            (C::RequestId, text_value(Some(&self.request_id))),
            (
                C::ClientRequestId,
                text_value(self.client_request_id.as_deref()),
            ),
            (C::UserId, text_value(self.user_id.as_deref())),
            (C::GatewayKeyId, text_value(self.gateway_key_id.as_deref())),
            (C::ProviderName, text_value(self.provider_name.as_deref())),
            (C::ProviderId, text_value(self.provider_id.as_deref())),
            (C::EndpointId, text_value(self.endpoint_id.as_deref())),
            (
                C::ProviderKeyId,
                text_value(self.provider_key_id.as_deref()),
            ),
            (C::Model, text_value(Some(&self.model))),
            (C::TargetModel, text_value(self.target_model.as_deref())),
            (
                C::GlobalModelId,
                text_value(self.global_model_id.as_deref()),
            ),
            (C::ApiFormat, text_value(Some(&self.api_format))),
            (
                C::UpstreamFormat,
                text_value(self.upstream_format.as_deref()),
            ),
            (C::RequestType, text_value(Some(&self.request_type))),
            (C::IsStream, self.is_stream.into()),
            (C::Status, self.status.as_str().into()),
            (C::StatusCode, self.status_code.into()),
            (C::ErrorMessage, text_value(self.error_message.as_deref())),
            (C::InputTokens, self.input_tokens.into()),
            (C::OutputTokens, self.output_tokens.into()),
            (C::TotalTokens, self.total_tokens.into()),
            (
                C::CacheCreationInputTokens,
                self.cache_creation_input_tokens.into(),
            ),
            (C::CacheReadInputTokens, self.cache_read_input_tokens.into()),
            (C::ReasoningTokens, self.reasoning_tokens.into()),
            (C::InputCostUsd, self.input_cost_usd.into()),
            (C::OutputCostUsd, self.output_cost_usd.into()),
            (C::CacheCreationCostUsd, self.cache_creation_cost_usd.into()),
            (C::CacheReadCostUsd, self.cache_read_cost_usd.into()),
            (C::CacheCostUsd, self.cache_cost_usd.into()),
            (C::RequestCostUsd, self.request_cost_usd.into()),
            (C::TotalCostUsd, self.total_cost_usd.into()),
            (C::ActualInputCostUsd, self.actual_input_cost_usd.into()),
            (C::ActualOutputCostUsd, self.actual_output_cost_usd.into()),
            (
                C::ActualCacheCreationCostUsd,
                self.actual_cache_creation_cost_usd.into(),
            ),
            (
                C::ActualCacheReadCostUsd,
                self.actual_cache_read_cost_usd.into(),
            ),
            (C::ActualCacheCostUsd, self.actual_cache_cost_usd.into()),
            (C::ActualRequestCostUsd, self.actual_request_cost_usd.into()),
            (C::ActualTotalCostUsd, self.actual_total_cost_usd.into()),
            (C::RateMultiplier, self.rate_multiplier.into()),
            (C::InputPricePer1m, self.input_price_per_1m.into()),
            (C::OutputPricePer1m, self.output_price_per_1m.into()),
            (
                C::CacheCreationPricePer1m,
                self.cache_creation_price_per_1m.into(),
            ),
            (C::CacheReadPricePer1m, self.cache_read_price_per_1m.into()),
            (C::PricePerRequest, self.price_per_request.into()),
            (C::ResponseTimeMs, self.response_time_ms.into()),
            (C::FirstByteTimeMs, self.first_byte_time_ms.into()),
            (C::Metadata, self.metadata.clone().into()),
            (C::CreatedAt, self.created_at.into()),
            (C::FinishedAt, self.finished_at.into()),
        ]
    }
}

/// What one settled request adds to its gateway key, its user (unless the key is standalone)
/// and its provider. Applied only together with the request's final usage row (see
/// [`write_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SpendDelta {
    /// The request this spend belongs to: the delta is applied only by the batch in which this
    /// request's usage row becomes final, which is what makes it exactly-once.
    pub request_id: Text,
    /// The client's gateway key.
    pub gateway_key_id: Text,
    /// The key's owner.
    pub user_id: Text,
    /// A standalone key has its own balance: it is charged instead of the user.
    pub standalone: bool,
    /// Nominal cost (what the client is charged).
    pub cost_usd: f64,
    /// Actual cost (what the provider accumulates).
    pub actual_cost_usd: f64,
    /// The serving provider, if any.
    pub provider_id: Option<Text>,
    /// Requests to count on the key (normally 1).
    pub requests: i64,
    /// When the key was used.
    pub last_used_at: DateTime<Utc>,
}

/// Everything the Recorder flushes at once. Order inside each list is the order events
/// happened: a later row for the same request (or attempt) supersedes an earlier one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Usage rows.
    pub usage: Vec<UsageRow>,
    /// Attempt rows.
    pub attempts: Vec<AttemptRow>,
    /// Spend of requests settled in this batch.
    pub spend: Vec<SpendDelta>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.usage.is_empty() && self.attempts.is_empty() && self.spend.is_empty()
    }
}

/// What [`write_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Usage rows inserted or moved forward.
    pub usage_written: u64,
    /// Usage rows of the batch not written: superseded inside the batch, or refused by the
    /// stored status.
    pub usage_ignored: u64,
    /// Of the written usage rows, those that made a request final (`completed`/`failed`).
    pub final_written: u64,
    /// Final usage rows of the batch that were ignored (e.g. a late `completed` after `failed`).
    pub final_ignored: u64,
    /// Attempt rows inserted or moved forward.
    pub attempts_written: u64,
    /// Attempt rows not written.
    pub attempts_ignored: u64,
    /// Spend deltas applied.
    pub spend_applied: u64,
    /// Spend deltas dropped because their request did not become final in this batch (already
    /// final before, or not in the batch), or a second delta for the same request.
    pub spend_ignored: u64,
    /// SQL statements executed (begin and commit not counted): stays small whatever the batch
    /// size.
    pub statements: u64,
}

/// Writes one batch in one transaction (see the module docs for the rules and the steps).
pub async fn write_batch(db: &Database, batch: &Batch) -> Result<WriteReport, StoreError> {
    let mut report = WriteReport::default();
    if batch.is_empty() {
        return Ok(report);
    }
    let mut txn = Tx::begin(db).await?;

    // Rows go in in the order of their identity. Request ids are time-ordered, so the inserts
    // into every index (identity, and creation time alone or after a key, user or provider)
    // then come in order at its end, instead of in the order requests finished, scattered
    // over its last pages (~1 % fewer instructions per request).
    // 1–2. Usage.
    let (mut winners, superseded) = collapse(&batch.usage, |r| &*r.request_id, |r| r.status);
    winners.sort_unstable_by(|a, b| a.request_id.cmp(&b.request_id));
    report.usage_ignored += superseded.len() as u64;
    report.final_ignored += superseded.iter().filter(|r| r.status.is_final()).count() as u64;
    let became_final = write_usage(&mut txn, &winners, &mut report).await?;

    // 3. Attempts.
    let (mut winners, superseded) = collapse(
        &batch.attempts,
        |r| (&*r.request_id, r.candidate_index, r.retry_index),
        |r| r.status,
    );
    winners.sort_unstable_by(|a, b| {
        (&a.request_id, a.candidate_index, a.retry_index).cmp(&(
            &b.request_id,
            b.candidate_index,
            b.retry_index,
        ))
    });
    report.attempts_ignored += superseded.len() as u64;
    write_attempts(&mut txn, &winners, &mut report).await?;

    // 4. Spend.
    apply_spend(&mut txn, &batch.spend, &became_final, &mut report).await?;

    txn.commit().await?;
    Ok(report)
}

/// Keeps, per identity, the row the forward-only rule leaves after applying the rows in order
/// (first seen first in the result), and returns the rows it superseded.
fn collapse<'a, R, K, S>(
    rows: &'a [R],
    key: impl Fn(&'a R) -> K,
    status: impl Fn(&R) -> S,
) -> (Vec<&'a R>, Vec<&'a R>)
where
    K: std::hash::Hash + Eq,
    S: Status,
{
    let mut slot: HashMap<K, usize> =
        HashMap::with_capacity_and_hasher(rows.len(), Default::default());
    let mut winners: Vec<&R> = Vec::with_capacity(rows.len());
    let mut superseded = Vec::new();
    for row in rows {
        match slot.get(&key(row)) {
            None => {
                slot.insert(key(row), winners.len());
                winners.push(row);
            }
            Some(&i) => {
                if status(winners[i]).can_become(status(row)) {
                    superseded.push(std::mem::replace(&mut winners[i], row));
                } else {
                    superseded.push(row);
                }
            }
        }
    }
    (winners, superseded)
}

/// `(stored.status = p AND excluded.status IN (successors of p)) OR …`, generated from the same
/// rule [`collapse`] uses, so the database and the batch logic cannot disagree.
fn transition_guard<S: Status>(
    table: impl IntoIden + Clone,
    status: impl IntoIden + Clone,
) -> Condition {
    let mut any = Condition::any();
    for &from in S::ALL {
        let to: Vec<&'static str> = S::ALL
            .iter()
            .filter(|next| from.can_become(**next))
            .map(|next| next.as_str())
            .collect();
        if to.is_empty() {
            continue;
        }
        any = any.add(
            Expr::col((table.clone(), status.clone()))
                .eq(from.as_str())
                .and(Expr::col((Alias::new("excluded"), status.clone())).is_in(to)),
        );
    }
    any
}

/// Splits `rows` into statements of [`MAX_ROWS_PER_STATEMENT`] rows, then of the powers of two
/// that make up the remainder (largest first): at most nine statement shapes per table.
fn fixed_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= MAX_ROWS_PER_STATEMENT {
            MAX_ROWS_PER_STATEMENT
        } else {
            // The largest power of two not above what is left.
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(DbErr::Custom(format!("building a record statement: {e}")))
}

/// The multi-row `INSERT` of `rows` into `table`, with `columns` (each row's `values` in that
/// order).
fn plain_insert<R, C: IntoIden + Copy>(
    table: impl sea_orm::sea_query::IntoTableRef,
    columns: &[C],
    rows: &[&R],
    values: impl Fn(&R) -> Vec<(C, Value)>,
) -> Result<sea_orm::sea_query::InsertStatement, StoreError> {
    let mut insert = Query::insert();
    insert.into_table(table).columns(columns.iter().copied());
    for row in rows {
        insert
            .values(values(row).into_iter().map(|(_, v)| SimpleExpr::from(v)))
            .map_err(build_error)?;
    }
    Ok(insert)
}

/// The text of the fresh insert of `rows` rows into `table` on `backend`, made by `build` the
/// first time. Batches come in a few fixed chunk sizes (see [`fixed_chunks`]), so there are a
/// handful of texts; building the statement anew for every chunk cost more CPU than SQLite
/// spent running it.
fn fresh_insert_sql(
    backend: sea_orm::DbBackend,
    table: &'static str,
    rows: usize,
    build: impl FnOnce() -> Result<String, StoreError>,
) -> Result<std::sync::Arc<str>, StoreError> {
    type Texts = HashMap<(u8, &'static str, usize), std::sync::Arc<str>>;
    static TEXTS: std::sync::LazyLock<std::sync::Mutex<Texts>> =
        std::sync::LazyLock::new(Default::default);
    // The backend has no `Hash`; its placeholders are what differs.
    let dialect = match backend {
        sea_orm::DbBackend::Postgres => 0,
        sea_orm::DbBackend::Sqlite => 1,
        _ => 2,
    };
    let key = (dialect, table, rows);
    if let Some(sql) = TEXTS.lock().ok().and_then(|t| t.get(&key).cloned()) {
        return Ok(sql);
    }
    let sql: std::sync::Arc<str> = build()?.into();
    if let Ok(mut texts) = TEXTS.lock() {
        texts.insert(key, sql.clone());
    }
    Ok(sql)
}

/// Inserts `rows` into `table` inside a savepoint if none of them exists yet (`true`);
/// otherwise leaves nothing written (`false`). `build` makes the plain multi-row insert of these
/// rows, used once per shape for its text; `identity` is the conflict target. The rows are bound
/// straight from their fields (see [`tx`]).
async fn insert_fresh<R: BindRow>(
    txn: &mut Tx,
    table: &'static str,
    rows: &[&R],
    build: impl FnOnce() -> Result<sea_orm::sea_query::InsertStatement, StoreError>,
    mut identity: OnConflict,
    report: &mut WriteReport,
) -> Result<bool, StoreError> {
    let backend = txn.backend();
    let sql = fresh_insert_sql(backend, table, rows.len(), || {
        let mut insert = build()?;
        insert.on_conflict(identity.do_nothing().to_owned());
        Ok(backend.build(&insert).sql)
    })?;
    txn.savepoint().await?;
    let inserted = txn.insert_rows(&sql, rows).await?;
    report.statements += 1;
    if inserted == rows.len() as u64 {
        txn.release().await?;
        Ok(true)
    } else {
        txn.roll_back_savepoint().await?;
        Ok(false)
    }
}

/// Upserts the usage winners; returns the request ids that became final here.
async fn write_usage(
    txn: &mut Tx,
    winners: &[&UsageRow],
    report: &mut WriteReport,
) -> Result<HashSet<Text>, StoreError> {
    let mut became_final = HashSet::default();
    let Some(first) = winners.first() else {
        return Ok(became_final);
    };
    let columns: Vec<usage::Column> = first.values().into_iter().map(|(c, _)| c).collect();
    // Everything but the identity and the arrival time, which the first write fixed.
    let updates: Vec<usage::Column> = columns
        .iter()
        .copied()
        .filter(|c| !matches!(c, usage::Column::RequestId | usage::Column::CreatedAt))
        .collect();
    let guard = transition_guard::<UsageStatus>(usage::Entity, usage::Column::Status);
    for chunk in fixed_chunks(winners) {
        let build = || plain_insert(usage::Entity, &columns, chunk, UsageRow::values);
        let identity = OnConflict::column(usage::Column::RequestId);
        if insert_fresh(txn, "usage", chunk, build, identity, report).await? {
            report.usage_written += chunk.len() as u64;
            for row in chunk.iter().filter(|r| r.status.is_final()) {
                report.final_written += 1;
                became_final.insert(row.request_id.clone());
            }
            continue;
        }
        let mut insert = build()?;
        insert
            .on_conflict(
                OnConflict::column(usage::Column::RequestId)
                    .update_columns(updates.clone())
                    .action_cond_where(guard.clone())
                    .to_owned(),
            )
            .returning(
                Query::returning().columns([usage::Column::RequestId, usage::Column::Status]),
            );
        let written = txn.returning(&insert, &["request_id", "status"]).await?;
        report.statements += 1;
        report.usage_written += written.len() as u64;
        report.usage_ignored += (chunk.len() - written.len()) as u64;
        let mut final_here = 0u64;
        for row in written {
            let [request_id, status]: [String; 2] = row
                .try_into()
                .map_err(|_| build_error("RETURNING gave another number of columns"))?;
            if UsageStatus::parse(&status).is_some_and(UsageStatus::is_final) {
                final_here += 1;
                became_final.insert(Text::from(request_id));
            }
        }
        let final_in_chunk = chunk.iter().filter(|r| r.status.is_final()).count() as u64;
        report.final_written += final_here;
        report.final_ignored += final_in_chunk.saturating_sub(final_here);
    }
    Ok(became_final)
}

async fn write_attempts(
    txn: &mut Tx,
    winners: &[&AttemptRow],
    report: &mut WriteReport,
) -> Result<(), StoreError> {
    use request_attempt::Column as A;
    let Some(first) = winners.first() else {
        return Ok(());
    };
    let columns: Vec<A> = first.values().into_iter().map(|(c, _)| c).collect();
    let identity = [A::RequestId, A::CandidateIndex, A::RetryIndex];
    let updates: Vec<A> = columns
        .iter()
        .copied()
        .filter(|c| {
            !matches!(
                c,
                A::RequestId | A::CandidateIndex | A::RetryIndex | A::CreatedAt
            )
        })
        .collect();
    let guard = transition_guard::<AttemptStatus>(request_attempt::Entity, A::Status);
    for chunk in fixed_chunks(winners) {
        let build = || plain_insert(request_attempt::Entity, &columns, chunk, AttemptRow::values);
        let target = OnConflict::columns(identity);
        if insert_fresh(txn, "attempts", chunk, build, target, report).await? {
            report.attempts_written += chunk.len() as u64;
            continue;
        }
        let mut insert = build()?;
        insert
            .on_conflict(
                OnConflict::columns(identity)
                    .update_columns(updates.clone())
                    .action_cond_where(guard.clone())
                    .to_owned(),
            )
            .returning(Query::returning().columns([A::RequestId]));
        let written = txn.returning(&insert, &["request_id"]).await?;
        report.statements += 1;
        report.attempts_written += written.len() as u64;
        report.attempts_ignored += (chunk.len() - written.len()) as u64;
    }
    Ok(())
}

/// Sums of one gateway key's deltas.
#[derive(Default)]
struct KeySpend {
    requests: i64,
    cost: f64,
    /// The standalone part, charged to the key's own balance.
    balance: f64,
    last_used_at: Option<DateTime<Utc>>,
}

async fn apply_spend(
    txn: &mut Tx,
    deltas: &[SpendDelta],
    became_final: &HashSet<Text>,
    report: &mut WriteReport,
) -> Result<(), StoreError> {
    // BTreeMaps: updates run in id order, a fixed lock order across concurrent batches.
    let mut keys: BTreeMap<&str, KeySpend> = BTreeMap::new();
    let mut users: BTreeMap<&str, f64> = BTreeMap::new();
    let mut providers: BTreeMap<&str, f64> = BTreeMap::new();
    let mut charged: HashSet<&str> = HashSet::default();
    for d in deltas {
        if !became_final.contains(&*d.request_id) || !charged.insert(&*d.request_id) {
            report.spend_ignored += 1;
            continue;
        }
        report.spend_applied += 1;
        let key = keys.entry(&*d.gateway_key_id).or_default();
        key.requests += d.requests;
        key.cost += d.cost_usd;
        key.last_used_at = Ord::max(key.last_used_at, Some(d.last_used_at));
        if d.standalone {
            key.balance += d.cost_usd;
        } else {
            *users.entry(&*d.user_id).or_default() += d.cost_usd;
        }
        if let Some(p) = &d.provider_id {
            *providers.entry(&**p).or_default() += d.actual_cost_usd;
        }
    }

    for (id, s) in keys {
        use gateway_key::Column as G;
        let mut update = Query::update();
        update
            .table(gateway_key::Entity)
            .value(
                G::TotalRequests,
                Expr::col(G::TotalRequests).add(s.requests),
            )
            .value(G::TotalCostUsd, Expr::col(G::TotalCostUsd).add(s.cost))
            .value(
                G::BalanceUsedUsd,
                Expr::col(G::BalanceUsedUsd).add(s.balance),
            )
            .and_where(Expr::col(G::Id).eq(id));
        if let Some(last) = s.last_used_at {
            // last_used_at = max(stored, new), without reading the row first.
            update.value(
                G::LastUsedAt,
                Expr::case(
                    Expr::col(G::LastUsedAt)
                        .is_null()
                        .or(Expr::col(G::LastUsedAt).lt(last)),
                    last,
                )
                .finally(Expr::col(G::LastUsedAt)),
            );
        }
        txn.execute(&update).await?;
        report.statements += 1;
    }
    for (id, cost) in users {
        use user::Column as U;
        let mut update = Query::update();
        update
            .table(user::Entity)
            .value(U::UsedUsd, Expr::col(U::UsedUsd).add(cost))
            .value(U::TotalUsd, Expr::col(U::TotalUsd).add(cost))
            .and_where(Expr::col(U::Id).eq(id));
        txn.execute(&update).await?;
        report.statements += 1;
    }
    for (id, cost) in providers {
        use provider::Column as P;
        let mut update = Query::update();
        update
            .table(provider::Entity)
            .value(P::MonthlyUsedUsd, Expr::col(P::MonthlyUsedUsd).add(cost))
            .and_where(Expr::col(P::Id).eq(id));
        txn.execute(&update).await?;
        report.statements += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_a_few_fixed_statement_sizes() {
        let sizes = |n: usize| {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_chunks(&rows).collect();
            // Every row once, in order.
            assert_eq!(chunks.concat(), rows);
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(7), [4, 2, 1]);
        assert_eq!(sizes(256), [256]);
        assert_eq!(sizes(600), [256, 256, 64, 16, 8]);
        let shapes: HashSet<usize> = (0..1000).flat_map(sizes).collect();
        assert_eq!(shapes.len(), 9, "{shapes:?}");
    }

    #[test]
    fn usage_transitions_only_move_forward() {
        use UsageStatus::*;
        assert!(Pending.can_become(Streaming));
        assert!(Pending.can_become(Completed));
        assert!(Pending.can_become(Failed));
        assert!(Streaming.can_become(Completed));
        assert!(Streaming.can_become(Streaming));
        assert!(!Streaming.can_become(Pending));
        assert!(!Failed.can_become(Completed));
        assert!(!Completed.can_become(Failed));
        assert!(!Completed.can_become(Completed));
        for s in <UsageStatus as Status>::ALL {
            assert_eq!(UsageStatus::parse(s.as_str()), Some(*s));
        }
    }

    #[test]
    fn attempt_final_states_are_final() {
        use AttemptStatus::*;
        for done in [Skipped, Success, Failed] {
            for next in <AttemptStatus as Status>::ALL {
                assert!(!done.can_become(*next), "{done:?} → {next:?}");
            }
        }
        assert!(Pending.can_become(Skipped));
        assert!(!Streaming.can_become(Pending));
    }

    #[test]
    fn collapse_keeps_what_the_chain_would_leave() {
        let t = Utc::now();
        let rows = vec![
            UsageRow::new("a", "m", "OPENAI", UsageStatus::Pending, t),
            UsageRow::new("b", "m", "OPENAI", UsageStatus::Failed, t),
            UsageRow::new("a", "m", "OPENAI", UsageStatus::Streaming, t),
            UsageRow::new("b", "m", "OPENAI", UsageStatus::Completed, t),
            UsageRow::new("a", "m", "OPENAI", UsageStatus::Completed, t),
            UsageRow::new("a", "m", "OPENAI", UsageStatus::Pending, t),
        ];
        let (winners, superseded) = collapse(&rows, |r| &*r.request_id, |r| r.status);
        let got: Vec<_> = winners.iter().map(|r| (&*r.request_id, r.status)).collect();
        assert_eq!(
            got,
            vec![("a", UsageStatus::Completed), ("b", UsageStatus::Failed)]
        );
        assert_eq!(superseded.len(), 4);
    }
}
