//! The checks the front doors' `parse_request` share. Validation is deliberately shallow (see
//! each dialect module); these helpers give the checks it does make one wording everywhere:
//! `is required` (absent or `null`), `must not be empty`, `must be a …`, with the field named as
//! a path in the [`RequestError`].

use serde_json::{Map, Value};

use crate::dialect::RequestError;

/// The request body as a JSON object.
///
/// # Errors
/// With an empty field: the parser's message (with line and column) for a body that is not
/// JSON, or "the request body must be a JSON object".
pub(crate) fn json_object(raw: &[u8]) -> Result<Map<String, Value>, RequestError> {
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| RequestError::new("", e.to_string()))?;
    match value {
        Value::Object(body) => Ok(body),
        _ => Err(RequestError::new(
            "",
            "the request body must be a JSON object",
        )),
    }
}

/// The string at `key`, which must be present and not blank (`model`).
///
/// # Errors
/// `key` is absent or `null`, blank, or not a string.
pub(crate) fn required_string(
    body: &Map<String, Value>,
    key: &str,
) -> Result<String, RequestError> {
    match body.get(key) {
        None | Some(Value::Null) => Err(RequestError::new(key, "is required")),
        Some(Value::String(value)) if value.trim().is_empty() => {
            Err(RequestError::new(key, "must not be empty"))
        }
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(RequestError::new(key, "must be a string")),
    }
}

/// The non-empty array at `key` (`messages`, `contents`).
///
/// # Errors
/// `key` is absent or `null`, an empty array, or not an array.
pub(crate) fn required_array<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a [Value], RequestError> {
    match body.get(key) {
        None | Some(Value::Null) => Err(RequestError::new(key, "is required")),
        Some(Value::Array(items)) if items.is_empty() => {
            Err(RequestError::new(key, "must not be empty"))
        }
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(RequestError::new(key, "must be an array")),
    }
}

/// `messages` as OpenAI chat and Anthropic take it: a non-empty array of objects, each with a
/// string `role` (which roles exist is the upstream's business).
///
/// # Errors
/// The first of `messages`, `messages[i]` or `messages[i].role` that is wrong.
pub(crate) fn messages_with_roles(body: &Map<String, Value>) -> Result<(), RequestError> {
    for (i, message) in required_array(body, "messages")?.iter().enumerate() {
        let Value::Object(message) = message else {
            return Err(RequestError::new(
                format!("messages[{i}]"),
                "must be an object",
            ));
        };
        match message.get("role") {
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => {
                return Err(RequestError::new(
                    format!("messages[{i}].role"),
                    "is required",
                ));
            }
            Some(_) => {
                return Err(RequestError::new(
                    format!("messages[{i}].role"),
                    "must be a string",
                ));
            }
        }
    }
    Ok(())
}

/// The boolean at `key` of `object`, named `path` in errors; `null` means absent (OpenAI
/// documents its flags as "boolean or null", and compatible clients send null elsewhere too).
///
/// # Errors
/// The value is neither a boolean nor `null`.
pub(crate) fn optional_bool(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<bool>, RequestError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(RequestError::new(path, "must be a boolean")),
    }
}
