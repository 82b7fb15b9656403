//! `/status` (admin token): every actor shard's mailbox figures, in-flight requests, affinity
//! hit rate, circuits, slots and records. `/metrics`: the same in Prometheus text format.

use crate::AppState;
use crate::admin::require_admin;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_actors::ActorSystem;

/// Registers `/status` and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/status")
            .wrap(from_fn(require_admin))
            .route(web::get().to(status)),
    )
    .route("/metrics", web::get().to(metrics));
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

async fn status(state: web::Data<AppState>) -> HttpResponse {
    let system = &state.system;
    let affinity = &system.affinity;
    let (hits, misses, dropped) = (
        load(&affinity.hits),
        load(&affinity.misses),
        load(&affinity.dropped),
    );
    let lookups = hits + misses + dropped;
    HttpResponse::Ok().json(json!({
        "in_flight": system.in_flight.load(Ordering::Relaxed),
        "state_backend": system.state.backend(),
        // Leases or RPM windows served locally in the last minute because the shared state
        // (Redis) failed: limits then hold per process, not across gateways.
        "state_degraded": chrono::Utc::now().timestamp()
            - system.slot_counters.last_fallback_at.load(Ordering::Relaxed)
            < 60,
        "state_fallbacks": load(&system.slot_counters.state_fallbacks),
        "catalog": state.catalog.current().summary(),
        "actors": system.registry.snapshots(),
        "requests": {
            "total": load(&system.counters.requests),
            "completed": load(&system.counters.completed),
            "failed": load(&system.counters.failed),
            "client_gone": load(&system.counters.client_gone),
            "attempts": load(&system.counters.attempts),
            "failovers": load(&system.counters.failovers),
            // Answered before routing, per reason (401s are only counted: no usage row).
            "refused": system.counters.refused.snapshot().into_iter()
                .map(|(reason, count)| (reason.to_owned(), json!(count)))
                .collect::<serde_json::Map<_, _>>(),
        },
        "affinity": {
            // Per rule that chose the client identity (gateway key or a session the request named).
            "by_rule": system.counters.affinity.snapshot().into_iter().map(|(rule, lookups, hits)| json!({
                "rule": rule,
                "lookups": lookups,
                "hits": hits,
                "hit_rate": if lookups == 0 { 0.0 } else { hits as f64 / lookups as f64 },
            })).collect::<Vec<_>>(),
            "hits": hits,
            "misses": misses,
            "dropped": dropped,
            "hit_rate": if lookups == 0 { 0.0 } else { hits as f64 / lookups as f64 },
        },
        "circuits": {
            "opened": load(&system.circuits.opened),
            "half_opened": load(&system.circuits.half_opened),
            "closed": load(&system.circuits.closed),
        },
        "slots": {
            "granted": load(&system.slot_counters.granted),
            "handed_over": load(&system.slot_counters.handed_over),
            "denied": load(&system.slot_counters.denied),
            "waited": load(&system.slot_counters.waited),
            "wait_timeouts": load(&system.slot_counters.wait_timeouts),
            "rate_limited": load(&system.slot_counters.rate_limited),
            "limit_decreases": load(&system.slot_counters.limit_decreases),
            "limit_increases": load(&system.slot_counters.limit_increases),
        },
        "records": &*system.records,
    }))
}

/// Prometheus text exposition. Names carry the `switchyard_` prefix and unit suffixes; labels
/// are low-cardinality (actor, shard, message type).
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(render_metrics(&state.system))
}

fn render_metrics(system: &ActorSystem) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    let c = &system.counters;
    counter(
        "switchyard_requests_total",
        "Requests that reached routing.",
        load(&c.requests),
    );
    counter(
        "switchyard_requests_completed_total",
        "Requests settled successfully.",
        load(&c.completed),
    );
    counter(
        "switchyard_requests_failed_total",
        "Requests settled with an error.",
        load(&c.failed),
    );
    counter(
        "switchyard_requests_client_gone_total",
        "Requests whose client went away.",
        load(&c.client_gone),
    );
    counter(
        "switchyard_attempts_total",
        "Upstream attempts.",
        load(&c.attempts),
    );
    counter(
        "switchyard_failovers_total",
        "Attempts after the first of a request.",
        load(&c.failovers),
    );
    counter(
        "switchyard_circuits_opened_total",
        "Circuit breakers opened.",
        load(&system.circuits.opened),
    );
    counter(
        "switchyard_circuits_closed_total",
        "Circuit breakers closed again.",
        load(&system.circuits.closed),
    );
    let s = &system.slot_counters;
    counter(
        "switchyard_slots_granted_total",
        "Concurrency leases granted.",
        load(&s.granted),
    );
    counter(
        "switchyard_slots_handed_over_total",
        "Attempts served by a slot the worker's previous request on the key left behind.",
        load(&s.handed_over),
    );
    counter(
        "switchyard_slots_denied_total",
        "Concurrency leases refused.",
        load(&s.denied),
    );
    counter(
        "switchyard_slot_wait_timeouts_total",
        "Requests that waited for a slot in vain.",
        load(&s.wait_timeouts),
    );
    counter(
        "switchyard_rate_limited_total",
        "Upstream 429 answers.",
        load(&s.rate_limited),
    );
    counter(
        "switchyard_state_fallbacks_total",
        "Lease or RPM operations served locally because the shared state failed.",
        load(&s.state_fallbacks),
    );
    counter(
        "switchyard_affinity_hits_total",
        "Requests sent to their cache-warm key.",
        load(&system.affinity.hits),
    );
    counter(
        "switchyard_affinity_misses_total",
        "Requests without a usable affinity entry.",
        load(&system.affinity.misses),
    );
    counter(
        "switchyard_records_dropped_total",
        "Record rows dropped (database down too long).",
        load(&system.records.dropped_rows),
    );
    histogram(
        &mut out,
        "switchyard_request_duration_seconds",
        "Time from a routed request's arrival to its end (the last byte relayed).",
        &c.duration.snapshot(),
    );
    histogram(
        &mut out,
        "switchyard_request_first_byte_seconds",
        "Time from a streamed request's arrival to its first byte to the client.",
        &c.first_byte.snapshot(),
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_requests_refused_total Requests answered before routing, per reason.\n# TYPE switchyard_requests_refused_total counter"
    );
    for (reason, count) in system.counters.refused.snapshot() {
        let _ = writeln!(
            out,
            "switchyard_requests_refused_total{{reason=\"{reason}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_affinity_rule_lookups_total Resolutions per affinity rule.\n# TYPE switchyard_affinity_rule_lookups_total counter"
    );
    let by_rule = system.counters.affinity.snapshot();
    for (rule, lookups, _) in &by_rule {
        let _ = writeln!(
            out,
            "switchyard_affinity_rule_lookups_total{{rule=\"{rule}\"}} {lookups}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_affinity_rule_hits_total Resolutions served by their affinity entry, per rule.\n# TYPE switchyard_affinity_rule_hits_total counter"
    );
    for (rule, _, hits) in &by_rule {
        let _ = writeln!(
            out,
            "switchyard_affinity_rule_hits_total{{rule=\"{rule}\"}} {hits}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_in_flight_requests Requests in flight.\n# TYPE switchyard_in_flight_requests gauge\nswitchyard_in_flight_requests {}",
        system.in_flight.load(Ordering::Relaxed)
    );
    let snapshots = system.registry.snapshots();
    let _ = writeln!(
        out,
        "# HELP switchyard_mailbox_depth Messages queued or being handled.\n# TYPE switchyard_mailbox_depth gauge"
    );
    for s in &snapshots {
        let _ = writeln!(
            out,
            "switchyard_mailbox_depth{{actor=\"{}\",shard=\"{}\"}} {}",
            s.actor, s.shard, s.depth
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_mailbox_high_water Largest mailbox depth seen.\n# TYPE switchyard_mailbox_high_water gauge"
    );
    for s in &snapshots {
        let _ = writeln!(
            out,
            "switchyard_mailbox_high_water{{actor=\"{}\",shard=\"{}\"}} {}",
            s.actor, s.shard, s.high_water
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_messages_handled_total Messages handled.\n# TYPE switchyard_messages_handled_total counter"
    );
    for s in &snapshots {
        for m in &s.messages {
            let _ = writeln!(
                out,
                "switchyard_messages_handled_total{{actor=\"{}\",shard=\"{}\",message=\"{}\"}} {}",
                s.actor, s.shard, m.message, m.handled
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_message_queue_wait_seconds Time a message waited in the mailbox (quantile bucket bounds).\n# TYPE switchyard_message_queue_wait_seconds summary"
    );
    for s in &snapshots {
        for m in &s.messages {
            for (q, v) in [
                ("0.5", m.queue_wait.p50_us),
                ("0.9", m.queue_wait.p90_us),
                ("0.99", m.queue_wait.p99_us),
            ] {
                let _ = writeln!(
                    out,
                    "switchyard_message_queue_wait_seconds{{actor=\"{}\",shard=\"{}\",message=\"{}\",quantile=\"{q}\"}} {}",
                    s.actor,
                    s.shard,
                    m.message,
                    v as f64 / 1e6
                );
            }
        }
    }
    out
}

/// A histogram in the exposition format: cumulative `le` buckets, `+Inf`, sum and count.
fn histogram(out: &mut String, name: &str, help: &str, h: &switchyard_actors::latency::Snapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, count) in &h.cumulative {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum_secs);
    let _ = writeln!(out, "{name}_count {}", h.count);
}
