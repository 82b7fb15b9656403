//! System settings rows (`system_settings`) ↔ [`RoutingSettings`].

use crate::entity::system_setting;
use crate::error::StoreError;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use switchyard_core::settings::{RoutingSettings, SettingError};

/// Reads every stored setting onto the defaults. A stored value that no longer validates is an
/// error rather than a silent default: the operator must see it.
pub async fn load<C: ConnectionTrait>(db: &C) -> Result<RoutingSettings, StoreError> {
    let mut settings = RoutingSettings::default();
    for row in system_setting::Entity::find().all(db).await? {
        match settings.apply(&row.key, &row.value) {
            Ok(()) | Err(SettingError::UnknownKey(_)) => {}
            Err(e) => {
                return Err(StoreError::Malformed {
                    what: format!("system setting `{}`", row.key),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(settings)
}

/// Validates and stores one setting (insert or replace).
pub async fn set<C: ConnectionTrait>(
    db: &C,
    key: &str,
    value: serde_json::Value,
) -> Result<Result<(), SettingError>, StoreError> {
    if let Err(e) = RoutingSettings::default().apply(key, &value) {
        return Ok(Err(e));
    }
    let row = system_setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value),
        updated_at: Set(chrono::Utc::now()),
    };
    system_setting::Entity::insert(row)
        .on_conflict(
            OnConflict::column(system_setting::Column::Key)
                .update_columns([
                    system_setting::Column::Value,
                    system_setting::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(Ok(()))
}
