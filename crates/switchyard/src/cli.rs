//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Switchyard: a self-hosted LLM API gateway.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML); overrides the embedded defaults. Environment variables
    /// SWITCHYARD__SECTION__KEY override both.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "SWITCHYARD_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (migrates the database first).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Import providers, endpoints, keys, models and aliases from a TOML file (idempotent).
    Import {
        /// The provider file.
        file: PathBuf,
    },
    /// Manage gateway keys.
    Keys {
        /// The key operation.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
}

/// Gateway key operations.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a gateway key and print it once (only its hash is stored).
    Create(CreateKey),
}

/// Options of `keys create`.
#[derive(Debug, Args)]
pub struct CreateKey {
    /// Name of the user who owns the key.
    #[arg(long)]
    pub user: String,
    /// Create the user if it does not exist.
    #[arg(long)]
    pub create_user: bool,
    /// A name for the key.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Days until the key expires.
    #[arg(long, value_name = "DAYS")]
    pub expires_in_days: Option<u32>,
    /// Give the key its own balance (USD) instead of the user's quota.
    #[arg(long, value_name = "USD")]
    pub balance: Option<f64>,
}
