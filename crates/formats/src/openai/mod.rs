//! The OpenAI dialects: Chat Completions (`/v1/chat/completions`) and Responses
//! (`/v1/responses`). Each has its native module (validation, usage, stream events) and a codec
//! to and from the neutral model in [`crate::ir`].

pub mod chat;
pub mod chat_codec;
pub mod responses;
pub mod responses_codec;
