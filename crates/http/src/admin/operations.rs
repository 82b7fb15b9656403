//! Admin views onto the running system: key health (view, recover), concurrency and learned
//! limits (view, reset), cache affinity (view, clear), the trace of one request, and usage.

use super::resources::to_json;
use crate::AppState;
use crate::error::ApiError;
use actix_web::{HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use switchyard_actors::health::messages::{HealthOf, RecentEvents, RecoverKey};
use switchyard_actors::slots::messages::{LimitsOf, ResetKey};
use switchyard_store::entity::{endpoint, provider, provider_key, request_attempt, usage};

const ASK: Duration = Duration::from_secs(5);

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/health/events", web::get().to(health_events))
        .route("/health/recover", web::post().to(recover))
        .route("/slots", web::get().to(slots))
        .route("/slots", web::delete().to(reset_all_slots))
        .route("/slots/{key_id}", web::delete().to(reset_slots))
        .route("/affinity", web::get().to(affinity))
        .route("/affinity", web::delete().to(clear_affinity))
        .route("/requests/{request_id}/trace", web::get().to(trace))
        .route("/usage", web::get().to(usage_list));
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "admin view: an actor did not answer");
    ApiError::Internal
}

/// Key names and masked previews by key id, from the current catalog snapshot.
fn key_names(state: &AppState) -> HashMap<String, (String, String)> {
    state
        .catalog
        .current()
        .providers
        .iter()
        .flat_map(|p| {
            p.endpoints
                .iter()
                .flat_map(move |e| e.keys.iter().map(move |k| (p, k)))
        })
        .map(|(p, k)| {
            (
                k.id.clone(),
                (format!("{} / {}", p.name, k.name), k.secret.preview()),
            )
        })
        .collect()
}

async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let names = key_names(&state);
    let mut keys = Vec::new();
    for shard in state.system.health.all() {
        let list = shard
            .ask(
                HealthOf {
                    key_id: None,
                    now: chrono::Utc::now(),
                },
                ASK,
            )
            .await
            .map_err(unavailable)?;
        keys.extend(list);
    }
    let items: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            let mut v = to_json(&k).unwrap_or_default();
            if let Some((name, preview)) = names.get(&k.key_id) {
                v["key_name"] = json!(name);
                v["key_preview"] = json!(preview);
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "keys": items })))
}

async fn health_events(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut events = Vec::new();
    for shard in state.system.health.all() {
        events.extend(shard.ask(RecentEvents, ASK).await.map_err(unavailable)?);
    }
    events.sort_by_key(|e| e.at);
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyScope {
    #[serde(default)]
    key_id: Option<String>,
}

async fn recover(
    state: web::Data<AppState>,
    body: Option<web::Json<KeyScope>>,
) -> Result<HttpResponse, ApiError> {
    let key_id = body.and_then(|b| b.into_inner().key_id);
    let mut recovered = 0;
    let shards = match &key_id {
        Some(id) => vec![state.system.health.pick(id).clone()],
        None => state.system.health.all().to_vec(),
    };
    for shard in shards {
        recovered += shard
            .ask(
                RecoverKey {
                    key_id: key_id.clone(),
                },
                ASK,
            )
            .await
            .map_err(unavailable)?;
    }
    Ok(HttpResponse::Ok().json(json!({ "recovered": recovered })))
}

async fn slots(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let names = key_names(&state);
    let mut items = Vec::new();
    for shard in state.system.slots.all() {
        for limits in shard
            .ask(LimitsOf { key_id: None }, ASK)
            .await
            .map_err(unavailable)?
        {
            let in_flight = state.system.state.in_flight(&limits.key_id).await.ok();
            let mut v = to_json(&limits).unwrap_or_default();
            v["in_flight"] = json!(in_flight);
            if let Some((name, preview)) = names.get(&limits.key_id) {
                v["key_name"] = json!(name);
                v["key_preview"] = json!(preview);
            }
            items.push(v);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "keys": items })))
}

async fn reset_slots(
    state: web::Data<AppState>,
    key_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key_id = key_id.into_inner();
    let reset = state
        .system
        .slots
        .pick(&key_id)
        .ask(
            ResetKey {
                key_id: Some(key_id.clone()),
            },
            ASK,
        )
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(json!({ "reset": reset })))
}

async fn reset_all_slots(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut reset = 0;
    for shard in state.system.slots.all() {
        reset += shard
            .ask(ResetKey { key_id: None }, ASK)
            .await
            .map_err(unavailable)?;
    }
    Ok(HttpResponse::Ok().json(json!({ "reset": reset })))
}

#[derive(Debug, Deserialize)]
struct AffinityQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    client: Option<String>,
}

async fn affinity(
    state: web::Data<AppState>,
    query: web::Query<AffinityQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).min(10_000);
    let entries = state
        .system
        .state
        .affinity_list(limit)
        .await
        .map_err(unavailable)?;
    let items: Vec<Value> = entries
        .into_iter()
        .filter(|(k, _)| query.client.as_ref().is_none_or(|c| &k.affinity_key == c))
        .map(|(k, e)| json!({ "client": k.affinity_key, "api_format": k.api_format, "global_model_id": k.global_model_id, "entry": to_json(&e).unwrap_or_default() }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "entries": items })))
}

async fn clear_affinity(
    state: web::Data<AppState>,
    query: web::Query<AffinityQuery>,
) -> Result<HttpResponse, ApiError> {
    let cleared = state
        .system
        .state
        .affinity_clear(query.client.as_deref())
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(json!({ "cleared": cleared })))
}

/// Every attempt of a request with provider, endpoint and key names and the masked key.
async fn trace(
    state: web::Data<AppState>,
    request_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let request_id = request_id.into_inner();
    let db = &state.db;
    let internal = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "trace query failed");
        ApiError::Internal
    };
    let usage_row = usage::Entity::find()
        .filter(usage::Column::RequestId.eq(request_id.clone()))
        .one(db)
        .await
        .map_err(internal)?;
    let attempts = request_attempt::Entity::find()
        .filter(request_attempt::Column::RequestId.eq(request_id.clone()))
        .order_by_asc(request_attempt::Column::CandidateIndex)
        .order_by_asc(request_attempt::Column::RetryIndex)
        .all(db)
        .await
        .map_err(internal)?;
    if usage_row.is_none() && attempts.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no request with id `{request_id}` (records are written in batches: retry in a moment)"
        )));
    }
    let mut items = Vec::with_capacity(attempts.len());
    for a in attempts {
        let provider_name = match &a.provider_id {
            Some(id) => provider::Entity::find_by_id(id.clone())
                .one(db)
                .await
                .map_err(internal)?
                .map(|p| p.name),
            None => None,
        };
        let api_format = match &a.endpoint_id {
            Some(id) => endpoint::Entity::find_by_id(id.clone())
                .one(db)
                .await
                .map_err(internal)?
                .map(|e| e.api_format),
            None => None,
        };
        let key = match &a.provider_key_id {
            Some(id) => provider_key::Entity::find_by_id(id.clone())
                .one(db)
                .await
                .map_err(internal)?,
            None => None,
        };
        items.push(json!({
            "candidate_index": a.candidate_index,
            "retry_index": a.retry_index,
            "status": a.status,
            "skip_reason": a.skip_reason,
            "is_cached": a.is_cached,
            "status_code": a.status_code,
            "error_type": a.error_type,
            "error_message": a.error_message,
            "latency_ms": a.latency_ms,
            "concurrent_requests": a.concurrent_requests,
            "provider_id": a.provider_id,
            "provider_name": provider_name,
            "endpoint_id": a.endpoint_id,
            "api_format": api_format,
            "provider_key_id": a.provider_key_id,
            "key_name": key.as_ref().map(|k| k.name.clone()),
            "key_preview": key.as_ref().map(|k| k.secret_preview.clone()),
            "started_at": a.started_at,
            "finished_at": a.finished_at,
            // Conversion details (`{"converted": {"from", "to"}}`) and the like.
            "extra": a.extra,
        }));
    }
    Ok(HttpResponse::Ok().json(json!({
        "request_id": request_id,
        "usage": usage_row.map(usage_json),
        "attempts": items,
    })))
}

fn usage_json(u: usage::Model) -> Value {
    json!({
        "request_id": u.request_id, "client_request_id": u.client_request_id,
        "status": u.status, "status_code": u.status_code, "error_message": u.error_message,
        "model": u.model, "target_model": u.target_model, "provider_name": u.provider_name,
        "provider_id": u.provider_id, "endpoint_id": u.endpoint_id, "provider_key_id": u.provider_key_id,
        "user_id": u.user_id, "gateway_key_id": u.gateway_key_id, "api_format": u.api_format,
        "upstream_format": u.upstream_format, "is_stream": u.is_stream,
        "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "total_tokens": u.total_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens, "cache_read_input_tokens": u.cache_read_input_tokens,
        "reasoning_tokens": u.reasoning_tokens, "request_cost_usd": u.request_cost_usd,
        "total_cost_usd": u.total_cost_usd, "actual_total_cost_usd": u.actual_total_cost_usd,
        "response_time_ms": u.response_time_ms, "first_byte_time_ms": u.first_byte_time_ms,
        "created_at": u.created_at, "finished_at": u.finished_at,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    #[serde(default)]
    gateway_key_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    provider_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    per_page: Option<u64>,
}

/// Usage rows, newest first, with filters.
async fn usage_list(
    state: web::Data<AppState>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(50);
    if page == 0 {
        return Err(ApiError::Invalid {
            field: "page".into(),
            message: "must be at least 1".into(),
        });
    }
    if !(1..=500).contains(&per_page) {
        return Err(ApiError::Invalid {
            field: "per_page".into(),
            message: "must be between 1 and 500".into(),
        });
    }
    let mut select = usage::Entity::find();
    if let Some(v) = q.gateway_key_id {
        select = select.filter(usage::Column::GatewayKeyId.eq(v));
    }
    if let Some(v) = q.user_id {
        select = select.filter(usage::Column::UserId.eq(v));
    }
    if let Some(v) = q.provider_id {
        select = select.filter(usage::Column::ProviderId.eq(v));
    }
    if let Some(v) = q.status {
        select = select.filter(usage::Column::Status.eq(v));
    }
    if let Some(v) = q.since {
        select = select.filter(usage::Column::CreatedAt.gte(v));
    }
    if let Some(v) = q.until {
        select = select.filter(usage::Column::CreatedAt.lt(v));
    }
    let paginator = select
        .order_by_desc(usage::Column::CreatedAt)
        .order_by_desc(usage::Column::Id)
        .paginate(&state.db, per_page);
    let internal = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "usage query failed");
        ApiError::Internal
    };
    let total = paginator.num_items().await.map_err(internal)?;
    let rows = paginator.fetch_page(page - 1).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "items": rows.into_iter().map(usage_json).collect::<Vec<_>>(),
        "page": page, "per_page": per_page, "total": total,
    })))
}
