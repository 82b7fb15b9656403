//! Provider model name mappings (spec §1.5): the upstream names a provider knows a model by.

use crate::ApiFormat;
use serde::{Deserialize, Serialize};

/// One upstream name for a provider model, optionally restricted to some request formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMapping {
    /// The name sent upstream.
    pub name: String,
    /// Lower is preferred; at least 1.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// When set, the mapping is used only for requests in these formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_formats: Option<Vec<ApiFormat>>,
}

fn default_priority() -> u32 {
    1
}

/// Checks a mapping list; returns the index and reason of the first bad entry.
pub fn validate(mappings: &[ModelMapping]) -> Result<(), (usize, &'static str)> {
    for (i, m) in mappings.iter().enumerate() {
        if m.name.trim().is_empty() {
            return Err((i, "name must not be blank"));
        }
        if m.priority == 0 {
            return Err((i, "priority must be at least 1"));
        }
        if m.api_formats.as_ref().is_some_and(Vec::is_empty) {
            return Err((i, "api_formats must be omitted or non-empty"));
        }
    }
    Ok(())
}
