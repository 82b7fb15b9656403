//! `count_tokens` for Anthropic clients: answered by the first usable Anthropic-format candidate
//! upstream (token counts are the provider's own tokenizer's; no other format can answer for
//! it). Not a generation: no concurrency slot, no usage row, no health report — a transport or
//! 5xx failure just moves on to the next such candidate.

use super::answer::{Failure, route_failure};
use crate::scheduler::messages::Resolve;
use crate::system::ActorSystem;
use bytes::Bytes;
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::ApiFormat;
use switchyard_core::catalog::{GatewayKey, User};
use switchyard_core::secret::redact;
use switchyard_formats::error_body::parse_error_body;
use switchyard_upstream::{build_request, send};

/// The upstream path of Anthropic's token counter.
const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";

/// What a token count settles to: the upstream's status and body (its 4xx verdicts included,
/// they are about the request), or a gateway failure.
#[derive(Debug)]
pub struct Counted {
    /// Upstream status.
    pub status: u16,
    /// Upstream body.
    pub body: Bytes,
}

/// One count request as the HTTP layer hands it over.
#[derive(Debug)]
pub struct CountTokens {
    /// The requested model.
    pub model: String,
    /// The client's body, forwarded with the upstream model name.
    pub body: serde_json::Map<String, serde_json::Value>,
    /// Authenticated key.
    pub gateway_key: Arc<GatewayKey>,
    /// Its user.
    pub user: Arc<User>,
    /// Forwardable client headers (`anthropic-version`, `anthropic-beta`).
    pub client_headers: Vec<(String, String)>,
}

/// Counts tokens through the best Anthropic-format candidate.
///
/// # Errors
/// The model's route failure, or 502 when no Anthropic-format candidate answered.
pub async fn count_tokens(system: &ActorSystem, request: CountTokens) -> Result<Counted, Failure> {
    let resolved = system
        .resolver(&request.gateway_key.id)
        .ask(
            Resolve {
                model: request.model.clone(),
                format: ApiFormat::Claude,
                stream: false,
                gateway_key: request.gateway_key.clone(),
                user: request.user.clone(),
                capabilities: BTreeMap::new(),
                affinity_key: request.gateway_key.id.clone(),
                now: Utc::now(),
            },
            system.config.actor_timeout,
        )
        .await
        .map_err(|e| Failure::internal(&format!("the scheduler did not answer: {e}")))?
        .map_err(|route| route_failure(&route))?;
    let mut last_cause = None;
    let mut tried = 0;
    for candidate in &resolved.resolution.candidates {
        let endpoint = candidate.endpoint();
        if candidate.skip.is_some() || !endpoint.api_format.same_payloads(ApiFormat::Claude) {
            continue;
        }
        tried += 1;
        let key = candidate.key();
        let mut body = request.body.clone();
        body.insert(
            "model".into(),
            serde_json::Value::String(candidate.upstream_model.clone()),
        );
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let mut counter = endpoint.clone();
        counter.custom_path = Some(COUNT_TOKENS_PATH.into());
        let built = build_request(
            &counter,
            key,
            &candidate.upstream_model,
            false,
            body,
            &request.client_headers,
        );
        let Ok(upstream) = built else {
            continue;
        };
        let client = system.clients.client_for(endpoint);
        let timeout = Duration::from_secs(u64::from(endpoint.header_timeout_secs));
        let response = match send(&client, upstream, timeout).await {
            Ok(response) => response,
            Err(e) => {
                last_cause = Some(e.to_string());
                continue;
            }
        };
        let status = response.status().as_u16();
        let body = match tokio::time::timeout(timeout, response.bytes()).await {
            Ok(Ok(body)) => body,
            _ => {
                last_cause = Some("the answer was cut or late".into());
                continue;
            }
        };
        if status == 200 || (400..500).contains(&status) && ![401, 403, 404, 429].contains(&status)
        {
            return Ok(Counted { status, body });
        }
        let message = parse_error_body(&body).message;
        last_cause = Some(format!(
            "upstream returned {status}: {}",
            redact(&message, key.secret.expose())
        ));
    }
    Err(Failure {
        status: 502,
        error_type: "server_error",
        code: "count_tokens_unavailable".into(),
        message: if tried == 0 {
            format!(
                "No Anthropic-format upstream serves `{}`: only those can count its tokens.",
                request.model
            )
        } else {
            format!(
                "No Anthropic-format upstream could count the tokens ({tried} tried{}).",
                last_cause
                    .map(|c| format!("; last: {c}"))
                    .unwrap_or_default()
            )
        },
        retry_after: None,
    })
}
