//! `calconnect serve`: runs the broker with a TOML file plus `CALCONNECT_*` variables.

use anyhow::Context as _;
use calconnect_broker::{Broker, BrokerConfig};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(after_long_help = concat!("Example configuration (every key also has a CALCONNECT_* variable):\n\n", include_str!("../../calconnect-broker/src/example-config.toml"), "\nCreate an API key for your app with `calconnect api-keys create --config broker.toml --name my-app`."))]
pub struct ServeArgs {
    /// The configuration file (TOML). Without it, only CALCONNECT_* variables are used.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Reads the configuration file (if any) and the process environment.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<BrokerConfig> {
    let text = match path {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the configuration file {}", p.display()))?,
        None => String::new(),
    };
    let env = std::env::vars()
        .filter(|(k, _)| k.starts_with("CALCONNECT_"))
        .collect();
    Ok(BrokerConfig::from_toml_and_env(&text, &env)?)
}

/// Whether `serve` was asked for JSON logs (`log_format = "json"` or CALCONNECT_LOG_FORMAT).
pub fn wants_json_logs(command: &crate::Command) -> bool {
    let crate::Command::Serve(args) = command else {
        return false;
    };
    let text = args
        .config
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let env = std::env::vars()
        .filter(|(k, _)| k.starts_with("CALCONNECT_"))
        .collect();
    calconnect_broker::config::log_format_of(&text, &env) == calconnect_broker::LogFormat::Json
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let policy = format!(
        "{} client: {}",
        if config.client.is_confidential() {
            "confidential"
        } else {
            "public"
        },
        config.profile.pkce_use(config.client.is_confidential())
    );
    let broker = Broker::builder(config)
        .start()
        .await
        .context("the broker could not start")?;
    eprintln!("calconnect broker listening on {}", broker.local_url());
    eprintln!("client policy: {policy}");
    broker
        .wait_for_signal_then_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
        })
        .await;
    Ok(())
}
