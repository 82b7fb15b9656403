//! Storage of Switchyard: sea-orm entities and queries, the routing-catalog loader, secrets at
//! rest, the admin-facing resource operations shared by the admin API and the declarative import.
//!
//! Also the shared hot state ([`state`]: leases, RPM windows, cool-downs, affinity, in memory or
//! Redis) and the batched record writer ([`records`]).
//!
//! Nothing here runs on the request path except reads of the already-loaded catalog snapshot and
//! the shared hot state, which the owning actors call.

pub mod admin_token;
pub mod catalog;
pub mod db;
pub mod entity;
pub mod error;
pub mod import;
pub mod key_state;
pub mod manage;
pub mod records;
pub mod secrets;
pub mod settings;
pub mod state;
#[cfg(feature = "testing")]
#[allow(clippy::panic, clippy::print_stderr, missing_docs)]
pub mod testing;

pub use catalog::CatalogHandle;
pub use db::{Database, connect};
pub use error::StoreError;
pub use secrets::Cipher;
pub use state::{SharedState, StateError};
