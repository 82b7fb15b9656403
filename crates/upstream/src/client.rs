//! Pooled clients, one per endpoint, rebuilt only when the endpoint's transport settings change.
//!
//! hyper's pooled client is used directly: a general-purpose client around it (redirect policy,
//! URL re-parsing, its own futures and body wrappers) cost about a twentieth of the gateway's CPU
//! per request and added nothing an upstream call needs.

use crate::request::UpstreamRequest;
use bytes::Bytes;
use dashmap::DashMap;
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use switchyard_core::catalog::Endpoint;

/// One endpoint's client: a cheap handle onto a shared connection pool. HTTPS upstreams speak
/// HTTP/2 when they offer it (ALPN), HTTP/1.1 otherwise; plain HTTP ones HTTP/1.1.
pub type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A failure while a response body was read (the connection dropped, a malformed chunk).
pub type BodyError = hyper::Error;

/// The clients of every endpoint.
#[derive(Debug)]
pub struct UpstreamClients {
    clients: DashMap<String, (u64, Client)>,
    connect_timeout: Duration,
    pool_idle: Duration,
    max_idle_per_host: usize,
}

impl UpstreamClients {
    /// Clients with the given connect timeout.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            clients: DashMap::new(),
            connect_timeout,
            pool_idle: Duration::from_secs(90),
            max_idle_per_host: 512,
        }
    }

    /// The client for an endpoint (a cheap handle onto a shared pool).
    pub fn client_for(&self, endpoint: &Endpoint) -> Client {
        let fingerprint = self.connect_timeout.as_millis() as u64;
        if let Some(entry) = self.clients.get(&endpoint.id)
            && entry.0 == fingerprint
        {
            return entry.1.clone();
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        // The TLS layer below decides the scheme.
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config().as_ref().clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        // Upstreams are APIs: a redirect comes back as the answer (a misconfiguration to report)
        // and is never followed, which would resend credentials to another host.
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.pool_idle)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        self.clients
            .insert(endpoint.id.clone(), (fingerprint, client.clone()));
        client
    }

    /// Drops clients of endpoints that no longer exist.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.clients.retain(|id, _| live(id));
    }
}

/// The TLS settings of every upstream client: the process's crypto provider and the operating
/// system's verifier, built once (reading the system's roots is slow). Where the verifier cannot
/// be set up, HTTPS upstreams are refused (no root is trusted) and plain HTTP ones still work.
fn tls_config() -> Arc<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let config = match rustls::ClientConfig::builder().with_platform_verifier() {
                Ok(builder) => builder.with_no_client_auth(),
                Err(e) => {
                    tracing::error!(error = %e, "no TLS verifier: HTTPS upstreams will be refused");
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                }
            };
            Arc::new(config)
        })
        .clone()
}

/// Why no response head arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// Connection refused, reset, DNS or TLS failure, or the connection dropped before the head.
    #[error("connection failed: {0}")]
    Connect(String),
    /// No response head within the endpoint's header timeout.
    #[error("no response head within {0:?}")]
    HeaderTimeout(Duration),
}

/// An upstream's answer: its head, and its body still to be read.
#[derive(Debug)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, BodyError> {
        Ok(self.body.collect().await?.to_bytes())
    }

    /// The body as it arrives, chunk by chunk (trailers are skipped).
    pub fn bytes_stream(self) -> BodyDataStream<Incoming> {
        BodyDataStream::new(self.body)
    }
}

/// Sends a request and waits at most `header_timeout` for the response head.
pub async fn send(
    client: &Client,
    request: UpstreamRequest,
    header_timeout: Duration,
) -> Result<Response, SendFailure> {
    let uri = parsed_uri(&request.url)
        .map_err(|e| SendFailure::Connect(format!("invalid upstream URL: {e}")))?;
    let mut upstream = http::Request::new(Full::new(request.body));
    *upstream.method_mut() = http::Method::POST;
    *upstream.uri_mut() = uri;
    let headers = upstream.headers_mut();
    headers.reserve(request.headers.len());
    for (name, value) in request.headers {
        headers.append(name, value);
    }
    match tokio::time::timeout(header_timeout, client.request(upstream)).await {
        Err(_) => Err(SendFailure::HeaderTimeout(header_timeout)),
        Ok(Ok(response)) => {
            let (head, body) = response.into_parts();
            Ok(Response {
                status: head.status,
                headers: head.headers,
                body,
            })
        }
        // The error text never contains the credential: it is a header, not part of the URL.
        Ok(Err(e)) => Err(SendFailure::Connect(describe(&e))),
    }
}

/// Most URL texts one thread keeps parsed before it starts over.
const MAX_PARSED_URLS: usize = 1024;

thread_local! {
    /// URL texts already parsed on this thread: the same few upstream URLs come back on every
    /// request, and parsing one (scheme, host, IDNA, path) cost more than the rest of building
    /// the request.
    static PARSED_URLS: RefCell<HashMap<String, Uri>> = RefCell::new(HashMap::new());
}

/// The request target of a URL text. The URL standard's parser goes first: it normalises what
/// the stricter `Uri` parser would refuse (a space in a path, an upper-case scheme) the way a
/// browser would, and its output is always a valid `Uri`.
fn parsed_uri(text: &str) -> Result<Uri, String> {
    PARSED_URLS.with_borrow_mut(|parsed| {
        if let Some(uri) = parsed.get(text) {
            return Ok(uri.clone());
        }
        let url = url::Url::parse(text).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("unsupported scheme `{}`", url.scheme()));
        }
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        if parsed.len() >= MAX_PARSED_URLS {
            parsed.clear();
        }
        parsed.insert(text.to_owned(), uri.clone());
        Ok(uri)
    })
}

/// An error and its causes, outermost first: hyper's own text says only "client error
/// (Connect)"; the cause says what happened (refused, reset, certificate).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::parsed_uri;

    #[test]
    fn urls_parse_to_their_normalised_request_targets_and_bad_ones_stay_errors() {
        let text = "http://127.0.0.1:9/_b/status=500/v1/chat/completions";
        for _ in 0..2 {
            let uri = parsed_uri(text).expect("a valid URL");
            assert_eq!(uri.to_string(), text);
            assert_eq!(uri.host(), Some("127.0.0.1"));
            assert_eq!(uri.port_u16(), Some(9));
        }
        let spaced = parsed_uri("HTTPS://Example.com/v1/models/my model:generate?alt=sse")
            .expect("normalised like a browser would");
        assert_eq!(
            spaced.to_string(),
            "https://example.com/v1/models/my%20model:generate?alt=sse"
        );
        assert!(parsed_uri("http://exa mple.com/v1").is_err());
        assert!(parsed_uri("not a url").is_err());
        assert!(parsed_uri("ftp://example.com/v1").is_err());
    }
}
