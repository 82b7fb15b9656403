//! Pooled clients, one per endpoint, rebuilt only when the endpoint's transport settings change.

use crate::request::UpstreamRequest;
use dashmap::DashMap;
use std::cell::RefCell;
use std::collections::HashMap;
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
    let mut builder = match parsed_url(&request.url) {
        Ok(url) => client.post(url),
        // reqwest reports the same parse error when the request is sent.
        Err(_) => client.post(&request.url),
    }
    .body(request.body);
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

/// Most URL texts one thread keeps parsed before it starts over.
const MAX_PARSED_URLS: usize = 1024;

thread_local! {
    /// URL texts already parsed on this thread: the same few upstream URLs come back on every
    /// request, and parsing one (scheme, host, IDNA, path) cost more than the rest of building
    /// the request.
    static PARSED_URLS: RefCell<HashMap<String, reqwest::Url>> = RefCell::new(HashMap::new());
}

fn parsed_url(text: &str) -> Result<reqwest::Url, url::ParseError> {
    PARSED_URLS.with_borrow_mut(|parsed| {
        if let Some(url) = parsed.get(text) {
            return Ok(url.clone());
        }
        let url = reqwest::Url::parse(text)?;
        if parsed.len() >= MAX_PARSED_URLS {
            parsed.clear();
        }
        parsed.insert(text.to_owned(), url.clone());
        Ok(url)
    })
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

#[cfg(test)]
mod tests {
    use super::parsed_url;

    #[test]
    fn parsed_urls_are_the_parser_s_own_and_bad_ones_stay_errors() {
        let text = "http://127.0.0.1:9/_b/status=500/v1/chat/completions";
        for _ in 0..2 {
            assert_eq!(parsed_url(text), reqwest::Url::parse(text));
        }
        assert!(parsed_url("http://exa mple.com/v1").is_err());
        assert!(parsed_url("not a url").is_err());
    }
}
