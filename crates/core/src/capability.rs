//! The fixed capability registry (spec §1.11): what a provider key can offer and how a request's
//! requirement is matched against it.

use serde::{Deserialize, Serialize};

/// How a capability constrains routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Keys that have it serve only requests that ask for it (a premium resource not to waste).
    Exclusive,
    /// Keys that have it serve everybody; requests that need it go only to keys that have it.
    Compatible,
}

/// One known capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// The name used in key `capabilities` maps, headers and settings.
    pub name: &'static str,
    /// How it is matched.
    pub mode: MatchMode,
    /// Whether users and gateway keys may set it in their settings (otherwise only the request
    /// itself can ask for it).
    pub user_configurable: bool,
}

/// Every capability Switchyard knows. Unknown names are rejected by the admin API.
pub const CAPABILITIES: &[Capability] = &[
    Capability {
        name: "cache_1h",
        mode: MatchMode::Exclusive,
        user_configurable: true,
    },
    Capability {
        name: "context_1m",
        mode: MatchMode::Compatible,
        user_configurable: false,
    },
];

/// Looks a capability up by name (exact, lower-case).
pub fn find(name: &str) -> Option<&'static Capability> {
    CAPABILITIES.iter().find(|c| c.name == name)
}
