//! `/admin/settings` (routing settings) and `/admin/catalog` (snapshot summary, forced reload).

use super::resources::refresh;
use crate::AppState;
use crate::error::ApiError;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use switchyard_core::settings::SettingError;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(get_all))
        .route("/settings", web::patch().to(update))
        .route("/settings/{key}", web::get().to(get_one))
        .route("/settings/{key}", web::put().to(put_one))
        .route("/catalog", web::get().to(catalog))
        .route("/catalog/reload", web::post().to(reload));
}

async fn get_all(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let settings = switchyard_store::settings::load(&state.db)
        .await
        .map_err(internal)?;
    let map: Map<String, Value> = settings
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    Ok(HttpResponse::Ok().json(map))
}

async fn get_one(
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let settings = switchyard_store::settings::load(&state.db)
        .await
        .map_err(internal)?;
    settings
        .entries()
        .into_iter()
        .find(|(k, _)| *k == key.as_str())
        .map(|(k, v)| HttpResponse::Ok().json(json!({ "key": k, "value": v })))
        .ok_or_else(|| ApiError::NotFound(format!("no setting `{key}`")))
}

/// `PATCH /admin/settings` with `{"priority_mode": "global_key", ...}`: all or nothing.
async fn update(
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let Value::Object(changes) = body.into_inner() else {
        return Err(ApiError::Invalid {
            field: String::new(),
            message: "the body must be a JSON object of settings".into(),
        });
    };
    // Validate everything before writing anything.
    let mut probe = switchyard_core::settings::RoutingSettings::default();
    for (key, value) in &changes {
        probe.apply(key, value).map_err(setting_error)?;
    }
    for (key, value) in changes {
        store_one(&state, &key, value).await?;
    }
    refresh(&state).await;
    get_all(state).await
}

/// `PUT /admin/settings/{key}` with `{"value": ...}`.
async fn put_one(
    state: web::Data<AppState>,
    key: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let value = body
        .into_inner()
        .get("value")
        .cloned()
        .ok_or_else(|| ApiError::Invalid {
            field: "value".into(),
            message: "is required".into(),
        })?;
    store_one(&state, &key, value).await?;
    refresh(&state).await;
    get_one(state, key).await
}

async fn store_one(state: &AppState, key: &str, value: Value) -> Result<(), ApiError> {
    switchyard_store::settings::set(&state.db, key, value)
        .await
        .map_err(internal)?
        .map_err(setting_error)
}

async fn catalog(state: web::Data<AppState>) -> HttpResponse {
    let catalog = state.catalog.current();
    HttpResponse::Ok().json(json!({
        "summary": catalog.summary(),
        "settings": catalog.settings,
        "ambiguous_model_names": catalog.ambiguous_names,
    }))
}

async fn reload(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.reload(&state.db).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({ "summary": catalog.summary() })))
}

fn setting_error(e: SettingError) -> ApiError {
    match e {
        SettingError::UnknownKey(key) => ApiError::Invalid {
            message: format!(
                "unknown setting; known: {}",
                switchyard_core::settings::SETTING_KEYS.join(", ")
            ),
            field: key,
        },
        SettingError::InvalidValue { key, reason } => ApiError::Invalid {
            field: key,
            message: reason,
        },
    }
}

fn internal(e: switchyard_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "settings storage failed");
    ApiError::Internal
}
