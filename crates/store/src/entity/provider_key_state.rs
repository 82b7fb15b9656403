//! `provider_key_states`: health and learned limits per provider key, written asynchronously by
//! their owning actors and read back only at start.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_key_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider_key_id: String,
    pub health: Option<Json>,
    pub limits: Option<Json>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
