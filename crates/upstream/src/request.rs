//! Building the upstream request of one attempt: URL, credentials in the format's auth header,
//! the endpoint's extra headers, and a short allow-list of client headers that carry API
//! semantics. Client headers never override the gateway's (fix of the reference's §11.4 gap).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use switchyard_core::ApiFormat;
use switchyard_core::catalog::{Endpoint, ProviderKey};

/// Client headers forwarded upstream: they select API behaviour, not identity.
pub const FORWARDED_CLIENT_HEADERS: &[&str] =
    &["anthropic-version", "anthropic-beta", "openai-beta"];

/// One upstream call, ready to send. `Debug` shows header names only (values may be secrets).
pub struct UpstreamRequest {
    /// Full URL.
    pub url: String,
    /// Headers, the credential marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// JSON body.
    pub body: Bytes,
}

impl std::fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("UpstreamRequest")
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// The upstream URL: the base URL without a trailing `/`, minus a trailing version segment
/// when the path starts with the same one (so `https://host/v1` + `/v1/chat/completions` does
/// not become `/v1/v1/…`), plus the format's path with `{model}` and `{action}` filled in.
pub fn upstream_url(endpoint: &Endpoint, model: &str, stream: bool) -> String {
    let path = endpoint
        .custom_path
        .as_deref()
        .unwrap_or_else(|| endpoint.api_format.default_upstream_path());
    let action = if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    let path = path.replace("{model}", model).replace("{action}", action);
    let mut base = endpoint.base_url.trim_end_matches('/');
    for version in ["/v1", "/v1beta", "/v2", "/v3"] {
        if base.ends_with(version) && path.starts_with(&format!("{version}/")) {
            base = &base[..base.len() - version.len()];
            break;
        }
    }
    let mut url = format!("{base}{path}");
    if stream
        && matches!(
            endpoint.api_format,
            ApiFormat::Gemini | ApiFormat::GeminiCli
        )
    {
        url.push_str(if url.contains('?') {
            "&alt=sse"
        } else {
            "?alt=sse"
        });
    }
    url
}

/// Why a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the upstream request: {0}")]
pub struct BuildError(pub String);

/// Builds one attempt's request.
pub fn build_request(
    endpoint: &Endpoint,
    key: &ProviderKey,
    upstream_model: &str,
    stream: bool,
    body: Bytes,
    client_headers: &[(String, String)],
) -> Result<UpstreamRequest, BuildError> {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(8);
    let mut credential = match endpoint.api_format {
        ApiFormat::Claude => HeaderValue::from_str(key.secret.expose()),
        _ => HeaderValue::from_str(&format!("Bearer {}", key.secret.expose())),
    }
    .map_err(|_| {
        BuildError(format!(
            "provider key `{}` is not a valid header value",
            key.name
        ))
    })?;
    credential.set_sensitive(true);
    let auth_name = match endpoint.api_format {
        ApiFormat::Claude => HeaderName::from_static("x-api-key"),
        ApiFormat::Gemini | ApiFormat::GeminiCli => HeaderName::from_static("x-goog-api-key"),
        _ => http::header::AUTHORIZATION,
    };
    if matches!(
        endpoint.api_format,
        ApiFormat::Gemini | ApiFormat::GeminiCli
    ) {
        credential = HeaderValue::from_str(key.secret.expose()).map_err(|_| {
            BuildError(format!(
                "provider key `{}` is not a valid header value",
                key.name
            ))
        })?;
        credential.set_sensitive(true);
    }
    headers.push((auth_name, credential));
    headers.push((
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ));
    if stream {
        headers.push((
            http::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        ));
    }
    // Anthropic refuses requests without a version; a client of another format (converted
    // here) never sends one. A client's or the endpoint's own value wins.
    let anthropic = matches!(
        endpoint.api_format,
        ApiFormat::Claude | ApiFormat::ClaudeCli
    );
    let versioned = endpoint
        .headers
        .keys()
        .chain(client_headers.iter().map(|(n, _)| n))
        .any(|n| n.eq_ignore_ascii_case("anthropic-version"));
    if anthropic && !versioned {
        headers.push((
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static("2023-06-01"),
        ));
    }
    for (name, value) in &endpoint.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BuildError(format!("bad endpoint header name `{name}`")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| BuildError(format!("bad value for endpoint header `{name}`")))?;
        headers.push((name, value));
    }
    for (name, value) in client_headers {
        let lower = name.to_ascii_lowercase();
        if FORWARDED_CLIENT_HEADERS.contains(&lower.as_str())
            && !headers.iter().any(|(n, _)| n.as_str() == lower)
            && let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(lower.as_bytes()),
                HeaderValue::from_str(value),
            )
        {
            headers.push((n, v));
        }
    }
    Ok(UpstreamRequest {
        url: upstream_url(endpoint, upstream_model, stream),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{endpoint, key};

    #[test]
    fn urls_drop_a_duplicated_version_segment_and_fill_placeholders() {
        let e = endpoint(ApiFormat::OpenAi, "https://api.example.com/v1/");
        assert_eq!(
            upstream_url(&e, "m", false),
            "https://api.example.com/v1/chat/completions"
        );
        let e = endpoint(ApiFormat::Gemini, "https://g.example.com/v1beta");
        assert_eq!(
            upstream_url(&e, "gemini-2.5", true),
            "https://g.example.com/v1beta/models/gemini-2.5:streamGenerateContent?alt=sse"
        );
        let mut e = endpoint(ApiFormat::OpenAi, "http://127.0.0.1:9/_b/status=500");
        assert_eq!(
            upstream_url(&e, "m", false),
            "http://127.0.0.1:9/_b/status=500/v1/chat/completions"
        );
        e.custom_path = Some("/openai/deployments/{model}/chat".into());
        assert_eq!(
            upstream_url(&e, "gpt", false),
            "http://127.0.0.1:9/_b/status=500/openai/deployments/gpt/chat"
        );
    }

    #[test]
    fn credentials_go_in_the_format_header_and_are_sensitive() {
        let r = build_request(
            &endpoint(ApiFormat::OpenAi, "http://x"),
            &key(),
            "m",
            true,
            Bytes::from_static(b"{}"),
            &[
                ("Anthropic-Beta".into(), "x".into()),
                ("authorization".into(), "Bearer client".into()),
                ("cookie".into(), "c".into()),
            ],
        )
        .expect("built");
        let auth = r
            .headers
            .iter()
            .find(|(n, _)| n == http::header::AUTHORIZATION)
            .expect("auth");
        assert!(auth.1.is_sensitive());
        assert_eq!(auth.1.to_str().ok(), Some("Bearer sk-secret-value"));
        assert_eq!(
            r.headers
                .iter()
                .filter(|(n, _)| n == http::header::AUTHORIZATION)
                .count(),
            1
        );
        assert!(
            r.headers
                .iter()
                .any(|(n, _)| n.as_str() == "anthropic-beta")
        );
        assert!(!r.headers.iter().any(|(n, _)| n.as_str() == "cookie"));
        assert!(!format!("{r:?}").contains("sk-secret"));
        let claude = build_request(
            &endpoint(ApiFormat::Claude, "http://x"),
            &key(),
            "m",
            false,
            Bytes::new(),
            &[],
        )
        .expect("built");
        assert!(
            claude
                .headers
                .iter()
                .any(|(n, v)| n.as_str() == "x-api-key"
                    && v.to_str().ok() == Some("sk-secret-value"))
        );
    }
}
