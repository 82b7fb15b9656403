//! Users and their gateway keys.

use crate::{cascade, timestamps};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Email,
    Role,
    IsActive,
    AllowedProviders,
    AllowedEndpoints,
    AllowedModels,
    ModelCapabilitySettings,
    QuotaUsd,
    UsedUsd,
    TotalUsd,
}

#[derive(DeriveIden)]
enum GatewayKeys {
    Table,
    Id,
    UserId,
    Name,
    KeyHash,
    KeyPrefix,
    IsActive,
    ExpiresAt,
    IsStandalone,
    BalanceUsd,
    BalanceUsedUsd,
    TotalRequests,
    TotalCostUsd,
    AllowedProviders,
    AllowedEndpoints,
    AllowedApiFormats,
    AllowedModels,
    ForceCapabilities,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(Users::Table)
                        .col(string(Users::Id).primary_key())
                        .col(string_uniq(Users::Name))
                        .col(string_null(Users::Email))
                        .col(string(Users::Role).default("user"))
                        .col(boolean(Users::IsActive).default(true))
                        .col(json_null(Users::AllowedProviders))
                        .col(json_null(Users::AllowedEndpoints))
                        .col(json_null(Users::AllowedModels))
                        .col(json_null(Users::ModelCapabilitySettings))
                        .col(double_null(Users::QuotaUsd))
                        .col(double(Users::UsedUsd).default(0.0))
                        .col(double(Users::TotalUsd).default(0.0)),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(GatewayKeys::Table)
                        .col(string(GatewayKeys::Id).primary_key())
                        .col(string(GatewayKeys::UserId))
                        .col(string(GatewayKeys::Name))
                        .col(string_uniq(GatewayKeys::KeyHash))
                        .col(string(GatewayKeys::KeyPrefix))
                        .col(boolean(GatewayKeys::IsActive).default(true))
                        .col(timestamp_with_time_zone_null(GatewayKeys::ExpiresAt))
                        .col(boolean(GatewayKeys::IsStandalone).default(false))
                        .col(double_null(GatewayKeys::BalanceUsd))
                        .col(double(GatewayKeys::BalanceUsedUsd).default(0.0))
                        .col(big_integer(GatewayKeys::TotalRequests).default(0))
                        .col(double(GatewayKeys::TotalCostUsd).default(0.0))
                        .col(json_null(GatewayKeys::AllowedProviders))
                        .col(json_null(GatewayKeys::AllowedEndpoints))
                        .col(json_null(GatewayKeys::AllowedApiFormats))
                        .col(json_null(GatewayKeys::AllowedModels))
                        .col(json_null(GatewayKeys::ForceCapabilities))
                        .col(timestamp_with_time_zone_null(GatewayKeys::LastUsedAt))
                        .foreign_key(&mut cascade(
                            "fk_gateway_keys_user",
                            (GatewayKeys::Table, GatewayKeys::UserId),
                            (Users::Table, Users::Id),
                        )),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_gateway_keys_user")
                    .table(GatewayKeys::Table)
                    .col(GatewayKeys::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GatewayKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
