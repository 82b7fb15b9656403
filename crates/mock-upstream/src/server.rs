//! The server: accept loop, per-connection keep-alive loop, behaviour
//! selection (rules → `x-mock-behaviour` header → `/_b/` path prefix) and
//! applying a behaviour's delays, faults, status and headers around the
//! route's reply.

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::behaviour::{Behaviour, Fault};
use crate::http1::{self, BodyKind, Head, Length, ReadError};
use crate::routes::{self, ApiError, Ctx, Dialect, Reply, Route};
use crate::rules::Rules;
use crate::stats::{RequestLog, Stats};
use crate::stream::{self, StreamEnd};

/// Everything the connections share.
#[derive(Debug)]
pub(crate) struct State {
    pub stats: Arc<Stats>,
    pub log: RequestLog,
    pub rules: Rules,
    /// `x-mock-name: NAME\r\n`, or empty.
    pub name_header: Vec<u8>,
}

/// Accept connections until the future is dropped. Connection tasks live in
/// a `JoinSet`, so dropping this future (on shutdown) aborts them all.
pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    tasks.spawn(serve(Arc::clone(&state), socket));
                }
                // Typically EMFILE: back off briefly instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// What to do with the connection after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    /// Close gracefully (FIN).
    Close,
    /// Just drop the socket (already reset, or the peer is gone).
    Drop,
}

/// One connection and its reusable buffers.
struct Conn {
    socket: TcpStream,
    input: BytesMut,
    out: Vec<u8>,
    /// Per-response extra header lines.
    extra: Vec<u8>,
}

impl Conn {
    /// Sleep for `d`, unless the peer closes the connection first (then
    /// `false`). Bytes the peer sends meanwhile (a pipelined request) are
    /// kept in the input buffer, so a finished wait loses nothing; noticing
    /// a departed client early lets its request leave the in-flight count.
    async fn wait(&mut self, d: Duration) -> bool {
        let watch = async {
            loop {
                if self.input.len() > 1 << 20 {
                    // Enough buffered; just wait out the delay.
                    std::future::pending::<()>().await;
                }
                self.input.reserve(4096);
                match self.socket.read_buf(&mut self.input).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = watch => false,
        }
    }
}

async fn serve(state: Arc<State>, socket: TcpStream) {
    // Streams are written event by event; Nagle would delay them.
    let _ = socket.set_nodelay(true);
    let mut conn = Conn {
        socket,
        input: BytesMut::with_capacity(8192),
        out: Vec::with_capacity(8192),
        extra: Vec::with_capacity(256),
    };
    loop {
        let next = match read_request(&mut conn).await {
            Ok(Some((head, body))) => handle(&state, &mut conn, head, body).await,
            Ok(None) | Err(ReadError::Gone) => Next::Drop,
            Err(ReadError::Bad(status, message)) => {
                let reply = ApiError::new(status, message).reply(Dialect::OpenAi);
                conn.extra.clear();
                conn.extra.extend_from_slice(&state.name_header);
                send(&mut conn, reply, &Behaviour::NONE, true, false).await
            }
        };
        match next {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = conn.socket.shutdown().await;
                return;
            }
            Next::Drop => return,
        }
    }
}

async fn read_request(conn: &mut Conn) -> Result<Option<(Head, Bytes)>, ReadError> {
    let Some(head) = http1::read_head(&mut conn.socket, &mut conn.input).await? else {
        return Ok(None);
    };
    if head.expect_continue && head.body != BodyKind::Empty && conn.input.is_empty() {
        conn.socket
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await?;
    }
    let body = http1::read_body(&mut conn.socket, &mut conn.input, head.body).await?;
    Ok(Some((head, body)))
}

/// Split `/_b/<spec>/rest` into (`/rest`, `Some(spec)`); other paths are
/// returned unchanged.
pub(crate) fn strip_behaviour_prefix(path: &str) -> (&str, Option<&str>) {
    let Some(rest) = path.strip_prefix("/_b/") else {
        return (path, None);
    };
    match rest.find('/') {
        Some(i) => (&rest[i..], Some(&rest[..i])),
        None => ("/", Some(rest)),
    }
}

async fn handle(state: &State, conn: &mut Conn, head: Head, body: Bytes) -> Next {
    let close = !head.keep_alive;
    let (full_path, query) = http1::split_target(&head.target);

    if full_path == "/_mock" || full_path.starts_with("/_mock/") {
        let (status, json) = crate::control::handle(state, &head.method, full_path, query, &body);
        conn.extra.clear();
        conn.extra.extend_from_slice(&state.name_header);
        return send(
            conn,
            Reply::json(status, &json),
            &Behaviour::NONE,
            close,
            head.http10,
        )
        .await;
    }

    let (path, spec) = strip_behaviour_prefix(full_path);
    let route = Route::parse(&head.method, path);
    let dialect = route.dialect();
    let json: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let model = route.model(json.as_ref());
    let key: Option<Cow<'_, str>> = match &head.credential {
        Some(k) => Some(Cow::Borrowed(k.as_str())),
        None => http1::query_param(query, "key").map(Cow::Owned),
    };
    let key = key.as_deref();

    // Health checks are neither logged nor counted, but still obey
    // behaviours so that a `/_b/status=503` base URL fails them too.
    let counted = route != Route::Health;
    if counted {
        state.log.push(head.raw.clone(), body.clone());
    }
    let selected = select_behaviour(state, &head, spec, key, path, model);
    let _in_flight = counted.then(|| state.stats.begin(path, key));

    let behaviour = match selected {
        Ok(b) => b,
        Err(message) => {
            write_extra(conn, state, dialect, &Behaviour::NONE);
            let reply = ApiError::new(400, message).reply(dialect);
            return send(conn, reply, &Behaviour::NONE, close, head.http10).await;
        }
    };
    let b: &Behaviour = behaviour.as_deref().unwrap_or(&Behaviour::NONE);

    if let Some(ms) = b.latency_ms.filter(|&ms| ms > 0)
        && !conn.wait(Duration::from_millis(ms)).await
    {
        return Next::Drop;
    }
    match b.fault {
        Some(Fault::Reset) => {
            // SO_LINGER 0 makes the close send RST instead of FIN.
            let _ = conn.socket.set_zero_linger();
            return Next::Drop;
        }
        Some(Fault::Close) => return Next::Close,
        Some(Fault::Hang) => {
            stream::wait_for_peer_close(&mut conn.socket).await;
            return Next::Drop;
        }
        _ => {}
    }

    write_extra(conn, state, dialect, b);
    let reply = match (b.fault, b.status) {
        (Some(Fault::Html), status) => html(status.unwrap_or(200)),
        (Some(Fault::ErrorIn200), status) => {
            let error = ApiError::from_behaviour(b, status.unwrap_or(500), dialect);
            Reply::json(200, &error.envelope(dialect))
        }
        // With stream_error_event, `status` describes the injected event.
        (fault, Some(status)) if status >= 300 && fault != Some(Fault::StreamErrorEvent) => {
            ApiError::from_behaviour(b, status, dialect).reply(dialect)
        }
        (_, status) => {
            let ctx = Ctx {
                body: json.as_ref(),
                behaviour: b,
                query,
                anthropic_version: head.anthropic_version,
                method: &head.method,
                path,
            };
            let mut reply = routes::dispatch(&route, &ctx);
            // A 2xx `status` only changes the status line of a normal reply.
            if let (Some(s @ 200..300), Reply::Full { status: st, .. }) = (status, &mut reply)
                && *st == 200
            {
                *st = s;
            }
            reply
        }
    };
    send(conn, reply, b, close, head.http10).await
}

/// The behaviour for this request; `Err` for an unparseable header or
/// path spec (answered with 400 so the test author notices).
fn select_behaviour(
    state: &State,
    head: &Head,
    spec: Option<&str>,
    key: Option<&str>,
    path: &str,
    model: Option<&str>,
) -> Result<Option<Arc<Behaviour>>, String> {
    if let Some(b) = state.rules.select(key, path, model) {
        return Ok(Some(b));
    }
    if let Some(h) = &head.behaviour_header {
        return Behaviour::parse(h)
            .map(|b| Some(Arc::new(b)))
            .map_err(|e| format!("mock-upstream: invalid x-mock-behaviour header: {e}"));
    }
    if let Some(s) = spec {
        return Behaviour::parse(s)
            .map(|b| Some(Arc::new(b)))
            .map_err(|e| format!("mock-upstream: invalid /_b/ behaviour: {e}"));
    }
    Ok(None)
}

/// Fill `conn.extra` with the headers every API answer carries: the mock's
/// name, a request id, and the behaviour's Retry-After and rate-limit
/// headers in the route's style.
fn write_extra(conn: &mut Conn, state: &State, dialect: Dialect, b: &Behaviour) {
    let out = &mut conn.extra;
    out.clear();
    out.extend_from_slice(&state.name_header);
    // Writing into a Vec cannot fail.
    match dialect {
        Dialect::OpenAi => {
            let _ = write!(out, "x-request-id: {}\r\n", crate::ids::id("req_", 32));
        }
        Dialect::Anthropic => {
            let _ = write!(out, "request-id: {}\r\n", crate::ids::id("req_011C", 20));
        }
        Dialect::Gemini => {}
    }
    if let Some(secs) = b.retry_after {
        if b.retry_after_date {
            let at = chrono::Utc::now() + chrono::Duration::seconds(clamp_secs(secs));
            let _ = write!(
                out,
                "retry-after: {}\r\n",
                at.format("%a, %d %b %Y %H:%M:%S GMT")
            );
        } else {
            let _ = write!(out, "retry-after: {secs}\r\n");
        }
    }
    match dialect {
        Dialect::OpenAi => {
            if let Some(n) = b.ratelimit_limit {
                let _ = write!(out, "x-ratelimit-limit-requests: {n}\r\n");
            }
            if let Some(n) = b.ratelimit_remaining {
                let _ = write!(out, "x-ratelimit-remaining-requests: {n}\r\n");
            }
            if let Some(n) = b.ratelimit_reset {
                let _ = write!(out, "x-ratelimit-reset-requests: {n}s\r\n");
            }
        }
        Dialect::Anthropic => {
            if let Some(n) = b.ratelimit_limit {
                let _ = write!(out, "anthropic-ratelimit-requests-limit: {n}\r\n");
            }
            if let Some(n) = b.ratelimit_remaining {
                let _ = write!(out, "anthropic-ratelimit-requests-remaining: {n}\r\n");
            }
            if let Some(n) = b.ratelimit_reset {
                let at = chrono::Utc::now() + chrono::Duration::seconds(clamp_secs(n));
                let _ = write!(
                    out,
                    "anthropic-ratelimit-requests-reset: {}\r\n",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
        // Gemini sends no rate-limit headers.
        Dialect::Gemini => {}
    }
}

fn clamp_secs(secs: u64) -> i64 {
    // Keep date arithmetic far from chrono's range limits.
    i64::try_from(secs.min(10 * 365 * 24 * 3600)).unwrap_or(0)
}

/// The kind of HTML error page a CDN or proxy puts in front of an API.
fn html(status: u16) -> Reply {
    let title = format!("{status} {}", http1::reason(status));
    Reply::Full {
        status,
        content_type: "text/html; charset=utf-8",
        body: format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        .into_bytes(),
    }
}

/// Write a reply, honouring `first_byte_ms` and the stream faults.
async fn send(conn: &mut Conn, reply: Reply, b: &Behaviour, close: bool, http10: bool) -> Next {
    // HTTP/1.0 clients only keep the connection when told so explicitly.
    if http10 && !close && matches!(reply, Reply::Full { .. }) {
        conn.extra.extend_from_slice(b"connection: keep-alive\r\n");
    }
    let first_byte = b
        .first_byte_ms
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    conn.out.clear();
    match reply {
        Reply::Full {
            status,
            content_type,
            body,
        } => {
            http1::write_head(
                &mut conn.out,
                status,
                content_type,
                Length::Fixed(body.len()),
                close,
                &conn.extra,
            );
            let result = async {
                if let Some(d) = first_byte {
                    conn.socket.write_all(&conn.out).await?;
                    conn.out.clear();
                    if !conn.wait(d).await {
                        return Ok(Next::Drop);
                    }
                }
                // Stream cut/stall on a plain JSON answer: half the body,
                // then close or go silent.
                let fault = b
                    .fault
                    .filter(|f| matches!(f, Fault::StreamCut | Fault::StreamStall));
                if let Some(fault) = fault {
                    conn.out.extend_from_slice(&body[..body.len() / 2]);
                    conn.socket.write_all(&conn.out).await?;
                    if fault == Fault::StreamStall {
                        stream::wait_for_peer_close(&mut conn.socket).await;
                        return Ok(Next::Drop);
                    }
                    return Ok(Next::Close);
                }
                conn.out.extend_from_slice(&body);
                conn.socket.write_all(&conn.out).await?;
                Ok::<_, std::io::Error>(if close { Next::Close } else { Next::KeepAlive })
            }
            .await;
            result.unwrap_or(Next::Drop)
        }
        Reply::Stream(plan) => {
            // HTTP/1.0 has no chunked encoding: the body ends with the
            // connection.
            let length = if http10 {
                Length::UntilClose
            } else {
                Length::Chunked
            };
            let status = b.status.filter(|s| (200..300).contains(s)).unwrap_or(200);
            http1::write_head(
                &mut conn.out,
                status,
                plan.content_type(),
                length,
                close || http10,
                &conn.extra,
            );
            if let Some(d) = first_byte {
                if conn.socket.write_all(&conn.out).await.is_err() {
                    return Next::Drop;
                }
                conn.out.clear();
                if !conn.wait(d).await {
                    return Next::Drop;
                }
            }
            match stream::emit(&mut conn.socket, &mut conn.out, &plan, b, !http10).await {
                Ok(StreamEnd::Complete) if close || http10 => Next::Close,
                Ok(StreamEnd::Complete) => Next::KeepAlive,
                Ok(StreamEnd::Cut) => Next::Close,
                Ok(StreamEnd::Gone) | Err(_) => Next::Drop,
            }
        }
    }
}
