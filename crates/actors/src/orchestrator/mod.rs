//! The Orchestrator: one short-lived actor per request, started on the HTTP worker's own
//! Arbiter (no thread hop). It runs the failover loop (see `run`) by messaging the Scheduler,
//! KeySlots, HealthMonitor and Recorder and calling upstreams, settles the response, and stops.
//!
//! 1. Resolve candidates (Scheduler) and open the request's records (Recorder).
//! 2. For each usable candidate, while the attempt budget and the deadline allow: a probe slot
//!    if its circuit is half-open (HealthMonitor), a concurrency slot (KeySlots), the upstream
//!    call, the pure classifier, reports to HealthMonitor/KeySlots/Recorder, affinity updates.
//! 3. Success: the body, or a relayed stream owning the lease and the finaliser.
//! 4. Nothing succeeded: one clear error; when every candidate was only full, first a bounded
//!    wait for a slot.

mod answer;
mod attempt;
mod count_tokens;
mod record;
mod relay;
mod run;

pub use answer::{Failure, Settled};
pub use count_tokens::{CountTokens, Counted, count_tokens};
pub use record::RequestRecord;
pub use relay::RelayStream;

use crate::system::ActorSystem;
use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use switchyard_core::ApiFormat;
use switchyard_core::catalog::{GatewayKey, User};
use switchyard_formats::ClientRequest;

/// Everything the HTTP layer hands over for one request.
#[derive(Debug)]
pub struct RequestContext {
    /// The actors and clients.
    pub system: ActorSystem,
    /// Gateway-generated id.
    pub request_id: String,
    /// The client's `x-request-id`, kept as metadata.
    pub client_request_id: Option<String>,
    /// Client format.
    pub format: ApiFormat,
    /// Authenticated key.
    pub gateway_key: Arc<GatewayKey>,
    /// Its user.
    pub user: Arc<User>,
    /// The parsed request, in the client's dialect.
    pub request: ClientRequest,
    /// Who the client is for cache affinity: the gateway key id, or the session identity the
    /// request carries (see `affinity_rule`).
    pub affinity_key: String,
    /// Which rule chose `affinity_key` (`gateway_key`, `prompt_cache_key`…), for the hit-rate
    /// metrics.
    pub affinity_rule: &'static str,
    /// Capability requirements.
    pub capabilities: BTreeMap<String, bool>,
    /// Client headers that may be forwarded (the upstream builder filters them).
    pub client_headers: Vec<(String, String)>,
    /// Arrival.
    pub started: Instant,
}

/// The affinity key of a client session found by `rule` (a header, `prompt_cache_key`,
/// `previous_response_id`…): always under the gateway key, so two clients choosing the same
/// session name never share an entry.
pub fn session_affinity_key(gateway_key_id: &str, rule: &str, session: &str) -> String {
    format!("{gateway_key_id}|{rule}|{session}")
}

/// Called with the id of the response a Responses upstream produced, so the next turn (whose
/// `previous_response_id` is that id) finds its way back to the same key.
pub type ResponseChain = Box<dyn FnOnce(&str) + Send>;

/// Counts a request as in flight until dropped (the response body included, for streams).
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Takes an in-flight slot; `None` when `max` are already in flight.
    pub fn acquire(counter: &Arc<AtomicUsize>, max: usize) -> Option<InFlight> {
        let now = counter.fetch_add(1, Ordering::AcqRel) + 1;
        if now > max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(counter.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held by the HTTP handler while its client waits for the answer. Dropping it (actix drops the
/// handler when the client goes away) tells the orchestrator to stop: the upstream call is
/// dropped, the slot freed and the request recorded 499 — no failover for nobody.
#[derive(Debug)]
pub struct ClientPresence {
    _alive: tokio::sync::watch::Sender<()>,
}

/// The orchestrator's side of [`ClientPresence`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientWatch(Option<tokio::sync::watch::Receiver<()>>);

impl ClientWatch {
    /// Resolves once the client has gone; never when nobody watches.
    pub(crate) async fn gone(&self) {
        match &self.0 {
            Some(rx) => {
                let mut rx = rx.clone();
                while rx.changed().await.is_ok() {}
            }
            None => std::future::pending().await,
        }
    }
}

/// The per-request actor.
#[derive(Debug, Default)]
pub struct Orchestrator {
    context: Option<RequestContext>,
    client: ClientWatch,
}

impl Orchestrator {
    /// An orchestrator for one request.
    pub fn new(context: RequestContext) -> Self {
        Self {
            context: Some(context),
            client: ClientWatch::default(),
        }
    }

    /// An orchestrator that stops when the returned guard is dropped (the client went away).
    pub fn watching(context: RequestContext) -> (Self, ClientPresence) {
        let (alive, watch) = tokio::sync::watch::channel(());
        let orchestrator = Self {
            context: Some(context),
            client: ClientWatch(Some(watch)),
        };
        (orchestrator, ClientPresence { _alive: alive })
    }
}

impl Actor for Orchestrator {
    type Context = Context<Self>;
}

/// Run the request to its settlement (sent once, by the HTTP handler).
#[derive(Debug)]
pub struct Execute;

impl Message for Execute {
    type Result = Result<Settled, Failure>;
}

impl Handler<Execute> for Orchestrator {
    type Result = ResponseActFuture<Self, Result<Settled, Failure>>;

    fn handle(&mut self, _msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        let context = self.context.take();
        let client = self.client.clone();
        Box::pin(
            async move {
                match context {
                    Some(context) => run::run(context, client).await,
                    None => Err(Failure::internal("the request was already executed")),
                }
            }
            .into_actor(self)
            .map(|result, _act, ctx| {
                // Settled: nothing of this request stays in the actor.
                ctx.stop();
                result
            }),
        )
    }
}

crate::metered!(Orchestrator: Execute);
