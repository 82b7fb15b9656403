//! The `switchyard` binary: parses the command line and the configuration, then serves or runs
//! a one-shot command. Exit codes: 0 success, 1 failure, 2 bad usage or configuration.

mod cli;
mod commands;
mod config;
mod logging;
mod serve;

use clap::Parser;
use std::process::ExitCode;

/// Many small, short-lived allocations per request: mimalloc handles them with far less
/// contention than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One TLS crypto provider for every client in the process (database, upstream HTTP).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    let config = match config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config);
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            cli::Command::Serve => serve::run(config).await,
            cli::Command::Migrate => commands::migrate(&config).await,
            cli::Command::Import { file } => commands::import(&config, &file).await,
            cli::Command::Keys {
                command: cli::KeysCommand::Create(args),
            } => commands::create_key(&config, &args).await,
            cli::Command::Config => commands::show_config(&config),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "switchyard stopped with an error");
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
