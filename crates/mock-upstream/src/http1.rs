//! Hand-rolled HTTP/1.1: reading a request head (via `httparse`) and body
//! (Content-Length or chunked) from a socket, and writing response heads and
//! chunks into a byte buffer. Hand-rolled on purpose: the mock must be able
//! to misbehave at the byte level, which a framework would not allow.

use std::io::Write as _;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// Largest request head accepted (431 beyond).
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (413 beyond).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Most headers in one request (431 beyond).
const MAX_HEADERS: usize = 128;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Empty,
    Length(usize),
    Chunked,
}

/// The parts of a request head the server acts on. The raw bytes are kept
/// (cheaply, as `Bytes`) for the request log, which re-parses them on demand
/// rather than copying every header on every request.
#[derive(Debug)]
pub(crate) struct Head {
    pub raw: Bytes,
    pub method: String,
    pub target: String,
    pub http10: bool,
    pub keep_alive: bool,
    pub body: BodyKind,
    pub expect_continue: bool,
    /// The credential from `Authorization: Bearer`, `x-api-key` or
    /// `x-goog-api-key`, in that order of preference.
    pub credential: Option<String>,
    pub behaviour_header: Option<String>,
    pub anthropic_version: bool,
}

/// Why a request could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The socket failed or closed mid-request: nothing to answer.
    Gone,
    /// Malformed request: answer this status, then close.
    Bad(u16, &'static str),
}

impl From<std::io::Error> for ReadError {
    fn from(_: std::io::Error) -> Self {
        ReadError::Gone
    }
}

/// Read more bytes into `buf`; a clean EOF here is a truncated request.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), ReadError> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(8192);
    }
    match stream.read_buf(buf).await? {
        0 => Err(ReadError::Gone),
        _ => Ok(()),
    }
}

/// Read one request head. `Ok(None)` means the client closed the connection
/// cleanly between requests.
pub(crate) async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<Head>, ReadError> {
    loop {
        if !buf.is_empty() {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(buf) {
                    Ok(httparse::Status::Complete(len)) => Some(extract(&req, len)?),
                    Ok(httparse::Status::Partial) => None,
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(ReadError::Bad(431, "too many headers"));
                    }
                    Err(_) => return Err(ReadError::Bad(400, "malformed request head")),
                }
            };
            if let Some((mut head, len)) = parsed {
                head.raw = buf.split_to(len).freeze();
                return Ok(Some(head));
            }
            if buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(431, "request head too large"));
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        if stream.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Gone)
            };
        }
    }
}

fn extract(req: &httparse::Request<'_, '_>, len: usize) -> Result<(Head, usize), ReadError> {
    let http10 = req.version == Some(0);
    let mut head = Head {
        raw: Bytes::new(),
        method: req.method.unwrap_or("GET").to_owned(),
        target: req.path.unwrap_or("/").to_owned(),
        http10,
        keep_alive: !http10,
        body: BodyKind::Empty,
        expect_continue: false,
        credential: None,
        behaviour_header: None,
        anthropic_version: false,
    };
    let (mut bearer, mut api_key, mut goog_key) = (None, None, None);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| ReadError::Bad(400, "bad content-length"))?;
            if n > MAX_BODY {
                return Err(ReadError::Bad(413, "request body too large"));
            }
            if head.body != BodyKind::Chunked {
                head.body = if n == 0 {
                    BodyKind::Empty
                } else {
                    BodyKind::Length(n)
                };
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                // Chunked wins over Content-Length (RFC 9112 §6.3).
                head.body = BodyKind::Chunked;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.keep_alive = false;
            } else if v.contains("keep-alive") {
                head.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("authorization") {
            bearer = Some(strip_bearer(value).to_owned());
        } else if name.eq_ignore_ascii_case("x-api-key") {
            api_key = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("x-goog-api-key") {
            goog_key = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("x-mock-behaviour") {
            head.behaviour_header = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("anthropic-version") {
            head.anthropic_version = true;
        }
    }
    head.credential = bearer.or(api_key).or(goog_key).filter(|k| !k.is_empty());
    Ok((head, len))
}

/// `Bearer X` → `X`; any other scheme is kept whole so it still identifies
/// the caller.
pub(crate) fn strip_bearer(value: &str) -> &str {
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    }
}

/// Read the body announced by `kind`.
pub(crate) async fn read_body(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    kind: BodyKind,
) -> Result<Bytes, ReadError> {
    match kind {
        BodyKind::Empty => Ok(Bytes::new()),
        BodyKind::Length(n) => {
            while buf.len() < n {
                fill(stream, buf).await?;
            }
            Ok(buf.split_to(n).freeze())
        }
        BodyKind::Chunked => read_chunked(stream, buf).await,
    }
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Bytes, ReadError> {
    let mut out = BytesMut::new();
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Err(ReadError::Bad(400, "bad chunk size line"));
                }
                fill(stream, buf).await?;
                continue;
            }
            Err(_) => return Err(ReadError::Bad(400, "bad chunk size")),
        };
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size == 0 {
            buf.advance(consumed);
            return skip_trailers(stream, buf).await.map(|()| out.freeze());
        }
        if out.len().saturating_add(size) > MAX_BODY {
            return Err(ReadError::Bad(413, "request body too large"));
        }
        let need = consumed + size + 2;
        while buf.len() < need {
            fill(stream, buf).await?;
        }
        if &buf[consumed + size..need] != b"\r\n" {
            return Err(ReadError::Bad(400, "chunk not followed by CRLF"));
        }
        out.extend_from_slice(&buf[consumed..consumed + size]);
        buf.advance(need);
    }
}

/// Skip the (normally empty) trailer section after the last chunk.
async fn skip_trailers(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), ReadError> {
    loop {
        match buf.windows(2).position(|w| w == b"\r\n") {
            Some(0) => {
                buf.advance(2);
                return Ok(());
            }
            Some(i) => buf.advance(i + 2),
            None => {
                if buf.len() > MAX_HEAD {
                    return Err(ReadError::Bad(400, "trailers too large"));
                }
                fill(stream, buf).await?;
            }
        }
    }
}

/// Split a request target into path and query (without the `?`).
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// The first value of a query parameter, percent-decoded (and `+` as space,
/// as query strings use it).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            crate::behaviour::percent_decode(&v).unwrap_or(v)
        })
    })
}

/// A re-parsed head, for the request log.
#[derive(Debug)]
pub(crate) struct LoggedHead {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

/// Method, target and all headers of a raw head, for the request log.
pub(crate) fn parse_logged(raw: &[u8]) -> Option<LoggedHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(raw).ok()?;
    let list = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Some(LoggedHead {
        method: req.method?.to_owned(),
        target: req.path?.to_owned(),
        headers: list,
    })
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Length {
    Fixed(usize),
    Chunked,
    /// HTTP/1.0 streams: the body ends when the connection closes.
    UntilClose,
}

/// Append a response head to `out`. `extra` holds complete header lines
/// (each ending in CRLF).
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    length: Length,
    close: bool,
    extra: &[u8],
) {
    // Writing into a Vec cannot fail, so the results are ignored.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n",
        reason(status)
    );
    match length {
        Length::Fixed(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Length::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Length::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\r\n");
}

/// Append a chunk-size line; the caller appends the data and CRLF. A zero
/// length would end the body, so callers never pass one.
pub(crate) fn write_chunk_head(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
}

/// The last chunk of a chunked body, with no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Reason phrase for a status code.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_chunks_are_well_formed() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            200,
            "text/plain",
            Length::Fixed(2),
            true,
            b"x-a: b\r\n",
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\nx-a: b\r\n\r\n"
        );
        out.clear();
        write_chunk_head(&mut out, 26);
        assert_eq!(out, b"1a\r\n");
    }

    #[test]
    fn query_and_bearer() {
        assert_eq!(
            query_param(Some("alt=sse&key=a%2Bb+c"), "key").as_deref(),
            Some("a+b c")
        );
        assert_eq!(query_param(Some("alt=sse"), "key"), None);
        assert_eq!(strip_bearer("Bearer sk-1"), "sk-1");
        assert_eq!(strip_bearer("Basic abc"), "Basic abc");
    }
}
