//! Loading the routing catalog from the database, and the handle that publishes the current
//! snapshot.
//!
//! Readers call [`CatalogHandle::current`]: one atomic pointer load, no lock, no database. Writers
//! (the admin API, the import, a periodic refresh) call [`CatalogHandle::reload`], which builds a
//! complete new snapshot and swaps it in whole; reloads are serialised so an older snapshot can
//! never replace a newer one.

use crate::entity::{
    endpoint, gateway_key, global_model, model_alias, provider, provider_key, provider_model, user,
};
use crate::error::StoreError;
use crate::secrets::Cipher;
use arc_swap::ArcSwap;
use foldhash::{HashMap, HashSet};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_core::ApiFormat;
use switchyard_core::catalog::{
    BillingType, Catalog, CatalogParts, Endpoint, GatewayKey, GlobalModel, Provider, ProviderKey,
    ProviderModel, User,
};
use switchyard_core::pricing::TieredPricing;

/// Publishes the current catalog snapshot.
pub struct CatalogHandle {
    current: ArcSwap<Catalog>,
    next_version: AtomicU64,
    reload_lock: tokio::sync::Mutex<()>,
    cipher: Cipher,
    /// Told about every new snapshot (the Scheduler shards). Touched at start-up and on reload,
    /// never on the request path.
    subscribers: std::sync::Mutex<Vec<Subscriber>>,
}

/// A function told about every new snapshot.
pub type Subscriber = Box<dyn Fn(Arc<Catalog>) + Send + Sync>;

impl std::fmt::Debug for CatalogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogHandle")
            .field("version", &self.current.load().version)
            .finish()
    }
}

impl CatalogHandle {
    /// Loads the first snapshot.
    pub async fn load<C: ConnectionTrait>(db: &C, cipher: Cipher) -> Result<Self, StoreError> {
        let catalog = build(db, &cipher, 1).await?;
        Ok(Self {
            current: ArcSwap::from_pointee(catalog),
            next_version: AtomicU64::new(2),
            reload_lock: tokio::sync::Mutex::new(()),
            cipher,
            subscribers: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Calls `subscriber` with every snapshot published from now on.
    pub fn subscribe(&self, subscriber: Subscriber) {
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(subscriber);
        }
    }

    /// The snapshot in force now.
    pub fn current(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Builds a new snapshot from the database and swaps it in; returns it.
    pub async fn reload<C: ConnectionTrait>(&self, db: &C) -> Result<Arc<Catalog>, StoreError> {
        let _serialised = self.reload_lock.lock().await;
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let catalog = Arc::new(build(db, &self.cipher, version).await?);
        self.current.store(catalog.clone());
        if let Ok(subscribers) = self.subscribers.lock() {
            for subscriber in subscribers.iter() {
                subscriber(catalog.clone());
            }
        }
        tracing::debug!(version, "catalog reloaded");
        Ok(catalog)
    }

    /// The cipher provider keys are encrypted with.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }
}

/// Reads every active entity and builds a snapshot.
pub async fn build<C: ConnectionTrait>(
    db: &C,
    cipher: &Cipher,
    version: u64,
) -> Result<Catalog, StoreError> {
    let parts = load_parts(db, cipher).await?;
    let catalog = Catalog::build(version, parts);
    for name in &catalog.ambiguous_names {
        tracing::warn!(
            model_name = %name,
            "upstream model name is shared by several global models; it resolves to none of them"
        );
    }
    Ok(catalog)
}

async fn load_parts<C: ConnectionTrait>(
    db: &C,
    cipher: &Cipher,
) -> Result<CatalogParts, StoreError> {
    let loaded_at = chrono::Utc::now();
    let global_models: Vec<GlobalModel> = global_model::Entity::find()
        .filter(global_model::Column::IsActive.eq(true))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|m| {
            let pricing = parse::<TieredPricing>(&m.default_tiered_pricing, "global model", &m.id)?;
            Some(GlobalModel {
                supported_capabilities: list(&m.supported_capabilities).unwrap_or_default(),
                id: m.id,
                name: m.name,
                default_pricing: pricing,
                default_price_per_request: m.default_price_per_request,
            })
        })
        .collect();
    let global_ids: HashSet<&str> = global_models.iter().map(|m| m.id.as_str()).collect();

    let mut providers: Vec<Provider> = Vec::new();
    for p in provider::Entity::find()
        .filter(provider::Column::IsActive.eq(true))
        .all(db)
        .await?
    {
        providers.push(Provider {
            billing_type: match p.billing_type.as_str() {
                "monthly_quota" => BillingType::MonthlyQuota,
                "free_tier" => BillingType::FreeTier,
                _ => BillingType::PayAsYouGo,
            },
            id: p.id,
            name: p.name,
            priority: p.priority,
            endpoints: Vec::new(),
            models: HashMap::default(),
        });
    }
    let provider_index: HashMap<String, usize> = providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();

    let mut endpoints: HashMap<String, Endpoint> = HashMap::default();
    for e in endpoint::Entity::find()
        .filter(endpoint::Column::IsActive.eq(true))
        .all(db)
        .await?
    {
        if !provider_index.contains_key(&e.provider_id) {
            continue;
        }
        let Ok(api_format) = e.api_format.parse::<ApiFormat>() else {
            tracing::error!(endpoint_id = %e.id, "stored endpoint has an unknown API format; skipped");
            continue;
        };
        let headers = e
            .headers
            .as_ref()
            .and_then(|h| parse::<BTreeMap<String, String>>(h, "endpoint headers", &e.id))
            .unwrap_or_default();
        endpoints.insert(
            e.id.clone(),
            Endpoint {
                id: e.id,
                provider_id: e.provider_id,
                api_format,
                base_url: e.base_url,
                custom_path: e.custom_path,
                headers,
                timeout_secs: non_negative(e.timeout_secs),
                header_timeout_secs: non_negative(e.header_timeout_secs),
                first_byte_timeout_secs: non_negative(e.first_byte_timeout_secs),
                max_retries: non_negative(e.max_retries),
                max_concurrent: e.max_concurrent.map(non_negative),
                format_conversion: e.format_conversion,
                keys: Vec::new(),
            },
        );
    }

    for k in provider_key::Entity::find()
        .filter(provider_key::Column::IsActive.eq(true))
        .all(db)
        .await?
    {
        let Some(endpoint) = endpoints.get_mut(&k.endpoint_id) else {
            continue;
        };
        let Some(secret) = cipher.decrypt(&k.secret_encrypted) else {
            tracing::error!(
                provider_key_id = %k.id,
                "provider key cannot be decrypted with the configured encryption key; skipped"
            );
            continue;
        };
        endpoint.keys.push(ProviderKey {
            capabilities: k
                .capabilities
                .as_ref()
                .and_then(|c| parse::<BTreeMap<String, bool>>(c, "key capabilities", &k.id))
                .unwrap_or_default(),
            allowed_models: list(&k.allowed_models),
            id: k.id,
            endpoint_id: k.endpoint_id,
            name: k.name,
            secret,
            internal_priority: k.internal_priority,
            global_priority: k.global_priority,
            max_concurrent: k.max_concurrent.map(non_negative),
            rpm_limit: k.rpm_limit.map(non_negative),
            cache_ttl_minutes: non_negative(k.cache_ttl_minutes),
            rate_multiplier: k.rate_multiplier,
            expires_at: k.expires_at,
        });
    }
    let mut endpoints: Vec<Endpoint> = endpoints.into_values().collect();
    endpoints.sort_by(|a, b| (a.api_format, &a.id).cmp(&(b.api_format, &b.id)));
    for mut endpoint in endpoints {
        endpoint.keys.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(&i) = provider_index.get(&endpoint.provider_id) {
            providers[i].endpoints.push(endpoint);
        }
    }

    for m in provider_model::Entity::find()
        .filter(provider_model::Column::IsActive.eq(true))
        .all(db)
        .await?
    {
        let Some(&i) = provider_index.get(&m.provider_id) else {
            continue;
        };
        if !global_ids.contains(m.global_model_id.as_str()) {
            continue;
        }
        let pricing = match &m.tiered_pricing {
            Some(json) => match parse::<TieredPricing>(json, "provider model pricing", &m.id) {
                Some(p) => Some(p),
                None => continue,
            },
            None => None,
        };
        providers[i].models.insert(
            m.global_model_id.clone(),
            ProviderModel {
                mappings: m
                    .mappings
                    .as_ref()
                    .and_then(|j| parse(j, "provider model mappings", &m.id))
                    .unwrap_or_default(),
                id: m.id,
                global_model_id: m.global_model_id,
                provider_model_name: m.provider_model_name,
                pricing,
                price_per_request: m.price_per_request,
                supports_streaming: m.supports_streaming.unwrap_or(true),
            },
        );
    }

    let aliases = model_alias::Entity::find()
        .filter(model_alias::Column::IsActive.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.alias, a.global_model_id))
        .collect();

    let users: Vec<User> = user::Entity::find()
        .filter(user::Column::IsActive.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|u| User {
            is_admin: u.role == "admin",
            allowed_providers: list(&u.allowed_providers),
            allowed_endpoints: list(&u.allowed_endpoints),
            allowed_models: list(&u.allowed_models),
            model_capability_settings: u
                .model_capability_settings
                .as_ref()
                .and_then(|j| parse(j, "user capability settings", &u.id))
                .unwrap_or_default(),
            id: u.id,
            name: u.name,
            quota_usd: u.quota_usd,
            used_usd: u.used_usd,
        })
        .collect();
    let user_ids: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();

    let gateway_keys = gateway_key::Entity::find()
        .filter(gateway_key::Column::IsActive.eq(true))
        .all(db)
        .await?
        .into_iter()
        .filter(|k| user_ids.contains(k.user_id.as_str()))
        .map(|k| {
            let key = GatewayKey {
                allowed_providers: list(&k.allowed_providers),
                allowed_endpoints: list(&k.allowed_endpoints),
                allowed_api_formats: list::<ApiFormat>(&k.allowed_api_formats),
                allowed_models: list(&k.allowed_models),
                force_capabilities: k
                    .force_capabilities
                    .as_ref()
                    .and_then(|j| parse(j, "gateway key capabilities", &k.id))
                    .unwrap_or_default(),
                id: k.id,
                user_id: k.user_id,
                name: k.name,
                expires_at: k.expires_at,
                is_standalone: k.is_standalone,
                balance_usd: k.balance_usd,
                balance_used_usd: k.balance_used_usd,
            };
            (k.key_hash, key)
        })
        .collect();

    Ok(CatalogParts {
        providers,
        global_models,
        aliases,
        users,
        gateway_keys,
        settings: crate::settings::load(db).await?,
        loaded_at: Some(loaded_at),
    })
}

fn non_negative(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Parses a JSON column, logging (without its content) and skipping a malformed one: one bad row
/// must not take the whole catalog down.
fn parse<T: DeserializeOwned>(json: &serde_json::Value, what: &str, id: &str) -> Option<T> {
    match serde_json::from_value(json.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(row_id = %id, error = %e, "stored {what} is malformed; skipped");
            None
        }
    }
}

/// A nullable JSON list column: `None` stays `None` (unrestricted), a list is parsed.
fn list<T: DeserializeOwned>(json: &Option<serde_json::Value>) -> Option<Vec<T>> {
    json.as_ref()
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}
