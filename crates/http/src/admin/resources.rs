//! Generic handlers for one admin resource.

use crate::AppState;
use crate::error::ApiError;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use std::collections::HashMap;
use switchyard_store::manage::{self, ListQuery, Pk, Resource};

/// The five routes of a resource under `path`.
pub fn scope<R>(path: &str) -> actix_web::Scope
where
    R: Resource + 'static,
    R::Model: sea_orm::FromQueryResult,
    Pk<R>: From<String>,
{
    web::scope(path)
        .route("", web::get().to(list::<R>))
        .route("", web::post().to(create::<R>))
        .route("/{id}", web::get().to(get::<R>))
        .route("/{id}", web::patch().to(patch::<R>))
        .route("/{id}", web::delete().to(delete::<R>))
}

/// Answers routes that do not exist under `/admin` in the admin envelope.
pub async fn unknown_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no admin route {} {}",
        req.method(),
        req.path()
    )))
}

async fn list<R>(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError>
where
    R: Resource,
    R::Model: sea_orm::FromQueryResult,
{
    let mut params = query.into_inner();
    let number = |params: &mut HashMap<String, String>, name: &str, default: u64| {
        params.remove(name).map_or(Ok(default), |v| {
            v.parse::<u64>().map_err(|_| ApiError::Invalid {
                field: name.to_owned(),
                message: "must be a positive integer".into(),
            })
        })
    };
    let page = number(&mut params, "page", 1)?;
    let per_page = number(&mut params, "per_page", 50)?;
    let mut filters: Vec<(String, String)> = params.into_iter().collect();
    filters.sort();
    let page = manage::list::<R, _>(
        &state.db,
        &ListQuery {
            page,
            per_page,
            filters,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn create<R>(
    state: web::Data<AppState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError>
where
    R: Resource,
    Pk<R>: From<String>,
{
    let created =
        manage::create::<R, _>(&state.db, &state.write_context(), body.into_inner()).await?;
    refresh(&state).await;
    let mut view = to_json(R::view(created.model))?;
    if let Some(secret) = created.revealed {
        // Shown once; only its hash is stored.
        view["key"] = serde_json::Value::String(secret.expose().to_owned());
    }
    Ok(HttpResponse::Created().json(view))
}

async fn get<R>(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError>
where
    R: Resource,
    Pk<R>: From<String>,
{
    let model = manage::get::<R, _>(&state.db, &id).await?;
    Ok(HttpResponse::Ok().json(R::view(model)))
}

async fn patch<R>(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError>
where
    R: Resource,
    Pk<R>: From<String>,
{
    let model =
        manage::patch::<R, _>(&state.db, &state.write_context(), &id, body.into_inner()).await?;
    refresh(&state).await;
    Ok(HttpResponse::Ok().json(R::view(model)))
}

async fn delete<R>(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError>
where
    R: Resource,
    Pk<R>: From<String>,
{
    manage::delete::<R, _>(&state.db, &id).await?;
    refresh(&state).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Publishes the change to routing. The change itself is committed already; if the reload
/// fails the periodic refresh catches up, so the admin call still succeeds.
pub(crate) async fn refresh(state: &AppState) {
    if let Err(e) = state.catalog.reload(&state.db).await {
        tracing::error!(error = %e, "catalog reload after an admin change failed");
    }
}

pub(crate) fn to_json<T: Serialize>(value: T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise an admin view");
        ApiError::Internal
    })
}
