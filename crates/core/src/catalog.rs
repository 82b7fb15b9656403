//! The routing catalog: an immutable snapshot of everything the request path needs (providers →
//! endpoints → keys, models, aliases, prices, gateway keys, users, routing settings).
//!
//! A snapshot is built once from the database and then only read; a change builds a new one and
//! the owner swaps it in whole. Only *active* entities are in it: an inactive provider, endpoint,
//! key, model, alias, user or gateway key simply does not exist for routing.

use crate::pricing::TieredPricing;
use crate::settings::RoutingSettings;
use crate::{ApiFormat, SecretString, mapping::ModelMapping};
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a provider is billed; `FreeTier` makes the actual cost of its requests zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingType {
    /// A prepaid monthly quota.
    MonthlyQuota,
    /// Billed per use.
    PayAsYouGo,
    /// Costs nothing.
    FreeTier,
}

/// An upstream provider with its endpoints and model implementations.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Database id.
    pub id: String,
    /// Unique name (logs, usage rows).
    pub name: String,
    /// Lower is preferred.
    pub priority: i32,
    /// Billing kind.
    pub billing_type: BillingType,
    /// Active endpoints, at most one per format, in format order.
    pub endpoints: Vec<Endpoint>,
    /// Active provider models keyed by global model id.
    pub models: HashMap<String, ProviderModel>,
}

/// One endpoint of a provider: a base URL speaking one format.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Database id.
    pub id: String,
    /// Owning provider id.
    pub provider_id: String,
    /// The format this endpoint speaks.
    pub api_format: ApiFormat,
    /// Upstream base URL.
    pub base_url: String,
    /// Overrides the format's default path.
    pub custom_path: Option<String>,
    /// Extra upstream headers.
    pub headers: BTreeMap<String, String>,
    /// Whole-request timeout for non-streamed calls and idle timeout for streams, seconds.
    pub timeout_secs: u32,
    /// Time allowed for the upstream's response head, seconds.
    pub header_timeout_secs: u32,
    /// Time allowed for the first stream event after the head, seconds.
    pub first_byte_timeout_secs: u32,
    /// Attempts on the same candidate after a transport or 5xx failure.
    pub max_retries: u32,
    /// Endpoint-wide concurrency cap.
    pub max_concurrent: Option<u32>,
    /// May serve clients of another format, converted: `None` follows the global setting.
    pub format_conversion: Option<bool>,
    /// Active keys of this endpoint.
    pub keys: Vec<ProviderKey>,
}

/// An upstream credential.
#[derive(Debug, Clone)]
pub struct ProviderKey {
    /// Database id.
    pub id: String,
    /// Owning endpoint id.
    pub endpoint_id: String,
    /// Display name.
    pub name: String,
    /// The decrypted credential; `Debug` redacts it.
    pub secret: SecretString,
    /// Order inside the endpoint (lower first); `None` sorts last.
    pub internal_priority: Option<i32>,
    /// Order across providers in `global_key` mode; `None` sorts last.
    pub global_priority: Option<i32>,
    /// Fixed concurrency limit; `None` = adaptive (learned from 429s).
    pub max_concurrent: Option<u32>,
    /// Requests per minute this key may send; `None` = unlimited.
    pub rpm_limit: Option<u32>,
    /// Model names this key may serve; `None` = any, empty = none.
    pub allowed_models: Option<Vec<String>>,
    /// Capabilities the key offers.
    pub capabilities: BTreeMap<String, bool>,
    /// How long the upstream keeps a prompt cache warm; 0 = no caching, no affinity.
    pub cache_ttl_minutes: u32,
    /// Actual cost = nominal cost × this.
    pub rate_multiplier: f64,
    /// The key is unusable from this instant on.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ProviderKey {
    /// A key named after its id, without priorities, limits, restrictions or expiry, its
    /// prompt cache warm for five minutes: the base that fixtures and benchmarks adjust.
    pub fn new(id: &str, endpoint_id: &str, secret: SecretString) -> Self {
        Self {
            id: id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            name: id.to_owned(),
            secret,
            internal_priority: None,
            global_priority: None,
            max_concurrent: None,
            rpm_limit: None,
            allowed_models: None,
            capabilities: BTreeMap::new(),
            cache_ttl_minutes: 5,
            rate_multiplier: 1.0,
            expires_at: None,
        }
    }
}

/// A canonical model.
#[derive(Debug, Clone)]
pub struct GlobalModel {
    /// Database id.
    pub id: String,
    /// Canonical public name.
    pub name: String,
    /// Default prices.
    pub default_pricing: TieredPricing,
    /// Default price per successful request.
    pub default_price_per_request: Option<f64>,
    /// Capabilities the model supports; empty = no restriction.
    pub supported_capabilities: Vec<String>,
}

/// A provider's implementation of a global model.
#[derive(Debug, Clone)]
pub struct ProviderModel {
    /// Database id.
    pub id: String,
    /// The global model it implements.
    pub global_model_id: String,
    /// The upstream's primary name.
    pub provider_model_name: String,
    /// Alternative upstream names with priorities and format restrictions.
    pub mappings: Vec<ModelMapping>,
    /// Overrides the global model's prices.
    pub pricing: Option<TieredPricing>,
    /// Overrides the global model's per-request price.
    pub price_per_request: Option<f64>,
    /// Whether streamed requests may use it (default true).
    pub supports_streaming: bool,
}

/// A user: owner of gateway keys, with restrictions and a quota.
#[derive(Debug, Clone)]
pub struct User {
    /// Database id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Admins have no quota.
    pub is_admin: bool,
    /// Restrictions; `None` = unrestricted.
    pub allowed_providers: Option<Vec<String>>,
    /// Restrictions; `None` = unrestricted.
    pub allowed_endpoints: Option<Vec<String>>,
    /// Restrictions; `None` = unrestricted.
    pub allowed_models: Option<Vec<String>>,
    /// Per-model capability preferences.
    pub model_capability_settings: BTreeMap<String, BTreeMap<String, bool>>,
    /// Spend limit for the current period; `None` = unlimited.
    pub quota_usd: Option<f64>,
    /// Spend in the current period (as of the snapshot).
    pub used_usd: f64,
}

/// A gateway key as the request path sees it: found by the SHA-256 of its plaintext.
#[derive(Debug, Clone)]
pub struct GatewayKey {
    /// Database id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// The key stops working at this instant.
    pub expires_at: Option<DateTime<Utc>>,
    /// Has its own balance instead of the user's quota.
    pub is_standalone: bool,
    /// Remaining balance for standalone keys; `None` = unlimited.
    pub balance_usd: Option<f64>,
    /// Spent from the balance (as of the snapshot).
    pub balance_used_usd: f64,
    /// Restrictions; `None` = unrestricted.
    pub allowed_providers: Option<Vec<String>>,
    /// Restrictions; `None` = unrestricted.
    pub allowed_endpoints: Option<Vec<String>>,
    /// Restrictions; `None` = unrestricted.
    pub allowed_api_formats: Option<Vec<ApiFormat>>,
    /// Restrictions; `None` = unrestricted.
    pub allowed_models: Option<Vec<String>>,
    /// Capabilities forced on every request made with this key.
    pub force_capabilities: BTreeMap<String, bool>,
}

/// The raw parts a snapshot is built from (already filtered to active entities).
#[derive(Debug, Default)]
pub struct CatalogParts {
    /// Providers with endpoints, keys and models filled in.
    pub providers: Vec<Provider>,
    /// Canonical models.
    pub global_models: Vec<GlobalModel>,
    /// `(alias, global model id)`.
    pub aliases: Vec<(String, String)>,
    /// Users.
    pub users: Vec<User>,
    /// `(key hash, key)`.
    pub gateway_keys: Vec<(String, GatewayKey)>,
    /// Routing settings.
    pub settings: RoutingSettings,
    /// When the loader started reading: spend counters in the snapshot include what was written
    /// before this instant (the request path adds what was spent since).
    pub loaded_at: Option<DateTime<Utc>>,
}

/// How a requested model name was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// The canonical name of a global model.
    Canonical,
    /// A configured alias.
    Alias,
    /// An upstream name that exactly one global model is known by.
    ProviderName,
}

/// The immutable routing snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Monotonic version; a newer snapshot has a larger number.
    pub version: u64,
    /// Providers ordered by `(priority, name)`.
    pub providers: Vec<Arc<Provider>>,
    /// Global models by id.
    pub global_models: HashMap<String, Arc<GlobalModel>>,
    /// Every name a request may use → global model id and how the name was recognised.
    pub model_names: HashMap<String, (String, NameKind)>,
    /// Users by id.
    pub users: HashMap<String, Arc<User>>,
    /// Gateway keys by SHA-256 hex of the plaintext.
    pub gateway_keys: HashMap<String, Arc<GatewayKey>>,
    /// Routing settings.
    pub settings: RoutingSettings,
    /// Upstream names that two or more global models share; they resolve to nothing.
    pub ambiguous_names: Vec<String>,
    /// See [`CatalogParts::loaded_at`].
    pub loaded_at: Option<DateTime<Utc>>,
}

impl Catalog {
    /// Builds a snapshot. Model names resolve canonical name first, then alias, then an upstream
    /// name known for exactly one global model — unlike the reference, an upstream name can never
    /// shadow a canonical one, and a shared upstream name resolves to nothing rather than to
    /// whichever model the database returned first.
    pub fn build(version: u64, parts: CatalogParts) -> Catalog {
        let mut providers: Vec<Provider> = parts.providers;
        providers.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));

        let global_models: HashMap<String, Arc<GlobalModel>> = parts
            .global_models
            .into_iter()
            .map(|m| (m.id.clone(), Arc::new(m)))
            .collect();

        let mut model_names: HashMap<String, (String, NameKind)> = HashMap::default();
        let mut upstream_names: HashMap<String, Vec<String>> = HashMap::default();
        for provider in &providers {
            for model in provider.models.values() {
                if global_models.contains_key(&model.global_model_id) {
                    let ids = upstream_names
                        .entry(model.provider_model_name.clone())
                        .or_default();
                    if !ids.contains(&model.global_model_id) {
                        ids.push(model.global_model_id.clone());
                    }
                }
            }
        }
        let mut ambiguous_names = Vec::new();
        for (name, ids) in upstream_names {
            match ids.as_slice() {
                [only] => {
                    model_names.insert(name, (only.clone(), NameKind::ProviderName));
                }
                _ => ambiguous_names.push(name),
            }
        }
        for (alias, id) in parts.aliases {
            if global_models.contains_key(&id) {
                model_names.insert(alias, (id, NameKind::Alias));
            }
        }
        for model in global_models.values() {
            model_names.insert(model.name.clone(), (model.id.clone(), NameKind::Canonical));
        }
        ambiguous_names.retain(|n| !model_names.contains_key(n));
        ambiguous_names.sort();

        Catalog {
            version,
            providers: providers.into_iter().map(Arc::new).collect(),
            global_models,
            model_names,
            users: parts
                .users
                .into_iter()
                .map(|u| (u.id.clone(), Arc::new(u)))
                .collect(),
            gateway_keys: parts
                .gateway_keys
                .into_iter()
                .map(|(hash, key)| (hash, Arc::new(key)))
                .collect(),
            settings: parts.settings,
            ambiguous_names,
            loaded_at: parts.loaded_at,
        }
    }

    /// Resolves a requested model name to its global model.
    pub fn resolve_model(&self, name: &str) -> Option<(&Arc<GlobalModel>, NameKind)> {
        let (id, kind) = self.model_names.get(name.trim())?;
        self.global_models.get(id).map(|m| (m, *kind))
    }

    /// Counts for status pages and logs.
    pub fn summary(&self) -> CatalogSummary {
        let endpoints = self.providers.iter().map(|p| p.endpoints.len()).sum();
        let keys = self
            .providers
            .iter()
            .flat_map(|p| &p.endpoints)
            .map(|e| e.keys.len())
            .sum();
        CatalogSummary {
            version: self.version,
            providers: self.providers.len(),
            endpoints,
            provider_keys: keys,
            global_models: self.global_models.len(),
            model_names: self.model_names.len(),
            gateway_keys: self.gateway_keys.len(),
            users: self.users.len(),
        }
    }
}

/// Sizes of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CatalogSummary {
    /// Snapshot version.
    pub version: u64,
    /// Active providers.
    pub providers: usize,
    /// Active endpoints.
    pub endpoints: usize,
    /// Active provider keys.
    pub provider_keys: usize,
    /// Active global models.
    pub global_models: usize,
    /// Names that resolve to a model.
    pub model_names: usize,
    /// Active gateway keys.
    pub gateway_keys: usize,
    /// Active users.
    pub users: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(id: &str, name: &str) -> GlobalModel {
        GlobalModel {
            id: id.into(),
            name: name.into(),
            default_pricing: TieredPricing::flat(1.0, 2.0),
            default_price_per_request: None,
            supported_capabilities: vec![],
        }
    }

    fn provider(name: &str, priority: i32, models: &[(&str, &str)]) -> Provider {
        Provider {
            id: format!("p-{name}"),
            name: name.into(),
            priority,
            billing_type: BillingType::PayAsYouGo,
            endpoints: vec![],
            models: models
                .iter()
                .map(|(global_id, upstream)| {
                    (
                        (*global_id).to_owned(),
                        ProviderModel {
                            id: format!("pm-{name}-{global_id}"),
                            global_model_id: (*global_id).to_owned(),
                            provider_model_name: (*upstream).to_owned(),
                            mappings: vec![],
                            pricing: None,
                            price_per_request: None,
                            supports_streaming: true,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn canonical_beats_alias_beats_upstream_name_and_shared_upstream_names_are_ambiguous() {
        let catalog = Catalog::build(
            1,
            CatalogParts {
                providers: vec![
                    provider("b", 10, &[("g1", "shared"), ("g2", "gpt-4o")]),
                    provider("a", 10, &[("g2", "shared"), ("g1", "only-a")]),
                ],
                global_models: vec![global("g1", "gpt-4o"), global("g2", "claude")],
                aliases: vec![("best".into(), "g2".into()), ("only-a".into(), "g2".into())],
                ..CatalogParts::default()
            },
        );
        let id = |name: &str| catalog.resolve_model(name).map(|(m, k)| (m.id.clone(), k));
        // "gpt-4o" is g1's canonical name even though provider b calls g2 "gpt-4o".
        assert_eq!(id("gpt-4o"), Some(("g1".into(), NameKind::Canonical)));
        assert_eq!(id("best"), Some(("g2".into(), NameKind::Alias)));
        // An alias beats an upstream name.
        assert_eq!(id("only-a"), Some(("g2".into(), NameKind::Alias)));
        assert_eq!(id("shared"), None);
        assert_eq!(catalog.ambiguous_names, vec!["shared".to_owned()]);
        // Providers sorted by (priority, name).
        let names: Vec<_> = catalog.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
