//! Streamed bodies: the [`StreamPlan`] a route builds (its events, end
//! marker, and the error / garbage events to inject), and the emitter that
//! writes it as chunks while applying the stream faults and pacing.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::behaviour::{Behaviour, Fault};
use crate::http1::{LAST_CHUNK, write_chunk_head};

/// How events are framed in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Server-sent events: every event is a complete `event:`/`data:` frame.
    Sse,
    /// A JSON array streamed element by element (Gemini without
    /// `alt=sse`): the emitter adds `[`, the `,` separators and `]`, which is
    /// the end marker.
    JsonArray,
}

/// A stream, fully computed before the first byte is sent.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub framing: Framing,
    pub events: Vec<Vec<u8>>,
    /// (SSE) the last event is the end marker that `stream_no_done` omits.
    pub end_marker: bool,
    /// The dialect's error event, injected by `stream_error_event`.
    pub error_event: Vec<u8>,
    /// A garbage event, injected by `stream_malformed`.
    pub malformed_event: Vec<u8>,
}

impl StreamPlan {
    /// The response `content-type`.
    pub(crate) fn content_type(&self) -> &'static str {
        match self.framing {
            Framing::Sse => "text/event-stream; charset=utf-8",
            Framing::JsonArray => "application/json; charset=UTF-8",
        }
    }
}

/// An SSE frame: optional `event:` line, one `data:` line, blank line.
pub(crate) fn sse(event: Option<&str>, data: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, data);
    out.extend_from_slice(b"\n\n");
    out
}

/// An SSE frame whose data is raw text (`[DONE]`, garbage).
pub(crate) fn sse_raw(event: Option<&str>, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// The text of a garbage event.
pub(crate) const GARBAGE: &str = "{\"this is not\": json, malformed by mock-upstream";

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The body was finished; the connection may be reused.
    Complete,
    /// `stream_cut`: the connection must be closed now.
    Cut,
    /// The client went away (or the stall ended because it did).
    Gone,
}

/// Block until the peer closes the connection (or it fails). Used by
/// `hang` and `stream_stall`, which must keep the socket open but notice
/// when the client gives up so the request leaves the in-flight count.
pub(crate) async fn wait_for_peer_close(stream: &mut TcpStream) {
    let mut scratch = [0u8; 1024];
    while let Ok(n) = stream.read(&mut scratch).await {
        if n == 0 {
            break;
        }
    }
}

/// Appends events to the output buffer in the body's framing.
struct Body<'a> {
    out: &'a mut Vec<u8>,
    chunked: bool,
    framing: Framing,
    /// Events written so far (JSON arrays need `[` before the first).
    written: usize,
}

impl Body<'_> {
    fn push(&mut self, event: &[u8]) {
        let prefix: &[u8] = match (self.framing, self.written) {
            (Framing::Sse, _) => b"",
            (Framing::JsonArray, 0) => b"[",
            (Framing::JsonArray, _) => b",\r\n",
        };
        self.written += 1;
        self.parts(prefix, event);
    }

    fn raw(&mut self, data: &[u8]) {
        self.parts(b"", data);
    }

    /// Append `a` then `b` as one chunk, without concatenating them first.
    fn parts(&mut self, a: &[u8], b: &[u8]) {
        if a.len() + b.len() == 0 {
            return;
        }
        if self.chunked {
            write_chunk_head(self.out, a.len() + b.len());
        }
        self.out.extend_from_slice(a);
        self.out.extend_from_slice(b);
        if self.chunked {
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Close the JSON array (when `close_array`) and the chunked body.
    fn finish(&mut self, close_array: bool) {
        if self.framing == Framing::JsonArray && close_array {
            if self.written == 0 {
                self.raw(b"[");
            }
            self.raw(b"]");
        }
        if self.chunked {
            self.out.extend_from_slice(LAST_CHUNK);
        }
    }
}

async fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Write the plan's events after the head (which may still be pending in
/// `out`), applying `b`'s stream fault and `event_interval_ms`. Without an
/// interval, events are batched into few writes, which keeps benchmarks
/// cheap; with one, each event is flushed before the pause.
pub(crate) async fn emit(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    plan: &StreamPlan,
    b: &Behaviour,
    chunked: bool,
) -> std::io::Result<StreamEnd> {
    let fault = b.stream_fault();
    let no_done = fault == Some(Fault::StreamNoDone);
    let mut n = plan.events.len();
    if no_done && plan.end_marker && plan.framing == Framing::Sse {
        n = n.saturating_sub(1);
    }
    let at = usize::try_from(b.after_events.unwrap_or(0))
        .unwrap_or(usize::MAX)
        .min(n);
    let interval = b
        .event_interval_ms
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    let mut body = Body {
        out,
        chunked,
        framing: plan.framing,
        written: 0,
    };

    for i in 0..=n {
        if i == at {
            match fault {
                Some(Fault::StreamCut) => {
                    flush(stream, body.out).await?;
                    return Ok(StreamEnd::Cut);
                }
                Some(Fault::StreamStall) => {
                    flush(stream, body.out).await?;
                    wait_for_peer_close(stream).await;
                    return Ok(StreamEnd::Gone);
                }
                Some(Fault::StreamMalformed) => {
                    pace(stream, &mut body, interval).await?;
                    body.push(&plan.malformed_event);
                }
                Some(Fault::StreamErrorEvent) => {
                    pace(stream, &mut body, interval).await?;
                    body.push(&plan.error_event);
                    body.finish(true);
                    flush(stream, body.out).await?;
                    return Ok(StreamEnd::Complete);
                }
                _ => {}
            }
        }
        if let Some(event) = plan.events.get(i).filter(|_| i < n) {
            pace(stream, &mut body, interval).await?;
            body.push(event);
            if body.out.len() >= 16 * 1024 {
                flush(stream, body.out).await?;
            }
        }
    }
    body.finish(!no_done);
    flush(stream, body.out).await?;
    Ok(StreamEnd::Complete)
}

/// Before every event but the first: flush and wait `interval`.
async fn pace(
    stream: &mut TcpStream,
    body: &mut Body<'_>,
    interval: Option<Duration>,
) -> std::io::Result<()> {
    if let Some(d) = interval
        && body.written > 0
    {
        flush(stream, body.out).await?;
        tokio::time::sleep(d).await;
    }
    Ok(())
}
