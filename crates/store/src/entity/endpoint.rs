//! `endpoints`: at most one per provider and API format.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub provider_id: String,
    pub api_format: String,
    pub base_url: String,
    pub custom_path: Option<String>,
    pub headers: Option<Json>,
    pub timeout_secs: i32,
    pub header_timeout_secs: i32,
    pub first_byte_timeout_secs: i32,
    pub max_retries: i32,
    pub max_concurrent: Option<i32>,
    pub is_active: bool,
    pub format_conversion: Option<bool>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
