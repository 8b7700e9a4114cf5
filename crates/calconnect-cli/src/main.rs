//! The `calconnect` command line.

mod keys_cmd;
mod sandbox_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Connect Cal.com accounts over OAuth 2.0 and keep the connections alive.
#[derive(Debug, Parser)]
#[command(name = "calconnect", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local Cal.com (consent page, token endpoints, API v2 subset, fault switches).
    ///
    /// Examples:
    ///   calconnect sandbox
    ///   calconnect sandbox --listen 127.0.0.1:5555 --redirect-uri http://localhost:3000/callback
    ///   calconnect sandbox --seed my-seed.toml
    Sandbox(sandbox_cmd::SandboxArgs),
    /// Manage the keys that seal tokens at rest (`calconnect keys generate`).
    Keys(keys_cmd::KeysArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sandbox(args) => sandbox_cmd::run(args).await,
            Command::Keys(args) => keys_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
