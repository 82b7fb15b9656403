//! Persisted hot state per provider key (`provider_key_states`): circuit breakers and learned
//! limits. Written asynchronously by their owning actors, read back only at start, so a restart
//! does not forget an open circuit or a learned limit.

use crate::db::Database;
use crate::entity::{provider_key, provider_key_state};
use crate::error::StoreError;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// Which JSON column.
#[derive(Debug, Clone, Copy)]
enum Column {
    Health,
    Limits,
}

/// Stores breaker states `(provider key id, JSON)`; keys deleted meanwhile are skipped.
pub async fn save_health(
    db: &Database,
    rows: &[(String, serde_json::Value)],
) -> Result<(), StoreError> {
    save(db, rows, Column::Health).await
}

/// Stores learned-limit states `(provider key id, JSON)`.
pub async fn save_limits(
    db: &Database,
    rows: &[(String, serde_json::Value)],
) -> Result<(), StoreError> {
    save(db, rows, Column::Limits).await
}

async fn save(
    db: &Database,
    rows: &[(String, serde_json::Value)],
    column: Column,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // Only keys that still exist (the foreign key would refuse the others and fail the batch).
    let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    let live: std::collections::HashSet<String> = provider_key::Entity::find()
        .filter(provider_key::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|k| k.id)
        .collect();
    let now = chrono::Utc::now();
    let models: Vec<provider_key_state::ActiveModel> = rows
        .iter()
        .filter(|(id, _)| live.contains(id))
        .map(|(id, value)| {
            let (health, limits) = match column {
                Column::Health => (Set(Some(value.clone())), NotSet),
                Column::Limits => (NotSet, Set(Some(value.clone()))),
            };
            provider_key_state::ActiveModel {
                provider_key_id: Set(id.clone()),
                health,
                limits,
                updated_at: Set(now),
            }
        })
        .collect();
    if models.is_empty() {
        return Ok(());
    }
    let update = match column {
        Column::Health => provider_key_state::Column::Health,
        Column::Limits => provider_key_state::Column::Limits,
    };
    provider_key_state::Entity::insert_many(models)
        .on_conflict(
            OnConflict::column(provider_key_state::Column::ProviderKeyId)
                .update_columns([update, provider_key_state::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Every stored state: `(provider key id, health JSON, limits JSON)`.
pub async fn load_all(
    db: &Database,
) -> Result<Vec<(String, Option<serde_json::Value>, Option<serde_json::Value>)>, StoreError> {
    Ok(provider_key_state::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.provider_key_id, row.health, row.limits))
        .collect())
}
