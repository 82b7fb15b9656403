//! `request_attempts`: one row per candidate and retry of a request, skipped ones included.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "request_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub request_id: String,
    pub candidate_index: i32,
    pub retry_index: i32,
    pub user_id: Option<String>,
    pub gateway_key_id: Option<String>,
    pub provider_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub provider_key_id: Option<String>,
    pub status: String,
    pub skip_reason: Option<String>,
    pub is_cached: bool,
    pub status_code: Option<i32>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub latency_ms: Option<i64>,
    pub concurrent_requests: Option<i32>,
    pub required_capabilities: Option<Json>,
    pub extra: Option<Json>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
