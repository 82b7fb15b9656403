//! `POST /v1/chat/completions`.

use super::admission::{PublicState, admit, read_body};
use super::errors::{failure_response, openai_error};
use actix::Actor;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::Stream;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use switchyard_actors::orchestrator::{
    Execute, InFlight, Orchestrator, RelayStream, RequestContext, Settled,
};
use switchyard_core::ApiFormat;
use switchyard_formats::openai::chat::parse_request;
use switchyard_upstream::FORWARDED_CLIENT_HEADERS;

/// Header that lets a client require (`cap`) or refuse (`-cap`) capabilities; read
/// case-insensitively (fix of the reference's §11.1 #13).
const REQUIRE_CAPABILITY: &str = "x-require-capability";

/// Handles one Chat Completions request.
pub async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<PublicState>,
) -> HttpResponse {
    let started = Instant::now();
    let request_id = uuid::Uuid::now_v7().to_string();
    let client_request_id: Option<String> = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect());
    // An authenticated client's refused request is recorded too, with the status it received.
    let refuse = |caller: &super::admission::Caller,
                  model: Option<&str>,
                  mut response: HttpResponse,
                  message: &str| {
        state.system.record_refusal(
            &request_id,
            client_request_id.clone(),
            &caller.key,
            ApiFormat::OpenAi,
            model,
            response.status().as_u16(),
            message,
        );
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-request-id"),
                value,
            );
        }
        response
    };
    let caller = match admit(&state, &req) {
        Ok(caller) => caller,
        Err(refused) => {
            return match &refused.caller {
                Some(caller) => refuse(caller, None, refused.response, "quota or balance used up"),
                None => refused.response,
            };
        }
    };
    let Some(in_flight) =
        InFlight::acquire(&state.system.in_flight, state.system.config.max_in_flight)
    else {
        return openai_error(
            503,
            "server_error",
            "overloaded",
            "The gateway is at its in-flight limit; retry shortly.",
            Some(1),
            None,
        );
    };
    let body = match read_body(payload, state.max_body_bytes).await {
        Ok(body) => body,
        Err(response) => return refuse(&caller, None, response, "request body refused"),
    };
    let request = match parse_request(&body) {
        Ok(request) => request,
        Err(e) => {
            let message = if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            };
            // OpenAI puts the failing field in `param`.
            let param = (!e.field.is_empty()).then_some(e.field.as_str());
            let envelope = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": "invalid_request"}});
            let model = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_owned));
            return refuse(
                &caller,
                model.as_deref(),
                HttpResponse::BadRequest().json(envelope),
                &message,
            );
        }
    };
    let capabilities = capabilities(&req, &caller, &request.model);
    // Only the headers that may be forwarded upstream are copied out of the request.
    let client_headers: Vec<(String, String)> = FORWARDED_CLIENT_HEADERS
        .iter()
        .flat_map(|name| {
            req.headers()
                .get_all(*name)
                .filter_map(|v| Some(((*name).to_owned(), v.to_str().ok()?.to_owned())))
        })
        .collect();
    let context = RequestContext {
        system: state.system.clone(),
        request_id: request_id.clone(),
        client_request_id,
        format: ApiFormat::OpenAi,
        gateway_key: caller.key,
        user: caller.user,
        request,
        capabilities,
        client_headers,
        started,
    };
    // Started on this worker's Arbiter: the request never hops threads for its orchestrator.
    // `_presence` lives as long as this handler: actix drops the handler when the client goes
    // away, and the orchestrator then stops instead of answering nobody.
    let (orchestrator, _presence) = Orchestrator::watching(context);
    let orchestrator = state.system.orchestrators.handle(orchestrator.start());
    let budget = state.system.config.request_deadline + Duration::from_secs(5);
    let settled = match orchestrator.ask(Execute, budget).await {
        Ok(settled) => settled,
        Err(e) => {
            tracing::error!(request_id = %request_id, error = %e, "orchestrator did not settle");
            return openai_error(
                500,
                "server_error",
                "internal_error",
                "The request could not be settled.",
                None,
                Some(&request_id),
            );
        }
    };
    match settled {
        Ok(Settled::Json { body }) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("x-request-id", request_id))
            .body(body),
        Ok(Settled::Stream(relay)) => HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache, no-transform"))
            .insert_header(("x-accel-buffering", "no"))
            .insert_header(("x-request-id", request_id))
            .streaming(Guarded {
                relay,
                _in_flight: in_flight,
            }),
        Err(failure) => failure_response(&failure, &request_id),
    }
}

/// Capability requirements: the user's per-model settings, then the key's forced ones, then
/// the request header (later sources override earlier ones).
fn capabilities(
    req: &HttpRequest,
    caller: &super::admission::Caller,
    model: &str,
) -> BTreeMap<String, bool> {
    let mut caps = BTreeMap::new();
    if let Some(settings) = caller.user.model_capability_settings.get(model) {
        caps.extend(settings.iter().map(|(k, v)| (k.clone(), *v)));
    }
    caps.extend(
        caller
            .key
            .force_capabilities
            .iter()
            .map(|(k, v)| (k.clone(), *v)),
    );
    for value in req.headers().get_all(REQUIRE_CAPABILITY) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.strip_prefix('-') {
                Some(name) => caps.insert(name.to_ascii_lowercase(), false),
                None => caps.insert(item.to_ascii_lowercase(), true),
            };
        }
    }
    caps
}

/// The relayed stream plus the request's in-flight slot, released when the body ends or the
/// client goes away.
struct Guarded {
    relay: Box<RelayStream>,
    _in_flight: InFlight,
}

impl Stream for Guarded {
    type Item = Result<web::Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut *self.relay).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(bytes))),
            Poll::Ready(Some(Err(never))) => match never {},
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
