//! The routing catalog: providers, endpoints, provider keys, models, mappings, aliases.

use crate::{cascade, timestamps};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Providers {
    Table,
    Id,
    Name,
    Description,
    IsActive,
    Priority,
    BillingType,
    MonthlyQuotaUsd,
    MonthlyUsedUsd,
    QuotaResetDay,
    QuotaLastResetAt,
    QuotaExpiresAt,
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
    ProviderId,
    ApiFormat,
    BaseUrl,
    CustomPath,
    Headers,
    TimeoutSecs,
    HeaderTimeoutSecs,
    FirstByteTimeoutSecs,
    MaxRetries,
    MaxConcurrent,
    IsActive,
}

#[derive(DeriveIden)]
enum ProviderKeys {
    Table,
    Id,
    EndpointId,
    Name,
    Note,
    SecretEncrypted,
    SecretPreview,
    IsActive,
    InternalPriority,
    GlobalPriority,
    MaxConcurrent,
    RpmLimit,
    AllowedModels,
    Capabilities,
    CacheTtlMinutes,
    RateMultiplier,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum GlobalModels {
    Table,
    Id,
    Name,
    DisplayName,
    IsActive,
    DefaultTieredPricing,
    DefaultPricePerRequest,
    SupportedCapabilities,
    Config,
}

#[derive(DeriveIden)]
enum ProviderModels {
    Table,
    Id,
    ProviderId,
    GlobalModelId,
    ProviderModelName,
    Mappings,
    PricePerRequest,
    TieredPricing,
    SupportsStreaming,
    SupportsVision,
    SupportsFunctionCalling,
    SupportsExtendedThinking,
    IsActive,
}

#[derive(DeriveIden)]
enum ModelAliases {
    Table,
    Id,
    Alias,
    GlobalModelId,
    IsActive,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(Providers::Table)
                        .col(string(Providers::Id).primary_key())
                        .col(string_uniq(Providers::Name))
                        .col(text_null(Providers::Description))
                        .col(boolean(Providers::IsActive).default(true))
                        .col(integer(Providers::Priority).default(100))
                        .col(string(Providers::BillingType).default("pay_as_you_go"))
                        .col(double_null(Providers::MonthlyQuotaUsd))
                        .col(double(Providers::MonthlyUsedUsd).default(0.0))
                        .col(integer(Providers::QuotaResetDay).default(30))
                        .col(timestamp_with_time_zone_null(Providers::QuotaLastResetAt))
                        .col(timestamp_with_time_zone_null(Providers::QuotaExpiresAt)),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(Endpoints::Table)
                        .col(string(Endpoints::Id).primary_key())
                        .col(string(Endpoints::ProviderId))
                        .col(string(Endpoints::ApiFormat))
                        .col(string(Endpoints::BaseUrl))
                        .col(string_null(Endpoints::CustomPath))
                        .col(json_null(Endpoints::Headers))
                        .col(integer(Endpoints::TimeoutSecs).default(300))
                        .col(integer(Endpoints::HeaderTimeoutSecs).default(60))
                        .col(integer(Endpoints::FirstByteTimeoutSecs).default(30))
                        .col(integer(Endpoints::MaxRetries).default(2))
                        .col(integer_null(Endpoints::MaxConcurrent))
                        .col(boolean(Endpoints::IsActive).default(true))
                        .foreign_key(&mut cascade(
                            "fk_endpoints_provider",
                            (Endpoints::Table, Endpoints::ProviderId),
                            (Providers::Table, Providers::Id),
                        )),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_endpoints_provider_format")
                    .table(Endpoints::Table)
                    .col(Endpoints::ProviderId)
                    .col(Endpoints::ApiFormat)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(ProviderKeys::Table)
                        .col(string(ProviderKeys::Id).primary_key())
                        .col(string(ProviderKeys::EndpointId))
                        .col(string(ProviderKeys::Name))
                        .col(text_null(ProviderKeys::Note))
                        .col(text(ProviderKeys::SecretEncrypted))
                        .col(string(ProviderKeys::SecretPreview))
                        .col(boolean(ProviderKeys::IsActive).default(true))
                        .col(integer_null(ProviderKeys::InternalPriority))
                        .col(integer_null(ProviderKeys::GlobalPriority))
                        .col(integer_null(ProviderKeys::MaxConcurrent))
                        .col(integer_null(ProviderKeys::RpmLimit))
                        .col(json_null(ProviderKeys::AllowedModels))
                        .col(json_null(ProviderKeys::Capabilities))
                        .col(integer(ProviderKeys::CacheTtlMinutes).default(5))
                        .col(double(ProviderKeys::RateMultiplier).default(1.0))
                        .col(timestamp_with_time_zone_null(ProviderKeys::ExpiresAt))
                        .foreign_key(&mut cascade(
                            "fk_provider_keys_endpoint",
                            (ProviderKeys::Table, ProviderKeys::EndpointId),
                            (Endpoints::Table, Endpoints::Id),
                        )),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_provider_keys_endpoint_name")
                    .table(ProviderKeys::Table)
                    .col(ProviderKeys::EndpointId)
                    .col(ProviderKeys::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(GlobalModels::Table)
                        .col(string(GlobalModels::Id).primary_key())
                        .col(string_uniq(GlobalModels::Name))
                        .col(string_null(GlobalModels::DisplayName))
                        .col(boolean(GlobalModels::IsActive).default(true))
                        .col(json(GlobalModels::DefaultTieredPricing))
                        .col(double_null(GlobalModels::DefaultPricePerRequest))
                        .col(json_null(GlobalModels::SupportedCapabilities))
                        .col(json_null(GlobalModels::Config)),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(ProviderModels::Table)
                        .col(string(ProviderModels::Id).primary_key())
                        .col(string(ProviderModels::ProviderId))
                        .col(string(ProviderModels::GlobalModelId))
                        .col(string(ProviderModels::ProviderModelName))
                        .col(json_null(ProviderModels::Mappings))
                        .col(double_null(ProviderModels::PricePerRequest))
                        .col(json_null(ProviderModels::TieredPricing))
                        .col(boolean_null(ProviderModels::SupportsStreaming))
                        .col(boolean_null(ProviderModels::SupportsVision))
                        .col(boolean_null(ProviderModels::SupportsFunctionCalling))
                        .col(boolean_null(ProviderModels::SupportsExtendedThinking))
                        .col(boolean(ProviderModels::IsActive).default(true))
                        .foreign_key(&mut cascade(
                            "fk_provider_models_provider",
                            (ProviderModels::Table, ProviderModels::ProviderId),
                            (Providers::Table, Providers::Id),
                        ))
                        .foreign_key(&mut cascade(
                            "fk_provider_models_global_model",
                            (ProviderModels::Table, ProviderModels::GlobalModelId),
                            (GlobalModels::Table, GlobalModels::Id),
                        )),
                )
                .to_owned(),
            )
            .await?;
        for (name, column) in [
            (
                "ux_provider_models_provider_name",
                ProviderModels::ProviderModelName,
            ),
            (
                "ux_provider_models_provider_global",
                ProviderModels::GlobalModelId,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(ProviderModels::Table)
                        .col(ProviderModels::ProviderId)
                        .col(column)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(ModelAliases::Table)
                        .col(string(ModelAliases::Id).primary_key())
                        .col(string_uniq(ModelAliases::Alias))
                        .col(string(ModelAliases::GlobalModelId))
                        .col(boolean(ModelAliases::IsActive).default(true))
                        .foreign_key(&mut cascade(
                            "fk_model_aliases_global_model",
                            (ModelAliases::Table, ModelAliases::GlobalModelId),
                            (GlobalModels::Table, GlobalModels::Id),
                        )),
                )
                .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ModelAliases::Table.into_iden(),
            ProviderModels::Table.into_iden(),
            GlobalModels::Table.into_iden(),
            ProviderKeys::Table.into_iden(),
            Endpoints::Table.into_iden(),
            Providers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
