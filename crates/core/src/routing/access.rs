//! Who may use what: the access lists of gateway keys and users, the capability rules of spec
//! §3.6 and the per-key skip reasons.
//!
//! Every `allowed_*` list follows one rule (fixing §11.1 #13, where `[]` meant "unrestricted" on
//! client keys but "nothing" on provider keys): `None` = unrestricted, `Some(list)` = only what is
//! listed, so `Some([])` allows nothing.

use super::{KeyCircuit, RouteRequest, RoutingView, SkipReason};
use crate::capability::{self, MatchMode};
use crate::catalog::{Endpoint, GlobalModel, Provider, ProviderKey};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A model list allows the request when it names the requested or the canonical name, so an
/// operator may list either the public name or the alias clients actually send.
pub(super) fn allows_model(list: Option<&[String]>, requested: &str, canonical: &str) -> bool {
    list.is_none_or(|names| names.iter().any(|n| n == requested || n == canonical))
}

/// Provider lists name providers by id or by name (operators type names, the admin UI stores ids).
pub(super) fn allows_provider(list: Option<&[String]>, provider: &Provider) -> bool {
    list.is_none_or(|entries| {
        entries
            .iter()
            .any(|e| *e == provider.id || *e == provider.name)
    })
}

/// Endpoint lists name endpoints by id.
pub(super) fn allows_endpoint(list: Option<&[String]>, endpoint: &Endpoint) -> bool {
    list.is_none_or(|ids| ids.contains(&endpoint.id))
}

/// Whether the global model supports every required capability; an empty supported list means
/// the model does not restrict capabilities.
pub(super) fn model_supports(model: &GlobalModel, required: &BTreeMap<String, bool>) -> bool {
    model.supported_capabilities.is_empty()
        || required
            .iter()
            .filter(|(_, needed)| **needed)
            .all(|(name, _)| model.supported_capabilities.contains(name))
}

/// The first reason not to try this key, checked cheapest and most telling first: live state
/// (circuit, cool-down), then the key's own configuration.
pub(super) fn skip_reason(
    key: &ProviderKey,
    req: &RouteRequest<'_>,
    requested: &str,
    canonical: &str,
    view: &impl RoutingView,
) -> Option<SkipReason> {
    // An open circuit whose `until` has passed is due for a probe: treat it as half-open rather
    // than waiting for the health owner's transition to arrive.
    if let KeyCircuit::Open { until } = view.circuit(&key.id)
        && until > req.now
    {
        return Some(SkipReason::CircuitOpen {
            until,
            remaining_secs: remaining_secs(until, req.now),
        });
    }
    if let Some(until) = view.cooldown_until(&key.id)
        && until > req.now
    {
        return Some(SkipReason::CoolingDown {
            until,
            remaining_secs: remaining_secs(until, req.now),
        });
    }
    if key.expires_at.is_some_and(|at| at <= req.now) {
        return Some(SkipReason::KeyExpired);
    }
    if !allows_model(key.allowed_models.as_deref(), requested, canonical) {
        return Some(SkipReason::ModelNotAllowedForKey);
    }
    capability_mismatch(&key.capabilities, req.capabilities)
}

/// Spec §3.6. Requirements are checked in name order, then the key's own exclusive
/// capabilities, so the reported reason is deterministic.
///
/// A capability missing from the registry is matched as compatible: a request that needs it
/// goes only to keys that declare it, and no key is kept from anybody because of it.
pub(super) fn capability_mismatch(
    key_caps: &BTreeMap<String, bool>,
    required: &BTreeMap<String, bool>,
) -> Option<SkipReason> {
    let has = |name: &str| key_caps.get(name).copied().unwrap_or(false);
    let exclusive =
        |name: &str| capability::find(name).is_some_and(|c| c.mode == MatchMode::Exclusive);
    for (name, &needed) in required {
        if needed && !has(name) {
            return Some(SkipReason::MissingCapability(name.clone()));
        }
        if !needed && exclusive(name) && has(name) {
            return Some(SkipReason::RefusedCapability(name.clone()));
        }
    }
    // A premium key (e.g. 1-hour cache) is kept for the requests that ask for it.
    key_caps
        .iter()
        .find(|(name, offered)| **offered && !required.contains_key(*name) && exclusive(name))
        .map(|(name, _)| SkipReason::UnrequestedExclusiveCapability(name.clone()))
}

/// Seconds from `now` to `until`, rounded up so "0 s" is never shown for a key still closed.
fn remaining_secs(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let millis = (until - now).num_milliseconds().max(0);
    u64::try_from(millis).unwrap_or(0).div_ceil(1000)
}
