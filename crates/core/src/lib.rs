//! The pure domain of Switchyard: API formats, the routing catalog snapshot, settings, secrets
//! that cannot leak through `Debug`, pricing and model-mapping shapes.
//!
//! This crate does no I/O and never reads the clock: callers pass `now`, so every rule here is
//! deterministic and can be property-tested.

pub mod capability;
pub mod catalog;
pub mod format;
pub mod mapping;
pub mod pricing;
pub mod secret;
pub mod settings;

pub use format::ApiFormat;
pub use secret::SecretString;
