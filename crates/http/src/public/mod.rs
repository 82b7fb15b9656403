//! The public LLM routes, one front door per client format: OpenAI chat and Responses,
//! Anthropic messages (and its token counter), Gemini, and the model lists. Each handler only
//! says which format it speaks; admission, the per-request Orchestrator and the response are
//! shared (`serve`), and every error is in the caller's own envelope.

mod admission;
pub mod affinity;
mod count_tokens;
mod errors;
mod json_array;
mod models;
mod routes;
mod serve;

use actix_web::web;

pub use admission::PublicState;
pub use affinity::{SessionAffinity, SessionRule};

/// Registers the public routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/chat/completions", web::post().to(routes::chat))
        .route("/v1/responses", web::post().to(routes::responses))
        .route("/v1/messages", web::post().to(routes::messages))
        .route(
            "/v1/messages/count_tokens",
            web::post().to(count_tokens::count_tokens),
        )
        .route("/v1beta/models/{target}", web::post().to(routes::gemini))
        .route("/v1/models/{target}", web::post().to(routes::gemini))
        .route("/v1/models", web::get().to(models::list))
        .route("/v1/models/{id}", web::get().to(models::get))
        .route("/v1beta/models", web::get().to(models::list_gemini))
        .route("/v1beta/models/{id}", web::get().to(models::get_gemini));
}
