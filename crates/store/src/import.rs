//! Declarative providers: a TOML file describing models (with prices and aliases) and providers
//! (with endpoints, keys and provider models), imported as an idempotent upsert by name.
//!
//! 1. The file is parsed and `${VAR}` references in strings are replaced from the environment.
//! 2. Everything is written in one transaction through the same resource operations as the
//!    admin API, so the same validation applies. The first error rolls everything back and
//!    names its place in the file (`providers[0].endpoints[1].keys[0].api_key`).
//! 3. An entity whose declared fields already match what is stored is left untouched, so
//!    importing the same file twice changes nothing the second time.
//!
//! ```toml
//! [[models]]
//! name = "gpt-4o-mini"
//! aliases = ["mini"]
//! pricing = { tiers = [{ input_price_per_1m = 0.15, output_price_per_1m = 0.6 }] }
//!
//! [[providers]]
//! name = "openai"
//! priority = 10
//!
//!   [[providers.endpoints]]
//!   api_format = "OPENAI"
//!   base_url = "https://api.openai.com"
//!
//!     [[providers.endpoints.keys]]
//!     name = "main"
//!     api_key = "${OPENAI_API_KEY}"
//!
//!   [[providers.models]]
//!   model = "gpt-4o-mini"
//!   provider_model_name = "gpt-4o-mini"
//! ```

use crate::db::Database;
use crate::entity::{endpoint, global_model, model_alias, provider, provider_key, provider_model};
use crate::manage::{
    self, Aliases, Endpoints, GlobalModels, ManageError, ProviderKeys, ProviderModels, Providers,
    Resource, WriteContext,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Why an import changed nothing.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ImportError {
    /// Where in the file (a path such as `providers[0].endpoints[1].base_url`, or `line L,
    /// column C` for syntax errors).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// What an import did, per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Rows created.
    pub created: usize,
    /// Rows changed.
    pub updated: usize,
    /// Rows already as declared.
    pub unchanged: usize,
}

/// Imports a TOML document. `env` resolves `${VAR}` references.
pub async fn import_toml(
    db: &Database,
    ctx: &WriteContext,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ImportSummary, ImportError> {
    let parsed: toml::Value = toml::from_str(text).map_err(|e| ImportError {
        location: e
            .span()
            .map(|s| line_col(text, s.start))
            .unwrap_or_else(|| "file".into()),
        message: e.message().to_owned(),
    })?;
    let mut doc = serde_json::to_value(parsed).map_err(|e| ImportError {
        location: "file".into(),
        message: e.to_string(),
    })?;
    expand_env(&mut doc, "", env)?;
    let txn = db.begin().await.map_err(|e| at("database", e.into()))?;
    let summary = Importer {
        db: &txn,
        ctx,
        summary: ImportSummary::default(),
    }
    .run(doc)
    .await?;
    txn.commit().await.map_err(|e| at("database", e.into()))?;
    Ok(summary)
}

struct Importer<'a, C> {
    db: &'a C,
    ctx: &'a WriteContext,
    summary: ImportSummary,
}

impl<C: ConnectionTrait> Importer<'_, C> {
    async fn run(mut self, doc: Value) -> Result<ImportSummary, ImportError> {
        let mut doc = into_object(doc, "")?;
        let models = take_list(&mut doc, "models", "")?;
        let providers = take_list(&mut doc, "providers", "")?;
        if let Some(unknown) = doc.keys().next() {
            return Err(ImportError {
                location: unknown.clone(),
                message: "unknown section; expected `models` or `providers`".into(),
            });
        }
        for (i, model) in models.into_iter().enumerate() {
            self.model(model, &format!("models[{i}]")).await?;
        }
        for (i, decl) in providers.into_iter().enumerate() {
            self.provider(decl, &format!("providers[{i}]")).await?;
        }
        Ok(self.summary)
    }

    async fn model(&mut self, decl: Value, path: &str) -> Result<(), ImportError> {
        let mut decl = into_object(decl, path)?;
        let aliases = match decl.remove("aliases") {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(err(format!("{path}.aliases"), "must be a list of names")),
        };
        let name = required_str(&decl, "name", path)?;
        let existing = global_model::Entity::find()
            .filter(global_model::Column::Name.eq(name))
            .one(self.db)
            .await
            .map_err(|e| at(path, e.into()))?;
        let model_id = self
            .upsert::<GlobalModels>(existing, Value::Object(decl), path)
            .await?;
        for (i, alias) in aliases.into_iter().enumerate() {
            let alias_path = format!("{path}.aliases[{i}]");
            let Value::String(alias) = alias else {
                return Err(err(alias_path, "must be a string"));
            };
            let existing = model_alias::Entity::find()
                .filter(model_alias::Column::Alias.eq(alias.clone()))
                .one(self.db)
                .await
                .map_err(|e| at(&alias_path, e.into()))?;
            let body = json!({ "alias": alias, "global_model_id": model_id });
            self.upsert::<Aliases>(existing, body, &alias_path).await?;
        }
        Ok(())
    }

    async fn provider(&mut self, decl: Value, path: &str) -> Result<(), ImportError> {
        let mut decl = into_object(decl, path)?;
        let endpoints = take_list(&mut decl, "endpoints", path)?;
        let models = take_list(&mut decl, "models", path)?;
        let name = required_str(&decl, "name", path)?;
        let existing = provider::Entity::find()
            .filter(provider::Column::Name.eq(name))
            .one(self.db)
            .await
            .map_err(|e| at(path, e.into()))?;
        let provider_id = self
            .upsert::<Providers>(existing, Value::Object(decl), path)
            .await?;

        for (i, decl) in endpoints.into_iter().enumerate() {
            let path = format!("{path}.endpoints[{i}]");
            let mut decl = into_object(decl, &path)?;
            let keys = take_list(&mut decl, "keys", &path)?;
            let format = required_str(&decl, "api_format", &path)?
                .parse::<switchyard_core::ApiFormat>()
                .map_err(|e| err(format!("{path}.api_format"), e.to_string()))?;
            decl.insert("api_format".into(), json!(format));
            decl.insert("provider_id".into(), json!(provider_id));
            let existing = endpoint::Entity::find()
                .filter(endpoint::Column::ProviderId.eq(provider_id.clone()))
                .filter(endpoint::Column::ApiFormat.eq(format.as_str()))
                .one(self.db)
                .await
                .map_err(|e| at(&path, e.into()))?;
            let endpoint_id = self
                .upsert::<Endpoints>(existing, Value::Object(decl), &path)
                .await?;
            for (k, decl) in keys.into_iter().enumerate() {
                let path = format!("{path}.keys[{k}]");
                let mut decl = into_object(decl, &path)?;
                decl.insert("endpoint_id".into(), json!(endpoint_id));
                let name = required_str(&decl, "name", &path)?;
                let existing = provider_key::Entity::find()
                    .filter(provider_key::Column::EndpointId.eq(endpoint_id.clone()))
                    .filter(provider_key::Column::Name.eq(name))
                    .one(self.db)
                    .await
                    .map_err(|e| at(&path, e.into()))?;
                // An unchanged credential is left out, so an unchanged key is not rewritten.
                if let (Some(stored), Some(Value::String(submitted))) =
                    (&existing, decl.get("api_key"))
                {
                    let same = self
                        .ctx
                        .cipher
                        .decrypt(&stored.secret_encrypted)
                        .is_some_and(|s| s.expose() == submitted);
                    if same {
                        decl.remove("api_key");
                    }
                }
                self.upsert::<ProviderKeys>(existing, Value::Object(decl), &path)
                    .await?;
            }
        }

        for (i, decl) in models.into_iter().enumerate() {
            let path = format!("{path}.models[{i}]");
            let mut decl = into_object(decl, &path)?;
            let model_name = match decl.remove("model") {
                Some(Value::String(name)) => name,
                _ => {
                    return Err(err(
                        format!("{path}.model"),
                        "the global model name is required",
                    ));
                }
            };
            let model = global_model::Entity::find()
                .filter(global_model::Column::Name.eq(model_name.clone()))
                .one(self.db)
                .await
                .map_err(|e| at(&path, e.into()))?
                .ok_or_else(|| {
                    err(
                        format!("{path}.model"),
                        format!(
                            "no global model named `{model_name}` (declare it under [[models]])"
                        ),
                    )
                })?;
            decl.insert("provider_id".into(), json!(provider_id));
            decl.insert("global_model_id".into(), json!(model.id));
            let existing = provider_model::Entity::find()
                .filter(provider_model::Column::ProviderId.eq(provider_id.clone()))
                .filter(provider_model::Column::GlobalModelId.eq(model.id.clone()))
                .one(self.db)
                .await
                .map_err(|e| at(&path, e.into()))?;
            self.upsert::<ProviderModels>(existing, Value::Object(decl), &path)
                .await?;
        }
        Ok(())
    }

    /// Creates, updates or leaves alone one row; returns its id.
    async fn upsert<R: Resource>(
        &mut self,
        existing: Option<R::Model>,
        body: Value,
        path: &str,
    ) -> Result<String, ImportError> {
        match existing {
            None => {
                let created = manage::create_input::<R, C>(
                    self.db,
                    self.ctx,
                    manage::parse_input(body).map_err(|e| at(path, e))?,
                )
                .await
                .map_err(|e| at(path, e))?;
                self.summary.created += 1;
                Ok(R::id_of(&created.model))
            }
            Some(stored) => {
                let secret_given = body.get("api_key").is_some();
                let input = manage::merge_onto::<R>(&stored, body).map_err(|e| at(path, e))?;
                // Compare in canonical form (defaults filled, absent = null) so that a file
                // which omits a default value still counts as unchanged.
                let before = serde_json::to_value(R::input_of(&stored)).ok();
                let after = serde_json::to_value(&input).ok();
                if before.is_some() && before == after && !secret_given {
                    self.summary.unchanged += 1;
                    return Ok(R::id_of(&stored));
                }
                let updated = manage::update_input::<R, C>(self.db, self.ctx, &stored, input)
                    .await
                    .map_err(|e| at(path, e))?;
                self.summary.updated += 1;
                Ok(R::id_of(&updated))
            }
        }
    }
}

/// Replaces `${NAME}` in every string with the variable's value; a missing variable is an error
/// at that string's path.
fn expand_env(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ImportError> {
    match value {
        Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| err(path, "unterminated `${` reference"))?;
                let name = &after[..end];
                let resolved = env(name).ok_or_else(|| {
                    err(path, format!("environment variable `{name}` is not set"))
                })?;
                out.push_str(&resolved);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                expand_env(item, &child, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn into_object(value: Value, path: &str) -> Result<Map<String, Value>, ImportError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(err(display(path), "must be a table")),
    }
}

fn take_list(
    map: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<Value>, ImportError> {
    match map.remove(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(err(
            join(path, key),
            "must be an array of tables (`[[...]]`)",
        )),
    }
}

fn required_str<'m>(
    map: &'m Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'m str, ImportError> {
    map.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| err(join(path, key), "is required and must be a string"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "file".into()
    } else {
        path.to_owned()
    }
}

fn err(location: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError {
        location: location.into(),
        message: message.into(),
    }
}

/// Places a resource error under the declaration's path.
fn at(path: &str, e: ManageError) -> ImportError {
    match e {
        ManageError::Invalid { field, message } | ManageError::Conflict { field, message } => {
            ImportError {
                location: if field.is_empty() {
                    display(path)
                } else {
                    join(path, &field)
                },
                message,
            }
        }
        other => err(display(path), other.to_string()),
    }
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}")
}
