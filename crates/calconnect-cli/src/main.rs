//! The `calconnect` command line.

mod api_keys_cmd;
mod demo_cmd;
mod keys_cmd;
mod sandbox_cmd;
mod serve_cmd;

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
    /// Run the broker: connect links, OAuth callback, fresh tokens, API proxy, webhooks.
    ///
    /// Examples:
    ///   calconnect serve --config broker.toml
    ///   CALCONNECT_DATABASE_URL=postgres://calconnect@db/calconnect calconnect serve -c broker.toml
    #[command(verbatim_doc_comment)]
    Serve(serve_cmd::ServeArgs),
    /// Manage the broker's API keys (create shows the key once; list; revoke).
    ///
    /// Examples:
    ///   calconnect api-keys create --config broker.toml --name my-app
    ///   calconnect api-keys list --config broker.toml
    ///   calconnect api-keys revoke --config broker.toml 4b1d…
    #[command(verbatim_doc_comment)]
    ApiKeys(api_keys_cmd::ApiKeysArgs),
    /// Try the whole flow locally: a Cal.com sandbox, the broker and an example app in one
    /// process, nothing to configure. Open the printed address.
    ///
    /// Examples:
    ///   calconnect demo
    ///   calconnect demo --data-dir ./demo-data --port 3001
    #[command(verbatim_doc_comment)]
    Demo(demo_cmd::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The demo prints what to open; its services only log warnings unless RUST_LOG says.
        let level = if matches!(cli.command, Command::Demo(_)) {
            "warn"
        } else {
            "info"
        };
        tracing_subscriber::EnvFilter::new(level)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if serve_cmd::wants_json_logs(&cli.command) {
        builder.json().init();
    } else {
        builder.init();
    }
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
            Command::Serve(args) => serve_cmd::run(args).await,
            Command::ApiKeys(args) => api_keys_cmd::run(args).await,
            Command::Demo(args) => demo_cmd::run(args).await,
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
