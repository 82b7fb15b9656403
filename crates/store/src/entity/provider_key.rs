//! `provider_keys`: upstream credentials, encrypted at rest.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub endpoint_id: String,
    pub name: String,
    pub note: Option<String>,
    /// `v1:` + base64(nonce ‖ AES-256-GCM ciphertext); never leaves the store decrypted except
    /// into the catalog snapshot.
    pub secret_encrypted: String,
    /// Masked form shown to operators.
    pub secret_preview: String,
    pub is_active: bool,
    pub internal_priority: Option<i32>,
    pub global_priority: Option<i32>,
    pub max_concurrent: Option<i32>,
    pub rpm_limit: Option<i32>,
    pub allowed_models: Option<Json>,
    pub capabilities: Option<Json>,
    pub cache_ttl_minutes: i32,
    pub rate_multiplier: f64,
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
