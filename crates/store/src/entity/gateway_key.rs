//! `gateway_keys`: the keys clients present; only the SHA-256 of the plaintext is stored.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "gateway_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub key_hash: String,
    /// The first characters of the plaintext, enough to recognise a key in a list.
    pub key_prefix: String,
    pub is_active: bool,
    pub expires_at: Option<DateTimeUtc>,
    pub is_standalone: bool,
    pub balance_usd: Option<f64>,
    pub balance_used_usd: f64,
    pub total_requests: i64,
    pub total_cost_usd: f64,
    pub allowed_providers: Option<Json>,
    pub allowed_endpoints: Option<Json>,
    pub allowed_api_formats: Option<Json>,
    pub allowed_models: Option<Json>,
    pub force_capabilities: Option<Json>,
    pub last_used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
