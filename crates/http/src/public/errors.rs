//! Errors of the OpenAI front door, in OpenAI's envelope:
//! `{"error": {"message", "type", "param", "code"}}`, with `Retry-After` where it applies.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use switchyard_actors::orchestrator::Failure;

/// An OpenAI-style error response.
pub fn openai_error(
    status: u16,
    error_type: &str,
    code: &str,
    message: &str,
    retry_after: Option<u64>,
    request_id: Option<&str>,
) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if let Some(seconds) = retry_after {
        response.insert_header(("retry-after", seconds.to_string()));
    }
    if let Some(id) = request_id {
        response.insert_header(("x-request-id", id.to_owned()));
    }
    response.json(switchyard_formats::openai::chat::error_envelope(
        message,
        error_type,
        Some(code),
    ))
}

/// The orchestrator's final answer as a response.
pub fn failure_response(failure: &Failure, request_id: &str) -> HttpResponse {
    openai_error(
        failure.status,
        failure.error_type,
        &failure.code,
        &failure.message,
        failure.retry_after,
        Some(request_id),
    )
}
