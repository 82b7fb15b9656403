//! The one request path every generation front door shares: admit, read and validate the body in
//! the caller's dialect, hand it to a per-request Orchestrator started on this worker's own
//! Arbiter, and turn its settlement into the response — errors in the caller's envelope.

use super::admission::{Caller, PublicState, admit, forwarded_headers, read_body};
use super::errors::{Reply, error_response, failure_response};
use super::json_array::JsonArrayFraming;
use actix::Actor;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::Stream;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use switchyard_actors::Refusal;
use switchyard_actors::orchestrator::{
    Execute, InFlight, Orchestrator, RelayStream, RequestContext, Settled,
};
use switchyard_core::ApiFormat;
use switchyard_formats::dialect::{ClientRequest, Dialect, RequestError};
use switchyard_formats::envelope::GatewayError;
use switchyard_formats::{anthropic, gemini, openai};

/// Header that lets a client require (`cap`) or refuse (`-cap`) capabilities; read
/// case-insensitively (fix of the reference's §11.1 #13).
const REQUIRE_CAPABILITY: HeaderName = HeaderName::from_static("x-require-capability");

// Header names the handler reads or writes on every request, made once: a name given as a
// string is parsed per use, and one outside the standard set allocates each time.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// Which front door a request came through.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    /// The client's format (its dialect follows).
    pub format: ApiFormat,
    /// Gemini: the model and streaming flag from the path.
    pub gemini: Option<(String, bool)>,
    /// Gemini without `?alt=sse`: a stream is one JSON array, not server-sent events.
    pub json_array: bool,
}

impl FrontDoor {
    fn dialect(&self) -> Dialect {
        Dialect::of(self.format)
    }

    fn parse(&self, body: web::Bytes) -> Result<ClientRequest, RequestError> {
        match (self.dialect(), &self.gemini) {
            (Dialect::Chat, _) => openai::chat::parse_request(body),
            (Dialect::Responses, _) => openai::responses::parse_request(body),
            (Dialect::Messages, _) => anthropic::messages::parse_request(body),
            (Dialect::Gemini, Some((model, stream))) => {
                gemini::generate::parse_request(body, model, *stream)
            }
            (Dialect::Gemini, None) => Err(RequestError::new("model", "is required in the path")),
        }
    }
}

/// Serves one generation request.
pub async fn serve(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<PublicState>,
    door: FrontDoor,
) -> HttpResponse {
    let started = Instant::now();
    let dialect = door.dialect();
    let request_id = new_request_id();
    let client_request_id: Option<String> = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect());
    // An authenticated client's refused request is recorded too, with the status it received.
    let refuse = |caller: &Caller,
                  model: Option<&str>,
                  response: HttpResponse,
                  reason: Refusal,
                  why: &str| {
        state.system.counters.refused.count(reason);
        state.system.record_refusal(
            &request_id,
            client_request_id.clone(),
            &caller.key,
            door.format,
            model,
            response.status().as_u16(),
            why,
        );
        with_request_id(response, &request_id)
    };
    let caller = match admit(&state, &req, dialect) {
        Ok(caller) => caller,
        Err(refused) => {
            return match &refused.caller {
                Some(caller) => refuse(
                    caller,
                    None,
                    refused.response,
                    Refusal::QuotaExceeded,
                    "quota or balance used up",
                ),
                // Not recorded (nobody to attribute it to); `admit` counted it.
                None => with_request_id(refused.response, &request_id),
            };
        }
    };
    let Some(in_flight) =
        InFlight::acquire(&state.system.in_flight, state.system.config.max_in_flight)
    else {
        let mut response = error_response(
            dialect,
            503,
            "server_error",
            "overloaded",
            "The gateway is at its in-flight limit; retry shortly.",
        );
        response.headers_mut().insert(
            HeaderName::from_static("retry-after"),
            HeaderValue::from_static("1"),
        );
        return refuse(
            &caller,
            None,
            response,
            Refusal::Overloaded,
            "gateway at its in-flight limit",
        );
    };
    let body = match read_body(&req, payload, state.max_body_bytes, dialect).await {
        Ok(body) => body,
        Err(response) => {
            return refuse(
                &caller,
                None,
                response,
                Refusal::BodyRefused,
                "request body refused",
            );
        }
    };
    let request = match door.parse(body.clone()) {
        Ok(request) => request,
        Err(e) => {
            let message = e.to_string();
            let response = Reply {
                dialect,
                error: GatewayError {
                    status: 400,
                    error_type: "invalid_request_error",
                    code: "invalid_request",
                    message: &message,
                    // OpenAI names the failing field in `param`.
                    param: (!e.field.is_empty()).then_some(e.field.as_str()),
                },
                retry_after: None,
                request_id: None,
            }
            .response();
            let model = door.gemini.as_ref().map(|(m, _)| m.clone()).or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_owned))
            });
            return refuse(
                &caller,
                model.as_deref(),
                response,
                Refusal::InvalidRequest,
                &message,
            );
        }
    };
    let capabilities = capabilities(&req, &caller, &request.model, dialect);
    let (affinity_key, affinity_rule) =
        state
            .affinity
            .key_for(dialect, &req, &request.body, &caller.key.id);
    let client_headers = forwarded_headers(&req);
    let context = RequestContext {
        system: state.system.clone(),
        request_id: request_id.clone(),
        client_request_id,
        format: door.format,
        gateway_key: caller.key,
        user: caller.user,
        request,
        affinity_key,
        affinity_rule,
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
            return Reply {
                dialect,
                error: GatewayError {
                    status: 500,
                    error_type: "server_error",
                    code: "internal_error",
                    message: "The request could not be settled.",
                    param: None,
                },
                retry_after: None,
                request_id: Some(&request_id),
            }
            .response();
        }
    };
    match settled {
        Ok(Settled::Json { body }) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((X_REQUEST_ID, request_id))
            .body(body),
        Ok(Settled::Stream(relay)) => HttpResponse::Ok()
            .content_type(if door.json_array {
                "application/json"
            } else {
                "text/event-stream"
            })
            .insert_header(("cache-control", "no-cache, no-transform"))
            .insert_header((X_ACCEL_BUFFERING, "no"))
            .insert_header((X_REQUEST_ID, request_id))
            .streaming(Guarded {
                relay,
                array: door.json_array.then(JsonArrayFraming::default),
                _in_flight: in_flight,
            }),
        Err(failure) => failure_response(dialect, &failure, Some(&request_id)),
    }
}

/// The response with the request's id in `x-request-id`.
fn with_request_id(mut response: HttpResponse, request_id: &str) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

/// Capability requirements: the user's per-model settings, then the key's forced ones, then
/// the request header (later sources override earlier ones); finally, for Anthropic clients,
/// `context_1m` when `anthropic-beta` asks for the 1M context and nothing above decided it.
fn capabilities(
    req: &HttpRequest,
    caller: &Caller,
    model: &str,
    dialect: Dialect,
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
    for value in req.headers().get_all(&REQUIRE_CAPABILITY) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.strip_prefix('-') {
                Some(name) => caps.insert(name.to_ascii_lowercase(), false),
                None => caps.insert(item.to_ascii_lowercase(), true),
            };
        }
    }
    if dialect == Dialect::Messages && !caps.contains_key("context_1m") {
        let wants_1m = req.headers().get_all(&ANTHROPIC_BETA).any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("context-1m"))
        });
        if wants_1m {
            caps.insert("context_1m".into(), true);
        }
    }
    caps
}

/// The relayed stream plus the request's in-flight slot, released when the body ends or the
/// client goes away.
struct Guarded {
    relay: Box<RelayStream>,
    /// Present when the events are re-framed as one JSON array.
    array: Option<JsonArrayFraming>,
    _in_flight: InFlight,
}

impl Stream for Guarded {
    type Item = Result<web::Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut *this.relay).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => match &mut this.array {
                Some(array) => Poll::Ready(Some(Ok(array.frame(&bytes)))),
                None => Poll::Ready(Some(Ok(bytes))),
            },
            Poll::Ready(Some(Err(never))) => match never {},
            Poll::Ready(None) => match this.array.take() {
                Some(mut array) => Poll::Ready(Some(Ok(array.close()))),
                None => Poll::Ready(None),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A 128-bit, time-ordered (UUID v7) request id. Its random bits come from the thread's
/// generator: `Uuid::now_v7` asks the kernel for them, a system call per request.
fn new_request_id() -> String {
    let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::new_request_id;

    #[test]
    fn request_ids_are_distinct_time_ordered_uuid_v7() {
        let first = new_request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7, "{id}");
            assert!(*id > first, "{id} sorts before an earlier id {first}");
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
