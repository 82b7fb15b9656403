//! The upstream side: one pooled HTTP client per endpoint (connections and TLS sessions are
//! reused across requests, TCP_NODELAY on), URL and header building per API format, and sending
//! with a bound on the wait for the response head.

mod client;
mod request;
#[cfg(test)]
mod test_support;

pub use client::{BodyError, Client, Response, SendFailure, UpstreamClients, send};
pub use request::{FORWARDED_CLIENT_HEADERS, UpstreamRequest, build_request, upstream_url};
