//! `GET /v1/models[/{id}]` and `GET /v1beta/models[/{id}]`: the models the caller's key may use,
//! in the caller's format. `/v1/models` serves Anthropic clients (`anthropic-version` sent),
//! Gemini clients (`x-goog-api-key` or `?key=`) and OpenAI clients (the
//! rest); `/v1beta/models` is Gemini's.

use super::admission::{Caller, PublicState, authenticate};
use super::errors::error_response;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use std::sync::Arc;
use switchyard_core::catalog::GlobalModel;
use switchyard_core::routing::visible_models;
use switchyard_formats::dialect::Dialect;

/// The dialect a model-list request is answered in.
fn detect(req: &HttpRequest) -> Dialect {
    let has = |name: &str| req.headers().contains_key(name);
    // Anthropic's SDKs always send `anthropic-version` (with `x-api-key` or a bearer token);
    // OpenAI's never do.
    if has("anthropic-version") {
        Dialect::Messages
    } else if has("x-goog-api-key") || req.query_string().split('&').any(|p| p.starts_with("key="))
    {
        Dialect::Gemini
    } else {
        Dialect::Chat
    }
}

/// The caller's models, or the refusal.
#[expect(
    clippy::result_large_err,
    reason = "the error is the finished response, built once per refused request"
)]
fn visible(
    state: &PublicState,
    req: &HttpRequest,
    dialect: Dialect,
) -> Result<Vec<Arc<GlobalModel>>, HttpResponse> {
    let Caller { key, user } = authenticate(state, req, dialect)?;
    let catalog = state.catalog.current();
    Ok(visible_models(&catalog, &key, &user))
}

fn created(state: &PublicState) -> i64 {
    state
        .catalog
        .current()
        .loaded_at
        .map_or(0, |at| at.timestamp())
}

fn entry(dialect: Dialect, model: &GlobalModel, created: i64) -> Value {
    match dialect {
        Dialect::Messages => json!({
            "type": "model",
            "id": model.name,
            "display_name": model.name,
            "created_at": chrono::DateTime::from_timestamp(created, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
        Dialect::Gemini => json!({
            "name": format!("models/{}", model.name),
            "displayName": model.name,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
        }),
        Dialect::Chat | Dialect::Responses => json!({
            "id": model.name,
            "object": "model",
            "created": created,
            "owned_by": "switchyard",
        }),
    }
}

fn listing(state: &PublicState, req: &HttpRequest, dialect: Dialect) -> HttpResponse {
    let models = match visible(state, req, dialect) {
        Ok(models) => models,
        Err(response) => return response,
    };
    let created = created(state);
    let data: Vec<Value> = models.iter().map(|m| entry(dialect, m, created)).collect();
    let body = match dialect {
        Dialect::Messages => json!({
            "data": data,
            "has_more": false,
            "first_id": models.first().map(|m| &m.name),
            "last_id": models.last().map(|m| &m.name),
        }),
        Dialect::Gemini => json!({ "models": data }),
        Dialect::Chat | Dialect::Responses => json!({ "object": "list", "data": data }),
    };
    HttpResponse::Ok().json(body)
}

fn one(state: &PublicState, req: &HttpRequest, dialect: Dialect, id: &str) -> HttpResponse {
    let models = match visible(state, req, dialect) {
        Ok(models) => models,
        Err(response) => return response,
    };
    let name = id.strip_prefix("models/").unwrap_or(id);
    match models.iter().find(|m| m.name == name) {
        Some(model) => HttpResponse::Ok().json(entry(dialect, model, created(state))),
        None => error_response(
            dialect,
            404,
            "invalid_request_error",
            "model_not_found",
            &format!("The model `{name}` does not exist or this key may not use it."),
        ),
    }
}

/// `GET /v1/models`.
pub async fn list(req: HttpRequest, state: web::Data<PublicState>) -> HttpResponse {
    listing(&state, &req, detect(&req))
}

/// `GET /v1/models/{id}`.
pub async fn get(
    req: HttpRequest,
    state: web::Data<PublicState>,
    id: web::Path<String>,
) -> HttpResponse {
    one(&state, &req, detect(&req), &id)
}

/// `GET /v1beta/models`.
pub async fn list_gemini(req: HttpRequest, state: web::Data<PublicState>) -> HttpResponse {
    listing(&state, &req, Dialect::Gemini)
}

/// `GET /v1beta/models/{id}`.
pub async fn get_gemini(
    req: HttpRequest,
    state: web::Data<PublicState>,
    id: web::Path<String>,
) -> HttpResponse {
    one(&state, &req, Dialect::Gemini, &id)
}
