//! Account resources: users and their gateway keys.

use super::validate as check;
use super::{ManageError, Resource, WriteContext, from_json, invalid, to_json, yes};
use crate::entity::{gateway_key, user};
use crate::secrets::{generate_token, hash_token};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use switchyard_core::{ApiFormat, SecretString};

/// The prefix of generated gateway keys.
pub const GATEWAY_KEY_PREFIX: &str = "sk-sy";

// ---------------------------------------------------------------------------------------------
// Users

/// Users.
#[derive(Debug)]
pub struct Users;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// No quota applies.
    Admin,
    /// Subject to quota.
    User,
}

fn default_role() -> Role {
    Role::User
}

/// A user as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Unique name.
    pub name: String,
    /// Contact address.
    #[serde(default)]
    pub email: Option<String>,
    /// `admin` or `user`.
    #[serde(default = "default_role")]
    pub role: Role,
    /// Inactive users' keys are refused.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Providers (ids or names) the user may use; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_providers: Option<Vec<String>>,
    /// Endpoint ids the user may use; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_endpoints: Option<Vec<String>>,
    /// Model names the user may use; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Per-model capability preferences (`{"model": {"cache_1h": true}}`).
    #[serde(default)]
    pub model_capability_settings: Option<BTreeMap<String, BTreeMap<String, bool>>>,
    /// Spend limit per period, USD; absent = unlimited.
    #[serde(default)]
    pub quota_usd: Option<f64>,
}

/// A user as shown.
#[derive(Debug, Serialize)]
pub struct UserView {
    /// Id.
    pub id: String,
    /// The submitted fields.
    #[serde(flatten)]
    pub input: UserInput,
    /// Spend this period, USD.
    pub used_usd: f64,
    /// Lifetime spend, USD.
    pub total_usd: f64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for Users {
    type Entity = user::Entity;
    type Model = user::Model;
    type Active = user::ActiveModel;
    type Input = UserInput;
    type View = UserView;
    const KIND: &'static str = "user";
    const FILTERS: &'static [&'static str] = &["name", "role", "is_active"];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("name", "name")];

    fn input_of(m: &user::Model) -> UserInput {
        UserInput {
            name: m.name.clone(),
            email: m.email.clone(),
            role: if m.role == "admin" {
                Role::Admin
            } else {
                Role::User
            },
            is_active: m.is_active,
            allowed_providers: from_json(&m.allowed_providers),
            allowed_endpoints: from_json(&m.allowed_endpoints),
            allowed_models: from_json(&m.allowed_models),
            model_capability_settings: from_json(&m.model_capability_settings),
            quota_usd: m.quota_usd,
        }
    }

    async fn check<C: ConnectionTrait>(
        _db: &C,
        input: &UserInput,
        _existing: Option<&user::Model>,
    ) -> Result<(), ManageError> {
        check::name("name", &input.name)?;
        if let Some(email) = &input.email {
            let parts: Vec<&str> = email.split('@').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.trim().is_empty()) {
                return Err(invalid("email", "not an e-mail address"));
            }
        }
        check::name_list("allowed_providers", input.allowed_providers.as_ref())?;
        check::name_list("allowed_endpoints", input.allowed_endpoints.as_ref())?;
        check::name_list("allowed_models", input.allowed_models.as_ref())?;
        if let Some(settings) = &input.model_capability_settings {
            for (model, caps) in settings {
                check::capabilities(
                    &format!("model_capability_settings.{model}"),
                    caps.keys(),
                    true,
                )?;
            }
        }
        check::amount("quota_usd", input.quota_usd, 0.0)
    }

    fn write(
        input: UserInput,
        id: String,
        existing: Option<&user::Model>,
        ctx: &WriteContext,
    ) -> Result<user::ActiveModel, ManageError> {
        Ok(user::ActiveModel {
            id: Set(id),
            name: Set(input.name),
            email: Set(input.email),
            role: Set(match input.role {
                Role::Admin => "admin",
                Role::User => "user",
            }
            .to_owned()),
            is_active: Set(input.is_active),
            allowed_providers: Set(input.allowed_providers.as_ref().map(to_json)),
            allowed_endpoints: Set(input.allowed_endpoints.as_ref().map(to_json)),
            allowed_models: Set(input.allowed_models.as_ref().map(to_json)),
            model_capability_settings: Set(input.model_capability_settings.as_ref().map(to_json)),
            quota_usd: Set(input.quota_usd),
            used_usd: Set(existing.map_or(0.0, |e| e.used_usd)),
            total_usd: Set(existing.map_or(0.0, |e| e.total_usd)),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn view(m: user::Model) -> UserView {
        UserView {
            input: Self::input_of(&m),
            id: m.id,
            used_usd: m.used_usd,
            total_usd: m.total_usd,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &user::Model) -> String {
        m.id.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway keys

/// Gateway keys. The plaintext is generated on create, returned once, and stored only as its
/// SHA-256.
#[derive(Debug)]
pub struct GatewayKeys;

/// A gateway key as submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKeyInput {
    /// Owner (cannot change).
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Inactive keys are refused.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// The key is refused from this instant on.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Spends its own balance instead of the user's quota.
    #[serde(default)]
    pub is_standalone: bool,
    /// Balance of a standalone key, USD; absent = unlimited.
    #[serde(default)]
    pub balance_usd: Option<f64>,
    /// Providers (ids or names) this key may use; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_providers: Option<Vec<String>>,
    /// Endpoint ids this key may use; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_endpoints: Option<Vec<String>>,
    /// Client API formats this key may use; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_api_formats: Option<Vec<ApiFormat>>,
    /// Model names this key may use; absent = any, `[]` = none.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Capabilities forced on every request of this key.
    #[serde(default)]
    pub force_capabilities: Option<BTreeMap<String, bool>>,
}

/// A gateway key as shown: never the key itself, only its first characters.
#[derive(Debug, Serialize)]
pub struct GatewayKeyView {
    /// Id.
    pub id: String,
    /// The submitted fields.
    #[serde(flatten)]
    pub input: GatewayKeyInput,
    /// The first characters of the key, to recognise it.
    pub key_prefix: String,
    /// Spent from the balance, USD.
    pub balance_used_usd: f64,
    /// Requests made.
    pub total_requests: i64,
    /// Lifetime cost, USD.
    pub total_cost_usd: f64,
    /// Last request (updated in batches).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Resource for GatewayKeys {
    type Entity = gateway_key::Entity;
    type Model = gateway_key::Model;
    type Active = gateway_key::ActiveModel;
    type Input = GatewayKeyInput;
    type View = GatewayKeyView;
    const KIND: &'static str = "gateway key";
    const FILTERS: &'static [&'static str] = &["user_id", "is_active", "name"];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("key_hash", "key")];

    fn input_of(m: &gateway_key::Model) -> GatewayKeyInput {
        GatewayKeyInput {
            user_id: m.user_id.clone(),
            name: m.name.clone(),
            is_active: m.is_active,
            expires_at: m.expires_at,
            is_standalone: m.is_standalone,
            balance_usd: m.balance_usd,
            allowed_providers: from_json(&m.allowed_providers),
            allowed_endpoints: from_json(&m.allowed_endpoints),
            allowed_api_formats: from_json(&m.allowed_api_formats),
            allowed_models: from_json(&m.allowed_models),
            force_capabilities: from_json(&m.force_capabilities),
        }
    }

    async fn check<C: ConnectionTrait>(
        db: &C,
        input: &GatewayKeyInput,
        existing: Option<&gateway_key::Model>,
    ) -> Result<(), ManageError> {
        match existing {
            Some(e) => check::unchanged("user_id", &e.user_id, &input.user_id)?,
            None => check::exists::<user::Entity, C>(db, "user_id", "user", &input.user_id)
                .await
                .map(drop)?,
        }
        check::name("name", &input.name)?;
        check::amount("balance_usd", input.balance_usd, 0.0)?;
        if input.balance_usd.is_some() && !input.is_standalone {
            return Err(invalid(
                "balance_usd",
                "only standalone keys have a balance; set is_standalone",
            ));
        }
        check::name_list("allowed_providers", input.allowed_providers.as_ref())?;
        check::name_list("allowed_endpoints", input.allowed_endpoints.as_ref())?;
        check::name_list("allowed_models", input.allowed_models.as_ref())?;
        if let Some(caps) = &input.force_capabilities {
            check::capabilities("force_capabilities", caps.keys(), true)?;
        }
        Ok(())
    }

    fn write(
        input: GatewayKeyInput,
        id: String,
        existing: Option<&gateway_key::Model>,
        ctx: &WriteContext,
    ) -> Result<gateway_key::ActiveModel, ManageError> {
        Ok(gateway_key::ActiveModel {
            id: Set(id),
            user_id: Set(input.user_id),
            name: Set(input.name),
            // Filled by `reveal_on_create` for a new key; kept on update.
            key_hash: Set(existing.map(|e| e.key_hash.clone()).unwrap_or_default()),
            key_prefix: Set(existing.map(|e| e.key_prefix.clone()).unwrap_or_default()),
            is_active: Set(input.is_active),
            expires_at: Set(input.expires_at),
            is_standalone: Set(input.is_standalone),
            balance_usd: Set(input.balance_usd),
            balance_used_usd: Set(existing.map_or(0.0, |e| e.balance_used_usd)),
            total_requests: Set(existing.map_or(0, |e| e.total_requests)),
            total_cost_usd: Set(existing.map_or(0.0, |e| e.total_cost_usd)),
            allowed_providers: Set(input.allowed_providers.as_ref().map(to_json)),
            allowed_endpoints: Set(input.allowed_endpoints.as_ref().map(to_json)),
            allowed_api_formats: Set(input.allowed_api_formats.as_ref().map(to_json)),
            allowed_models: Set(input.allowed_models.as_ref().map(to_json)),
            force_capabilities: Set(input.force_capabilities.as_ref().map(to_json)),
            last_used_at: Set(existing.and_then(|e| e.last_used_at)),
            created_at: Set(existing.map_or(ctx.now, |e| e.created_at)),
            updated_at: Set(ctx.now),
        })
    }

    fn reveal_on_create(active: &mut gateway_key::ActiveModel) -> Option<SecretString> {
        let token = generate_token(GATEWAY_KEY_PREFIX);
        active.key_hash = Set(hash_token(token.expose()));
        // Prefix plus four characters: enough to tell keys apart, useless to an attacker.
        let shown: String = token
            .expose()
            .chars()
            .take(GATEWAY_KEY_PREFIX.len() + 5)
            .collect();
        active.key_prefix = Set(format!("{shown}…"));
        Some(token)
    }

    fn view(m: gateway_key::Model) -> GatewayKeyView {
        GatewayKeyView {
            input: Self::input_of(&m),
            id: m.id,
            key_prefix: m.key_prefix,
            balance_used_usd: m.balance_used_usd,
            total_requests: m.total_requests,
            total_cost_usd: m.total_cost_usd,
            last_used_at: m.last_used_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn id_of(m: &gateway_key::Model) -> String {
        m.id.clone()
    }
}
