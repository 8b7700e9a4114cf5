//! The `calconnect` command line.

mod api_cmd;
mod api_keys_cmd;
mod completions;
mod connections_cmd;
mod custom;
mod demo_cmd;
mod doctor_cmd;
mod doctor_custom;
mod exit;
mod fresh;
mod keys_cmd;
mod local;
mod login_cmd;
mod loopback;
mod port_owner;
mod provider_args;
mod revoke;
mod sandbox_cmd;
mod serve_cmd;
mod synthetic;
mod token_cmd;
mod webhooks_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Connect Cal.com accounts over OAuth 2.0 and keep the connections alive.
#[derive(Debug, Parser)]
#[command(
    name = "calconnect",
    version,
    about,
    propagate_version = true,
    after_help = exit::EXIT_CODES_HELP
)]
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
    #[command(verbatim_doc_comment)]
    Sandbox(sandbox_cmd::SandboxArgs),
    /// Manage the keys that seal tokens at rest.
    ///
    /// Examples:
    ///   calconnect keys generate --out ~/.config/calconnect/broker.key
    ///   calconnect keys rotate --sqlite calconnect.db --key-file keys.txt
    #[command(verbatim_doc_comment)]
    Keys(keys_cmd::KeysArgs),
    /// Log in to Cal.com (or any OAuth 2.0 server) in the browser and store the connection on
    /// this machine.
    ///
    /// An authorization-code flow with a loopback redirect on 127.0.0.1 (RFC 8252): register
    /// http://127.0.0.1:<port>/callback (default port 8976) with your client. At Cal.com a PUBLIC
    /// client with PKCE; with --profile custom any standard server, with a public client (PKCE)
    /// or a confidential one (--client-secret-file, --client-secret-stdin or
    /// CALCONNECT_CLIENT_SECRET, and --auth-method). Tokens (and a client secret) are sealed into
    /// a SQLite database in your data folder; the key lives in your config folder (both in
    /// $CALCONNECT_HOME when set).
    ///
    /// Examples:
    ///   calconnect login --client-id my-public-client
    ///   calconnect login --profile sandbox --sandbox-url http://127.0.0.1:5555
    ///   calconnect login --no-browser --scopes PROFILE_READ,BOOKING_READ --port 9000
    ///   calconnect login --profile custom --client-id c --issuer https://idp.example --scopes "openid offline_access"
    ///   calconnect login --profile custom --client-id c --authorize-url https://idp/authorize --token-url https://idp/token \
    ///     --client-secret-file ~/.idp-secret --auth-method client_secret_basic --revocation-url https://idp/revoke --save-as work
    ///   calconnect login --profile work
    #[command(verbatim_doc_comment, after_help = exit::EXIT_CODES_HELP)]
    Login(login_cmd::LoginArgs),
    /// Print a fresh access token (refreshed first if needed), for scripts.
    ///
    /// Examples:
    ///   curl -H "Authorization: Bearer $(calconnect token)" https://api.cal.com/v2/me
    ///   calconnect token --connection alice
    #[command(verbatim_doc_comment, after_help = exit::EXIT_CODES_HELP)]
    Token(token_cmd::TokenArgs),
    /// Call the Cal.com API v2 (or a custom provider's API) with a stored connection
    /// (refresh-and-retry on 401).
    ///
    /// Examples:
    ///   calconnect api GET /v2/me
    ///   calconnect api GET /v2/schedules
    ///   calconnect api GET /v2/bookings --query status=upcoming --raw | jq .data
    ///   calconnect api POST /v2/schedules --data @schedule.json
    ///   calconnect api --connection work --api-base https://api.example.com/v1 GET /users/me
    #[command(verbatim_doc_comment, after_help = exit::EXIT_CODES_HELP)]
    Api(api_cmd::ApiArgs),
    /// List, show or delete the connections stored on this machine.
    ///
    /// Examples:
    ///   calconnect connections list
    ///   calconnect connections show alice --json
    ///   calconnect connections delete alice
    #[command(verbatim_doc_comment, after_help = exit::EXIT_CODES_HELP)]
    Connections(connections_cmd::ConnectionsArgs),
    /// Check configuration, redirect URIs, clock, database, keys and the provider's endpoints.
    ///
    /// Each check prints ok, warn, FAIL or skip, with a fix for what fails. Exits 1 if any fails.
    ///
    /// Examples:
    ///   calconnect doctor
    ///   calconnect doctor --redirect-uri https://app.example.com/oauth/callback
    ///   calconnect doctor --profile sandbox --sandbox-url http://127.0.0.1:5555 --synthetic
    ///   calconnect doctor --profile work
    ///   calconnect doctor --config broker.toml      # the broker's configuration, as `serve` checks it
    #[command(verbatim_doc_comment, after_help = exit::EXIT_CODES_HELP)]
    Doctor(doctor_cmd::DoctorArgs),
    /// Print shell completions.
    ///
    /// Examples:
    ///   calconnect completions bash > ~/.local/share/bash-completion/completions/calconnect
    ///   calconnect completions zsh > "${fpath[1]}/_calconnect"
    ///   calconnect completions fish > ~/.config/fish/completions/calconnect.fish
    #[command(verbatim_doc_comment)]
    Completions(completions::CompletionsArgs),
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
    ///   calconnect api-keys list --config broker.toml --json
    ///   calconnect api-keys revoke --config broker.toml 4b1d…
    #[command(verbatim_doc_comment)]
    ApiKeys(api_keys_cmd::ApiKeysArgs),
    /// Test the broker's webhook endpoints, or send a logged delivery again.
    ///
    /// Examples:
    ///   calconnect webhooks test --config broker.toml
    ///   calconnect webhooks redeliver --config broker.toml 42
    #[command(verbatim_doc_comment)]
    Webhooks(webhooks_cmd::WebhooksArgs),
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
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    // The local commands talk to a person or a script: their own messages say what happened,
    // so library logs only on RUST_LOG=….
    // Where a command's listen address is set, for an "address in use" that the command did not
    // explain itself.
    let listen_setting = match cli.command {
        Command::Demo(_) => "choose other ports with --port, --broker-port or --sandbox-port",
        _ => "choose another address or port (see --help)",
    };
    let default_filter = match cli.command {
        Command::Login(_)
        | Command::Token(_)
        | Command::Api(_)
        | Command::Connections(_)
        | Command::Doctor(_)
        | Command::Completions(_)
        | Command::Webhooks(_) => "error",
        // The demo prints what to open; its services only log warnings.
        Command::Demo(_) => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
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
            Command::Login(args) => login_cmd::run(args).await,
            Command::Token(args) => token_cmd::run(args).await,
            Command::Api(args) => api_cmd::run(args).await,
            Command::Connections(args) => connections_cmd::run(args).await,
            Command::Doctor(args) => doctor_cmd::run(args).await,
            Command::Completions(args) => completions::run::<Cli>(&args),
            Command::Serve(args) => serve_cmd::run(args).await,
            Command::ApiKeys(args) => api_keys_cmd::run(args).await,
            Command::Webhooks(args) => webhooks_cmd::run(args).await,
            Command::Demo(args) => demo_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if port_owner::is_addr_in_use(e.as_ref()) && !exit::is_explained(&e) => {
            // `serve` and `sandbox` name their own listen setting; this is the others'.
            eprintln!(
                "error: {}: another process already listens there: stop it, or {listen_setting}",
                exit::one_line(&e)
            );
            exit::code_of(&e)
        }
        Err(e) => {
            eprintln!("error: {}", exit::one_line(&e));
            exit::code_of(&e)
        }
    }
}

/// Rust ignores SIGPIPE, so writing to a closed pipe (`calconnect … | head`) is an error, and
/// `println!` panics on it. Like other Unix tools, stop quietly instead: the reader has all it
/// wanted. Any other panic keeps the default report.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
