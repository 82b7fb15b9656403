//! Wire formats of the LLM APIs Switchyard speaks: SSE framing, error-body parsing, body
//! inspection, normalised token usage, and each API's request and stream dialect.
//!
//! This crate does no I/O and never reads the clock: it turns bytes into facts and facts into
//! bytes, so every rule here is deterministic and property-testable. Format-neutral parts live
//! at the root ([`sse`], [`error_body`], [`body`], [`usage`]); each provider dialect has its own
//! module ([`openai`], [`anthropic`], [`gemini`]), so a dialect reuses the framing and error
//! handling instead of growing its own. Cross-format conversion goes through the neutral model
//! in [`ir`]: each dialect has a codec to and from it.

pub mod anthropic;
pub mod body;
pub mod convert;
pub mod dialect;
pub mod envelope;
pub mod error_body;
pub mod gemini;
pub mod ir;
mod json_field;
pub mod openai;
pub mod request_body;
mod shape;
pub mod signature;
pub mod sse;
pub mod usage;
mod validate;

#[cfg(test)]
pub(crate) mod test_support;

pub use body::{BodyKind, inspect_json_body, looks_like_html};
pub use dialect::{ClientRequest, Dialect, RequestError, StreamEvent};
pub use error_body::parse_error_body;
pub use request_body::RequestBody;
pub use sse::{SseEvent, SseParser};
pub use usage::Usage;
