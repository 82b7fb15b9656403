//! The admin API's error type and its JSON envelope:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`, with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, error::JsonPayloadError, web};
use serde_json::json;
use std::fmt;
use switchyard_store::manage::ManageError;

/// An error answered to an admin client.
#[derive(Debug)]
pub enum ApiError {
    /// Malformed or invalid input (400), naming the field when there is one.
    Invalid {
        /// Field path, empty for the body as a whole.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No or a wrong admin token (401).
    Unauthorized,
    /// Unknown id (404).
    NotFound(String),
    /// Duplicate unique value (409).
    Conflict {
        /// The duplicated field.
        field: String,
        /// What clashes.
        message: String,
    },
    /// The body is larger than allowed (413).
    TooLarge(usize),
    /// The body is not JSON (415).
    NotJson,
    /// Something failed on our side (500); details are logged, not returned.
    Internal,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::NotJson => "unsupported_media_type",
            ApiError::Internal => "internal_error",
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Invalid { field, message } if field.is_empty() => f.write_str(message),
            ApiError::Invalid { field, message } | ApiError::Conflict { field, message } => {
                write!(f, "{field}: {message}")
            }
            ApiError::Unauthorized => {
                f.write_str("a valid admin token is required (Authorization: Bearer …)")
            }
            ApiError::NotFound(what) => f.write_str(what),
            ApiError::TooLarge(limit) => write!(f, "the body is larger than {limit} bytes"),
            ApiError::NotJson => {
                f.write_str("the body must be JSON (Content-Type: application/json)")
            }
            ApiError::Internal => f.write_str("internal error; see the gateway log"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "code": self.code(), "message": self.to_string() });
        if let ApiError::Invalid { field, .. } | ApiError::Conflict { field, .. } = self
            && !field.is_empty()
        {
            body["field"] = json!(field);
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(json!({ "error": body }))
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::Invalid { field, message } => ApiError::Invalid { field, message },
            ManageError::Conflict { field, message } => ApiError::Conflict { field, message },
            ManageError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            ManageError::Store(store) => {
                tracing::error!(error = %store, "admin operation failed in storage");
                ApiError::Internal
            }
        }
    }
}

/// JSON bodies: size limit, and errors in the admin envelope instead of actix's plain text.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            let api = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => ApiError::TooLarge(limit),
                JsonPayloadError::ContentType => ApiError::NotJson,
                JsonPayloadError::Deserialize(e) => ApiError::Invalid {
                    field: String::new(),
                    message: format!("malformed JSON: {e}"),
                },
                other => ApiError::Invalid {
                    field: String::new(),
                    message: other.to_string(),
                },
            };
            api.into()
        })
}

/// Query strings: errors in the admin envelope.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::Invalid {
            field: String::new(),
            message: format!("bad query string: {err}"),
        }
        .into()
    })
}

/// Path segments: errors in the admin envelope.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        ApiError::Invalid {
            field: String::new(),
            message: format!("bad path: {err}"),
        }
        .into()
    })
}
