//! Admin-facing operations on catalog and account entities, shared by the admin API and the
//! declarative import so both apply exactly the same validation.
//!
//! Every resource has one input shape (`Input`, `deny_unknown_fields`) used for create, and for
//! update through JSON merge patch (RFC 7396): the stored row is turned back into its input,
//! the patch is merged onto it and the result is validated as a whole. So a patch can never
//! produce a row that a create would have refused.
//!
//! Errors carry the failing field path, so callers can say exactly what was wrong.

mod accounts;
mod catalog;
mod validate;

pub use accounts::{GatewayKeys, Users};
pub use catalog::{Aliases, Endpoints, GlobalModels, ProviderKeys, ProviderModels, Providers};

use crate::error::StoreError;
use crate::secrets::Cipher;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, ModelTrait, Order, PaginatorTrait, PrimaryKeyTrait, QueryFilter, QueryOrder,
    SqlErr,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::str::FromStr;
use switchyard_core::SecretString;

/// Why an admin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The input is malformed or breaks a rule; `field` is its path (`tiers[0].up_to`).
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the failing field; empty for the body as a whole.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No entity with that id.
    #[error("no {kind} with id `{id}`")]
    NotFound {
        /// The resource kind.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The change would duplicate a unique value.
    #[error("{field}: {message}")]
    Conflict {
        /// The duplicated field.
        field: String,
        /// Which value clashes.
        message: String,
    },
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DbErr> for ManageError {
    fn from(e: DbErr) -> Self {
        ManageError::Store(StoreError::Db(e))
    }
}

/// Shorthand for a validation error.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ManageError {
    ManageError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// What a write needs besides the input.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// Timestamp for `created_at`/`updated_at`.
    pub now: DateTime<Utc>,
    /// Encrypts provider keys.
    pub cipher: Cipher,
}

impl WriteContext {
    /// A context stamped now.
    pub fn new(cipher: Cipher) -> Self {
        Self {
            now: Utc::now(),
            cipher,
        }
    }
}

/// The primary-key value type of a resource's entity.
pub type Pk<R> =
    <<<R as Resource>::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType;

/// One admin-managed entity kind.
pub trait Resource {
    /// The sea-orm entity.
    type Entity: EntityTrait<Model = Self::Model, ActiveModel = Self::Active>;
    /// Its row.
    type Model: ModelTrait<Entity = Self::Entity>
        + IntoActiveModel<Self::Active>
        + Clone
        + Send
        + Sync;
    /// Its active model.
    type Active: ActiveModelTrait<Entity = Self::Entity> + ActiveModelBehavior + Send;
    /// What a client submits.
    type Input: DeserializeOwned + Serialize;
    /// What a client is shown.
    type View: Serialize;

    /// Singular name used in messages and paths (`provider`).
    const KIND: &'static str;
    /// Query parameters accepted as equality filters on list (column names).
    const FILTERS: &'static [&'static str];
    /// `(text in the database's unique-violation message, field to blame)`.
    const UNIQUE: &'static [(&'static str, &'static str)];

    /// The stored row expressed as input, for merge patches (write-only secrets left out).
    fn input_of(model: &Self::Model) -> Self::Input;

    /// Checks an input; `existing` is the stored row on update.
    fn check<C: ConnectionTrait>(
        db: &C,
        input: &Self::Input,
        existing: Option<&Self::Model>,
    ) -> impl Future<Output = Result<(), ManageError>>;

    /// Builds the row to insert (`existing = None`, with `id`) or update.
    fn write(
        input: Self::Input,
        id: String,
        existing: Option<&Self::Model>,
        ctx: &WriteContext,
    ) -> Result<Self::Active, ManageError>;

    /// A value revealed once at creation (the plaintext of a generated gateway key). It is set
    /// on the row by `write`; this hook only lets `create` return it.
    fn reveal_on_create(_active: &mut Self::Active) -> Option<SecretString> {
        None
    }

    /// The row as shown to a client.
    fn view(model: Self::Model) -> Self::View;

    /// The row's id.
    fn id_of(model: &Self::Model) -> String;
}

/// A created row and, for gateway keys, the plaintext shown only now.
#[derive(Debug)]
pub struct Created<M> {
    /// The stored row.
    pub model: M,
    /// A secret revealed once.
    pub revealed: Option<SecretString>,
}

/// Parses a JSON body into a resource input, naming the failing field.
pub fn parse_input<T: DeserializeOwned>(body: serde_json::Value) -> Result<T, ManageError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        invalid(field, e.into_inner().to_string())
    })
}

/// Creates a row from a JSON body.
pub async fn create<R: Resource, C: ConnectionTrait>(
    db: &C,
    ctx: &WriteContext,
    body: serde_json::Value,
) -> Result<Created<R::Model>, ManageError>
where
    Pk<R>: From<String>,
{
    let input: R::Input = parse_input(body)?;
    create_input::<R, C>(db, ctx, input).await
}

/// Creates a row from an already parsed input.
pub async fn create_input<R: Resource, C: ConnectionTrait>(
    db: &C,
    ctx: &WriteContext,
    input: R::Input,
) -> Result<Created<R::Model>, ManageError> {
    R::check(db, &input, None).await?;
    let mut active = R::write(input, new_id(), None, ctx)?;
    let revealed = R::reveal_on_create(&mut active);
    let model = active.insert(db).await.map_err(conflict::<R>)?;
    Ok(Created { model, revealed })
}

/// Reads one row.
pub async fn get<R: Resource, C: ConnectionTrait>(db: &C, id: &str) -> Result<R::Model, ManageError>
where
    Pk<R>: From<String>,
{
    R::Entity::find_by_id(Pk::<R>::from(id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| ManageError::NotFound {
            kind: R::KIND,
            id: id.to_owned(),
        })
}

/// Applies a JSON merge patch to a row.
pub async fn patch<R: Resource, C: ConnectionTrait>(
    db: &C,
    ctx: &WriteContext,
    id: &str,
    body: serde_json::Value,
) -> Result<R::Model, ManageError>
where
    Pk<R>: From<String>,
{
    let existing = get::<R, C>(db, id).await?;
    let merged = merge_onto::<R>(&existing, body)?;
    update_input::<R, C>(db, ctx, &existing, merged).await
}

/// The stored row's input with a merge patch applied, parsed.
pub fn merge_onto<R: Resource>(
    existing: &R::Model,
    body: serde_json::Value,
) -> Result<R::Input, ManageError> {
    if !body.is_object() {
        return Err(invalid("", "the body must be a JSON object"));
    }
    let mut current = serde_json::to_value(R::input_of(existing))
        .map_err(|e| invalid("", format!("cannot represent the stored row: {e}")))?;
    merge_patch(&mut current, body);
    parse_input(current)
}

/// Writes an already merged input over an existing row.
pub async fn update_input<R: Resource, C: ConnectionTrait>(
    db: &C,
    ctx: &WriteContext,
    existing: &R::Model,
    input: R::Input,
) -> Result<R::Model, ManageError> {
    R::check(db, &input, Some(existing)).await?;
    let active = R::write(input, R::id_of(existing), Some(existing), ctx)?;
    active.update(db).await.map_err(conflict::<R>)
}

/// Deletes a row (and, through foreign keys, what belongs to it).
pub async fn delete<R: Resource, C: ConnectionTrait>(db: &C, id: &str) -> Result<(), ManageError>
where
    Pk<R>: From<String>,
{
    let result = R::Entity::delete_by_id(Pk::<R>::from(id.to_owned()))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(ManageError::NotFound {
            kind: R::KIND,
            id: id.to_owned(),
        });
    }
    Ok(())
}

/// A page request for [`list`].
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// 1-based page number.
    pub page: u64,
    /// Rows per page, 1–500.
    pub per_page: u64,
    /// Equality filters `(column, value)`; each column must be in the resource's `FILTERS`.
    pub filters: Vec<(String, String)>,
}

/// One page of rows.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// This page.
    pub page: u64,
    /// Page size.
    pub per_page: u64,
    /// Rows matching the filters, over all pages.
    pub total: u64,
}

/// Lists rows, oldest first, with filters and pagination.
pub async fn list<R: Resource, C: ConnectionTrait>(
    db: &C,
    query: &ListQuery,
) -> Result<Page<R::View>, ManageError>
where
    R::Model: sea_orm::FromQueryResult,
{
    if query.page == 0 {
        return Err(invalid("page", "must be at least 1"));
    }
    if !(1..=500).contains(&query.per_page) {
        return Err(invalid("per_page", "must be between 1 and 500"));
    }
    let column = |name: &str| <R::Entity as EntityTrait>::Column::from_str(name).ok();
    let mut select = R::Entity::find();
    for (name, value) in &query.filters {
        let filterable = R::FILTERS.contains(&name.as_str());
        match column(name) {
            Some(col) if filterable => {
                select = select.filter(col.eq(filter_value(&col, name, value)?));
            }
            _ => {
                return Err(invalid(
                    name.clone(),
                    format!("unknown filter; accepted: {}", R::FILTERS.join(", ")),
                ));
            }
        }
    }
    for name in ["created_at", "id", "name", "key"] {
        if let Some(col) = column(name) {
            select = select.order_by(col, Order::Asc);
        }
    }
    let paginator = select.paginate(db, query.per_page);
    let total = paginator.num_items().await?;
    let items = paginator.fetch_page(query.page - 1).await?;
    Ok(Page {
        items: items.into_iter().map(R::view).collect(),
        page: query.page,
        per_page: query.per_page,
        total,
    })
}

/// A query-string filter value typed like its column, so `is_active=true` matches a boolean.
fn filter_value<Col: ColumnTrait>(
    column: &Col,
    name: &str,
    raw: &str,
) -> Result<sea_orm::Value, ManageError> {
    use sea_orm::ColumnType;
    let bad = |what: &str| invalid(name, format!("must be {what}"));
    Ok(match column.def().get_column_type() {
        ColumnType::Boolean => raw
            .parse::<bool>()
            .map_err(|_| bad("true or false"))?
            .into(),
        ColumnType::Integer | ColumnType::BigInteger | ColumnType::SmallInteger => {
            raw.parse::<i64>().map_err(|_| bad("an integer"))?.into()
        }
        _ => raw.to_owned().into(),
    })
}

/// Serde default for flags that start on.
fn yes() -> bool {
    true
}

/// A value as a JSON column (the input types always serialise).
fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// A nullable JSON column back into its type; `null` and unparsable values are `None`.
fn from_json<T: DeserializeOwned>(value: &Option<serde_json::Value>) -> Option<T> {
    value
        .as_ref()
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// A new row id: a UUIDv7, so ids sort by creation time and index well.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// RFC 7396 JSON merge patch: objects merge recursively, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    match patch {
        serde_json::Value::Object(fields) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(map) = target {
                for (key, value) in fields {
                    if value.is_null() {
                        map.remove(&key);
                    } else {
                        merge_patch(map.entry(key).or_insert(serde_json::Value::Null), value);
                    }
                }
            }
        }
        other => *target = other,
    }
}

/// Turns a unique violation into a 409 naming the field; other errors pass through.
fn conflict<R: Resource>(e: DbErr) -> ManageError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = e.sql_err() {
        let field = R::UNIQUE
            .iter()
            .find(|(needle, _)| message.contains(needle))
            .map_or("", |(_, field)| field);
        return ManageError::Conflict {
            field: field.to_owned(),
            message: format!(
                "a {} with this {} already exists",
                R::KIND,
                field_or_value(field)
            ),
        };
    }
    e.into()
}

fn field_or_value(field: &str) -> &str {
    if field.is_empty() { "value" } else { field }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut target,
            json!({"a": null, "b": {"c": 5}, "e": [2, 3], "f": "x"}),
        );
        assert_eq!(
            target,
            json!({"b": {"c": 5, "d": 3}, "e": [2, 3], "f": "x"})
        );
    }
}
