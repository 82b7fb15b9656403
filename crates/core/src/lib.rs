//! The pure domain of Switchyard: API formats, the routing catalog snapshot, settings, secrets
//! that cannot leak through `Debug`, pricing and model-mapping shapes.
//!
//! This crate does no I/O and never reads the clock: callers pass `now`, so every rule here is
//! deterministic and can be property-tested.

pub mod adaptive;
pub mod backoff;
pub mod breaker;
pub mod capability;
pub mod catalog;
pub mod classify;
pub mod format;
pub mod mapping;
pub mod outcome;
pub mod pricing;
pub mod ratelimit;
pub mod reservation;
pub mod routing;
pub mod secret;
pub mod settings;

pub use format::ApiFormat;
pub use secret::SecretString;
