//! Pooled clients, one per endpoint, rebuilt only when the endpoint's transport settings change.

use crate::request::UpstreamRequest;
use dashmap::DashMap;
use std::time::Duration;
use switchyard_core::catalog::Endpoint;

/// The clients of every endpoint.
#[derive(Debug)]
pub struct UpstreamClients {
    clients: DashMap<String, (u64, reqwest::Client)>,
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
    pub fn client_for(&self, endpoint: &Endpoint) -> Result<reqwest::Client, SendFailure> {
        let fingerprint = self.connect_timeout.as_millis() as u64;
        if let Some(entry) = self.clients.get(&endpoint.id)
            && entry.0 == fingerprint
        {
            return Ok(entry.1.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(self.pool_idle)
            .pool_max_idle_per_host(self.max_idle_per_host)
            // Upstreams are APIs: a redirect is a misconfiguration to report, not to follow
            // (following would resend credentials to another host).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| SendFailure::Build(e.to_string()))?;
        self.clients
            .insert(endpoint.id.clone(), (fingerprint, client.clone()));
        Ok(client)
    }

    /// Drops clients of endpoints that no longer exist.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.clients.retain(|id, _| live(id));
    }
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
    /// The client could not be built (bad TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Sends a request and waits at most `header_timeout` for the response head.
pub async fn send(
    client: &reqwest::Client,
    request: UpstreamRequest,
    header_timeout: Duration,
) -> Result<reqwest::Response, SendFailure> {
    let mut builder = client.post(&request.url).body(request.body);
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    match tokio::time::timeout(header_timeout, builder.send()).await {
        Err(_) => Err(SendFailure::HeaderTimeout(header_timeout)),
        Ok(Ok(response)) => Ok(response),
        // The error text never contains the credential: it is a header, not part of the URL.
        Ok(Err(e)) => Err(SendFailure::Connect(describe(e))),
    }
}

fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
