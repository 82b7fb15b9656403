//! Errors of the public routes, each in the caller's own envelope (see
//! `switchyard_formats::envelope`), with `Retry-After` and `x-request-id` where they apply.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use switchyard_actors::orchestrator::Failure;
use switchyard_formats::dialect::Dialect;
use switchyard_formats::envelope::{GatewayError, error_body};

/// An error answer to a client of `dialect`.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// The caller's dialect.
    pub dialect: Dialect,
    /// Status, OpenAI type, code and message.
    pub error: GatewayError<'a>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// The request's id, when one was assigned.
    pub request_id: Option<&'a str>,
}

impl Reply<'_> {
    /// The response.
    pub fn response(&self) -> HttpResponse {
        let status =
            StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("retry-after", seconds.to_string()));
        }
        if let Some(id) = self.request_id {
            response.insert_header(("x-request-id", id.to_owned()));
        }
        response.json(error_body(self.dialect, &self.error))
    }
}

/// A plain error for a client of `dialect`.
pub fn error_response(
    dialect: Dialect,
    status: u16,
    error_type: &str,
    code: &str,
    message: &str,
) -> HttpResponse {
    Reply {
        dialect,
        error: GatewayError {
            status,
            error_type,
            code,
            message,
            param: None,
        },
        retry_after: None,
        request_id: None,
    }
    .response()
}

/// The orchestrator's final answer as a response.
pub fn failure_response(
    dialect: Dialect,
    failure: &Failure,
    request_id: Option<&str>,
) -> HttpResponse {
    Reply {
        dialect,
        error: GatewayError {
            status: failure.status,
            error_type: failure.error_type,
            code: &failure.code,
            message: &failure.message,
            param: None,
        },
        retry_after: failure.retry_after,
        request_id,
    }
    .response()
}
