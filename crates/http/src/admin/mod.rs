//! The admin API under `/admin`, behind the admin token.
//!
//! Every resource has the same five routes (`GET` list with `page`, `per_page` and equality
//! filters; `POST` create; `GET`, `PATCH` (JSON merge patch) and `DELETE` by id). Every change
//! is followed by a catalog reload, so routing sees it without a restart.

mod auth;
mod operations;
mod resources;
mod settings;

pub use auth::require_admin;

use actix_web::middleware::from_fn;
use actix_web::web;
use switchyard_store::manage::{
    Aliases, Endpoints, GatewayKeys, GlobalModels, ProviderKeys, ProviderModels, Providers, Users,
};

/// Registers the `/admin` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(auth::require_admin))
            .service(resources::scope::<Providers>("/providers"))
            .service(resources::scope::<Endpoints>("/endpoints"))
            .service(resources::scope::<ProviderKeys>("/provider-keys"))
            .service(resources::scope::<GlobalModels>("/global-models"))
            .service(resources::scope::<ProviderModels>("/provider-models"))
            .service(resources::scope::<Aliases>("/aliases"))
            .service(resources::scope::<Users>("/users"))
            .service(resources::scope::<GatewayKeys>("/gateway-keys"))
            .configure(settings::configure)
            .configure(operations::configure)
            .default_service(web::to(resources::unknown_route)),
    );
}
