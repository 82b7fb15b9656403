//! System settings that change routing: stored in the database, edited through the admin API,
//! and carried in the catalog snapshot so the request path never reads them from the database.

use serde::{Deserialize, Serialize};

/// How candidates are ordered across providers (spec §3.7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityMode {
    /// Provider priority first, then key priority inside the endpoint.
    #[default]
    Provider,
    /// Provider keys' global priority across all providers.
    GlobalKey,
}

/// Whether cache affinity reorders candidates (spec §3.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulingMode {
    /// The catalog order, every time.
    FixedOrder,
    /// The key a client used last goes first while its upstream prompt cache is warm.
    #[default]
    CacheAffinity,
}

/// The routing settings as one value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingSettings {
    /// See [`PriorityMode`].
    pub priority_mode: PriorityMode,
    /// See [`SchedulingMode`].
    pub scheduling_mode: SchedulingMode,
    /// Whether endpoints without their own `format_conversion` flag may serve clients of another
    /// format (request and answer converted). Off by default: conversion is opted into.
    #[serde(default)]
    pub format_conversion: bool,
}

/// The keys the admin API accepts under `/admin/settings/{key}`.
pub const SETTING_KEYS: &[&str] = &["priority_mode", "scheduling_mode", "format_conversion"];

/// Why a setting value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// The key is not one of [`SETTING_KEYS`].
    #[error("unknown setting `{0}`")]
    UnknownKey(String),
    /// The value does not parse for that key.
    #[error("invalid value for `{key}`: {reason}")]
    InvalidValue {
        /// The setting.
        key: String,
        /// What was expected.
        reason: String,
    },
}

impl RoutingSettings {
    /// Applies one stored or submitted `key = value`, validating it.
    pub fn apply(&mut self, key: &str, value: &serde_json::Value) -> Result<(), SettingError> {
        let invalid = |e: serde_json::Error| SettingError::InvalidValue {
            key: key.to_owned(),
            reason: e.to_string(),
        };
        match key {
            "priority_mode" => {
                self.priority_mode = serde_json::from_value(value.clone()).map_err(invalid)?;
            }
            "scheduling_mode" => {
                self.scheduling_mode = serde_json::from_value(value.clone()).map_err(invalid)?;
            }
            "format_conversion" => {
                self.format_conversion = serde_json::from_value(value.clone()).map_err(invalid)?;
            }
            other => return Err(SettingError::UnknownKey(other.to_owned())),
        }
        Ok(())
    }

    /// The settings as `(key, value)` pairs, in [`SETTING_KEYS`] order.
    pub fn entries(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            (
                "priority_mode",
                serde_json::to_value(self.priority_mode).unwrap_or_default(),
            ),
            (
                "scheduling_mode",
                serde_json::to_value(self.scheduling_mode).unwrap_or_default(),
            ),
            (
                "format_conversion",
                serde_json::Value::Bool(self.format_conversion),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_accepts_known_values_and_names_bad_ones() {
        let mut settings = RoutingSettings::default();
        settings
            .apply("priority_mode", &json!("global_key"))
            .expect("valid");
        assert_eq!(settings.priority_mode, PriorityMode::GlobalKey);
        let err = settings
            .apply("scheduling_mode", &json!("random"))
            .expect_err("invalid");
        assert!(
            matches!(err, SettingError::InvalidValue { ref key, .. } if key == "scheduling_mode")
        );
        assert_eq!(
            settings.apply("colour", &json!(1)),
            Err(SettingError::UnknownKey("colour".into()))
        );
    }
}
