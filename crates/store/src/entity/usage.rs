//! `usage`: exactly one row per request, tokens and cost.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub user_id: Option<String>,
    pub gateway_key_id: Option<String>,
    pub provider_name: Option<String>,
    pub provider_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub provider_key_id: Option<String>,
    pub model: String,
    pub target_model: Option<String>,
    pub global_model_id: Option<String>,
    pub api_format: String,
    pub upstream_format: Option<String>,
    pub request_type: String,
    pub is_stream: bool,
    pub status: String,
    pub status_code: Option<i32>,
    pub error_message: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub reasoning_tokens: i64,
    pub input_cost_usd: f64,
    pub output_cost_usd: f64,
    pub cache_creation_cost_usd: f64,
    pub cache_read_cost_usd: f64,
    pub cache_cost_usd: f64,
    pub request_cost_usd: f64,
    pub total_cost_usd: f64,
    pub actual_input_cost_usd: f64,
    pub actual_output_cost_usd: f64,
    pub actual_cache_creation_cost_usd: f64,
    pub actual_cache_read_cost_usd: f64,
    pub actual_cache_cost_usd: f64,
    pub actual_request_cost_usd: f64,
    pub actual_total_cost_usd: f64,
    pub rate_multiplier: f64,
    pub input_price_per_1m: Option<f64>,
    pub output_price_per_1m: Option<f64>,
    pub cache_creation_price_per_1m: Option<f64>,
    pub cache_read_price_per_1m: Option<f64>,
    pub price_per_request: Option<f64>,
    pub response_time_ms: Option<i64>,
    pub first_byte_time_ms: Option<i64>,
    pub metadata: Option<Json>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
