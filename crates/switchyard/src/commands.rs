//! One-shot commands: migrate, import, keys create, config.

use crate::config::{Config, EncryptionKey};
use anyhow::{Context, bail};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use switchyard_store::db::ConnectSettings;
use switchyard_store::entity::user;
use switchyard_store::manage::{self, GatewayKeys, Users, WriteContext};
use switchyard_store::{Cipher, Database};

/// Opens the configured database and migrates it.
pub async fn open_database(config: &Config) -> anyhow::Result<Database> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let settings = ConnectSettings {
        max_connections: config.database_max_connections,
        acquire_timeout: Duration::from_secs(config.database_connect_timeout_secs),
    };
    let db = switchyard_store::connect(&config.database_url, &settings)
        .await
        .with_context(|| {
            format!(
                "cannot open the database ({})",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    switchyard_store::db::migrate(&db)
        .await
        .context("database migration failed")?;
    Ok(db)
}

/// The provider-key cipher from the configuration or the key file.
pub fn cipher(config: &Config) -> anyhow::Result<Cipher> {
    match &config.encryption_key {
        EncryptionKey::Inline(key) => {
            Cipher::from_base64(key).map_err(|m| anyhow::anyhow!("secrets.encryption_key {m}"))
        }
        EncryptionKey::File(path) => Ok(Cipher::load_or_create_key_file(path)?),
    }
}

/// `switchyard migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = open_database(config).await?;
    db.close().await.ok();
    tracing::info!("database schema is up to date");
    Ok(())
}

/// Imports one provider file; used by `switchyard import` and at `serve` start.
pub async fn import_file(
    db: &Database,
    cipher: &Cipher,
    file: &Path,
) -> anyhow::Result<switchyard_store::import::ImportSummary> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let ctx = WriteContext::new(cipher.clone());
    let summary =
        switchyard_store::import::import_toml(db, &ctx, &text, &|name| std::env::var(name).ok())
            .await
            .with_context(|| format!("{} was not imported (nothing changed)", file.display()))?;
    tracing::info!(
        file = %file.display(),
        created = summary.created,
        updated = summary.updated,
        unchanged = summary.unchanged,
        "provider file imported"
    );
    Ok(summary)
}

/// `switchyard import FILE`.
#[expect(clippy::print_stdout, reason = "the CLI reports what it did")]
pub async fn import(config: &Config, file: &Path) -> anyhow::Result<()> {
    let db = open_database(config).await?;
    let cipher = cipher(config)?;
    let result = import_file(&db, &cipher, file).await;
    db.close().await.ok();
    let summary = result?;
    println!(
        "imported {}: {} created, {} updated, {} unchanged",
        file.display(),
        summary.created,
        summary.updated,
        summary.unchanged
    );
    Ok(())
}

/// `switchyard keys create`.
#[expect(
    clippy::print_stdout,
    reason = "the CLI prints the new key for the operator"
)]
pub async fn create_key(config: &Config, args: &crate::cli::CreateKey) -> anyhow::Result<()> {
    let db = open_database(config).await?;
    let ctx = WriteContext::new(cipher(config)?);
    let existing = user::Entity::find()
        .filter(user::Column::Name.eq(args.user.clone()))
        .one(&db)
        .await?;
    let user_id = match (existing, args.create_user) {
        (Some(u), _) => u.id,
        (None, true) => {
            manage::create::<Users, _>(&db, &ctx, json!({ "name": args.user }))
                .await?
                .model
                .id
        }
        (None, false) => bail!(
            "no user named `{}` (add --create-user to create it)",
            args.user
        ),
    };
    let mut body = json!({ "user_id": user_id, "name": args.name });
    if let Some(days) = args.expires_in_days {
        body["expires_at"] = json!(chrono::Utc::now() + chrono::Duration::days(i64::from(days)));
    }
    if let Some(balance) = args.balance {
        body["is_standalone"] = json!(true);
        body["balance_usd"] = json!(balance);
    }
    let created = manage::create::<GatewayKeys, _>(&db, &ctx, body).await?;
    db.close().await.ok();
    let Some(key) = created.revealed else {
        bail!("the key was created but its value was not returned");
    };
    println!("{}", key.expose());
    eprintln!(
        "created gateway key `{}` (id {}) for user `{}`; it is shown only now",
        args.name, created.model.id, args.user
    );
    Ok(())
}

/// `switchyard config`: the effective configuration, secrets redacted.
#[expect(clippy::print_stdout, reason = "the CLI prints the configuration")]
pub fn show_config(config: &Config) -> anyhow::Result<()> {
    println!("{config:#?}");
    Ok(())
}
