//! Admission: the gateway key (looked up by hash in the in-memory catalog), its user, quota or
//! balance, the global in-flight cap, and the body size — each refused with a clear error in
//! the caller's format before any routing work.

use super::errors::openai_error;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use std::sync::Arc;
use switchyard_actors::ActorSystem;
use switchyard_core::catalog::{GatewayKey, User};
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

/// The bearer token of an OpenAI-style request.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the finished response, built once per refused request"
)]
/// Authenticates and checks quota. The error says what is wrong without saying which keys exist.
pub fn admit(state: &PublicState, req: &HttpRequest) -> Result<Caller, Refused> {
    let unauthorized = |message: &str| {
        openai_error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            message,
            None,
            None,
        )
    };
    let Some(token) = bearer(req) else {
        return Err(
            unauthorized("Missing gateway key: send `Authorization: Bearer <key>`.").into(),
        );
    };
    let catalog = state.catalog.current();
    let Some(key) = catalog.gateway_keys.get(&hash_token(token)).cloned() else {
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
                    response: openai_error(
                        429,
                        "insufficient_quota",
                        "quota_exceeded",
                        &format!("This key's balance is used up (remaining {remaining:.4} USD)."),
                        None,
                        None,
                    ),
                    caller: Some(Caller { key, user }),
                });
            }
        }
    } else if let (false, Some(quota)) = (user.is_admin, user.quota_usd) {
        let remaining = quota - user.used_usd - ledger.since(&user.id, catalog.loaded_at);
        if remaining <= 0.0 {
            return Err(Refused {
                response: openai_error(
                    429,
                    "insufficient_quota",
                    "quota_exceeded",
                    &format!("The user's quota is used up (remaining {remaining:.4} USD)."),
                    None,
                    None,
                ),
                caller: Some(Caller { key, user }),
            });
        }
    }
    Ok(Caller { key, user })
}

/// Reads the body up to the limit; a larger one is refused with 413 without reading it all.
pub async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HttpResponse> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            openai_error(
                400,
                "invalid_request_error",
                "invalid_body",
                &format!("Cannot read the body: {e}"),
                None,
                None,
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(openai_error(
                413,
                "invalid_request_error",
                "request_too_large",
                &format!("The body is larger than {limit} bytes."),
                None,
                None,
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
