//! Validation helpers shared by the resources.

use super::{ManageError, invalid};
use sea_orm::{ConnectionTrait, EntityTrait, PrimaryKeyTrait};
use std::collections::BTreeMap;
use switchyard_core::capability;

/// A required display/lookup name: not blank, no surrounding whitespace, at most 200 chars.
pub fn name(field: &str, value: &str) -> Result<(), ManageError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be blank"));
    }
    if value.trim() != value {
        return Err(invalid(field, "must not start or end with whitespace"));
    }
    if value.chars().count() > 200 {
        return Err(invalid(field, "must be at most 200 characters"));
    }
    Ok(())
}

/// An integer within bounds (inclusive).
pub fn range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ManageError> {
    if value < min || value > max {
        return Err(invalid(field, format!("must be between {min} and {max}")));
    }
    Ok(())
}

/// A finite amount of money or a ratio, at least `min`.
pub fn amount(field: &str, value: Option<f64>, min: f64) -> Result<(), ManageError> {
    match value {
        Some(v) if !v.is_finite() || v < min => Err(invalid(
            field,
            format!("must be a number of at least {min}"),
        )),
        _ => Ok(()),
    }
}

/// An http(s) URL with a host and without credentials, query or fragment.
pub fn base_url(field: &str, value: &str) -> Result<(), ManageError> {
    let url = url::Url::parse(value).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(field, "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must have a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            field,
            "must not contain credentials; use a provider key",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(field, "must not have a query or fragment"));
    }
    Ok(())
}

/// Headers an endpoint may add: valid names, and none that carry credentials or framing, which
/// the gateway sets itself.
pub fn extra_headers(field: &str, headers: &BTreeMap<String, String>) -> Result<(), ManageError> {
    const RESERVED: &[&str] = &[
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    ];
    for (name, value) in headers {
        let at = format!("{field}.{name}");
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(invalid(at, "not a valid header name"));
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(at, "set by the gateway; cannot be configured"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(invalid(at, "header values must not contain line breaks"));
        }
    }
    Ok(())
}

/// Capability names must be known; with `user_only`, only user-configurable ones.
pub fn capabilities<'a>(
    field: &str,
    names: impl IntoIterator<Item = &'a String>,
    user_only: bool,
) -> Result<(), ManageError> {
    for name in names {
        match capability::find(name) {
            None => {
                let known: Vec<_> = capability::CAPABILITIES.iter().map(|c| c.name).collect();
                return Err(invalid(
                    format!("{field}.{name}"),
                    format!("unknown capability; known: {}", known.join(", ")),
                ));
            }
            Some(c) if user_only && !c.user_configurable => {
                return Err(invalid(
                    format!("{field}.{name}"),
                    "is decided by the request, not configurable here",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A list of names (models, providers, endpoints): entries not blank and not repeated. An empty
/// list is allowed and means "nothing"; `null` means "unrestricted".
pub fn name_list(field: &str, values: Option<&Vec<String>>) -> Result<(), ManageError> {
    let Some(values) = values else { return Ok(()) };
    for (i, v) in values.iter().enumerate() {
        if v.trim().is_empty() {
            return Err(invalid(format!("{field}[{i}]"), "must not be blank"));
        }
        if values[..i].contains(v) {
            return Err(invalid(format!("{field}[{i}]"), "is listed twice"));
        }
    }
    Ok(())
}

/// The referenced row must exist (a 400 on the referring field, not a 404: the URL was fine).
pub async fn exists<E, C>(
    db: &C,
    field: &str,
    kind: &str,
    id: &str,
) -> Result<E::Model, ManageError>
where
    E: EntityTrait,
    C: ConnectionTrait,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<String>,
{
    E::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| invalid(field, format!("no {kind} with id `{id}`")))
}

/// A parent reference cannot move to another parent.
pub fn unchanged(field: &str, stored: &str, submitted: &str) -> Result<(), ManageError> {
    if stored != submitted {
        return Err(invalid(
            field,
            "cannot be changed; create a new one instead",
        ));
    }
    Ok(())
}
