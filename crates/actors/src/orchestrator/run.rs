//! The failover loop.

use super::answer::{Failure, Settled, Tally, final_failure, route_failure};
use super::attempt::{self, Success};
use super::record::{Finaliser, RequestRecord, Serving};
use super::relay::{RelayOptions, RelayStream};
use super::{ClientWatch, RequestContext};
use crate::health::messages::{AcquireProbe, Outcome};
use crate::scheduler::messages::{InvalidateAffinity, Resolve, SetAffinity};
use crate::slots::messages::{AcquireSlot, CancelWait, Denied, ObserveOutcome, Observed};
use chrono::Utc;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchyard_core::backoff::backoff;
use switchyard_core::breaker::Admission;
use switchyard_core::classify::{Verdict, classify};
use switchyard_core::outcome::UpstreamOutcome;
use switchyard_core::routing::{AffinityTarget, Candidate, Resolution, SkipReason};
use switchyard_formats::convert;
use switchyard_formats::dialect::Dialect;
use switchyard_formats::ir;
use switchyard_formats::usage::Usage;
use switchyard_store::records::{AttemptStatus, Text, fixed_text};

/// What happened to one candidate.
enum Step {
    Settled(Settled),
    Stop(Failure),
    Next,
    OutOfBudget,
}

/// Runs one request to its settlement.
pub async fn run(ctx: RequestContext, client: ClientWatch) -> Result<Settled, Failure> {
    let system = &ctx.system;
    let config = &system.config;
    let deadline = ctx.started + config.request_deadline;
    system.counters.requests.fetch_add(1, Ordering::Relaxed);

    let mut record = RequestRecord {
        request_id: ctx.request_id.as_str().into(),
        client_request_id: ctx.client_request_id.as_deref().map(Text::from),
        user_id: ctx.user.id.as_str().into(),
        gateway_key_id: ctx.gateway_key.id.as_str().into(),
        standalone: ctx.gateway_key.is_standalone,
        model: ctx.request.model.as_str().into(),
        global_model_id: None,
        format: ctx.format,
        stream: ctx.request.stream,
        started: ctx.started,
        started_at: Utc::now(),
        required_capabilities: required(&ctx),
        recorder: system.record_mail.pick(&ctx.request_id).clone(),
        counters: system.counters.clone(),
        ledger: system.ledger.clone(),
    };

    let resolved = system
        .resolver(&ctx.affinity_key)
        .ask(
            Resolve {
                model: ctx.request.model.clone(),
                format: ctx.format,
                stream: ctx.request.stream,
                gateway_key: ctx.gateway_key.clone(),
                user: ctx.user.clone(),
                capabilities: ctx.capabilities.clone(),
                affinity_key: ctx.affinity_key.clone(),
                now: Utc::now(),
            },
            config.actor_timeout,
        )
        .await;
    let resolved = match resolved {
        Ok(Ok(resolved)) => resolved,
        Ok(Err(route)) => {
            let failure = route_failure(&route);
            record.finish(
                failure.status,
                Some(failure.message.clone()),
                None,
                Usage::default(),
                None,
            );
            return Err(failure);
        }
        Err(e) => {
            let failure = Failure::unavailable(format!("the gateway is overloaded: {e}"));
            record.finish(
                failure.status,
                Some(failure.message.clone()),
                None,
                Usage::default(),
                None,
            );
            return Err(failure);
        }
    };
    let resolution = resolved.resolution;
    system.counters.affinity.observe(
        ctx.affinity_rule,
        resolution.affinity == switchyard_core::routing::AffinityUse::Hit,
    );
    record.global_model_id = Some(resolution.global_model.id.as_str().into());
    let record = Arc::new(record);
    let skipped = resolution
        .candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let reason = c.skip.as_ref()?;
            let mut row = record.attempt(i, 0, c, AttemptStatus::Skipped);
            row.skip_reason = Some(reason.to_string().into());
            Some(row)
        })
        .collect();
    record.opened(skipped);

    let mut tally = Tally {
        circuit_skips: resolution
            .candidates
            .iter()
            .filter(|c| {
                c.skip
                    .as_ref()
                    .is_some_and(|s| s.as_label() == "circuit_open")
            })
            .count() as u32,
        ..Tally::default()
    };
    for candidate in &resolution.candidates {
        if let Some(SkipReason::CoolingDown { until, .. }) = &candidate.skip {
            tally.throttled(*until);
        }
    }
    let first_usable = resolution.candidates.iter().position(|c| c.skip.is_none());
    let neutral = std::cell::OnceCell::new();
    let looper = Looper {
        neutral: &neutral,
        ctx: &ctx,
        record: &record,
        resolution: &resolution,
        probing: &resolved.probing,
        first_usable,
        deadline,
        client: &client,
    };
    for (index, candidate) in resolution.candidates.iter().enumerate() {
        if candidate.skip.is_some() {
            continue;
        }
        match looper.candidate(index, candidate, None, &mut tally).await {
            Step::Settled(settled) => return Ok(settled),
            Step::Stop(failure) => return Err(failure),
            Step::Next => {}
            Step::OutOfBudget => break,
        }
    }

    // Every usable candidate was only full: wait (bounded, FIFO) for a slot on the best one.
    if tally.attempts == 0
        && !tally.deadline_hit
        && let Some(&index) = tally.capacity_denied.first()
    {
        {
            let wait = config
                .queue_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            if !wait.is_zero() {
                let candidate = &resolution.candidates[index];
                match looper
                    .candidate(index, candidate, Some(wait), &mut tally)
                    .await
                {
                    Step::Settled(settled) => return Ok(settled),
                    Step::Stop(failure) => return Err(failure),
                    Step::Next | Step::OutOfBudget => {}
                }
            }
        }
    }

    let failure = final_failure(&tally, resolution.candidates.len(), deadline);
    record.finish(
        failure.status,
        Some(failure.message.clone()),
        tally.last_serving.as_ref(),
        Usage::default(),
        None,
    );
    Err(failure)
}

fn required(ctx: &RequestContext) -> Option<serde_json::Value> {
    let wanted: Vec<&String> = ctx
        .capabilities
        .iter()
        .filter(|(_, on)| **on)
        .map(|(name, _)| name)
        .collect();
    (!wanted.is_empty()).then(|| serde_json::json!(wanted))
}

/// What every candidate attempt needs.
struct Looper<'a> {
    /// The request in the neutral model, decoded on the first candidate that needs conversion.
    neutral: &'a std::cell::OnceCell<Result<ir::Request, ir::Unsupported>>,
    ctx: &'a RequestContext,
    record: &'a Arc<RequestRecord>,
    resolution: &'a Resolution,
    probing: &'a [String],
    first_usable: Option<usize>,
    deadline: Instant,
    client: &'a ClientWatch,
}

impl Looper<'_> {
    fn skip(&self, index: usize, candidate: &Candidate, retry: u32, reason: String) {
        let mut row = self
            .record
            .attempt(index, retry, candidate, AttemptStatus::Skipped);
        row.skip_reason = Some(reason.into());
        self.record.attempt_finished(row);
    }

    fn release_probe(&self, key_id: &str, probe: bool) {
        if probe {
            self.ctx.system.health.pick(key_id).tell(Outcome {
                key_id: key_id.to_owned(),
                effect: switchyard_core::classify::HealthEffect::Neutral,
                probe: true,
                now: Utc::now(),
            });
        }
    }

    fn affinity_target(candidate: &Candidate) -> AffinityTarget {
        AffinityTarget {
            provider_id: candidate.provider.id.clone(),
            endpoint_id: candidate.endpoint().id.clone(),
            provider_key_id: candidate.key().id.clone(),
        }
    }

    /// Tries one candidate, with retries, until it settles the request or is left.
    async fn candidate(
        &self,
        index: usize,
        candidate: &Candidate,
        wait: Option<Duration>,
        tally: &mut Tally,
    ) -> Step {
        let system = &self.ctx.system;
        let config = &system.config;
        let key = candidate.key();
        let endpoint = candidate.endpoint();
        let serving = Serving::of(candidate, &self.resolution.global_model);
        // The affinity hit may get one more try: its warm cache is worth it.
        let max_retries = endpoint.max_retries + u32::from(candidate.is_cached);
        // After the bounded wait, retry index 0 already holds the candidate's skip row (a final
        // row the attempt must not collide with): number this pass's attempts from 1.
        let first_retry = u32::from(wait.is_some());
        let mut retry: u32 = first_retry;
        loop {
            if Instant::now() >= self.deadline {
                tally.deadline_hit = true;
                return Step::OutOfBudget;
            }
            if tally.attempts >= config.max_attempts {
                return Step::OutOfBudget;
            }
            let mut probe = false;
            if self.probing.iter().any(|id| id == &key.id) {
                let admission = system
                    .health
                    .pick(&key.id)
                    .ask(
                        AcquireProbe {
                            key_id: key.id.clone(),
                            now: Utc::now(),
                        },
                        config.actor_timeout,
                    )
                    .await;
                match admission {
                    Ok(Ok(Admission::Allowed)) => {}
                    Ok(Ok(Admission::Probe)) => probe = true,
                    Ok(Ok(Admission::Rejected { .. })) | Ok(Err(_)) | Err(_) => {
                        tally.circuit_skips += 1;
                        self.skip(
                            index,
                            candidate,
                            retry,
                            "circuit half-open: its probe slots are busy".into(),
                        );
                        return Step::Next;
                    }
                }
            }
            let upstream = Dialect::of(endpoint.api_format);
            let body = match self.upstream_body(candidate, upstream) {
                Ok(body) => body,
                Err(unsupported) => {
                    self.release_probe(&key.id, probe);
                    tally.unconvertible += 1;
                    tally.unconvertible_cause = Some(unsupported.to_string());
                    self.skip(index, candidate, retry, unsupported.to_string());
                    return Step::Next;
                }
            };
            let request = AcquireSlot {
                key_id: key.id.clone(),
                endpoint_id: endpoint.id.clone(),
                lease_id: format!("{}:{index}:{retry}", self.ctx.request_id),
                fixed_limit: key.max_concurrent,
                endpoint_limit: endpoint.max_concurrent,
                rpm_limit: key.rpm_limit,
                cache_warm: candidate.is_cached,
                wait,
            };
            let slots = system.slots.pick(&key.id);
            let asked = crate::slots::lease_for(
                slots,
                &request,
                config.actor_timeout + wait.unwrap_or_default(),
            );
            // A client that leaves while queued for a slot stops waiting at once; KeySlots
            // skips (or gives back) the slot of a waiter nobody listens to any more. Without a
            // wait the answer is immediate: no need to watch.
            let answer = if wait.is_some() {
                tokio::select! {
                    answer = asked => answer,
                    () = self.client.gone() => {
                        slots.tell(CancelWait {
                            key_id: key.id.clone(),
                            endpoint_id: endpoint.id.clone(),
                            lease_id: request.lease_id.clone(),
                        });
                        self.release_probe(&key.id, probe);
                        return self.client_left(&serving);
                    }
                }
            } else {
                asked.await
            };
            let mut lease = match answer {
                Ok(Ok(lease)) => lease,
                Ok(Err(denied)) => {
                    self.release_probe(&key.id, probe);
                    self.skip(index, candidate, retry, denied.reason());
                    match &denied {
                        Denied::KeyFull { .. }
                        | Denied::EndpointFull { .. }
                        | Denied::QueueFull => {
                            tally.capacity_denied.push(index);
                        }
                        Denied::Rpm { retry_at } | Denied::Cooling { until: retry_at } => {
                            tally.throttled(*retry_at);
                        }
                        Denied::Unavailable(e) => tally.last_cause = Some(e.clone()),
                    }
                    return Step::Next;
                }
                Err(e) => {
                    self.release_probe(&key.id, probe);
                    tally.last_cause = Some(e.to_string());
                    return Step::Next;
                }
            };
            tally.attempts += 1;
            system.counters.attempts.fetch_add(1, Ordering::Relaxed);
            if tally.attempts > 1 {
                system.counters.failovers.fetch_add(1, Ordering::Relaxed);
            }
            let started_at = Utc::now();
            let started = Instant::now();
            // A client that leaves takes the upstream call with it (dropping it closes it).
            let attempt = tokio::select! {
                attempt = attempt::run(
                    &system.clients,
                    endpoint,
                    key,
                    &candidate.upstream_model,
                    self.ctx.request.stream,
                    attempt::Dialects {
                        upstream,
                        client: self.ctx.request.dialect,
                    },
                    body,
                    &self.ctx.client_headers,
                    self.deadline,
                ) => attempt,
                () = self.client.gone() => attempt::Attempt::client_gone(),
            };
            let class = classify(&attempt.outcome);
            let now = Utc::now();
            lease.report_health(Outcome {
                key_id: key.id.clone(),
                effect: class.health,
                probe,
                now,
            });
            let (observed, retry_after) = match &attempt.outcome {
                UpstreamOutcome::Success => (Observed::Success, None),
                UpstreamOutcome::Http {
                    status: 429,
                    retry_after,
                    rate_limit,
                    ..
                } => (
                    Observed::RateLimited {
                        retry_after: *retry_after,
                        headers: *rate_limit,
                    },
                    *retry_after,
                ),
                _ => (Observed::Other, None),
            };
            lease.observe(ObserveOutcome {
                key_id: key.id.clone(),
                adaptive: key.max_concurrent.is_none(),
                in_flight: lease.in_flight,
                observed,
                now,
            });
            if class.invalidate_affinity && candidate.is_cached {
                system
                    .resolver(&self.ctx.affinity_key)
                    .tell(InvalidateAffinity {
                        affinity_key: self.ctx.affinity_key.clone(),
                        format: self.ctx.format,
                        global_model_id: self.resolution.global_model.id.clone(),
                        target: Self::affinity_target(candidate),
                    });
            }
            let mut row = self
                .record
                .attempt(index, retry, candidate, AttemptStatus::Failed);
            row.started_at = Some(started_at);
            row.finished_at = Some(now);
            row.latency_ms = Some(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
            row.status_code = attempt.status.map(i32::from);
            row.concurrent_requests = Some(i32::try_from(lease.in_flight).unwrap_or(i32::MAX));
            row.error_type = Some(fixed_text(class.kind.as_str()));
            row.error_message = attempt.detail.as_deref().map(Text::from);
            if upstream != self.ctx.request.dialect {
                row.extra = Some(serde_json::json!({"converted": {
                    "from": self.ctx.format.as_str(),
                    "to": endpoint.api_format.as_str(),
                }}));
            }

            match class.verdict {
                Verdict::Done => {
                    row.error_type = None;
                    if key.cache_ttl_minutes > 0 {
                        system.resolver(&self.ctx.affinity_key).tell(SetAffinity {
                            affinity_key: self.ctx.affinity_key.clone(),
                            format: self.ctx.format,
                            global_model_id: self.resolution.global_model.id.clone(),
                            target: Self::affinity_target(candidate),
                            ttl: Duration::from_secs(u64::from(key.cache_ttl_minutes) * 60),
                        });
                    }
                    let chain = (upstream == Dialect::Responses
                        && self.ctx.request.dialect == Dialect::Responses
                        && key.cache_ttl_minutes > 0)
                        .then(|| self.response_chain(candidate));
                    return self.settle(
                        attempt.success,
                        row,
                        serving,
                        lease,
                        key.secret.clone(),
                        upstream,
                        chain,
                    );
                }
                Verdict::RetrySame => {
                    self.failed(row, &attempt, tally, &serving);
                    drop(lease);
                    if retry - first_retry < max_retries {
                        let pause = backoff(
                            retry - first_retry,
                            config.retry_base,
                            config.retry_max,
                            rand::random::<f64>(),
                        );
                        if Instant::now() + pause < self.deadline {
                            if !self.pause(pause).await {
                                return self.client_left(&serving);
                            }
                            retry += 1;
                            continue;
                        }
                    }
                    return Step::Next;
                }
                Verdict::NextCandidate => {
                    self.failed(row, &attempt, tally, &serving);
                    return Step::Next;
                }
                Verdict::RateLimited => {
                    self.failed(row, &attempt, tally, &serving);
                    tally.rate_limited += 1;
                    drop(lease);
                    let rest = retry_after.unwrap_or(config.default_cooldown);
                    tally.throttled(now + chrono::Duration::from_std(rest).unwrap_or_default());
                    let best = candidate.is_cached || self.first_usable == Some(index);
                    let short = retry_after.is_some_and(|r| r <= config.rate_limit_wait_max);
                    if !tally.waited_rate_limit
                        && best
                        && short
                        && Instant::now() + rest < self.deadline
                    {
                        tally.waited_rate_limit = true;
                        if !self.pause(rest).await {
                            return self.client_left(&serving);
                        }
                        retry += 1;
                        continue;
                    }
                    return Step::Next;
                }
                Verdict::Stop => {
                    self.failed(row, &attempt, tally, &serving);
                    let status = class.client_status.unwrap_or(400);
                    let (message, code) = match &attempt.outcome {
                        UpstreamOutcome::Http { body, .. }
                        | UpstreamOutcome::ErrorInBody { body } => {
                            (body.message.clone(), body.reason.clone())
                        }
                        _ => ("The upstream rejected the request.".into(), None),
                    };
                    // The upstream's own code (`context_length_exceeded`…): clients act on it.
                    let failure = Failure {
                        status,
                        error_type: "invalid_request_error",
                        code: code.map_or(Cow::Borrowed("upstream_rejected_request"), Cow::Owned),
                        message,
                        retry_after: None,
                    };
                    self.record.finish(
                        status,
                        Some(failure.message.clone()),
                        Some(&serving),
                        Usage::default(),
                        None,
                    );
                    return Step::Stop(failure);
                }
                Verdict::Abort => {
                    self.failed(row, &attempt, tally, &serving);
                    return self.client_left(&serving);
                }
            }
        }
    }

    /// The body for this candidate: the client's own (model replaced) when the endpoint speaks
    /// its dialect, else the request converted — or why it cannot be.
    fn upstream_body(
        &self,
        candidate: &Candidate,
        upstream: Dialect,
    ) -> Result<bytes::Bytes, ir::Unsupported> {
        let request = &self.ctx.request;
        if upstream == request.dialect {
            return Ok(convert::native_body(request, &candidate.upstream_model));
        }
        let neutral = self
            .neutral
            .get_or_init(|| convert::decode_request(request))
            .as_ref()
            .map_err(Clone::clone)?;
        convert::encode_request(neutral, upstream, &candidate.upstream_model)
    }

    /// Remembers the serving key under the response id this request will produce: a Responses
    /// client's next turn names it as `previous_response_id` (which only this upstream can
    /// resolve), and finds the same key through it.
    fn response_chain(&self, candidate: &Candidate) -> super::ResponseChain {
        let system = self.ctx.system.clone();
        let gateway_key_id = self.ctx.gateway_key.id.clone();
        let format = self.ctx.format;
        let global_model_id = self.resolution.global_model.id.clone();
        let target = Self::affinity_target(candidate);
        let ttl = Duration::from_secs(u64::from(candidate.key().cache_ttl_minutes) * 60);
        Box::new(move |response_id: &str| {
            let affinity_key =
                super::session_affinity_key(&gateway_key_id, "previous_response_id", response_id);
            system.resolver(&affinity_key).tell(SetAffinity {
                affinity_key: affinity_key.clone(),
                format,
                global_model_id,
                target,
                ttl,
            });
        })
    }

    /// Sleeps; `false` when the client went away meanwhile.
    async fn pause(&self, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = self.client.gone() => false,
        }
    }

    /// The client went away: nobody to answer, the request ends as 499.
    fn client_left(&self, serving: &Serving) -> Step {
        let failure = Failure {
            status: 499,
            error_type: "client_error",
            code: "client_closed_request".into(),
            message: "The client went away.".into(),
            retry_after: None,
        };
        self.record
            .counters
            .client_gone
            .fetch_add(1, Ordering::Relaxed);
        self.record.finish(
            499,
            Some(failure.message.clone()),
            Some(serving),
            Usage::default(),
            None,
        );
        Step::Stop(failure)
    }

    fn failed(
        &self,
        row: switchyard_store::records::AttemptRow,
        attempt: &attempt::Attempt,
        tally: &mut Tally,
        serving: &Serving,
    ) {
        tally.failed += 1;
        tally.last_cause = attempt
            .detail
            .clone()
            .or_else(|| row.error_type.as_deref().map(str::to_owned));
        tally.last_serving = Some(serving.clone());
        self.record.attempt_finished(row);
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one settled attempt, each moved into the answer once"
    )]
    fn settle(
        &self,
        success: Option<Success>,
        mut row: switchyard_store::records::AttemptRow,
        serving: Serving,
        lease: crate::slots::Lease,
        secret: switchyard_core::SecretString,
        upstream: Dialect,
        chain: Option<super::ResponseChain>,
    ) -> Step {
        let system = &self.ctx.system;
        match success {
            Some(Success::Json {
                body,
                usage,
                response_id,
            }) => {
                if let (Some(chain), Some(id)) = (chain, response_id) {
                    chain(&id);
                }
                row.status = AttemptStatus::Success;
                self.record.finish_with(
                    Some(row),
                    200,
                    None,
                    Some(&serving),
                    usage.unwrap_or_default(),
                    None,
                );
                drop(lease);
                Step::Settled(Settled::Json { body })
            }
            Some(Success::Stream {
                rest,
                parser,
                events,
            }) => {
                row.status = AttemptStatus::Streaming;
                self.record.attempt_finished(row.clone());
                self.record.streaming(&serving);
                let finaliser = Finaliser {
                    record: self.record.clone(),
                    health: system.health.pick(&serving.key_id).clone(),
                    serving,
                    first_byte: Instant::now(),
                    attempt: row,
                };
                Step::Settled(Settled::Stream(Box::new(RelayStream::new(
                    rest,
                    parser,
                    events,
                    RelayOptions {
                        include_usage: self.ctx.request.include_usage,
                        idle: system.config.stream_idle_timeout,
                        upstream,
                        client: self.ctx.request.dialect,
                        chain,
                    },
                    finaliser,
                    lease,
                    secret,
                ))))
            }
            None => Step::Stop(Failure::internal("an attempt succeeded without a body")),
        }
    }
}
