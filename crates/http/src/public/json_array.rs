//! Gemini's other streaming shape. Without `?alt=sse`, `:streamGenerateContent` answers with one
//! JSON array whose elements arrive as they are generated (`[{…}\r\n,{…}\r\n]`), which some
//! clients read instead of server-sent events. The relay always produces events; this turns
//! them into that array, element by element, as they come.

use actix_web::web::{Bytes, BytesMut};
use switchyard_formats::sse::SseParser;

/// Turns SSE frames into the pieces of one streamed JSON array.
#[derive(Debug, Default)]
pub struct JsonArrayFraming {
    parser: SseParser,
    opened: bool,
}

impl JsonArrayFraming {
    /// The array's bytes for one relayed chunk of events (possibly empty).
    pub fn frame(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        for event in self.parser.push(chunk) {
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            out.extend_from_slice(if self.opened { b",\r\n" } else { b"[" });
            self.opened = true;
            out.extend_from_slice(data.as_bytes());
        }
        out.freeze()
    }

    /// The array's end (an empty array when nothing came).
    pub fn close(&mut self) -> Bytes {
        let end: &'static [u8] = if self.opened { b"]" } else { b"[]" };
        self.opened = true;
        Bytes::from_static(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_the_elements_of_one_array() {
        let mut framing = JsonArrayFraming::default();
        let mut out = Vec::new();
        out.extend_from_slice(&framing.frame(b"data: {\"a\":1}\n\ndata: {\"b\""));
        out.extend_from_slice(&framing.frame(b":2}\n\n"));
        out.extend_from_slice(&framing.close());
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("one JSON array");
        assert_eq!(parsed, serde_json::json!([{"a": 1}, {"b": 2}]));
        assert_eq!(&JsonArrayFraming::default().close()[..], b"[]");
    }
}
