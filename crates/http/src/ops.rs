//! Operations endpoints: liveness and readiness.

use crate::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// Registers `/health` and `/ready`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready));
}

/// The process is up and answering.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers and a catalog snapshot is loaded.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let catalog = state.catalog.current().summary();
    match switchyard_store::db::ping(&state.db).await {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": "ok",
            "catalog": catalog,
        })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "not_ready",
                "database": "unreachable",
                "catalog": catalog,
            }))
        }
    }
}
