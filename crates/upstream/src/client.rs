//! Pooled clients, one per endpoint and thread, rebuilt only when the endpoint's transport
//! settings change.
//!
//! Each thread has its own pool: a pooled connection is driven by a task on the thread that
//! opened it, so a request sent over a connection of another thread's pool wakes that thread
//! to write it and again to read every part of the answer. Under load, with one pool shared by
//! the HTTP workers, that was about one cross-thread wake-up (two system calls and a context
//! switch) per request.
//!
//! hyper's pooled client is used directly: a general-purpose client around it (redirect policy,
//! URL re-parsing, its own futures and body wrappers) cost about a twentieth of the gateway's CPU
//! per request and added nothing an upstream call needs.

use crate::request::UpstreamRequest;
use bytes::Bytes;
use dashmap::DashMap;
use foldhash::HashMap;
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;
use switchyard_core::catalog::Endpoint;

/// One endpoint's client: a cheap handle onto a connection pool. HTTPS upstreams speak
/// HTTP/2 when they offer it (ALPN), HTTP/1.1 otherwise; plain HTTP ones HTTP/1.1.
pub type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A failure while a response body was read (the connection dropped, a malformed chunk).
pub type BodyError = hyper::Error;

/// The transport settings an endpoint's clients were built with, and the client of each thread
/// that called it (a handful: the HTTP workers).
type EndpointClients = (u64, Vec<(ThreadId, Client)>);

/// The clients of every endpoint, one per thread that called it.
#[derive(Debug)]
pub struct UpstreamClients {
    /// Endpoint id → its clients.
    clients: DashMap<String, EndpointClients, foldhash::fast::RandomState>,
    connect_timeout: Duration,
    pool_idle: Duration,
    max_idle_per_host: usize,
    tls: Arc<rustls::ClientConfig>,
}

impl UpstreamClients {
    /// Clients with the given connect timeout, verifying upstream certificates as the operating
    /// system does.
    pub fn new(connect_timeout: Duration) -> Self {
        Self::with_tls(connect_timeout, platform_tls())
    }

    /// Clients with the given connect timeout and TLS settings (a private CA, tests).
    pub fn with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            clients: DashMap::default(),
            connect_timeout,
            pool_idle: Duration::from_secs(90),
            max_idle_per_host: 512,
            tls,
        }
    }

    /// The calling thread's client for an endpoint (a cheap handle onto that thread's pool).
    pub fn client_for(&self, endpoint: &Endpoint) -> Client {
        let fingerprint = self.connect_timeout.as_millis() as u64;
        let thread = THREAD_ID.with(|id| *id);
        if let Some(entry) = self.clients.get(&endpoint.id)
            && entry.0 == fingerprint
            && let Some((_, client)) = entry.1.iter().find(|(owner, _)| *owner == thread)
        {
            return client.clone();
        }
        let client = self.build();
        let mut entry = self
            .clients
            .entry(endpoint.id.clone())
            .or_insert_with(|| (fingerprint, Vec::new()));
        if entry.0 != fingerprint {
            *entry = (fingerprint, Vec::new());
        }
        // This thread had no client here (only it adds its own): nothing to replace.
        entry.1.push((thread, client.clone()));
        client
    }

    /// A client with a pool of its own.
    fn build(&self) -> Client {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        // The TLS layer below decides the scheme.
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.as_ref().clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        // Upstreams are APIs: a redirect comes back as the answer (a misconfiguration to report)
        // and is never followed, which would resend credentials to another host.
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.pool_idle)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector)
    }

    /// Drops clients of endpoints that no longer exist.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.clients.retain(|id, _| live(id));
    }
}

thread_local! {
    /// This thread's id, without the reference count `std::thread::current()` costs.
    static THREAD_ID: ThreadId = std::thread::current().id();
}

/// The usual TLS settings: the process's crypto provider and the operating system's verifier,
/// built once (reading the system's roots is slow). Where the verifier cannot be set up, HTTPS
/// upstreams are refused (no root is trusted) and plain HTTP ones still work.
fn platform_tls() -> Arc<rustls::ClientConfig> {
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
    static PARSED_URLS: RefCell<HashMap<String, Uri>> = RefCell::new(HashMap::default());
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

#[cfg(test)]
mod tls_tests {
    use super::{SendFailure, UpstreamClients, send};
    use crate::request::UpstreamRequest;
    use crate::test_support::endpoint;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::sync::Arc;
    use std::time::Duration;
    use switchyard_core::ApiFormat;

    /// A private CA and a certificate it issued for `localhost`.
    struct Pki {
        ca: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        leaf_key: PrivateKeyDer<'static>,
    }

    fn pki() -> Pki {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        Pki {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
            leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        }
    }

    /// An HTTPS server offering `alpn`; every answer names the HTTP version it was asked in.
    async fn https_server(pki: &Pki, alpn: &[&[u8]]) -> u16 {
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![pki.leaf.clone()], pki.leaf_key.clone_key())
            .expect("server TLS config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let answer = service_fn(|request: http::Request<hyper::body::Incoming>| {
                        let version = format!("{:?}", request.version());
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(version),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), answer)
                        .await;
                });
            }
        });
        port
    }

    fn trusting(ca: Option<&CertificateDer<'static>>) -> UpstreamClients {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = ca {
            roots
                .add(ca.clone())
                .expect("CA certificate accepted as a root");
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        UpstreamClients::with_tls(Duration::from_secs(5), Arc::new(tls))
    }

    async fn call(clients: &UpstreamClients, port: u16) -> Result<String, SendFailure> {
        let url = format!("https://localhost:{port}/v1/chat/completions");
        let client = clients.client_for(&endpoint(ApiFormat::OpenAi, &url));
        let request = UpstreamRequest {
            url,
            headers: Vec::new(),
            body: Bytes::from_static(b"{}"),
        };
        let response = send(&client, request, Duration::from_secs(5)).await?;
        assert_eq!(response.status(), http::StatusCode::OK);
        let body = response.bytes().await.expect("the whole body");
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn https_upstreams_speak_http2_when_they_offer_it_and_http1_otherwise() {
        let pki = pki();
        let clients = trusting(Some(&pki.ca));
        let both = https_server(&pki, &[b"h2", b"http/1.1"]).await;
        assert_eq!(call(&clients, both).await.expect("an answer"), "HTTP/2.0");
        let clients = trusting(Some(&pki.ca));
        let http1 = https_server(&pki, &[b"http/1.1"]).await;
        assert_eq!(call(&clients, http1).await.expect("an answer"), "HTTP/1.1");
    }

    #[tokio::test]
    async fn https_upstreams_whose_certificate_is_not_trusted_are_refused() {
        let pki = pki();
        let port = https_server(&pki, &[b"h2", b"http/1.1"]).await;
        let failure = call(&trusting(None), port).await.expect_err("refused");
        let SendFailure::Connect(cause) = failure else {
            panic!("a connection failure, got {failure:?}");
        };
        assert!(cause.contains("certificate"), "{cause}");
    }
}

#[cfg(test)]
mod pool_tests {
    use super::{UpstreamClients, send};
    use crate::request::UpstreamRequest;
    use crate::test_support::endpoint;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use switchyard_core::ApiFormat;

    /// A plain HTTP server on its own thread that counts the connections it accepted.
    fn counting_server() -> (u16, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((tcp, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let answer = service_fn(|_request| async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), answer)
                            .await;
                    });
                }
            });
        });
        (port, accepted)
    }

    /// Three requests one after the other.
    async fn three_requests(clients: &UpstreamClients, url: &str) {
        for _ in 0..3 {
            let client = clients.client_for(&endpoint(ApiFormat::OpenAi, url));
            let request = UpstreamRequest {
                url: url.to_owned(),
                headers: Vec::new(),
                body: Bytes::from_static(b"{}"),
            };
            let response = send(&client, request, Duration::from_secs(5))
                .await
                .expect("an answer");
            assert_eq!(response.status(), http::StatusCode::OK);
            response.bytes().await.expect("the whole body");
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn each_thread_sends_over_connections_of_its_own() {
        let (port, accepted) = counting_server();
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        let clients = Arc::new(UpstreamClients::new(Duration::from_secs(5)));
        let (first_done, first_finished) = std::sync::mpsc::channel();
        let (second_done, second_finished) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (clients, url) = (clients.clone(), url.clone());
            std::thread::spawn(move || {
                runtime().block_on(async {
                    three_requests(&clients, &url).await;
                    first_done.send(()).expect("the second thread waits");
                    // This thread's connection stays open and idle, its runtime running,
                    // until the second thread is done.
                    let _ = second_finished.await;
                });
            })
        };
        let second = std::thread::spawn(move || {
            first_finished.recv().expect("the first thread's requests");
            runtime().block_on(three_requests(&clients, &url));
            let _ = second_done.send(());
        });
        first.join().expect("the first thread");
        second.join().expect("the second thread");
        // One connection per thread, each reused for its three requests: the second thread
        // did not send over the first one's idle connection (driven by the first thread).
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn clients_of_endpoints_no_longer_live_are_dropped_with_their_connections() {
        let (port, accepted) = counting_server();
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        let clients = UpstreamClients::new(Duration::from_secs(5));
        runtime().block_on(async {
            three_requests(&clients, &url).await;
            clients.retain(|id| id == "e");
            three_requests(&clients, &url).await;
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                1,
                "a live endpoint keeps its pool"
            );
            clients.retain(|_| false);
            three_requests(&clients, &url).await;
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                2,
                "a dropped endpoint's connection is not used again"
            );
        });
    }
}
