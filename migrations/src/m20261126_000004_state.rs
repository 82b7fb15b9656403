//! Persisted hot state (health and learned limits per provider key), system settings and the
//! admin token hash.

use crate::cascade;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProviderKeys {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ProviderKeyStates {
    Table,
    ProviderKeyId,
    Health,
    Limits,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SystemSettings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AdminTokens {
    Table,
    Name,
    TokenHash,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderKeyStates::Table)
                    .col(string(ProviderKeyStates::ProviderKeyId).primary_key())
                    .col(json_null(ProviderKeyStates::Health))
                    .col(json_null(ProviderKeyStates::Limits))
                    .col(timestamp_with_time_zone(ProviderKeyStates::UpdatedAt))
                    .foreign_key(&mut cascade(
                        "fk_provider_key_states_key",
                        (ProviderKeyStates::Table, ProviderKeyStates::ProviderKeyId),
                        (ProviderKeys::Table, ProviderKeys::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SystemSettings::Table)
                    .col(string(SystemSettings::Key).primary_key())
                    .col(json(SystemSettings::Value))
                    .col(timestamp_with_time_zone(SystemSettings::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AdminTokens::Table)
                    .col(string(AdminTokens::Name).primary_key())
                    .col(string(AdminTokens::TokenHash))
                    .col(timestamp_with_time_zone(AdminTokens::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AdminTokens::Table.into_iden(),
            SystemSettings::Table.into_iden(),
            ProviderKeyStates::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
