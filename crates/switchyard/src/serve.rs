//! `switchyard serve`: open and migrate the database, make sure an admin token exists, import
//! the configured provider files, load the catalog, and serve HTTP until SIGTERM/SIGINT.

use crate::commands::{cipher, import_file, open_database};
use crate::config::{Config, StateBackend};
use actix_web::{App, HttpServer};
use anyhow::Context;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use switchyard_actors::ActorSystem;
use switchyard_http::AppState;
use switchyard_store::CatalogHandle;
use switchyard_store::admin_token::{self, AdminToken};
use switchyard_store::state::SharedState;

/// Runs the gateway until it is told to stop.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = open_database(&config).await?;
    let cipher = cipher(&config)?;
    let token = admin_token::ensure(&db, config.admin_token.as_ref())
        .await
        .context("cannot set up the admin token")?;
    if let AdminToken::Generated { token, .. } = &token {
        announce_admin_token(token.expose());
    }
    for file in &config.import {
        import_file(&db, &cipher, file).await?;
    }
    let catalog = Arc::new(
        CatalogHandle::load(&db, cipher)
            .await
            .context("cannot load the routing catalog")?,
    );
    let summary = catalog.current().summary();
    tracing::info!(
        providers = summary.providers,
        endpoints = summary.endpoints,
        provider_keys = summary.provider_keys,
        models = summary.global_models,
        gateway_keys = summary.gateway_keys,
        "routing catalog loaded"
    );

    let shared = shared_state(&config).await;
    let system = ActorSystem::start(
        config.routing.clone(),
        catalog.current(),
        db.clone(),
        shared,
        true,
    );
    system.restore(&db).await;
    {
        // Every new snapshot reaches the Scheduler shards.
        let system = system.clone();
        catalog.subscribe(Box::new(move |snapshot| system.catalog_changed(snapshot)));
    }

    let state = AppState {
        db: db.clone(),
        catalog: catalog.clone(),
        admin_token_hash: Arc::from(token.hash()),
        system: system.clone(),
        affinity: Arc::new(config.affinity.clone()),
    };
    let max_body = config.max_body_bytes;
    let server = HttpServer::new(move || {
        // Runs once on each worker thread: its requests resolve on a Scheduler replica there.
        let catalog = state.catalog.clone();
        state.system.attach_worker(|| catalog.current());
        App::new().configure(|cfg| switchyard_http::configure(cfg, state.clone(), max_body))
    })
    .workers(config.workers)
    .shutdown_timeout(config.shutdown_timeout_secs)
    // Signals are handled below: actix-server's own handling would stop the whole actix system,
    // and with it the actors that must still write circuit states and records after the last
    // request.
    .disable_signals()
    // A client that closes its side has gone away: stop serving it at once, so that a stream
    // whose upstream is silent releases its slot and is recorded as 499 now, not when the next
    // write fails (which a stalled upstream may delay until the idle timeout).
    .h1_allow_half_closed(false)
    .on_connect(|conn, _ext| {
        // Without TCP_NODELAY a kept-alive client waits ~40 ms per request for delayed ACKs.
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .bind(config.listen)
    .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addresses = server.addrs();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stop signal received; finishing in-flight requests (graceful shutdown)");
        handle.stop(true).await;
    });

    let refresh = (config.catalog_refresh_secs > 0).then(|| {
        actix_web::rt::spawn(refresh_catalog(
            catalog,
            db.clone(),
            Duration::from_secs(config.catalog_refresh_secs),
        ))
    });
    for address in &addresses {
        tracing::info!(%address, workers = config.workers, "listening");
        announce_listening(&address.to_string());
    }
    let result = server.await.context("the HTTP server failed");
    if let Some(task) = refresh {
        task.abort();
    }
    // In-flight requests are settled (graceful shutdown): write what they recorded.
    system.persist_now().await;
    system.flush_records().await;
    system.stop();
    db.close().await.ok();
    tracing::info!("stopped");
    result
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the gateway");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The shared hot state: in memory, or Redis. If Redis cannot be reached at start the gateway
/// still serves, on in-process state, and says so.
async fn shared_state(config: &Config) -> SharedState {
    match config.state_backend {
        StateBackend::Memory => SharedState::memory(),
        StateBackend::Redis => match SharedState::redis(&config.redis_url, "switchyard:").await {
            Ok(state) => {
                tracing::info!("shared state in Redis");
                state
            }
            Err(e) => {
                tracing::error!(error = %e, "Redis unreachable: serving on in-process state (not shared with other gateways)");
                SharedState::memory()
            }
        },
    }
}

/// Re-reads the catalog periodically so that changes written by another gateway process
/// sharing the database reach this one.
async fn refresh_catalog(
    catalog: Arc<CatalogHandle>,
    db: switchyard_store::Database,
    every: Duration,
) {
    let mut ticker = actix_web::rt::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(e) = catalog.reload(&db).await {
            tracing::warn!(error = %e, "periodic catalog refresh failed; keeping the current snapshot");
        }
    }
}

/// One machine-readable line on stdout once the socket is bound, so scripts and tests can find
/// the port when listening on port 0.
#[expect(clippy::print_stdout, reason = "the start-up line is meant for stdout")]
fn announce_listening(address: &str) {
    println!("switchyard listening on http://{address}");
    let _ = std::io::stdout().flush();
}

/// The generated admin token goes to stdout once, never into the log stream.
#[expect(clippy::print_stdout, reason = "the operator must see the token once")]
fn announce_admin_token(token: &str) {
    println!("switchyard generated an admin token (shown only now; only its hash is stored):");
    println!("    {token}");
    let _ = std::io::stdout().flush();
}
