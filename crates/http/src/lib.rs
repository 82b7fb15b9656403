//! The HTTP surface of Switchyard: operations endpoints (`/health`, `/ready`) and the admin API
//! under `/admin`. Handlers are thin: they parse, call the store's resource operations, refresh
//! the catalog snapshot and map errors to JSON.

pub mod admin;
pub mod error;
pub mod ops;
pub mod public;
pub mod status;

use actix_web::web;
use std::sync::Arc;
use switchyard_store::manage::WriteContext;
use switchyard_store::{CatalogHandle, Database};

/// Shared state of the HTTP layer, cloned into every worker.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database (admin writes and readiness only; never read on the request path).
    pub db: Database,
    /// The routing catalog snapshot publisher.
    pub catalog: Arc<CatalogHandle>,
    /// SHA-256 hex of the admin token.
    pub admin_token_hash: Arc<str>,
    /// The actors (status and admin views of the running system).
    pub system: switchyard_actors::ActorSystem,
    /// How the front doors find a client's session for cache affinity.
    pub affinity: Arc<public::SessionAffinity>,
}

impl AppState {
    /// A write context stamped now.
    pub fn write_context(&self) -> WriteContext {
        WriteContext::new(self.catalog.cipher().clone())
    }
}

/// Registers every route. `max_body_bytes` bounds request bodies.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState, max_body_bytes: usize) {
    let public = public::PublicState {
        system: state.system.clone(),
        catalog: state.catalog.clone(),
        max_body_bytes,
        affinity: state.affinity.clone(),
    };
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::new(public))
        .app_data(error::json_config(max_body_bytes))
        .app_data(error::query_config())
        .app_data(error::path_config())
        .configure(ops::configure)
        .configure(status::configure)
        .configure(public::configure)
        .configure(admin::configure);
}
