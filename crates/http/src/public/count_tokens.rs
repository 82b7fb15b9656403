//! `POST /v1/messages/count_tokens`: Anthropic's token counter, answered by an Anthropic-format
//! upstream that serves the model (see `switchyard_actors::orchestrator::count_tokens`).

use super::admission::{PublicState, authenticate, forwarded_headers, read_body};
use super::errors::{error_response, failure_response};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use switchyard_actors::orchestrator::{CountTokens, count_tokens as count};
use switchyard_formats::dialect::Dialect;

/// Handles one count request.
pub async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<PublicState>,
) -> HttpResponse {
    let dialect = Dialect::Messages;
    let caller = match authenticate(&state, &req, dialect) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let body = match read_body(&req, payload, state.max_body_bytes, dialect).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let invalid = |message: &str| {
        error_response(
            dialect,
            400,
            "invalid_request_error",
            "invalid_request",
            message,
        )
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return invalid("The body must be a JSON object.");
    };
    let Some(model) = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .map(str::to_owned)
    else {
        return invalid("model: is required");
    };
    if !body.get("messages").is_some_and(Value::is_array) {
        return invalid("messages: is required and must be an array");
    }
    let client_headers = forwarded_headers(&req);
    let request = CountTokens {
        model,
        body,
        gateway_key: caller.key,
        user: caller.user,
        client_headers,
    };
    match count(&state.system, request).await {
        Ok(counted) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(counted.status)
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
        )
        .content_type("application/json")
        .body(counted.body),
        Err(failure) => failure_response(dialect, &failure, None),
    }
}
