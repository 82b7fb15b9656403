//! Shared helpers for the integration tests: starting a mock, an HTTP
//! client, a raw-socket client, an SSE parser and deadline polling.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_mock_upstream::{MockConfig, MockUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen promptly.
pub const PROMPT: Duration = Duration::from_secs(10);

pub async fn start() -> MockUpstream {
    MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

pub async fn start_with(config: MockConfig) -> MockUpstream {
    MockUpstream::start_with(([127, 0, 0, 1], 0).into(), config)
        .await
        .expect("mock starts")
}

/// A client builder that works with the workspace's provider-less reqwest.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Fails harmlessly when another test already installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy()
}

pub fn client() -> reqwest::Client {
    client_builder().timeout(PROMPT).build().expect("client")
}

/// POST JSON and return status, headers and the body as text.
pub async fn post(url: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = client()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

pub async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = post(url, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

pub async fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("JSON")
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("bad event data ({e}): {}", self.data))
    }
}

/// Parse complete SSE events (LF or CRLF line endings); a trailing
/// incomplete event is ignored.
pub fn parse_sse(text: &str) -> Vec<Sse> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(end) = rest.find("\n\n") {
        let block = &rest[..end];
        rest = &rest[end + 2..];
        let mut event = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v);
            }
        }
        if event.is_some() || !data.is_empty() {
            out.push(Sse {
                event,
                data: data.join("\n"),
            });
        }
    }
    out
}

/// Poll `check` until it returns `Some`, or panic after `PROMPT`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PROMPT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A raw HTTP/1.1 response read off a socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive capable raw client over one connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub async fn connect(mock: &MockUpstream) -> Raw {
        Raw {
            stream: TcpStream::connect(mock.addr()).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Send a POST with a JSON body and extra header lines.
    pub async fn post(&mut self, path: &str, headers: &str, body: &Value) {
        let body = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        );
        self.send(req.as_bytes()).await;
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 8192];
        let n = tokio::time::timeout(PROMPT, self.stream.read(&mut tmp))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "raw read timed out")
            })??;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Read one response (Content-Length or chunked body).
    pub async fn read_response(&mut self) -> std::io::Result<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let status = head[9..12].parse().expect("status code");
        let mut resp = RawResponse {
            status,
            head,
            body: Vec::new(),
        };
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("length");
            while self.buf.len() < len {
                if self.fill().await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            resp.body = self.buf.drain(..len).collect();
        } else if resp.header("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if self.fill().await? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                };
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..line_end]).expect("hex"),
                    16,
                )
                .expect("chunk size");
                while self.buf.len() < line_end + 2 + size + 2 {
                    if self.fill().await? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                resp.body
                    .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        }
        Ok(resp)
    }

    /// Read until EOF or error; returns what came and how it ended.
    pub async fn read_to_end(&mut self) -> (Vec<u8>, std::io::Result<()>) {
        loop {
            match self.fill().await {
                Ok(0) => return (std::mem::take(&mut self.buf), Ok(())),
                Ok(_) => {}
                Err(e) => return (std::mem::take(&mut self.buf), Err(e)),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A chat request body.
pub fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}
