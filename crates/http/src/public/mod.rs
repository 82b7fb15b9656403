//! The public LLM routes. This front door is OpenAI Chat Completions; the handler
//! authenticates and admits the request, then hands it to a per-request Orchestrator started on
//! this worker's own Arbiter and turns its settlement into the response.

mod admission;
mod chat;
mod errors;

use actix_web::web;

pub use admission::PublicState;

/// Registers the public routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/chat/completions",
        web::post().to(chat::chat_completions),
    );
}
