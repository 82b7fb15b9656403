//! What one request writes: its usage row (pending → streaming → completed | failed, exactly
//! once final), its attempt rows, and the spend. The [`Finaliser`] of a stream writes the final
//! row when the stream ends or is dropped — the drop path is what makes a client disconnect
//! leave a correct record (fix of the reference's §11.1 #7).

use crate::handle::{Handle, Tray};
use crate::health::HealthMonitor;
use crate::health::messages::Outcome;
use crate::recorder::messages::{
    AttemptFinished, RecordEvent, RequestFinished, RequestOpened, RequestStreaming,
};
use crate::system::RequestCounters;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use switchyard_core::ApiFormat;
use switchyard_core::catalog::BillingType;
use switchyard_core::classify::HealthEffect;
use switchyard_core::pricing::{TieredPricing, TokenCounts, compute_cost};
use switchyard_core::routing::Candidate;
use switchyard_formats::usage::Usage;
use switchyard_store::records::{
    AttemptRow, AttemptStatus, SpendDelta, Text, UsageRow, UsageStatus, fixed_text,
};

use super::relay::StreamEnd;

/// The request-wide facts every row repeats.
#[derive(Debug)]
pub struct RequestRecord {
    /// Gateway-generated 128-bit id.
    pub request_id: Text,
    /// The client's own id, metadata only.
    pub client_request_id: Option<Text>,
    /// Owner.
    pub user_id: Text,
    /// Key.
    pub gateway_key_id: Text,
    /// Standalone keys pay from their own balance.
    pub standalone: bool,
    /// Requested model.
    pub model: Text,
    /// Resolved global model.
    pub global_model_id: Option<Text>,
    /// Client format.
    pub format: ApiFormat,
    /// Streamed.
    pub stream: bool,
    /// Arrival.
    pub started: Instant,
    /// Arrival, wall clock.
    pub started_at: DateTime<Utc>,
    /// Required capabilities (true ones), for attempt rows.
    pub required_capabilities: Option<serde_json::Value>,
    /// Where rows go: the Recorder shard's tray.
    pub recorder: Tray<RecordEvent>,
    /// Process-wide request counters.
    pub counters: Arc<RequestCounters>,
    /// Where spend is noted for quota checks until the snapshot has it.
    pub ledger: Arc<crate::ledger::SpendLedger>,
}

/// The candidate that served (or was last tried), with its prices.
#[derive(Debug, Clone)]
pub struct Serving {
    /// Provider id.
    pub provider_id: Text,
    /// Provider name.
    pub provider_name: Text,
    /// Endpoint id.
    pub endpoint_id: Text,
    /// Key id.
    pub key_id: Text,
    /// Upstream model name.
    pub target_model: Text,
    /// Upstream format.
    pub upstream_format: ApiFormat,
    /// Prices.
    pub pricing: TieredPricing,
    /// Per-request price.
    pub price_per_request: Option<f64>,
    /// Key multiplier.
    pub multiplier: f64,
    /// Free-tier provider.
    pub free_tier: bool,
}

impl Serving {
    /// From a candidate and its model's prices.
    pub fn of(candidate: &Candidate, global: &switchyard_core::catalog::GlobalModel) -> Serving {
        let model = candidate.provider.models.get(&global.id);
        Serving {
            provider_id: candidate.provider.id.as_str().into(),
            provider_name: candidate.provider.name.as_str().into(),
            endpoint_id: candidate.endpoint().id.as_str().into(),
            key_id: candidate.key().id.as_str().into(),
            target_model: candidate.upstream_model.as_str().into(),
            upstream_format: candidate.endpoint().api_format,
            pricing: model
                .and_then(|m| m.pricing.clone())
                .unwrap_or_else(|| global.default_pricing.clone()),
            price_per_request: model
                .and_then(|m| m.price_per_request)
                .or(global.default_price_per_request),
            multiplier: candidate.key().rate_multiplier,
            free_tier: candidate.provider.billing_type == BillingType::FreeTier,
        }
    }
}

impl RequestRecord {
    fn usage_row(&self, status: UsageStatus, serving: Option<&Serving>) -> UsageRow {
        let mut row = UsageRow::new(
            self.request_id.clone(),
            self.model.clone(),
            fixed_text(self.format.as_str()),
            status,
            self.started_at,
        );
        row.client_request_id = self.client_request_id.clone();
        row.user_id = Some(self.user_id.clone());
        row.gateway_key_id = Some(self.gateway_key_id.clone());
        row.global_model_id = self.global_model_id.clone();
        row.is_stream = self.stream;
        if let Some(s) = serving {
            row.provider_name = Some(s.provider_name.clone());
            row.provider_id = Some(s.provider_id.clone());
            row.endpoint_id = Some(s.endpoint_id.clone());
            row.provider_key_id = Some(s.key_id.clone());
            row.target_model = Some(s.target_model.clone());
            row.upstream_format = Some(fixed_text(s.upstream_format.as_str()));
        }
        row
    }

    fn post(&self, event: RecordEvent) {
        let kind = event.kind();
        self.recorder.post(event, kind);
    }

    /// The pending row and the rows of candidates skipped at resolution.
    pub fn opened(&self, skipped: Vec<AttemptRow>) {
        self.post(RecordEvent::Opened(RequestOpened {
            usage: self.usage_row(UsageStatus::Pending, None),
            attempts: skipped,
        }));
    }

    /// An attempt row for a candidate.
    pub fn attempt(
        &self,
        candidate_index: usize,
        retry_index: u32,
        candidate: &Candidate,
        status: AttemptStatus,
    ) -> AttemptRow {
        let mut row = AttemptRow::new(
            self.request_id.clone(),
            i32::try_from(candidate_index).unwrap_or(i32::MAX),
            i32::try_from(retry_index).unwrap_or(i32::MAX),
            candidate.provider.id.as_str(),
            candidate.endpoint().id.as_str(),
            status,
            Utc::now(),
        );
        row.user_id = Some(self.user_id.clone());
        row.gateway_key_id = Some(self.gateway_key_id.clone());
        row.provider_key_id = Some(candidate.key().id.as_str().into());
        row.is_cached = candidate.is_cached;
        row.required_capabilities = self.required_capabilities.clone();
        row
    }

    /// Sends an attempt row.
    pub fn attempt_finished(&self, row: AttemptRow) {
        self.post(RecordEvent::Attempt(AttemptFinished(row)));
    }

    /// A stream was committed to the client.
    pub fn streaming(&self, serving: &Serving) {
        self.post(RecordEvent::Streaming(RequestStreaming(
            self.usage_row(UsageStatus::Streaming, Some(serving)),
        )));
    }

    /// Writes the final row. `status_code` is the status the client received.
    pub fn finish(
        &self,
        status_code: u16,
        error: Option<String>,
        serving: Option<&Serving>,
        usage: Usage,
        first_byte: Option<Instant>,
    ) {
        self.finish_with(None, status_code, error, serving, usage, first_byte);
    }

    /// [`RequestRecord::finish`] together with the serving attempt's final row, in one message.
    pub fn finish_with(
        &self,
        attempt: Option<AttemptRow>,
        status_code: u16,
        error: Option<String>,
        serving: Option<&Serving>,
        usage: Usage,
        first_byte: Option<Instant>,
    ) {
        let success = error.is_none() && status_code < 400;
        let status = if success {
            UsageStatus::Completed
        } else {
            UsageStatus::Failed
        };
        let mut row = self.usage_row(status, serving);
        row.status_code = Some(i32::from(status_code));
        row.error_message = error.map(Text::from);
        row.input_tokens = to_i64(usage.input_tokens);
        row.output_tokens = to_i64(usage.output_tokens);
        row.cache_creation_input_tokens = to_i64(usage.cache_creation_tokens);
        row.cache_read_input_tokens = to_i64(usage.cache_read_tokens);
        row.reasoning_tokens = to_i64(usage.reasoning_tokens);
        row.total_tokens = row.input_tokens
            + row.cache_creation_input_tokens
            + row.cache_read_input_tokens
            + row.output_tokens;
        let elapsed = self.started.elapsed();
        self.counters.duration.observe(elapsed);
        row.response_time_ms = Some(millis(elapsed));
        let first_byte = first_byte.map(|t| t.saturating_duration_since(self.started));
        if let Some(first_byte) = first_byte {
            self.counters.first_byte.observe(first_byte);
        }
        row.first_byte_time_ms = first_byte.map(millis);
        row.finished_at = Some(Utc::now());
        let mut spend = SpendDelta {
            request_id: Text::clone(&self.request_id),
            gateway_key_id: Text::clone(&self.gateway_key_id),
            user_id: Text::clone(&self.user_id),
            standalone: self.standalone,
            cost_usd: 0.0,
            actual_cost_usd: 0.0,
            provider_id: None,
            requests: 1,
            last_used_at: Utc::now(),
        };
        if let Some(s) = serving {
            let cost = compute_cost(
                &s.pricing,
                s.price_per_request,
                TokenCounts {
                    input: usage.input_tokens,
                    output: usage.output_tokens,
                    cache_creation: usage.cache_creation_tokens,
                    cache_read: usage.cache_read_tokens,
                },
                success,
                s.multiplier,
                s.free_tier,
            );
            let m = cost.multiplier;
            row.input_cost_usd = cost.input;
            row.output_cost_usd = cost.output;
            row.cache_creation_cost_usd = cost.cache_creation;
            row.cache_read_cost_usd = cost.cache_read;
            row.cache_cost_usd = cost.cache_creation + cost.cache_read;
            row.request_cost_usd = cost.request;
            row.total_cost_usd = cost.total;
            row.actual_input_cost_usd = cost.input * m;
            row.actual_output_cost_usd = cost.output * m;
            row.actual_cache_creation_cost_usd = cost.cache_creation * m;
            row.actual_cache_read_cost_usd = cost.cache_read * m;
            row.actual_cache_cost_usd = (cost.cache_creation + cost.cache_read) * m;
            row.actual_request_cost_usd = cost.request * m;
            row.actual_total_cost_usd = cost.actual_total;
            row.rate_multiplier = s.multiplier;
            if let Some(tier) = &cost.tier {
                row.input_price_per_1m = Some(tier.input_price_per_1m);
                row.output_price_per_1m = Some(tier.output_price_per_1m);
                row.cache_creation_price_per_1m = Some(
                    tier.cache_creation_price_per_1m
                        .unwrap_or(tier.input_price_per_1m * 1.25),
                );
                row.cache_read_price_per_1m = Some(
                    tier.cache_read_price_per_1m
                        .unwrap_or(tier.input_price_per_1m * 0.1),
                );
            }
            row.price_per_request = s.price_per_request;
            spend.cost_usd = cost.total;
            let payer = if self.standalone {
                &self.gateway_key_id
            } else {
                &self.user_id
            };
            self.ledger.add(payer, Utc::now(), cost.total);
            spend.actual_cost_usd = cost.actual_total;
            spend.provider_id = Some(Text::clone(&s.provider_id));
        }
        let counter = if success {
            &self.counters.completed
        } else {
            &self.counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.post(RecordEvent::Finished(RequestFinished {
            attempts: attempt.into_iter().collect(),
            usage: row,
            spend: Some(spend),
        }));
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Settles a committed stream exactly once: when it ends, or when it is dropped early.
#[derive(Debug)]
pub struct Finaliser {
    /// The request.
    pub record: Arc<RequestRecord>,
    /// Who serves it.
    pub serving: Serving,
    /// When the first byte went to the client.
    pub first_byte: Instant,
    /// Told about failures after commit.
    pub health: Handle<HealthMonitor>,
    /// The attempt row to complete.
    pub attempt: AttemptRow,
}

impl Finaliser {
    /// The stream reached its end (completed or failed upstream).
    pub fn stream_ended(self, end: StreamEnd, usage: Usage) {
        let mut attempt = self.attempt.clone();
        attempt.finished_at = Some(Utc::now());
        attempt.latency_ms = Some(millis(self.record.started.elapsed()));
        let error = match end {
            StreamEnd::Completed => {
                attempt.status = AttemptStatus::Success;
                None
            }
            StreamEnd::Failed(why) => {
                attempt.status = AttemptStatus::Failed;
                attempt.error_type = Some("stream_interrupted".into());
                attempt.error_message = Some(why.as_str().into());
                self.health.tell(Outcome {
                    key_id: self.serving.key_id.to_string(),
                    effect: HealthEffect::Failure,
                    probe: false,
                    now: Utc::now(),
                });
                Some(why)
            }
        };
        // The client received 200 and the stream: that is the status recorded, with the
        // failure in the status and message.
        self.record.finish_with(
            Some(attempt),
            200,
            error,
            Some(&self.serving),
            usage,
            Some(self.first_byte),
        );
    }

    /// The client went away before the end.
    pub fn client_gone(self, usage: Usage) {
        let mut attempt = self.attempt.clone();
        attempt.status = AttemptStatus::Failed;
        attempt.status_code = Some(499);
        attempt.error_type = Some("client_gone".into());
        attempt.finished_at = Some(Utc::now());
        self.record
            .counters
            .client_gone
            .fetch_add(1, Ordering::Relaxed);
        self.record.finish_with(
            Some(attempt),
            499,
            Some("client disconnected".into()),
            Some(&self.serving),
            usage,
            Some(self.first_byte),
        );
    }
}
