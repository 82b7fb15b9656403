//! Cross-format routing: an endpoint may serve clients of other formats, the request and answer
//! converted. `NULL` follows the global `format_conversion` setting; `true`/`false` override it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    FormatConversion,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Endpoints::Table)
                    .add_column(ColumnDef::new(Endpoints::FormatConversion).boolean().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Endpoints::Table)
                    .drop_column(Endpoints::FormatConversion)
                    .to_owned(),
            )
            .await
    }
}
