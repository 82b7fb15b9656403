//! Helpers shared by the unit tests of the dialect modules and their codecs: building JSON
//! bodies, and reading SSE text or encoded frames back into events.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::dialect::{ClientRequest, RequestError};
use crate::sse::{SseEvent, SseParser};

/// The object inside `value`; panics on anything else.
pub(crate) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

/// The field and message of the error a `parse_request` must return, as an [`err`] pair.
pub(crate) fn rejection(parsed: Result<ClientRequest, RequestError>) -> (String, String) {
    let error = parsed.expect_err("must be rejected");
    (error.field, error.message)
}

/// A `RequestError`'s field and message as a pair, for comparing with the parsed error.
pub(crate) fn err(field: &str, message: &str) -> (String, String) {
    (field.to_owned(), message.to_owned())
}

/// An SSE event with only a `data` field (no `event:` name, no id).
pub(crate) fn data_event(data: &str) -> SseEvent {
    SseEvent {
        data: data.to_owned(),
        ..SseEvent::default()
    }
}

/// Every event of a whole SSE text, a last event without its blank line included.
pub(crate) fn sse_events(raw: &str) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    let mut events = parser.push(raw.as_bytes());
    events.extend(parser.finish());
    events
}

/// The events of encoded frames, checking that no frame leaves a partial event behind.
pub(crate) fn frame_events(frames: &[Bytes]) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    let events = frames.iter().flat_map(|f| parser.push(f)).collect();
    assert_eq!(parser.pending_bytes(), 0, "every frame is complete");
    events
}

/// Encoded frames as (`event:` name, JSON data) pairs, checking that every frame is named and
/// that its data repeats the name as `type`.
pub(crate) fn named_frames(frames: &[Bytes]) -> Vec<(String, Value)> {
    frame_events(frames)
        .into_iter()
        .map(|event| {
            let name = event.event.expect("every frame is named");
            let data: Value = serde_json::from_str(&event.data).expect("JSON data");
            assert_eq!(data["type"], json!(name), "type repeats the event name");
            (name, data)
        })
        .collect()
}
