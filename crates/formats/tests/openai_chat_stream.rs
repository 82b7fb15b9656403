//! Golden tests: recorded-style OpenAI Chat Completions streams go through the SSE parser and
//! the stream classifier exactly as the relay will use them, cut into chunks in many ways.

use switchyard_formats::openai::chat::{StreamEvent, classify_stream_event};
use switchyard_formats::{SseParser, Usage};

const USAGE: &[u8] = include_bytes!("fixtures/openai/chat_stream_usage.sse");
const TOOL_CALLS: &[u8] = include_bytes!("fixtures/openai/chat_stream_tool_calls.sse");
const ERROR_MIDWAY: &[u8] = include_bytes!("fixtures/openai/chat_stream_error_midway.sse");
const ERROR_ONLY: &[u8] = include_bytes!("fixtures/openai/chat_stream_error_only.sse");
const MALFORMED: &[u8] = include_bytes!("fixtures/openai/chat_stream_malformed.sse");

/// What the relay learns from one whole stream.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    /// One letter per event: R(ole/content chunk), F(inish), U(sage only), D(one), E(rror),
    /// M(alformed), `.` (a chunk with nothing in it).
    shape: String,
    usage: Usage,
    errors: Vec<(Option<String>, String, Option<String>)>,
}

fn summarise(stream: &[u8], cuts: &[usize]) -> Summary {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut start = 0;
    for &len in cuts.iter().cycle() {
        if start >= stream.len() {
            break;
        }
        let end = (start + len.max(1)).min(stream.len());
        events.extend(parser.push(&stream[start..end]));
        start = end;
    }
    events.extend(parser.finish());
    assert_eq!(parser.pending_bytes(), 0);

    let mut summary = Summary::default();
    for event in &events {
        let letter = match classify_stream_event(event) {
            StreamEvent::Chunk {
                usage,
                finished,
                content,
                usage_only,
            } => {
                if let Some(usage) = usage {
                    summary.usage.merge_stream(&usage);
                }
                match (content, finished, usage_only) {
                    (_, _, true) => 'U',
                    (_, true, _) => 'F',
                    (true, _, _) => 'R',
                    _ => '.',
                }
            }
            StreamEvent::Done { .. } => 'D',
            StreamEvent::Error(body) => {
                summary
                    .errors
                    .push((body.error_type, body.message, body.reason));
                'E'
            }
            StreamEvent::Malformed => 'M',
        };
        summary.shape.push(letter);
    }
    summary
}

/// Whole, byte by byte, and a few irregular chunkings (they cut inside `\r\n` pairs, inside
/// multi-byte characters and inside JSON).
const CUTS: &[&[usize]] = &[
    &[usize::MAX],
    &[1],
    &[2, 3, 5, 7, 11, 13],
    &[17, 1, 64, 2],
    &[300, 1],
];

fn check(stream: &[u8], expected: &Summary) {
    let mut crlf = Vec::with_capacity(stream.len() * 2);
    for &b in stream {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    for variant in [stream, crlf.as_slice()] {
        for cuts in CUTS {
            assert_eq!(&summarise(variant, cuts), expected, "cuts {cuts:?}");
        }
    }
}

#[test]
fn content_stream_with_usage_chunk() {
    check(
        USAGE,
        &Summary {
            shape: "RRRRFUD".into(),
            usage: Usage {
                // 1310 prompt tokens of which 1152 cached: only 158 billed at the input price.
                input_tokens: 158,
                output_tokens: 5,
                cache_read_tokens: 1152,
                cache_creation_tokens: 0,
                reasoning_tokens: 0,
            },
            errors: vec![],
        },
    );
}

#[test]
fn tool_call_stream_with_reasoning_and_keepalive_comments() {
    check(
        TOOL_CALLS,
        &Summary {
            shape: "RRRFUD".into(),
            usage: Usage {
                input_tokens: 86,
                output_tokens: 216,
                cache_read_tokens: 0,
                cache_creation_tokens: 0,
                reasoning_tokens: 192,
            },
            errors: vec![],
        },
    );
}

#[test]
fn error_in_the_middle_of_a_stream() {
    check(
        ERROR_MIDWAY,
        &Summary {
            shape: "RRE".into(),
            usage: Usage::default(),
            errors: vec![(
                Some("server_error".into()),
                "The server had an error while processing your request. Sorry about that!".into(),
                None,
            )],
        },
    );
}

#[test]
fn malformed_chunk_is_reported_and_the_stream_goes_on() {
    check(
        MALFORMED,
        &Summary {
            shape: "RMFD".into(),
            usage: Usage::default(),
            errors: vec![],
        },
    );
}

#[test]
fn error_only_stream() {
    check(
        ERROR_ONLY,
        &Summary {
            shape: "E".into(),
            usage: Usage::default(),
            errors: vec![(
                Some("tokens".into()),
                "Rate limit reached for gpt-4.1 in organization org-4bXvQ on tokens per min (TPM): Limit 30000, Used 28874, Requested 2401. Please try again in 2.55s.".into(),
                Some("rate_limit_exceeded".into()),
            )],
        },
    );
}

/// Spec §11.1 #12: the reference only looked at the first chunk's lines once a second chunk
/// arrived, so an error delivered in one chunk went unnoticed. The parser yields it from the
/// first push alone.
#[test]
fn error_in_the_first_and_only_chunk_is_seen_without_a_second_chunk() {
    let mut parser = SseParser::default();
    let events = parser.push(ERROR_ONLY);
    assert_eq!(events.len(), 1);
    assert!(matches!(
        classify_stream_event(&events[0]),
        StreamEvent::Error(_)
    ));
}

/// The upstream closing without the final blank line still yields the last event.
#[test]
fn stream_cut_before_its_last_blank_line() {
    let cut = USAGE
        .strip_suffix(b"\n\n")
        .expect("fixture ends with a blank line");
    let summary = summarise(cut, &[usize::MAX]);
    assert_eq!(summary.shape, "RRRRFUD");
}
