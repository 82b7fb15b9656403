//! The `mock-upstream` binary: runs a [`MockUpstream`] until SIGTERM or
//! Ctrl-C, announcing its URL on stdout so a parent process can read the
//! port.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use switchyard_mock_upstream::{MockConfig, MockUpstream};

/// A fake LLM provider (OpenAI, Anthropic, Gemini) for tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "mock-upstream", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Name sent in the `x-mock-name` header of every answer.
    #[arg(long)]
    name: Option<String>,
    /// How many requests `GET /_mock/requests` keeps.
    #[arg(long, default_value_t = 256)]
    request_log: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = MockConfig::default().with_request_log_capacity(args.request_log);
    if let Some(name) = args.name {
        config = config.with_name(name);
    }
    let mock = match MockUpstream::start_with(args.listen, config).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mock-upstream: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    // The one line a parent process waits for; flushed because stdout is a
    // pipe (block-buffered) when a test reads it.
    let mut out = std::io::stdout().lock();
    if writeln!(out, "mock-upstream listening on {}", mock.url())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(out);
    wait_for_signal().await;
    mock.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
