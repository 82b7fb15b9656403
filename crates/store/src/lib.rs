//! Storage of Switchyard: sea-orm entities and queries, the routing-catalog loader, secrets at
//! rest, the admin-facing resource operations shared by the admin API and the declarative import.
//!
//! Nothing here runs on the request path except reads of the already-loaded catalog snapshot.

pub mod admin_token;
pub mod catalog;
pub mod db;
pub mod entity;
pub mod error;
pub mod import;
pub mod manage;
pub mod secrets;
pub mod settings;
#[cfg(feature = "testing")]
#[allow(clippy::panic, clippy::print_stderr, missing_docs)]
pub mod testing;

pub use catalog::CatalogHandle;
pub use db::{Database, connect};
pub use error::StoreError;
pub use secrets::Cipher;
