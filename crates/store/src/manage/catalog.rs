//! Catalog resources: providers, endpoints, provider keys, global models, provider models (with
//! their name mappings and prices) and model aliases.

use super::validate as check;
use super::{ManageError, Resource, WriteContext, from_json, invalid, to_json, yes};
use crate::entity::{endpoint, global_model, model_alias, provider, provider_key, provider_model};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use switchyard_core::catalog::BillingType;
use switchyard_core::mapping::{self, ModelMapping};
use switchyard_core::pricing::TieredPricing;
use switchyard_core::{ApiFormat, SecretString};

fn billing_str(b: BillingType) -> &'static str {
    match b {
        BillingType::MonthlyQuota => "monthly_quota",
        BillingType::PayAsYouGo => "pay_as_you_go",
        BillingType::FreeTier => "free_tier",
    }
}

// ---------------------------------------------------------------------------------------------
// Providers

/// Providers.
#[derive(Debug)]
pub struct Providers;

/// A provider as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Inactive providers are never candidates.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Lower is preferred (0–10000).
    #[serde(default = "default_provider_priority")]
    pub priority: i32,
    /// Billing kind.
    #[serde(default = "default_billing")]
    pub billing_type: BillingType,
    /// Monthly prepaid quota in USD.
    #[serde(default)]
    pub monthly_quota_usd: Option<f64>,
    /// Days between quota resets (1–365).
    #[serde(default = "default_reset_day")]
    pub quota_reset_day: i32,
    /// When the prepaid quota expires.
    #[serde(default)]
    pub quota_expires_at: Option<DateTime<Utc>>,
}

fn default_provider_priority() -> i32 {
    100
}
fn default_billing() -> BillingType {
    BillingType::PayAsYouGo
}
fn default_reset_day() -> i32 {
    30
}

/// A provider as shown.
#[derive(Debug, Serialize)]
pub struct ProviderView {
    /// Id.
    pub id: String,
    /// The submitted fields.
    #[serde(flatten)]
    pub input: ProviderInput,
    /// Spend this period, USD (actual cost).
    pub monthly_used_usd: f64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for Providers {
    type Entity = provider::Entity;
    type Model = provider::Model;
    type Active = provider::ActiveModel;
    type Input = ProviderInput;
    type View = ProviderView;
    const KIND: &'static str = "provider";
    const FILTERS: &'static [&'static str] = &["name", "is_active"];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("name", "name")];

    fn input_of(m: &provider::Model) -> ProviderInput {
        ProviderInput {
            name: m.name.clone(),
            description: m.description.clone(),
            is_active: m.is_active,
            priority: m.priority,
            billing_type: match m.billing_type.as_str() {
                "monthly_quota" => BillingType::MonthlyQuota,
                "free_tier" => BillingType::FreeTier,
                _ => BillingType::PayAsYouGo,
            },
            monthly_quota_usd: m.monthly_quota_usd,
            quota_reset_day: m.quota_reset_day,
            quota_expires_at: m.quota_expires_at,
        }
    }

    async fn check<C: ConnectionTrait>(
        _db: &C,
        input: &ProviderInput,
        _existing: Option<&provider::Model>,
    ) -> Result<(), ManageError> {
        check::name("name", &input.name)?;
        check::range("priority", input.priority, 0, 10_000)?;
        check::range("quota_reset_day", input.quota_reset_day, 1, 365)?;
        check::amount("monthly_quota_usd", input.monthly_quota_usd, 0.0)
    }

    fn write(
        input: ProviderInput,
        id: String,
        existing: Option<&provider::Model>,
        ctx: &WriteContext,
    ) -> Result<provider::ActiveModel, ManageError> {
        Ok(provider::ActiveModel {
            id: Set(id),
            name: Set(input.name),
            description: Set(input.description),
            is_active: Set(input.is_active),
            priority: Set(input.priority),
            billing_type: Set(billing_str(input.billing_type).to_owned()),
            monthly_quota_usd: Set(input.monthly_quota_usd),
            monthly_used_usd: Set(existing.map_or(0.0, |e| e.monthly_used_usd)),
            quota_reset_day: Set(input.quota_reset_day),
            quota_last_reset_at: Set(existing.and_then(|e| e.quota_last_reset_at)),
            quota_expires_at: Set(input.quota_expires_at),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn view(m: provider::Model) -> ProviderView {
        ProviderView {
            input: Self::input_of(&m),
            id: m.id,
            monthly_used_usd: m.monthly_used_usd,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &provider::Model) -> String {
        m.id.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/// Endpoints.
#[derive(Debug)]
pub struct Endpoints;

/// An endpoint as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// Owning provider (cannot change).
    pub provider_id: String,
    /// The format the upstream speaks; one endpoint per provider and format.
    pub api_format: ApiFormat,
    /// Upstream base URL.
    pub base_url: String,
    /// Overrides the format's default path (`{model}`, `{action}` placeholders).
    #[serde(default)]
    pub custom_path: Option<String>,
    /// Extra upstream headers (never credentials).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Whole-request timeout (non-streamed) and stream idle timeout, seconds (1–3600).
    #[serde(default = "default_timeout")]
    pub timeout_secs: i32,
    /// Time allowed for the response head, seconds (1–600).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: i32,
    /// Time allowed for the first stream event, seconds (1–600).
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout_secs: i32,
    /// Retries of the same candidate after a transport or 5xx failure (0–10).
    #[serde(default = "default_max_retries")]
    pub max_retries: i32,
    /// Endpoint-wide concurrency cap (at least 1); absent = none.
    #[serde(default)]
    pub max_concurrent: Option<i32>,
    /// Inactive endpoints are never candidates.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// May serve clients of other formats, converted (absent = the global `format_conversion`
    /// setting decides).
    #[serde(default)]
    pub format_conversion: Option<bool>,
}

fn default_timeout() -> i32 {
    300
}
fn default_header_timeout() -> i32 {
    60
}
fn default_first_byte_timeout() -> i32 {
    30
}
fn default_max_retries() -> i32 {
    2
}

/// An endpoint as shown.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    /// Id.
    pub id: String,
    /// The submitted fields.
    #[serde(flatten)]
    pub input: EndpointInput,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for Endpoints {
    type Entity = endpoint::Entity;
    type Model = endpoint::Model;
    type Active = endpoint::ActiveModel;
    type Input = EndpointInput;
    type View = EndpointView;
    const KIND: &'static str = "endpoint";
    const FILTERS: &'static [&'static str] = &["provider_id", "api_format", "is_active"];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[
        ("api_format", "api_format"),
        ("provider_format", "api_format"),
    ];

    fn input_of(m: &endpoint::Model) -> EndpointInput {
        EndpointInput {
            provider_id: m.provider_id.clone(),
            api_format: m.api_format.parse().unwrap_or(ApiFormat::OpenAi),
            base_url: m.base_url.clone(),
            custom_path: m.custom_path.clone(),
            headers: from_json(&m.headers),
            timeout_secs: m.timeout_secs,
            header_timeout_secs: m.header_timeout_secs,
            first_byte_timeout_secs: m.first_byte_timeout_secs,
            max_retries: m.max_retries,
            max_concurrent: m.max_concurrent,
            is_active: m.is_active,
            format_conversion: m.format_conversion,
        }
    }

    async fn check<C: ConnectionTrait>(
        db: &C,
        input: &EndpointInput,
        existing: Option<&endpoint::Model>,
    ) -> Result<(), ManageError> {
        match existing {
            Some(e) => check::unchanged("provider_id", &e.provider_id, &input.provider_id)?,
            None => check::exists::<provider::Entity, C>(
                db,
                "provider_id",
                "provider",
                &input.provider_id,
            )
            .await
            .map(drop)?,
        }
        check::base_url("base_url", &input.base_url)?;
        if let Some(path) = &input.custom_path
            && !path.starts_with('/')
        {
            return Err(invalid("custom_path", "must start with `/`"));
        }
        if let Some(headers) = &input.headers {
            check::extra_headers("headers", headers)?;
        }
        check::range("timeout_secs", input.timeout_secs, 1, 3600)?;
        check::range("header_timeout_secs", input.header_timeout_secs, 1, 600)?;
        check::range(
            "first_byte_timeout_secs",
            input.first_byte_timeout_secs,
            1,
            600,
        )?;
        check::range("max_retries", input.max_retries, 0, 10)?;
        if let Some(max) = input.max_concurrent {
            check::range("max_concurrent", max, 1, 100_000)?;
        }
        Ok(())
    }

    fn write(
        input: EndpointInput,
        id: String,
        existing: Option<&endpoint::Model>,
        ctx: &WriteContext,
    ) -> Result<endpoint::ActiveModel, ManageError> {
        Ok(endpoint::ActiveModel {
            id: Set(id),
            provider_id: Set(input.provider_id),
            api_format: Set(input.api_format.as_str().to_owned()),
            base_url: Set(input.base_url),
            custom_path: Set(input.custom_path),
            headers: Set(input.headers.as_ref().map(to_json)),
            timeout_secs: Set(input.timeout_secs),
            header_timeout_secs: Set(input.header_timeout_secs),
            first_byte_timeout_secs: Set(input.first_byte_timeout_secs),
            max_retries: Set(input.max_retries),
            max_concurrent: Set(input.max_concurrent),
            is_active: Set(input.is_active),
            format_conversion: Set(input.format_conversion),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn view(m: endpoint::Model) -> EndpointView {
        EndpointView {
            input: Self::input_of(&m),
            id: m.id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &endpoint::Model) -> String {
        m.id.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Provider keys

/// Provider keys.
#[derive(Debug)]
pub struct ProviderKeys;

/// A provider key as submitted. `api_key` is write-only: required on create, kept when a patch
/// leaves it out, never shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeyInput {
    /// Owning endpoint (cannot change).
    pub endpoint_id: String,
    /// Name, unique within the endpoint.
    pub name: String,
    /// The upstream credential.
    #[serde(default, skip_serializing)]
    pub api_key: Option<SecretString>,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
    /// Inactive keys are never candidates.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Order inside the endpoint, lower first; `null` sorts last.
    #[serde(default = "default_internal_priority")]
    pub internal_priority: Option<i32>,
    /// Order across providers in `global_key` priority mode; `null` sorts last.
    #[serde(default)]
    pub global_priority: Option<i32>,
    /// Fixed concurrency limit; absent = adaptive (learned from 429s).
    #[serde(default)]
    pub max_concurrent: Option<i32>,
    /// Requests per minute; absent = unlimited.
    #[serde(default)]
    pub rpm_limit: Option<i32>,
    /// Models this key may serve; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Capabilities the key offers (`{"cache_1h": true}`).
    #[serde(default)]
    pub capabilities: Option<BTreeMap<String, bool>>,
    /// Upstream prompt-cache lifetime, minutes (0–60); 0 disables affinity.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_minutes: i32,
    /// Actual cost = nominal × this (≥ 0.01).
    #[serde(default = "default_multiplier")]
    pub rate_multiplier: f64,
    /// The key stops being used at this instant.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

fn default_internal_priority() -> Option<i32> {
    Some(50)
}
fn default_cache_ttl() -> i32 {
    5
}
fn default_multiplier() -> f64 {
    1.0
}

/// A provider key as shown: the credential only as a masked preview.
#[derive(Debug, Serialize)]
pub struct ProviderKeyView {
    /// Id.
    pub id: String,
    /// The submitted fields, without the credential.
    #[serde(flatten)]
    pub input: ProviderKeyInput,
    /// First and last four characters of the credential.
    pub api_key_preview: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for ProviderKeys {
    type Entity = provider_key::Entity;
    type Model = provider_key::Model;
    type Active = provider_key::ActiveModel;
    type Input = ProviderKeyInput;
    type View = ProviderKeyView;
    const KIND: &'static str = "provider key";
    const FILTERS: &'static [&'static str] = &["endpoint_id", "is_active", "name"];
    const UNIQUE: &'static [(&'static str, &'static str)] =
        &[("name", "name"), ("endpoint_name", "name")];

    fn input_of(m: &provider_key::Model) -> ProviderKeyInput {
        ProviderKeyInput {
            endpoint_id: m.endpoint_id.clone(),
            name: m.name.clone(),
            api_key: None,
            note: m.note.clone(),
            is_active: m.is_active,
            internal_priority: m.internal_priority,
            global_priority: m.global_priority,
            max_concurrent: m.max_concurrent,
            rpm_limit: m.rpm_limit,
            allowed_models: from_json(&m.allowed_models),
            capabilities: from_json(&m.capabilities),
            cache_ttl_minutes: m.cache_ttl_minutes,
            rate_multiplier: m.rate_multiplier,
            expires_at: m.expires_at,
        }
    }

    async fn check<C: ConnectionTrait>(
        db: &C,
        input: &ProviderKeyInput,
        existing: Option<&provider_key::Model>,
    ) -> Result<(), ManageError> {
        match existing {
            Some(e) => check::unchanged("endpoint_id", &e.endpoint_id, &input.endpoint_id)?,
            None => {
                check::exists::<endpoint::Entity, C>(
                    db,
                    "endpoint_id",
                    "endpoint",
                    &input.endpoint_id,
                )
                .await
                .map(drop)?;
                if input.api_key.is_none() {
                    return Err(invalid("api_key", "is required"));
                }
            }
        }
        check::name("name", &input.name)?;
        if input.api_key.as_ref().is_some_and(SecretString::is_blank) {
            return Err(invalid("api_key", "must not be blank"));
        }
        if let Some(max) = input.max_concurrent {
            check::range("max_concurrent", max, 1, 100_000)?;
        }
        if let Some(rpm) = input.rpm_limit {
            check::range("rpm_limit", rpm, 1, 10_000_000)?;
        }
        check::name_list("allowed_models", input.allowed_models.as_ref())?;
        if let Some(caps) = &input.capabilities {
            check::capabilities("capabilities", caps.keys(), false)?;
        }
        check::range("cache_ttl_minutes", input.cache_ttl_minutes, 0, 60)?;
        check::amount("rate_multiplier", Some(input.rate_multiplier), 0.01)
    }

    fn write(
        input: ProviderKeyInput,
        id: String,
        existing: Option<&provider_key::Model>,
        ctx: &WriteContext,
    ) -> Result<provider_key::ActiveModel, ManageError> {
        let (encrypted, preview) = match (&input.api_key, existing) {
            (Some(secret), _) => (ctx.cipher.encrypt(secret), secret.preview()),
            (None, Some(e)) => (e.secret_encrypted.clone(), e.secret_preview.clone()),
            (None, None) => return Err(invalid("api_key", "is required")),
        };
        Ok(provider_key::ActiveModel {
            id: Set(id),
            endpoint_id: Set(input.endpoint_id),
            name: Set(input.name),
            note: Set(input.note),
            secret_encrypted: Set(encrypted),
            secret_preview: Set(preview),
            is_active: Set(input.is_active),
            internal_priority: Set(input.internal_priority),
            global_priority: Set(input.global_priority),
            max_concurrent: Set(input.max_concurrent),
            rpm_limit: Set(input.rpm_limit),
            allowed_models: Set(input.allowed_models.as_ref().map(to_json)),
            capabilities: Set(input.capabilities.as_ref().map(to_json)),
            cache_ttl_minutes: Set(input.cache_ttl_minutes),
            rate_multiplier: Set(input.rate_multiplier),
            expires_at: Set(input.expires_at),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn view(m: provider_key::Model) -> ProviderKeyView {
        ProviderKeyView {
            input: Self::input_of(&m),
            api_key_preview: m.secret_preview,
            id: m.id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &provider_key::Model) -> String {
        m.id.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Global models

/// Global (canonical) models.
#[derive(Debug)]
pub struct GlobalModels;

/// A global model as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalModelInput {
    /// Canonical public name; unique among model names and aliases.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Inactive models resolve to nothing.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Default prices.
    pub pricing: TieredPricing,
    /// Price per successful request, USD.
    #[serde(default)]
    pub price_per_request: Option<f64>,
    /// Capabilities the model supports; absent or empty = no restriction.
    #[serde(default)]
    pub supported_capabilities: Option<Vec<String>>,
    /// Descriptive metadata (an object).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// A global model as shown.
#[derive(Debug, Serialize)]
pub struct GlobalModelView {
    /// Id.
    pub id: String,
    /// The submitted fields.
    #[serde(flatten)]
    pub input: GlobalModelInput,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for GlobalModels {
    type Entity = global_model::Entity;
    type Model = global_model::Model;
    type Active = global_model::ActiveModel;
    type Input = GlobalModelInput;
    type View = GlobalModelView;
    const KIND: &'static str = "global model";
    const FILTERS: &'static [&'static str] = &["name", "is_active"];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("name", "name")];

    fn input_of(m: &global_model::Model) -> GlobalModelInput {
        GlobalModelInput {
            name: m.name.clone(),
            display_name: m.display_name.clone(),
            is_active: m.is_active,
            pricing: serde_json::from_value(m.default_tiered_pricing.clone())
                .unwrap_or_else(|_| TieredPricing::flat(0.0, 0.0)),
            price_per_request: m.default_price_per_request,
            supported_capabilities: from_json(&m.supported_capabilities),
            config: m.config.clone(),
        }
    }

    async fn check<C: ConnectionTrait>(
        db: &C,
        input: &GlobalModelInput,
        _existing: Option<&global_model::Model>,
    ) -> Result<(), ManageError> {
        check::name("name", &input.name)?;
        input
            .pricing
            .validate()
            .map_err(|(path, message)| invalid(format!("pricing.{path}"), message))?;
        check::amount("price_per_request", input.price_per_request, 0.0)?;
        if let Some(caps) = &input.supported_capabilities {
            check::capabilities("supported_capabilities", caps, false)?;
        }
        if input.config.as_ref().is_some_and(|c| !c.is_object()) {
            return Err(invalid("config", "must be an object"));
        }
        let alias = model_alias::Entity::find()
            .filter(model_alias::Column::Alias.eq(input.name.clone()))
            .one(db)
            .await?;
        if alias.is_some() {
            return Err(ManageError::Conflict {
                field: "name".into(),
                message: "an alias with this name already exists".into(),
            });
        }
        Ok(())
    }

    fn write(
        input: GlobalModelInput,
        id: String,
        existing: Option<&global_model::Model>,
        ctx: &WriteContext,
    ) -> Result<global_model::ActiveModel, ManageError> {
        Ok(global_model::ActiveModel {
            id: Set(id),
            name: Set(input.name),
            display_name: Set(input.display_name),
            is_active: Set(input.is_active),
            default_tiered_pricing: Set(to_json(&input.pricing)),
            default_price_per_request: Set(input.price_per_request),
            supported_capabilities: Set(input.supported_capabilities.as_ref().map(to_json)),
            config: Set(input.config),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn view(m: global_model::Model) -> GlobalModelView {
        GlobalModelView {
            input: Self::input_of(&m),
            id: m.id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &global_model::Model) -> String {
        m.id.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Provider models

/// Provider models: which provider serves which global model, under which upstream names and at
/// which prices.
#[derive(Debug)]
pub struct ProviderModels;

/// A provider model as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderModelInput {
    /// The provider (cannot change).
    pub provider_id: String,
    /// The global model it implements; one provider model per provider and global model.
    pub global_model_id: String,
    /// The upstream's primary name for it.
    pub provider_model_name: String,
    /// Alternative upstream names, by priority and format.
    #[serde(default)]
    pub mappings: Option<Vec<ModelMapping>>,
    /// Overrides the global model's prices.
    #[serde(default)]
    pub pricing: Option<TieredPricing>,
    /// Overrides the global model's per-request price.
    #[serde(default)]
    pub price_per_request: Option<f64>,
    /// Whether streamed requests may use it; absent = yes.
    #[serde(default)]
    pub supports_streaming: Option<bool>,
    /// Image input.
    #[serde(default)]
    pub supports_vision: Option<bool>,
    /// Tools.
    #[serde(default)]
    pub supports_function_calling: Option<bool>,
    /// Reasoning/thinking.
    #[serde(default)]
    pub supports_extended_thinking: Option<bool>,
    /// Inactive provider models are not routed to.
    #[serde(default = "yes")]
    pub is_active: bool,
}

/// A provider model as shown.
#[derive(Debug, Serialize)]
pub struct ProviderModelView {
    /// Id.
    pub id: String,
    /// The submitted fields.
    #[serde(flatten)]
    pub input: ProviderModelInput,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for ProviderModels {
    type Entity = provider_model::Entity;
    type Model = provider_model::Model;
    type Active = provider_model::ActiveModel;
    type Input = ProviderModelInput;
    type View = ProviderModelView;
    const KIND: &'static str = "provider model";
    const FILTERS: &'static [&'static str] = &["provider_id", "global_model_id", "is_active"];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[
        ("provider_model_name", "provider_model_name"),
        ("provider_name", "provider_model_name"),
        ("global_model_id", "global_model_id"),
        ("provider_global", "global_model_id"),
    ];

    fn input_of(m: &provider_model::Model) -> ProviderModelInput {
        ProviderModelInput {
            provider_id: m.provider_id.clone(),
            global_model_id: m.global_model_id.clone(),
            provider_model_name: m.provider_model_name.clone(),
            mappings: from_json(&m.mappings),
            pricing: from_json(&m.tiered_pricing),
            price_per_request: m.price_per_request,
            supports_streaming: m.supports_streaming,
            supports_vision: m.supports_vision,
            supports_function_calling: m.supports_function_calling,
            supports_extended_thinking: m.supports_extended_thinking,
            is_active: m.is_active,
        }
    }

    async fn check<C: ConnectionTrait>(
        db: &C,
        input: &ProviderModelInput,
        existing: Option<&provider_model::Model>,
    ) -> Result<(), ManageError> {
        match existing {
            Some(e) => check::unchanged("provider_id", &e.provider_id, &input.provider_id)?,
            None => check::exists::<provider::Entity, C>(
                db,
                "provider_id",
                "provider",
                &input.provider_id,
            )
            .await
            .map(drop)?,
        }
        check::exists::<global_model::Entity, C>(
            db,
            "global_model_id",
            "global model",
            &input.global_model_id,
        )
        .await?;
        check::name("provider_model_name", &input.provider_model_name)?;
        if let Some(mappings) = &input.mappings {
            mapping::validate(mappings)
                .map_err(|(i, message)| invalid(format!("mappings[{i}]"), message))?;
        }
        if let Some(pricing) = &input.pricing {
            pricing
                .validate()
                .map_err(|(path, message)| invalid(format!("pricing.{path}"), message))?;
        }
        check::amount("price_per_request", input.price_per_request, 0.0)
    }

    fn write(
        input: ProviderModelInput,
        id: String,
        existing: Option<&provider_model::Model>,
        ctx: &WriteContext,
    ) -> Result<provider_model::ActiveModel, ManageError> {
        Ok(provider_model::ActiveModel {
            id: Set(id),
            provider_id: Set(input.provider_id),
            global_model_id: Set(input.global_model_id),
            provider_model_name: Set(input.provider_model_name),
            mappings: Set(input.mappings.as_ref().map(to_json)),
            price_per_request: Set(input.price_per_request),
            tiered_pricing: Set(input.pricing.as_ref().map(to_json)),
            supports_streaming: Set(input.supports_streaming),
            supports_vision: Set(input.supports_vision),
            supports_function_calling: Set(input.supports_function_calling),
            supports_extended_thinking: Set(input.supports_extended_thinking),
            is_active: Set(input.is_active),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn view(m: provider_model::Model) -> ProviderModelView {
        ProviderModelView {
            input: Self::input_of(&m),
            id: m.id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &provider_model::Model) -> String {
        m.id.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Aliases

/// Model aliases.
#[derive(Debug)]
pub struct Aliases;

/// An alias as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasInput {
    /// The extra name; unique among aliases and canonical names.
    pub alias: String,
    /// The global model it names.
    pub global_model_id: String,
    /// Inactive aliases resolve to nothing.
    #[serde(default = "yes")]
    pub is_active: bool,
}

/// An alias as shown.
#[derive(Debug, Serialize)]
pub struct AliasView {
    /// Id.
    pub id: String,
    /// The submitted fields.
    #[serde(flatten)]
    pub input: AliasInput,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for Aliases {
    type Entity = model_alias::Entity;
    type Model = model_alias::Model;
    type Active = model_alias::ActiveModel;
    type Input = AliasInput;
    type View = AliasView;
    const KIND: &'static str = "alias";
    const FILTERS: &'static [&'static str] = &["global_model_id", "alias", "is_active"];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("alias", "alias")];

    fn input_of(m: &model_alias::Model) -> AliasInput {
        AliasInput {
            alias: m.alias.clone(),
            global_model_id: m.global_model_id.clone(),
            is_active: m.is_active,
        }
    }

    async fn check<C: ConnectionTrait>(
        db: &C,
        input: &AliasInput,
        _existing: Option<&model_alias::Model>,
    ) -> Result<(), ManageError> {
        check::name("alias", &input.alias)?;
        check::exists::<global_model::Entity, C>(
            db,
            "global_model_id",
            "global model",
            &input.global_model_id,
        )
        .await?;
        let canonical = global_model::Entity::find()
            .filter(global_model::Column::Name.eq(input.alias.clone()))
            .one(db)
            .await?;
        if canonical.is_some() {
            return Err(ManageError::Conflict {
                field: "alias".into(),
                message: "a global model with this name already exists".into(),
            });
        }
        Ok(())
    }

    fn write(
        input: AliasInput,
        id: String,
        existing: Option<&model_alias::Model>,
        ctx: &WriteContext,
    ) -> Result<model_alias::ActiveModel, ManageError> {
        Ok(model_alias::ActiveModel {
            id: Set(id),
            alias: Set(input.alias),
            global_model_id: Set(input.global_model_id),
            is_active: Set(input.is_active),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn view(m: model_alias::Model) -> AliasView {
        AliasView {
            input: Self::input_of(&m),
            id: m.id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &model_alias::Model) -> String {
        m.id.clone()
    }
}
