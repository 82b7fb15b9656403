//! Per-request records: one attempt row per candidate and retry (skipped ones included), one
//! usage row per request. No foreign keys: records outlive the catalog entities they name.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RequestAttempts {
    Table,
    Id,
    RequestId,
    CandidateIndex,
    RetryIndex,
    UserId,
    GatewayKeyId,
    ProviderId,
    EndpointId,
    ProviderKeyId,
    Status,
    SkipReason,
    IsCached,
    StatusCode,
    ErrorType,
    ErrorMessage,
    LatencyMs,
    ConcurrentRequests,
    RequiredCapabilities,
    Extra,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Usage {
    Table,
    Id,
    RequestId,
    ClientRequestId,
    UserId,
    GatewayKeyId,
    ProviderName,
    ProviderId,
    EndpointId,
    ProviderKeyId,
    Model,
    TargetModel,
    GlobalModelId,
    ApiFormat,
    UpstreamFormat,
    RequestType,
    IsStream,
    Status,
    StatusCode,
    ErrorMessage,
    InputTokens,
    OutputTokens,
    TotalTokens,
    CacheCreationInputTokens,
    CacheReadInputTokens,
    ReasoningTokens,
    InputCostUsd,
    OutputCostUsd,
    CacheCreationCostUsd,
    CacheReadCostUsd,
    CacheCostUsd,
    RequestCostUsd,
    TotalCostUsd,
    ActualInputCostUsd,
    ActualOutputCostUsd,
    ActualCacheCreationCostUsd,
    ActualCacheReadCostUsd,
    ActualCacheCostUsd,
    ActualRequestCostUsd,
    ActualTotalCostUsd,
    RateMultiplier,
    #[sea_orm(iden = "input_price_per_1m")]
    InputPricePer1m,
    #[sea_orm(iden = "output_price_per_1m")]
    OutputPricePer1m,
    #[sea_orm(iden = "cache_creation_price_per_1m")]
    CacheCreationPricePer1m,
    #[sea_orm(iden = "cache_read_price_per_1m")]
    CacheReadPricePer1m,
    PricePerRequest,
    ResponseTimeMs,
    FirstByteTimeMs,
    Metadata,
    CreatedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RequestAttempts::Table)
                    .col(big_pk_auto(RequestAttempts::Id))
                    .col(string(RequestAttempts::RequestId))
                    .col(integer(RequestAttempts::CandidateIndex))
                    .col(integer(RequestAttempts::RetryIndex))
                    .col(string_null(RequestAttempts::UserId))
                    .col(string_null(RequestAttempts::GatewayKeyId))
                    .col(string_null(RequestAttempts::ProviderId))
                    .col(string_null(RequestAttempts::EndpointId))
                    .col(string_null(RequestAttempts::ProviderKeyId))
                    .col(string(RequestAttempts::Status))
                    .col(text_null(RequestAttempts::SkipReason))
                    .col(boolean(RequestAttempts::IsCached).default(false))
                    .col(integer_null(RequestAttempts::StatusCode))
                    .col(string_null(RequestAttempts::ErrorType))
                    .col(text_null(RequestAttempts::ErrorMessage))
                    .col(big_integer_null(RequestAttempts::LatencyMs))
                    .col(integer_null(RequestAttempts::ConcurrentRequests))
                    .col(json_null(RequestAttempts::RequiredCapabilities))
                    .col(json_null(RequestAttempts::Extra))
                    .col(timestamp_with_time_zone(RequestAttempts::CreatedAt))
                    .col(timestamp_with_time_zone_null(RequestAttempts::StartedAt))
                    .col(timestamp_with_time_zone_null(RequestAttempts::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_request_attempts_request_candidate_retry")
                    .table(RequestAttempts::Table)
                    .col(RequestAttempts::RequestId)
                    .col(RequestAttempts::CandidateIndex)
                    .col(RequestAttempts::RetryIndex)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_request_attempts_key_created")
                    .table(RequestAttempts::Table)
                    .col(RequestAttempts::ProviderKeyId)
                    .col(RequestAttempts::CreatedAt)
                    .to_owned(),
            )
            .await?;

        let mut usage = Table::create();
        usage
            .table(Usage::Table)
            .col(big_pk_auto(Usage::Id))
            .col(string_uniq(Usage::RequestId))
            .col(string_null(Usage::ClientRequestId))
            .col(string_null(Usage::UserId))
            .col(string_null(Usage::GatewayKeyId))
            .col(string_null(Usage::ProviderName))
            .col(string_null(Usage::ProviderId))
            .col(string_null(Usage::EndpointId))
            .col(string_null(Usage::ProviderKeyId))
            .col(string(Usage::Model))
            .col(string_null(Usage::TargetModel))
            .col(string_null(Usage::GlobalModelId))
            .col(string(Usage::ApiFormat))
            .col(string_null(Usage::UpstreamFormat))
            .col(string(Usage::RequestType).default("chat"))
            .col(boolean(Usage::IsStream).default(false))
            .col(string(Usage::Status))
            .col(integer_null(Usage::StatusCode))
            .col(text_null(Usage::ErrorMessage));
        for tokens in [
            Usage::InputTokens,
            Usage::OutputTokens,
            Usage::TotalTokens,
            Usage::CacheCreationInputTokens,
            Usage::CacheReadInputTokens,
            Usage::ReasoningTokens,
        ] {
            usage.col(big_integer(tokens).default(0));
        }
        for cost in [
            Usage::InputCostUsd,
            Usage::OutputCostUsd,
            Usage::CacheCreationCostUsd,
            Usage::CacheReadCostUsd,
            Usage::CacheCostUsd,
            Usage::RequestCostUsd,
            Usage::TotalCostUsd,
            Usage::ActualInputCostUsd,
            Usage::ActualOutputCostUsd,
            Usage::ActualCacheCreationCostUsd,
            Usage::ActualCacheReadCostUsd,
            Usage::ActualCacheCostUsd,
            Usage::ActualRequestCostUsd,
            Usage::ActualTotalCostUsd,
        ] {
            usage.col(double(cost).default(0.0));
        }
        usage
            .col(double(Usage::RateMultiplier).default(1.0))
            .col(double_null(Usage::InputPricePer1m))
            .col(double_null(Usage::OutputPricePer1m))
            .col(double_null(Usage::CacheCreationPricePer1m))
            .col(double_null(Usage::CacheReadPricePer1m))
            .col(double_null(Usage::PricePerRequest))
            .col(big_integer_null(Usage::ResponseTimeMs))
            .col(big_integer_null(Usage::FirstByteTimeMs))
            .col(json_null(Usage::Metadata))
            .col(timestamp_with_time_zone(Usage::CreatedAt))
            .col(timestamp_with_time_zone_null(Usage::FinishedAt));
        manager.create_table(usage.to_owned()).await?;

        // The queries operators run: by time, and by key, user or provider over time.
        let indexes: [(&str, Option<Usage>); 4] = [
            ("ix_usage_created", None),
            ("ix_usage_gateway_key_created", Some(Usage::GatewayKeyId)),
            ("ix_usage_user_created", Some(Usage::UserId)),
            ("ix_usage_provider_created", Some(Usage::ProviderId)),
        ];
        for (name, leading) in indexes {
            let mut index = Index::create();
            index.name(name).table(Usage::Table);
            if let Some(column) = leading {
                index.col(column);
            }
            manager
                .create_index(index.col(Usage::CreatedAt).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Usage::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RequestAttempts::Table).to_owned())
            .await
    }
}
