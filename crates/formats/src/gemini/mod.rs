//! The Google Gemini dialect (`models/{model}:generateContent` and `:streamGenerateContent`):
//! its native module (validation, usage, stream events) and a codec to and from the neutral
//! model in [`crate::ir`].

pub mod generate;
pub mod generate_codec;
