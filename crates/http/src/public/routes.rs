//! The generation front doors: each only says which format it speaks (and, for Gemini, reads
//! the model and action from the path); the request path is shared (`serve`).

use super::admission::PublicState;
use super::errors::error_response;
use super::serve::{FrontDoor, serve};
use actix_web::{HttpRequest, HttpResponse, web};
use switchyard_core::ApiFormat;
use switchyard_formats::dialect::Dialect;
use switchyard_formats::gemini::generate::parse_path;

/// `POST /v1/chat/completions`.
pub async fn chat(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<PublicState>,
) -> HttpResponse {
    let door = FrontDoor {
        format: ApiFormat::OpenAi,
        gemini: None,
        json_array: false,
    };
    serve(req, payload, state, door).await
}

/// `POST /v1/responses` (Codex and the Responses API).
pub async fn responses(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<PublicState>,
) -> HttpResponse {
    let door = FrontDoor {
        format: ApiFormat::OpenAiCli,
        gemini: None,
        json_array: false,
    };
    serve(req, payload, state, door).await
}

/// `POST /v1/messages`; `x-app: cli` marks Claude Code.
pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<PublicState>,
) -> HttpResponse {
    let cli = header_is(&req, "x-app", |v| v.eq_ignore_ascii_case("cli"));
    let door = FrontDoor {
        format: if cli {
            ApiFormat::ClaudeCli
        } else {
            ApiFormat::Claude
        },
        gemini: None,
        json_array: false,
    };
    serve(req, payload, state, door).await
}

/// `POST /v1beta/models/{model}:generateContent|streamGenerateContent` (and `/v1/models/…`);
/// the Gemini CLI is recognised by `x-app` or its user agent.
pub async fn gemini(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<PublicState>,
    target: web::Path<String>,
) -> HttpResponse {
    let Some((model, stream)) = parse_path(&target) else {
        return error_response(
            Dialect::Gemini,
            404,
            "invalid_request_error",
            "unknown_action",
            "Only `:generateContent` and `:streamGenerateContent` are served.",
        );
    };
    let cli = header_is(&req, "x-app", |v| v.to_ascii_lowercase().contains("cli"))
        || header_is(&req, "user-agent", |v| {
            let v = v.to_ascii_lowercase();
            v.contains("geminicli") || v.contains("gemini-cli")
        });
    let door = FrontDoor {
        format: if cli {
            ApiFormat::GeminiCli
        } else {
            ApiFormat::Gemini
        },
        json_array: stream && !wants_sse(&req),
        gemini: Some((model, stream)),
    };
    serve(req, payload, state, door).await
}

/// `?alt=sse`: the Gemini client reads server-sent events (else one streamed JSON array).
fn wants_sse(req: &HttpRequest) -> bool {
    req.query_string()
        .split('&')
        .any(|pair| pair.eq_ignore_ascii_case("alt=sse"))
}

fn header_is(req: &HttpRequest, name: &str, test: impl Fn(&str) -> bool) -> bool {
    req.headers()
        .get_all(name)
        .any(|v| v.to_str().is_ok_and(&test))
}
