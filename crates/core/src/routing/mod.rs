//! Candidate resolution (spec §3, with the fixes of §11.1 #4 and #13): from the model a client
//! asked for to the ordered list of (provider, endpoint, key) candidates the orchestrator tries.
//!
//! Pure: it reads an immutable [`Catalog`] snapshot and what the caller knows about each key's
//! live state ([`RoutingView`]). No I/O, no clock (the request carries `now`), no randomness:
//! equal priorities are spread across *clients* by hashing the client's affinity key, so each
//! client always sees the same order (its upstream prompt caches stay warm) while many clients
//! spread over the keys.
//!
//! Resolution, step by step:
//! 1. Model: the requested name → global model (canonical name, alias, or an upstream name only
//!    one global model is known by); unknown → [`RouteError::ModelNotFound`].
//! 2. Access: the gateway key's and the user's `allowed_models` must both list the requested or
//!    the canonical name (`None` = any, `[]` = none: one rule everywhere, unlike the reference)
//!    → else [`RouteError::ModelNotAllowed`]; the key's `allowed_api_formats` must contain the
//!    format → else [`RouteError::FormatNotAllowed`].
//! 3. Providers: kept only if they implement the global model, stream when the request streams,
//!    and (when the model restricts capabilities) support every required one. The key's and the
//!    user's `allowed_providers` (id or name) and `allowed_endpoints` hide the rest silently:
//!    hidden providers are not candidates at all.
//! 4. Endpoint: the provider's endpoint speaking the request's format (exact format first, then
//!    the same payloads — a Claude Code client on an Anthropic endpoint); else, when conversion is
//!    allowed for an endpoint (its `format_conversion`, or the global setting), that endpoint,
//!    with the request and answer converted. Converted candidates sort after every native one.
//! 5. Keys: every key of that endpoint is a candidate. One that must not be tried carries a
//!    [`SkipReason`] (circuit open, cooling down after a 429, expired, model not allowed, capability
//!    mismatch — checked in that order) and keeps its place, so the trace shows why it was passed.
//! 6. Upstream name: per provider, the best usable model mapping for the format (lowest priority,
//!    ties by a per-client hash), else the provider model name.
//! 7. Order: one stable sort over the candidates of *all* providers (the reference paged by 20
//!    providers and stopped at the first empty page) by the priority mode's key.
//! 8. Affinity (cache-affinity mode, with a stored target): the client's last candidate moves to
//!    the front — unless it is skipped or gone ([`AffinityUse::Unusable`]) or a strictly better
//!    candidate is usable again ([`AffinityUse::Dropped`]): affinity is a preference, never a trap.
//! 9. Nothing at all → [`RouteError::NoCandidate`]. Only skipped candidates are still returned:
//!    the caller records them and answers accordingly.

mod access;
mod order;
#[cfg(test)]
mod tests;

use crate::ApiFormat;
use crate::catalog::{Catalog, Endpoint, GatewayKey, GlobalModel, Provider, ProviderKey, User};
use crate::settings::SchedulingMode;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use order::{affinity_hash, upstream_model_name};

/// What the caller knows about a key's live state. The `Scheduler` fills it from the circuit
/// states `HealthMonitor` pushes and the 429 cool-downs `KeySlots` reports; routing never asks
/// anybody itself.
pub trait RoutingView {
    /// The key's circuit breaker state.
    fn circuit(&self, provider_key_id: &str) -> KeyCircuit;
    /// When the key's cool-down after a 429 ends, if it has one.
    fn cooldown_until(&self, provider_key_id: &str) -> Option<DateTime<Utc>>;
}

/// A circuit breaker state as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCircuit {
    /// Healthy: the key is tried normally.
    Closed,
    /// Probing: the key is a candidate; the caller bounds how many requests probe it at once.
    HalfOpen,
    /// Failing: the key is skipped until `until`. Once `until` has passed the key is due for a
    /// probe and is treated like [`KeyCircuit::HalfOpen`], so a state pushed late can never
    /// keep a key out of rotation for good.
    Open {
        /// When the key may be probed again.
        until: DateTime<Utc>,
    },
}

/// A [`RoutingView`] in which every circuit is closed and no key cools down: for tests,
/// benchmarks and tools that only want the catalog order.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllHealthy;

impl RoutingView for AllHealthy {
    fn circuit(&self, _provider_key_id: &str) -> KeyCircuit {
        KeyCircuit::Closed
    }

    fn cooldown_until(&self, _provider_key_id: &str) -> Option<DateTime<Utc>> {
        None
    }
}

/// One request as routing needs it.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The model name as the client sent it.
    pub model: &'a str,
    /// The client's wire format; only endpoints of exactly this format serve it.
    pub format: ApiFormat,
    /// Whether the client asked for a streamed response.
    pub stream: bool,
    /// The authenticated gateway key.
    pub gateway_key: &'a GatewayKey,
    /// The key's owner.
    pub user: &'a User,
    /// Capability requirements, already merged by the caller from the request, the key's forced
    /// capabilities and the user's settings: `true` = needed, `false` = explicitly not wanted.
    pub capabilities: &'a BTreeMap<String, bool>,
    /// Stable per client (the gateway key id): hash input for tie-breaks and the mapping choice.
    pub affinity_key: &'a str,
    /// The current instant, for circuit, cool-down and expiry checks.
    pub now: DateTime<Utc>,
}

/// Where a client was served last, as stored by the affinity store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTarget {
    /// Provider id.
    pub provider_id: String,
    /// Endpoint id.
    pub endpoint_id: String,
    /// Provider key id.
    pub provider_key_id: String,
}

/// One (provider, endpoint, key) triple that may serve the request.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The provider, shared with the catalog snapshot (so the indices below stay valid for as
    /// long as the candidate lives, whatever snapshot is current by then).
    pub provider: Arc<Provider>,
    /// Index into `provider.endpoints`.
    pub endpoint_index: usize,
    /// Index into the endpoint's `keys`.
    pub key_index: usize,
    /// The model name to send upstream (spec §1.5).
    pub upstream_model: String,
    /// `Some` = recorded with this reason but never attempted.
    pub skip: Option<SkipReason>,
    /// This is the client's affinity hit: it goes first and may use reserved slots.
    pub is_cached: bool,
}

impl Candidate {
    /// The candidate's endpoint.
    ///
    /// The indices are set by [`resolve`] from the same immutable provider, so they are in range
    /// unless a caller rewrote them.
    pub fn endpoint(&self) -> &Endpoint {
        &self.provider.endpoints[self.endpoint_index]
    }

    /// The candidate's provider key (same invariant as [`Candidate::endpoint`]).
    pub fn key(&self) -> &ProviderKey {
        &self.endpoint().keys[self.key_index]
    }

    /// Whether the orchestrator may try it.
    pub fn is_usable(&self) -> bool {
        self.skip.is_none()
    }
}

/// Why a candidate is recorded but not tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The key's circuit breaker is open.
    CircuitOpen {
        /// When it may be probed.
        until: DateTime<Utc>,
        /// Whole seconds left at resolution time (rounded up), for the trace text.
        remaining_secs: u64,
    },
    /// The key got a 429 and cools down.
    CoolingDown {
        /// When it may be used again.
        until: DateTime<Utc>,
        /// Whole seconds left at resolution time (rounded up), for the trace text.
        remaining_secs: u64,
    },
    /// The key's `expires_at` has passed.
    KeyExpired,
    /// The key's `allowed_models` lists neither the requested nor the canonical name.
    ModelNotAllowedForKey,
    /// The request needs this capability and the key lacks it.
    MissingCapability(String),
    /// The key offers this exclusive (premium) capability and the request did not ask for it.
    UnrequestedExclusiveCapability(String),
    /// The request explicitly refused this exclusive capability and the key has it.
    RefusedCapability(String),
}

impl SkipReason {
    /// A low-cardinality label for metrics and the `skip_reason` column's kind.
    pub fn as_label(&self) -> &'static str {
        match self {
            SkipReason::CircuitOpen { .. } => "circuit_open",
            SkipReason::CoolingDown { .. } => "cooling_down",
            SkipReason::KeyExpired => "key_expired",
            SkipReason::ModelNotAllowedForKey => "model_not_allowed_for_key",
            SkipReason::MissingCapability(_) => "missing_capability",
            SkipReason::UnrequestedExclusiveCapability(_) => "unrequested_exclusive_capability",
            SkipReason::RefusedCapability(_) => "refused_capability",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::CircuitOpen { remaining_secs, .. } => {
                write!(f, "circuit open for {remaining_secs} s")
            }
            SkipReason::CoolingDown { remaining_secs, .. } => {
                write!(f, "cooling down after a 429 for {remaining_secs} s")
            }
            SkipReason::KeyExpired => f.write_str("provider key expired"),
            SkipReason::ModelNotAllowedForKey => f.write_str("model not allowed for this key"),
            SkipReason::MissingCapability(cap) => {
                write!(f, "key lacks required capability `{cap}`")
            }
            SkipReason::UnrequestedExclusiveCapability(cap) => {
                write!(f, "key reserved for requests needing `{cap}`")
            }
            SkipReason::RefusedCapability(cap) => {
                write!(f, "key has capability `{cap}` the request refused")
            }
        }
    }
}

/// What became of the client's affinity entry; the caller deletes the entry on `Dropped` and
/// `Unusable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityUse {
    /// The entry's candidate was moved to the front and flagged `is_cached`.
    Hit,
    /// No lookup: fixed-order mode, or no entry for this client.
    Miss,
    /// The entry's candidate is usable but a strictly better one is usable too (a recovered
    /// primary gets its clients back); the order is unchanged.
    Dropped,
    /// The entry's candidate is skipped or no longer exists; the order is unchanged.
    Unusable,
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The model the request resolved to (the affinity and pricing dimension).
    pub global_model: Arc<GlobalModel>,
    /// All candidates in the order to try them; skipped ones stay in place for the record.
    pub candidates: Vec<Candidate>,
    /// What the affinity entry did.
    pub affinity: AffinityUse,
}

/// Why a request has no candidate list at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No global model by that name (canonical, alias or unambiguous upstream name): 404.
    #[error("model not found")]
    ModelNotFound,
    /// The gateway key or its user may not use this model: 403.
    #[error("model not allowed for this key")]
    ModelNotAllowed,
    /// The gateway key may not use this API format: 403.
    #[error("API format not allowed for this key")]
    FormatNotAllowed,
    /// The model exists but no active provider serves it for this format and streaming mode: 503.
    #[error(
        "no active provider serves model `{model}` for {format} {} requests{}",
        stream_word(*.stream),
        restricted_note(*.restricted)
    )]
    NoCandidate {
        /// The canonical model name.
        model: String,
        /// The request's format.
        format: ApiFormat,
        /// Whether the request streams.
        stream: bool,
        /// Some provider that serves the model was hidden by the key's or user's provider or
        /// endpoint restrictions (tells an operator where to look).
        restricted: bool,
    },
}

impl RouteError {
    /// A low-cardinality label for metrics and logs.
    pub fn as_label(&self) -> &'static str {
        match self {
            RouteError::ModelNotFound => "model_not_found",
            RouteError::ModelNotAllowed => "model_not_allowed",
            RouteError::FormatNotAllowed => "format_not_allowed",
            RouteError::NoCandidate { .. } => "no_candidate",
        }
    }
}

fn stream_word(stream: bool) -> &'static str {
    if stream { "streaming" } else { "non-streaming" }
}

fn restricted_note(restricted: bool) -> &'static str {
    if restricted {
        " within this key's provider and endpoint restrictions"
    } else {
        ""
    }
}

/// Resolves a request to its ordered candidates (see the module docs for the steps).
pub fn resolve(
    catalog: &Catalog,
    req: &RouteRequest<'_>,
    view: &impl RoutingView,
    affinity: Option<&AffinityTarget>,
) -> Result<Resolution, RouteError> {
    // 1. Model.
    let (global_model, _kind) = catalog
        .resolve_model(req.model)
        .ok_or(RouteError::ModelNotFound)?;
    let requested = req.model.trim();
    let canonical = global_model.name.as_str();

    // 2. Access.
    let key = req.gateway_key;
    let user = req.user;
    if !access::allows_model(key.allowed_models.as_deref(), requested, canonical)
        || !access::allows_model(user.allowed_models.as_deref(), requested, canonical)
    {
        return Err(RouteError::ModelNotAllowed);
    }
    if !key
        .allowed_api_formats
        .as_ref()
        .is_none_or(|formats| formats.contains(&req.format))
    {
        return Err(RouteError::FormatNotAllowed);
    }

    let mode = catalog.settings.priority_mode;
    let mut restricted = false;
    let mut ranked: Vec<(order::SortKey<'_>, Candidate)> = Vec::new();
    for provider in &catalog.providers {
        // 3. Provider-level support: providers that cannot serve the model leave no trace.
        let Some(model) = provider.models.get(&global_model.id) else {
            continue;
        };
        if req.stream && !model.supports_streaming {
            continue;
        }
        if !access::model_supports(global_model, req.capabilities) {
            continue;
        }
        // 4. Endpoint.
        let Some((endpoint_index, endpoint)) =
            pick_endpoint(provider, req.format, catalog.settings.format_conversion)
        else {
            continue;
        };
        let converted = !endpoint.api_format.same_payloads(req.format);
        if !access::allows_provider(key.allowed_providers.as_deref(), provider)
            || !access::allows_provider(user.allowed_providers.as_deref(), provider)
            || !access::allows_endpoint(key.allowed_endpoints.as_deref(), endpoint)
            || !access::allows_endpoint(user.allowed_endpoints.as_deref(), endpoint)
        {
            restricted = true;
            continue;
        }
        // 6. The upstream name depends on the provider model, format and client only: once
        // per provider, not per key.
        let upstream = order::upstream_model_name(model, endpoint.api_format, req.affinity_key);
        // 5. Keys.
        for (key_index, provider_key) in endpoint.keys.iter().enumerate() {
            let skip = access::skip_reason(provider_key, req, requested, canonical, view);
            ranked.push((
                order::sort_key(mode, provider, provider_key, req.affinity_key, converted),
                Candidate {
                    provider: Arc::clone(provider),
                    endpoint_index,
                    key_index,
                    upstream_model: upstream.to_owned(),
                    skip,
                    is_cached: false,
                },
            ));
        }
    }

    // 9. Nothing serves it.
    if ranked.is_empty() {
        return Err(RouteError::NoCandidate {
            model: canonical.to_owned(),
            format: req.format,
            stream: req.stream,
            restricted,
        });
    }

    // 7. One global, stable sort; the key ends in the key id, so the order is total.
    ranked.sort_by(|a, b| a.0.cmp(&b.0));

    // 8. Affinity.
    let affinity_use = match (catalog.settings.scheduling_mode, affinity) {
        (SchedulingMode::CacheAffinity, Some(target)) => apply_affinity(&mut ranked, target),
        _ => AffinityUse::Miss,
    };

    Ok(Resolution {
        global_model: Arc::clone(global_model),
        candidates: ranked.into_iter().map(|(_, c)| c).collect(),
        affinity: affinity_use,
    })
}

/// The models a client may use, by canonical name: those its key and user may use (`allowed_models`)
/// that at least one provider it may reach implements, sorted by name. This is what the model
/// list endpoints show.
pub fn visible_models(catalog: &Catalog, key: &GatewayKey, user: &User) -> Vec<Arc<GlobalModel>> {
    let mut models: Vec<Arc<GlobalModel>> = catalog
        .global_models
        .values()
        .filter(|model| {
            access::allows_model(key.allowed_models.as_deref(), &model.name, &model.name)
                && access::allows_model(user.allowed_models.as_deref(), &model.name, &model.name)
                && catalog.providers.iter().any(|provider| {
                    provider.models.contains_key(&model.id)
                        && !provider.endpoints.is_empty()
                        && access::allows_provider(key.allowed_providers.as_deref(), provider)
                        && access::allows_provider(user.allowed_providers.as_deref(), provider)
                })
        })
        .cloned()
        .collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    models
}

/// The endpoint of `provider` that serves a `format` client: the exact format, else one with
/// the same payloads, else the first that allows conversion (its own flag, else `global`).
fn pick_endpoint(
    provider: &Provider,
    format: ApiFormat,
    global: bool,
) -> Option<(usize, &Endpoint)> {
    let endpoints = || provider.endpoints.iter().enumerate();
    endpoints()
        .find(|(_, e)| e.api_format == format)
        .or_else(|| endpoints().find(|(_, e)| e.api_format.same_payloads(format)))
        .or_else(|| endpoints().find(|(_, e)| e.format_conversion.unwrap_or(global)))
}

/// Promotes the affinity target to the front if it is usable and nothing usable is strictly
/// better; leaves the order alone otherwise.
fn apply_affinity(
    ranked: &mut [(order::SortKey<'_>, Candidate)],
    target: &AffinityTarget,
) -> AffinityUse {
    let Some(index) = ranked.iter().position(|(_, c)| {
        c.provider.id == target.provider_id
            && c.endpoint().id == target.endpoint_id
            && c.key().id == target.provider_key_id
    }) else {
        return AffinityUse::Unusable;
    };
    let Some((target_key, target_candidate)) = ranked.get(index) else {
        return AffinityUse::Unusable;
    };
    if !target_candidate.is_usable() {
        return AffinityUse::Unusable;
    }
    let better_usable = ranked
        .iter()
        .any(|(k, c)| c.is_usable() && k.beats(target_key));
    if better_usable {
        return AffinityUse::Dropped;
    }
    ranked[..=index].rotate_right(1);
    if let Some((_, first)) = ranked.first_mut() {
        first.is_cached = true;
    }
    AffinityUse::Hit
}
