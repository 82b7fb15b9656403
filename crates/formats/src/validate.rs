//! The checks the front doors' `parse_request` share. Validation is deliberately shallow (see
//! each dialect module); these helpers give the checks it does make one wording everywhere:
//! `is required` (absent or `null`), `must not be empty`, `must be a …`, with the field named as
//! a path in the [`RequestError`].

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

use crate::dialect::RequestError;
use crate::request_body::RequestBody;
use crate::shape::JsonStr;

/// The JSON type of a value's text (as a [`RequestBody`] keeps it: no surrounding whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// The JSON type of `text`, a whole valid JSON value.
pub(crate) fn kind(text: &str) -> Kind {
    kind_of(text.as_bytes())
}

/// [`kind`] of a value's bytes.
fn kind_of(text: &[u8]) -> Kind {
    match text.first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Number,
    }
}

/// The string at `key`, which must be present and not blank (`model`).
///
/// # Errors
/// `key` is absent or `null`, blank, or not a string.
pub(crate) fn required_string(body: &RequestBody, key: &str) -> Result<String, RequestError> {
    let text = body
        .raw(key)
        .filter(|text| kind(text) != Kind::Null)
        .ok_or_else(|| RequestError::new(key, "is required"))?;
    if kind(text) != Kind::String {
        return Err(RequestError::new(key, "must be a string"));
    }
    let value: Cow<'_, str> =
        serde_json::from_str(text).map_err(|_| RequestError::new(key, "must be a string"))?;
    if value.trim().is_empty() {
        return Err(RequestError::new(key, "must not be empty"));
    }
    Ok(value.into_owned())
}

/// The items of the non-empty array at `key` (`messages`, `contents`), each as its JSON text.
///
/// # Errors
/// `key` is absent or `null`, an empty array, or not an array.
pub(crate) fn required_array<'a>(
    body: &'a RequestBody,
    key: &str,
) -> Result<Vec<&'a RawValue>, RequestError> {
    let text = body
        .raw(key)
        .filter(|text| kind(text) != Kind::Null)
        .ok_or_else(|| RequestError::new(key, "is required"))?;
    array_items(text)
        .ok_or_else(|| RequestError::new(key, "must be an array"))
        .and_then(|items| {
            if items.is_empty() {
                Err(RequestError::new(key, "must not be empty"))
            } else {
                Ok(items)
            }
        })
}

/// The items of the array `text` holds, or `None` when it holds something else.
pub(crate) fn array_items(text: &str) -> Option<Vec<&RawValue>> {
    if kind(text) != Kind::Array {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// `messages` as OpenAI chat and Anthropic take it: a non-empty array of objects, each with a
/// string `role` (which roles exist is the upstream's business).
///
/// # Errors
/// The first of `messages`, `messages[i]` or `messages[i].role` that is wrong.
pub(crate) fn messages_with_roles(body: &RequestBody) -> Result<(), RequestError> {
    let text = body
        .raw_bytes("messages")
        .filter(|text| kind_of(text) != Kind::Null)
        .ok_or_else(|| RequestError::new("messages", "is required"))?;
    if kind_of(text) != Kind::Array {
        return Err(RequestError::new("messages", "must be an array"));
    }
    // One pass over the conversation: each message is read for its role and nothing else.
    let messages: Vec<MessageShape<'_>> =
        serde_json::from_slice(text).map_err(|e| RequestError::new("messages", e.to_string()))?;
    if messages.is_empty() {
        return Err(RequestError::new("messages", "must not be empty"));
    }
    for (i, message) in messages.iter().enumerate() {
        let MessageShape::Object { role } = message else {
            return Err(RequestError::new(
                format!("messages[{i}]"),
                "must be an object",
            ));
        };
        match role.map(|role| kind(role.get())) {
            Some(Kind::String) => {}
            None | Some(Kind::Null) => {
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

/// What [`messages_with_roles`] reads of a message: whether it is an object, and its `role`
/// (the last one, should it be given twice, as in a map).
enum MessageShape<'a> {
    Object { role: Option<&'a RawValue> },
    Other,
}

impl<'de> Deserialize<'de> for MessageShape<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;

        impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
            type Value = MessageShape<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut role = None;
                while let Some(JsonStr(key)) = map.next_key::<JsonStr<'de>>()? {
                    if key == "role" {
                        role = Some(map.next_value::<&'de RawValue>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(MessageShape::Object { role })
            }

            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Self::Value, S::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(MessageShape::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MessageShape::Other)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MessageShape::Other)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MessageShape::Other)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MessageShape::Other)
            }

            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MessageShape::Other)
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MessageShape::Other)
            }
        }

        deserializer.deserialize_any(ShapeVisitor)
    }
}

/// The boolean at `key` of the body, named `path` in errors; `null` means absent.
///
/// # Errors
/// The value is neither a boolean nor `null`.
pub(crate) fn optional_body_bool(
    body: &RequestBody,
    key: &str,
    path: &str,
) -> Result<Option<bool>, RequestError> {
    match body.raw(key) {
        None | Some("null") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(RequestError::new(path, "must be a boolean")),
    }
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
