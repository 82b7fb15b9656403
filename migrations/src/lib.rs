//! Schema migrations of Switchyard. The same migrations run unchanged on SQLite and PostgreSQL:
//! they use only the portable column types of sea-query (strings for ids, JSON, doubles,
//! timestamps with time zone) and name every index and foreign key explicitly.
//!
//! One migration per file; sea-orm names a migration after its file. Never edit a migration that
//! has been released: add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_catalog;
mod m20261126_000002_accounts;
mod m20261126_000003_records;
mod m20261126_000004_state;
mod m20261126_000005_format_conversion;

/// Every migration, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_catalog::Migration),
            Box::new(m20261126_000002_accounts::Migration),
            Box::new(m20261126_000003_records::Migration),
            Box::new(m20261126_000004_state::Migration),
            Box::new(m20261126_000005_format_conversion::Migration),
        ]
    }
}

/// `created_at` and `updated_at`, both required.
pub(crate) fn timestamps(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    use sea_orm_migration::schema::timestamp_with_time_zone;
    table
        .col(timestamp_with_time_zone(Alias::new("created_at")))
        .col(timestamp_with_time_zone(Alias::new("updated_at")))
}

/// A foreign key that deletes the child with its parent.
pub(crate) fn cascade(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .on_update(ForeignKeyAction::Cascade)
        .to_owned()
}
