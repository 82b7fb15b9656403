//! Messages of the Scheduler.

use actix::Message;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::ApiFormat;
use switchyard_core::catalog::{Catalog, GatewayKey, User};
use switchyard_core::routing::{AffinityTarget, KeyCircuit, Resolution, RouteError};

/// Resolve a request to its ordered candidates.
#[derive(Debug)]
pub struct Resolve {
    /// Requested model name.
    pub model: String,
    /// Client format.
    pub format: ApiFormat,
    /// Streamed?
    pub stream: bool,
    /// The authenticated key.
    pub gateway_key: Arc<GatewayKey>,
    /// Its user.
    pub user: Arc<User>,
    /// Merged capability requirements.
    pub capabilities: BTreeMap<String, bool>,
    /// Stable client identity for affinity and tie-breaks.
    pub affinity_key: String,
    /// Now.
    pub now: DateTime<Utc>,
}

impl Message for Resolve {
    type Result = Result<Resolved, RouteError>;
}

/// The answer to [`Resolve`].
#[derive(Debug)]
pub struct Resolved {
    /// Candidates in order.
    pub resolution: Resolution,
    /// Keys among the candidates whose circuit is half-open (or open and due for a probe): an
    /// attempt on them must first get a probe slot from the HealthMonitor.
    pub probing: Vec<String>,
}

/// A new catalog snapshot was published.
#[derive(Debug)]
pub struct CatalogChanged(pub Arc<Catalog>);

impl Message for CatalogChanged {
    type Result = ();
}

/// A key's circuit changed (pushed by HealthMonitor).
#[derive(Debug)]
pub struct CircuitChanged {
    /// Provider key id.
    pub key_id: String,
    /// Its new state.
    pub circuit: KeyCircuit,
}

impl Message for CircuitChanged {
    type Result = ();
}

/// The live key states of a shard (circuits, cool-downs): how a new replica starts.
#[derive(Debug)]
pub struct KeyStates;

/// What [`KeyStates`] answers.
#[derive(Debug, actix::MessageResponse)]
pub struct KeyStateSnapshot {
    /// Keys whose circuit is not closed.
    pub circuits: foldhash::HashMap<String, KeyCircuit>,
    /// Keys cooling down, until when.
    pub cooldowns: foldhash::HashMap<String, DateTime<Utc>>,
}

impl Message for KeyStates {
    type Result = KeyStateSnapshot;
}

/// A key is cooling down after a 429 (pushed by KeySlots); `None` ends it.
#[derive(Debug)]
pub struct KeyCooling {
    /// Provider key id.
    pub key_id: String,
    /// End of the cool-down.
    pub until: Option<DateTime<Utc>>,
}

impl Message for KeyCooling {
    type Result = ();
}

/// A request succeeded on a candidate whose upstream caches prompts: remember it.
#[derive(Debug)]
pub struct SetAffinity {
    /// Client identity.
    pub affinity_key: String,
    /// Client format.
    pub format: ApiFormat,
    /// Global model id.
    pub global_model_id: String,
    /// Where it was served.
    pub target: AffinityTarget,
    /// The key's cache lifetime.
    pub ttl: Duration,
}

impl Message for SetAffinity {
    type Result = ();
}

/// An attempt failed on the remembered candidate: forget it (only if it still points there).
#[derive(Debug)]
pub struct InvalidateAffinity {
    /// Client identity.
    pub affinity_key: String,
    /// Client format.
    pub format: ApiFormat,
    /// Global model id.
    pub global_model_id: String,
    /// The failed candidate.
    pub target: AffinityTarget,
}

impl Message for InvalidateAffinity {
    type Result = ();
}
