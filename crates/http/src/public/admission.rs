//! Admission: the gateway key (looked up by hash in the in-memory catalog), its user, quota or
//! balance, the global in-flight cap, and the body size — each refused with a clear error in
//! the caller's format before any routing work.

use super::errors::error_response;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use std::sync::Arc;
use switchyard_actors::ActorSystem;
use switchyard_core::catalog::{GatewayKey, User};
use switchyard_formats::dialect::Dialect;
use switchyard_store::CatalogHandle;
use switchyard_store::secrets::hash_token;

/// What the public routes need.
#[derive(Debug, Clone)]
pub struct PublicState {
    /// The actors.
    pub system: ActorSystem,
    /// The catalog (gateway keys and users).
    pub catalog: Arc<CatalogHandle>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// How each front door finds a client's session identity for cache affinity.
    pub affinity: Arc<super::affinity::SessionAffinity>,
}

/// A refused request: the response, and the caller when the key itself was valid (the refusal
/// is then recorded against it).
#[derive(Debug)]
pub struct Refused {
    /// The error response.
    pub response: HttpResponse,
    /// The authenticated caller, for a quota refusal.
    pub caller: Option<Caller>,
}

impl From<HttpResponse> for Refused {
    fn from(response: HttpResponse) -> Self {
        Refused {
            response,
            caller: None,
        }
    }
}

/// An admitted caller.
#[derive(Debug)]
pub struct Caller {
    /// The key.
    pub key: Arc<GatewayKey>,
    /// Its user.
    pub user: Arc<User>,
}

/// The bearer token of a request.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The `key` query parameter (Gemini clients may authenticate with `?key=`).
fn query_key(req: &HttpRequest) -> Option<String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()?
        .get("key")
        .filter(|k| !k.trim().is_empty())
        .cloned()
}

/// The gateway key where a client of `dialect` sends it: OpenAI `Authorization: Bearer`;
/// Anthropic `x-api-key` (Claude Code may send Bearer); Gemini `x-goog-api-key` or `?key=`.
pub fn client_key(req: &HttpRequest, dialect: Dialect) -> Option<String> {
    match dialect {
        Dialect::Chat | Dialect::Responses => bearer(req).map(str::to_owned),
        Dialect::Messages => header(req, "x-api-key")
            .or_else(|| bearer(req))
            .map(str::to_owned),
        Dialect::Gemini => header(req, "x-goog-api-key")
            .map(str::to_owned)
            .or_else(|| query_key(req)),
    }
}

/// How a client of `dialect` is told to authenticate.
fn how_to_authenticate(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Chat | Dialect::Responses => {
            "Missing gateway key: send `Authorization: Bearer <key>`."
        }
        Dialect::Messages => "Missing gateway key: send `x-api-key: <key>`.",
        Dialect::Gemini => "Missing gateway key: send `x-goog-api-key: <key>` or `?key=<key>`.",
    }
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the finished response, built once per refused request"
)]
/// Authenticates and checks quota. The error says what is wrong without saying which keys exist.
pub fn admit(state: &PublicState, req: &HttpRequest, dialect: Dialect) -> Result<Caller, Refused> {
    // Every 401 is made here, for generation, model lists and token counts alike: counted once.
    let unauthorized = |message: &str| {
        state
            .system
            .counters
            .refused
            .count(switchyard_actors::Refusal::Unauthorized);
        error_response(
            dialect,
            401,
            "invalid_request_error",
            "invalid_api_key",
            message,
        )
    };
    let Some(token) = client_key(req, dialect) else {
        return Err(unauthorized(how_to_authenticate(dialect)).into());
    };
    let catalog = state.catalog.current();
    let Some(key) = catalog.gateway_keys.get(&hash_token(&token)).cloned() else {
        return Err(unauthorized("Invalid gateway key.").into());
    };
    let now = chrono::Utc::now();
    if key.expires_at.is_some_and(|at| at <= now) {
        return Err(unauthorized("This gateway key has expired.").into());
    }
    let Some(user) = catalog.users.get(&key.user_id).cloned() else {
        return Err(unauthorized("The owner of this gateway key is disabled.").into());
    };
    let ledger = &state.system.ledger;
    if key.is_standalone {
        if let Some(balance) = key.balance_usd {
            let spent = key.balance_used_usd + ledger.since(&key.id, catalog.loaded_at);
            let remaining = balance - spent;
            if remaining <= 0.0 {
                return Err(Refused {
                    response: error_response(
                        dialect,
                        429,
                        "insufficient_quota",
                        "quota_exceeded",
                        &format!("This key's balance is used up (remaining {remaining:.4} USD)."),
                    ),
                    caller: Some(Caller { key, user }),
                });
            }
        }
    } else if let (false, Some(quota)) = (user.is_admin, user.quota_usd) {
        let remaining = quota - user.used_usd - ledger.since(&user.id, catalog.loaded_at);
        if remaining <= 0.0 {
            return Err(Refused {
                response: error_response(
                    dialect,
                    429,
                    "insufficient_quota",
                    "quota_exceeded",
                    &format!("The user's quota is used up (remaining {remaining:.4} USD)."),
                ),
                caller: Some(Caller { key, user }),
            });
        }
    }
    Ok(Caller { key, user })
}

/// Authenticates without the quota check, for calls that cost nothing (model lists, token
/// counts): a used-up quota does not stop them.
#[expect(
    clippy::result_large_err,
    reason = "the error is the finished response, built once per refused request"
)]
pub fn authenticate(
    state: &PublicState,
    req: &HttpRequest,
    dialect: Dialect,
) -> Result<Caller, HttpResponse> {
    match admit(state, req, dialect) {
        Ok(caller) => Ok(caller),
        Err(refused) => refused.caller.ok_or(refused.response),
    }
}

/// The client headers that may be forwarded upstream (they select API behaviour, such as
/// `anthropic-version`), copied out of the request; the upstream builder filters them again.
///
/// The request's headers are walked once and their names compared: looking a name up by string
/// would parse it into a header name first, an allocation each for these non-standard names.
pub fn forwarded_headers(req: &HttpRequest) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter(|(name, _)| switchyard_upstream::FORWARDED_CLIENT_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// The most a request buffer is sized to before its bytes arrive: a client announcing a body
/// near the limit and sending nothing must not hold that much memory for it.
const PRESIZED_BODY_BYTES: usize = 1 << 20;

/// Reads the body up to the limit; a larger one is refused with 413 without reading it all.
/// The buffer is sized from `Content-Length` up front (up to [`PRESIZED_BODY_BYTES`]), so a
/// usual body is copied once instead of once per doubling of the buffer.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    dialect: Dialect,
) -> Result<web::Bytes, HttpResponse> {
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = web::BytesMut::with_capacity(announced.min(limit).min(PRESIZED_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error_response(
                dialect,
                400,
                "invalid_request_error",
                "invalid_body",
                &format!("Cannot read the body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(error_response(
                dialect,
                413,
                "invalid_request_error",
                "request_too_large",
                &format!("The body is larger than {limit} bytes."),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
