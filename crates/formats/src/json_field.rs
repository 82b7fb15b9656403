//! Typed reads of JSON values for the codecs' decoders. Each names the path it failed at in
//! one wording (`messages[2].content (not an array)`), so every dialect refuses alike.

use crate::ir::Unsupported;
use serde_json::{Map, Value};

fn not(path: &str, expected: &str) -> Unsupported {
    Unsupported::new(format!("{path} (not {expected})"))
}

/// An object.
pub(crate) fn object<'a>(
    value: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, Unsupported> {
    value.as_object().ok_or_else(|| not(path, "an object"))
}

/// An array.
pub(crate) fn array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], Unsupported> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| not(path, "an array"))
}

/// A string.
pub(crate) fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, Unsupported> {
    value.as_str().ok_or_else(|| not(path, "a string"))
}

/// A boolean.
pub(crate) fn boolean(value: &Value, path: &str) -> Result<bool, Unsupported> {
    value.as_bool().ok_or_else(|| not(path, "a boolean"))
}

/// A number.
pub(crate) fn number(value: &Value, path: &str) -> Result<f64, Unsupported> {
    value.as_f64().ok_or_else(|| not(path, "a number"))
}

/// A non-negative integer, written as one.
pub(crate) fn unsigned(value: &Value, path: &str) -> Result<u64, Unsupported> {
    value
        .as_u64()
        .ok_or_else(|| not(path, "a non-negative integer"))
}
