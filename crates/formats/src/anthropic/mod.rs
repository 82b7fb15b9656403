//! The Anthropic Messages dialect (`/v1/messages`): its native module (validation, usage, stream
//! events) and a codec to and from the neutral model in [`crate::ir`].

pub mod messages;
pub mod messages_codec;
