//! The OpenAI dialects. Only Chat Completions (`/v1/chat/completions`) for now; the Responses
//! API will get its own module beside it. Everything OpenAI-specific lives here; SSE framing and
//! error-body parsing are format-neutral and live at the crate root.

pub mod chat;
