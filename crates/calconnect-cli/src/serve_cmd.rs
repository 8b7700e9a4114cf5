//! `calconnect serve`: runs the broker with a TOML file plus `CALCONNECT_*` variables, after the
//! configuration checks of [`calconnect_broker::checks`].

use crate::exit::CliError;
use calconnect::{SystemClock, TokenEndpoints};
use calconnect_broker::checks::{self, Outcome, Report};
use calconnect_broker::config::Env;
use calconnect_broker::{Broker, BrokerConfig, DatabaseConfig, StartError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(after_long_help = concat!("Example configuration (every key also has a CALCONNECT_* variable):\n\n", include_str!("../../calconnect-broker/src/example-config.toml"), "\nRelative paths in the file are taken from the file's folder.\nCheck a configuration without starting: `calconnect doctor --config broker.toml`.\nCreate an API key for your app with `calconnect api-keys create --config broker.toml --name my-app`."))]
pub struct ServeArgs {
    /// The configuration file (TOML). Without it, only CALCONNECT_* variables are used.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// The `CALCONNECT_*` variables of the process.
fn env() -> Env {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("CALCONNECT_"))
        .collect()
}

/// The file's text and its folder (absolute), or nothing without a file.
fn read_file(path: Option<&Path>) -> anyhow::Result<(String, Option<PathBuf>)> {
    let Some(path) = path else {
        return Ok((String::new(), None));
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the configuration file {}: {e} (--config)",
            path.display()
        ))
    })?;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    Ok((text, Some(folder)))
}

/// Reads the configuration file (if any) and the process environment; relative paths in the
/// file are taken from its folder.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<BrokerConfig> {
    let (text, folder) = read_file(path)?;
    Ok(BrokerConfig::from_file_text(
        &text,
        &env(),
        folder.as_deref(),
    )?)
}

/// Only the database of the configuration (what `api-keys` needs).
pub fn load_database(path: Option<&Path>) -> anyhow::Result<DatabaseConfig> {
    let (text, folder) = read_file(path)?;
    Ok(calconnect_broker::config::database_from_file_text(
        &text,
        &env(),
        folder.as_deref(),
    )?)
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
    calconnect_broker::config::log_format_of(&text, &env()) == calconnect_broker::LogFormat::Json
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    // Bind first: a port in use is reported at once, before the slower checks.
    let listener = std::net::TcpListener::bind(config.listen).map_err(|source| {
        start_error(
            &config,
            StartError::Bind {
                addr: config.listen,
                source,
            },
        )
    })?;
    let report = checks::run(&config, Arc::new(SystemClock)).await;
    print_problems(&report);
    if report.failures() > 0 {
        return Err(CliError::other(format!(
            "{} start-up check(s) failed (above); the broker did not start. `calconnect doctor --config {}` runs the checks again",
            report.failures(),
            args.config
                .as_deref()
                .map_or_else(|| "FILE".to_owned(), |p| p.display().to_string())
        ))
        .into());
    }
    let summary = Summary::of(&config, &report);
    let broker = match Broker::builder(config.clone())
        .listener(listener)
        .start()
        .await
    {
        Ok(broker) => broker,
        Err(e) => return Err(start_error(&config, e)),
    };
    eprintln!("calconnect broker listening on {}", broker.local_url());
    summary.print(&broker);
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

/// The warnings and failures of the start-up checks, on standard error.
fn print_problems(report: &Report) {
    for check in &report.checks {
        match &check.outcome {
            Outcome::Warn { problem, fix } => {
                eprintln!("warning: {}: {problem}\n  fix: {fix}", check.name);
            }
            Outcome::Fail { problem, fix } => {
                eprintln!("FAIL {}: {problem}\n  fix: {fix}", check.name);
            }
            Outcome::Ok(_) | Outcome::Skip(_) => {}
        }
    }
}

/// A start error in one line with the setting to change (an address in use names its key).
fn start_error(config: &BrokerConfig, e: StartError) -> anyhow::Error {
    if let StartError::Bind { addr, source } = &e
        && source.kind() == std::io::ErrorKind::AddrInUse
    {
        let setting = if Some(*addr) == config.metrics.listen {
            "set another address for /metrics with metrics.listen (CALCONNECT_METRICS_LISTEN)"
        } else {
            "set another address with listen (CALCONNECT_LISTEN), e.g. listen = \"127.0.0.1:8081\""
        };
        return CliError::other(crate::port_owner::message(*addr, setting)).into();
    }
    anyhow::Error::new(e).context("the broker could not start")
}

/// What `serve` prints once it listens: where it is, what to register, where its data is.
struct Summary {
    lines: Vec<(&'static str, String)>,
}

impl Summary {
    fn of(config: &BrokerConfig, report: &Report) -> Self {
        let mut lines = Vec::new();
        lines.push((
            "redirect URI",
            format!(
                "{} (register it for client `{}` at {})",
                config.client.redirect_uri().as_str(),
                config.client.client_id(),
                checks::developer_settings(config)
            ),
        ));
        let database = match report.outcome("database") {
            Some(Outcome::Ok(detail)) => detail.clone(),
            _ => config.database.describe(),
        };
        lines.push(("database", database));
        let token = match config.profile.token_endpoints() {
            TokenEndpoints::Unified { url, .. } => url.as_str().to_owned(),
            TokenEndpoints::Legacy(legacy) => legacy.token.as_str().to_owned(),
            _ => String::new(),
        };
        lines.push((
            "provider",
            format!(
                "{}, token endpoint {token}",
                match config.profile.kind() {
                    calconnect::ProviderKind::CalCom => "Cal.com",
                    calconnect::ProviderKind::CalComSelfHosted => "self-hosted Cal.com",
                    calconnect::ProviderKind::Sandbox => "the calconnect sandbox",
                    _ => "a custom provider",
                }
            ),
        ));
        let confidential = config.client.is_confidential();
        let pkce = config.profile.pkce_use(confidential);
        lines.push((
            "client",
            if pkce == calconnect::PkceUse::None {
                // The policy's text names the client type itself.
                format!("`{}`, {pkce}", config.client.client_id())
            } else {
                format!(
                    "`{}`, {} client: {pkce}",
                    config.client.client_id(),
                    if confidential {
                        "confidential"
                    } else {
                        "public"
                    }
                )
            },
        ));
        let webhooks = if config.webhooks.urls.is_empty() {
            "none (webhooks.urls)".to_owned()
        } else {
            config
                .webhooks
                .urls
                .iter()
                .map(checks::display_url)
                .collect::<Vec<_>>()
                .join(", ")
        };
        lines.push(("webhooks", webhooks));
        Self { lines }
    }

    fn print(&self, broker: &Broker) {
        for (name, value) in &self.lines {
            eprintln!("  {name:<13} {value}");
        }
        if let Some(metrics) = broker.metrics_addr() {
            eprintln!("  {:<13} http://{metrics}/metrics", "metrics");
        }
    }
}
