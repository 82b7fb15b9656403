//! Incremental Server-Sent Events parsing and writing, independent of any provider's dialect.
//!
//! The parser follows the WHATWG "event stream interpretation" rules: lines end with `\n`,
//! `\r\n` or `\r`; lines starting with `:` are comments; `data:` lines are joined with `\n`; one
//! space after the colon is stripped; a blank line dispatches the event, but only if it had at
//! least one `data` line. A UTF-8 byte-order mark at the very start of the stream is skipped.
//!
//! Invariants:
//! - Split independence: however the byte stream is cut into chunks (inside a line, between the
//!   `\r` and `\n` of a `\r\n`, inside a multi-byte UTF-8 character), the same events come out.
//!   Lines are decoded only once complete, and `\r`/`\n` never occur inside a UTF-8 sequence, so a
//!   character is never decoded in halves.
//! - Bounded memory: neither the line being read nor the event being built may exceed the
//!   parser's limit ([`DEFAULT_MAX_EVENT_BYTES`] unless set). An event that would is dropped
//!   whole, counted in [`SseParser::oversized_events`], and parsing resumes at the next event,
//!   so one absurd event does not cost the accounting of the rest of the stream.
//!
//! Unlike a browser `EventSource` this parser ignores `retry:` (the gateway never reconnects an
//! upstream stream) and reports an unnamed event as `event: None` rather than `"message"`.

use bytes::Bytes;

/// The default bound on one line and on one event's accumulated data: 8 MiB. Real chat events
/// are a few hundred bytes; large ones (a base64 image in a tool result) stay well below this.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A line buffer up to this size is kept for the next line; a larger one (a rare huge event)
/// is freed.
const REUSED_LINE_BYTES: usize = 64 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `None` when absent or empty (the SSE default type, "message").
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen in the stream so far. As in the SSE spec it persists across events
    /// until another `id:` line replaces it.
    pub id: Option<String>,
}

/// An incremental SSE parser: feed it bytes as they arrive, get back complete events.
#[derive(Debug)]
pub struct SseParser {
    /// Bound on `line` and on `data` (see the module invariants).
    max_event_bytes: usize,
    /// Bytes of the line being read, not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one is the second half
    /// of the same `\r\n`, not a blank line.
    after_cr: bool,
    /// No line has completed yet, so a leading byte-order mark must still be stripped.
    first_line: bool,
    /// The current line outgrew the limit: its bytes are being thrown away up to its end.
    skipping_line: bool,
    /// The current event outgrew the limit: its lines are ignored up to the next blank line.
    discarding_event: bool,
    /// `event:` of the event being built.
    event: Option<String>,
    /// `data:` lines of the event being built, already joined.
    data: String,
    /// At least one `data:` line was seen, so a blank line dispatches (even if `data` is "").
    has_data: bool,
    /// The last event id buffer; persists across events.
    last_id: Option<String>,
    /// Events dropped for outgrowing the limit.
    oversized: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser with the default limit ([`DEFAULT_MAX_EVENT_BYTES`]).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser whose lines and events may not exceed `max_event_bytes` (at least 1).
    #[must_use]
    pub fn with_limit(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes: max_event_bytes.max(1),
            line: Vec::new(),
            after_cr: false,
            first_line: true,
            skipping_line: false,
            discarding_event: false,
            event: None,
            data: String::new(),
            has_data: false,
            last_id: None,
            oversized: 0,
        }
    }

    /// Feeds the next bytes of the stream and returns the events completed by them, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            self.append_to_line(&rest[..pos]);
            let terminator = rest[pos];
            rest = &rest[pos + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    // The `\n` of a `\r\n` may be the first byte of the next chunk.
                    None => self.after_cr = true,
                }
            }
            if let Some(event) = self.end_line() {
                out.push(event);
            }
        }
        self.append_to_line(rest);
        out
    }

    /// Ends the stream: an unterminated last line is processed, and an event that was never
    /// followed by its blank line (the upstream closed mid-way) is returned if it has data.
    /// The parser is then ready for a new stream (the last event id is kept).
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.after_cr = false;
        let mut event = None;
        if !self.line.is_empty() || self.skipping_line {
            event = self.end_line();
        }
        if event.is_none() {
            // An empty line dispatches whatever is pending, or resets an event with no data.
            event = self.end_line();
        }
        self.first_line = true;
        event
    }

    /// Bytes held for an event not yet dispatched (the open line plus the event's fields).
    #[must_use]
    pub fn pending_bytes(&self) -> usize {
        self.line.len() + self.data.len() + self.event.as_ref().map_or(0, String::len)
    }

    /// How many events were dropped because a line or the event's data outgrew the limit. The
    /// caller decides what that means (a relay may end the stream, an observer may just warn).
    #[must_use]
    pub fn oversized_events(&self) -> u64 {
        self.oversized
    }

    fn append_to_line(&mut self, bytes: &[u8]) {
        if self.skipping_line || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.max_event_bytes {
            self.skipping_line = true;
            // Give the memory back: an 8 MiB buffer should not outlive the event that grew it.
            self.line = Vec::new();
            self.drop_event();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    /// Marks the event being built as dropped (counted once) and frees its buffers.
    fn drop_event(&mut self) {
        if !self.discarding_event {
            self.discarding_event = true;
            self.oversized += 1;
        }
        self.data = String::new();
        self.has_data = false;
        self.event = None;
    }

    /// Processes the completed line; returns an event if it was a dispatching blank line.
    fn end_line(&mut self) -> Option<SseEvent> {
        let first = std::mem::replace(&mut self.first_line, false);
        if std::mem::replace(&mut self.skipping_line, false) {
            return None;
        }
        // Taken for the length of the line and handed back empty: its capacity serves the next
        // line (a fresh buffer per line was most of the parser's allocations).
        let mut raw = std::mem::take(&mut self.line);
        let event = self.field_line(&raw, first);
        raw.clear();
        if raw.capacity() <= REUSED_LINE_BYTES {
            self.line = raw;
        }
        event
    }

    /// Applies one complete, non-skipped line.
    fn field_line(&mut self, raw: &[u8], first: bool) -> Option<SseEvent> {
        let mut bytes = raw;
        if first && bytes.starts_with(BOM) {
            bytes = &bytes[BOM.len()..];
        }
        if bytes.is_empty() {
            return self.dispatch();
        }
        if self.discarding_event || bytes[0] == b':' {
            return None;
        }
        // Valid UTF-8 is the rule; checking it whole is much cheaper than the lossy decoder.
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                let added = value.len() + usize::from(self.has_data);
                if self.data.len() + added > self.max_event_bytes {
                    self.drop_event();
                    return None;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = (!value.is_empty()).then(|| value.to_owned()),
            // The spec ignores ids containing NUL (they could not be sent back in a header).
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
        None
    }

    /// Ends the event at a blank line: returns it if it had data, and resets the buffers.
    fn dispatch(&mut self) -> Option<SseEvent> {
        self.discarding_event = false;
        let event = self.event.take();
        if !std::mem::replace(&mut self.has_data, false) {
            self.data.clear();
            return None;
        }
        // A copy of exactly its length for the event; the buffer stays for the next event's
        // lines. Handing the buffer itself over left an empty one that regrew by doubling for
        // every event (half a dozen allocations for a chat chunk).
        let data = self.data.clone();
        self.data.clear();
        if self.data.capacity() > REUSED_LINE_BYTES {
            self.data = String::new();
        }
        Some(SseEvent {
            event,
            data,
            id: self.last_id.clone(),
        })
    }
}

/// Writes one event: an optional `event:` line, one `data:` line per line of `data` (split at
/// `\n`, `\r\n` or `\r`, so a reader gets the lines back joined with `\n`), then the blank line.
///
/// Line breaks in `event` are removed: they would otherwise inject fields into the stream.
#[must_use]
pub fn encode(event: Option<&str>, data: &str) -> Bytes {
    // Sized exactly: a buffer filled to its capacity becomes `Bytes` without a second
    // allocation for the shared count.
    let event_len = event.map_or(0, |name| {
        "event: \n".len() + name.bytes().filter(|b| *b != b'\n' && *b != b'\r').count()
    });
    let data_len: usize = split_lines(data)
        .map(|line| "data: \n".len() + line.len())
        .sum();
    let mut out = String::with_capacity(event_len + data_len + 1);
    if let Some(name) = event {
        out.push_str("event: ");
        out.extend(name.chars().filter(|c| *c != '\n' && *c != '\r'));
        out.push('\n');
    }
    for line in split_lines(data) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Splits at `\n`, `\r\n` and `\r` exactly as the parser would (an empty string is one line).
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        // Byte positions of ASCII bytes: always character boundaries.
        match memchr::memchr2(b'\n', b'\r', current.as_bytes()) {
            Some(pos) => {
                let skip = if current[pos..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[pos + skip..]);
                Some(&current[..pos])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| parser.push(c)).collect();
        events.extend(parser.finish());
        events
    }

    fn data(text: &str) -> SseEvent {
        SseEvent {
            data: text.to_owned(),
            ..SseEvent::default()
        }
    }

    #[test]
    fn basic_fields_comments_and_joining() {
        let stream =
            b": keep-alive\n\nevent: ping\nid: 7\ndata: first\ndata:second\ndata:  spaced\n\n";
        let events = parse_all(&[stream]);
        assert_eq!(
            events,
            vec![SseEvent {
                event: Some("ping".into()),
                data: "first\nsecond\n spaced".into(),
                id: Some("7".into()),
            }]
        );
    }

    #[test]
    fn all_three_line_endings() {
        let events = parse_all(&[b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]);
        assert_eq!(events, vec![data("a"), data("b"), data("c")]);
    }

    #[test]
    fn crlf_split_between_chunks_is_not_a_blank_line() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"data: a\r").is_empty());
        // If the `\n` were taken as a blank line the event would be dispatched here.
        assert!(parser.push(b"\ndata: b\r").is_empty());
        assert_eq!(parser.push(b"\n\r\n"), vec![data("a\nb")]);
    }

    #[test]
    fn no_data_means_no_event_and_empty_data_line_is_an_event() {
        let events = parse_all(&[b"event: x\n\nid: 1\n\ndata\n\ndata:\n\n"]);
        let empty = |id: &str| SseEvent {
            event: None,
            data: String::new(),
            id: Some(id.into()),
        };
        assert_eq!(events, vec![empty("1"), empty("1")]);
    }

    #[test]
    fn event_type_does_not_leak_into_the_next_event() {
        let events = parse_all(&[b"event: a\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n"]);
        assert_eq!(events[0].event.as_deref(), Some("a"));
        assert_eq!(events[1].event, None);
        assert_eq!(events[2].event, None, "event: b had no data and was reset");
    }

    #[test]
    fn id_persists_and_nul_ids_are_ignored() {
        let events = parse_all(&[b"id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\n"]);
        let ids: Vec<_> = events.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(ids, vec![Some("1"), Some("1"), Some("1")]);
    }

    #[test]
    fn unknown_fields_and_retry_are_ignored() {
        let events = parse_all(&[b"retry: 10\nfoo: bar\ndata: x\n\n"]);
        assert_eq!(events, vec![data("x")]);
    }

    #[test]
    fn leading_bom_is_stripped_even_when_split() {
        let events = parse_all(&[b"\xEF", b"\xBB\xBFdata: x\n\n"]);
        assert_eq!(events, vec![data("x")]);
        // Only at the very start: a BOM later is part of the field name, which is then unknown.
        let events = parse_all(&[b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"]);
        assert_eq!(events, vec![data("a")]);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let text = "data: h\u{e9}llo \u{1F600}\n\n".as_bytes();
        // Cut inside the 4-byte emoji and inside the 2-byte é.
        let events = parse_all(&[&text[..8], &text[8..15], &text[15..]]);
        assert_eq!(events, vec![data("h\u{e9}llo \u{1F600}")]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let events = parse_all(&[b"data: a\xFFb\n\n"]);
        assert_eq!(events, vec![data("a\u{FFFD}b")]);
    }

    #[test]
    fn finish_returns_a_trailing_event_without_its_blank_line() {
        let mut parser = SseParser::default();
        assert_eq!(parser.push(b"data: a\n\ndata: b\ndata: c"), vec![data("a")]);
        assert!(parser.pending_bytes() > 0);
        assert_eq!(parser.finish(), Some(data("b\nc")));
        assert_eq!(parser.pending_bytes(), 0);
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn finish_without_data_returns_nothing() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: x\n: comment").is_empty());
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn oversized_line_drops_that_event_only() {
        let mut parser = SseParser::with_limit(16);
        let mut events = parser.push(b"data: ok\n\nevent: big\ndata: 0123456789");
        events.extend(parser.push(b"0123456789"));
        assert!(parser.pending_bytes() <= 16, "memory stays bounded");
        events.extend(parser.push(b"0123\ndata: tail of big\n\ndata: next\n\n"));
        assert_eq!(events, vec![data("ok"), data("next")]);
        assert_eq!(parser.oversized_events(), 1);
    }

    #[test]
    fn oversized_data_across_many_lines_is_dropped() {
        // Every line fits in 12 bytes; the joined data ("12345\n12345\n1") does not.
        let mut parser = SseParser::with_limit(12);
        let events = parser.push(b"data: 12345\ndata: 12345\ndata: 1\n\ndata: small\n\n");
        assert_eq!(events, vec![data("small")]);
        assert_eq!(parser.oversized_events(), 1);
    }

    #[test]
    fn oversized_trailing_line_at_finish_is_not_returned() {
        let mut parser = SseParser::with_limit(8);
        assert!(parser.push(b"data: too long").is_empty());
        assert_eq!(parser.finish(), None);
        assert_eq!(parser.oversized_events(), 1);
        // The parser is usable again afterwards.
        assert_eq!(parser.push(b"data:x\n\n"), vec![data("x")]);
    }

    #[test]
    fn encode_writes_event_and_splits_data_lines() {
        assert_eq!(&encode(None, "x")[..], b"data: x\n\n");
        assert_eq!(
            &encode(Some("error"), "a\nb\r\nc")[..],
            b"event: error\ndata: a\ndata: b\ndata: c\n\n"
        );
        assert_eq!(&encode(None, "")[..], b"data: \n\n");
        assert_eq!(&encode(Some("a\nb"), "x")[..], b"event: ab\ndata: x\n\n");
    }

    /// A valid stream of several events, mixing line endings, comments and fields.
    fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
        let line_end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        let line = (
            prop_oneof![
                "data: [a-z\u{e9}\u{1F600} :]{0,12}",
                "data:[a-z]{0,5}",
                "event: [a-z]{1,6}",
                "id: [0-9]{1,3}",
                ": [a-z ]{0,8}",
                Just("data".to_owned()),
            ],
            line_end.clone(),
        )
            .prop_map(|(l, e)| format!("{l}{e}"));
        let event = (proptest::collection::vec(line, 1..5), line_end)
            .prop_map(|(lines, end)| format!("{}{end}", lines.concat()));
        proptest::collection::vec(event, 0..8).prop_map(|events| events.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn random_splits_give_identical_events(
            stream in stream_strategy(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let whole = parse_all(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for p in points {
                chunks.push(&stream[start..p]);
                start = p;
            }
            chunks.push(&stream[start..]);
            prop_assert_eq!(parse_all(&chunks), whole.clone());
            // Byte by byte is the harshest split.
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            prop_assert_eq!(parse_all(&bytes), whole);
        }

        #[test]
        fn limit_is_split_independent(
            stream in stream_strategy(),
            limit in 1usize..24,
            cut in any::<prop::sample::Index>(),
        ) {
            let run = |chunks: &[&[u8]]| {
                let mut parser = SseParser::with_limit(limit);
                let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| parser.push(c)).collect();
                events.extend(parser.finish());
                (events, parser.oversized_events())
            };
            let at = cut.index(stream.len() + 1);
            prop_assert_eq!(run(&[&stream[..at], &stream[at..]]), run(&[&stream]));
        }

        #[test]
        fn encode_round_trips(
            event in proptest::option::of("[a-z_]{1,10}"),
            data in "[a-z {}\":\n\r\u{e9}]{0,40}",
        ) {
            let mut parser = SseParser::default();
            let events = parser.push(&encode(event.as_deref(), &data));
            let expected = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(events, vec![SseEvent { event, data: expected, id: None }]);
            prop_assert_eq!(parser.pending_bytes(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut parser = SseParser::with_limit(32);
            let _ = parser.push(&bytes);
            let _ = parser.finish();
        }
    }
}
