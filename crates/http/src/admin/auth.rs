//! The admin token check. The token is compared by its SHA-256 digest in constant time; a
//! missing or wrong token is a 401 that says nothing about which.

use crate::AppState;
use crate::error::ApiError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;
use switchyard_store::secrets::{digests_equal, hash_token};

/// Middleware: lets the request through only with `Authorization: Bearer <admin token>`.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let expected = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.admin_token_hash.clone());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match (expected, presented) {
        (Some(expected), Some(token)) if digests_equal(&hash_token(token), &expected) => {
            next.call(req).await
        }
        _ => Err(ApiError::Unauthorized.into()),
    }
}
