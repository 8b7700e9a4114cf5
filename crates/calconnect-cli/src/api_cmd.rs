//! `calconnect api METHOD PATH`: an authenticated Cal.com API v2 call with refresh-and-retry,
//! pretty-printed JSON (or `--raw`). With a custom provider's connection, a call to its API
//! (`--api-base`, or the one given at login), with the same bearer token handling
//! (docs/architecture.md §3.8).

use crate::exit::CliError;
use crate::fresh::Session;
use crate::local::ProviderSpec;
use calconnect::api::{ApiError, CalClient};
use http::Method;

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// HTTP method (GET, POST, PATCH, PUT, DELETE).
    method: String,
    /// Path under the API, e.g. /v2/schedules or /v2/me (the /v2 prefix is optional); for a
    /// custom provider, under its API base (e.g. /users/me).
    path: String,
    /// A custom provider's API root (overrides the one saved at login), e.g.
    /// https://api.example.com/v1.
    #[arg(long, value_name = "URL")]
    api_base: Option<String>,
    /// JSON request body; `@file` reads it from a file, `@-` from standard input.
    #[arg(long, short = 'd')]
    data: Option<String>,
    /// Query parameter `key=value` (repeatable).
    #[arg(long, short = 'q')]
    query: Vec<String>,
    /// The cal-api-version header. Default: the route's documented version, as the broker's
    /// proxy sends it: 2024-06-11 for /v2/schedules, 2024-06-14 for /v2/event-types,
    /// 2024-08-13 for /v2/bookings, 2024-09-04 for /v2/slots, none otherwise.
    #[arg(long)]
    api_version: Option<String>,
    /// Print the body as received (no pretty-printing), for pipes.
    #[arg(long)]
    raw: bool,
    /// Connection id (or prefix, or username); default: the last login.
    #[arg(long)]
    connection: Option<String>,
}

pub async fn run(args: ApiArgs) -> anyhow::Result<()> {
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|m| {
            [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ]
            .contains(m)
        })
        .ok_or_else(|| {
            CliError::usage(format!(
                "`{}` is not a method calconnect sends: use GET, POST, PUT, PATCH or DELETE",
                args.method
            ))
        })?;
    let body = match args.data.as_deref() {
        None => None,
        Some(text) => Some(read_body(text)?),
    };
    let session = Session::open(args.connection.as_deref()).await?;
    let custom = match &session.record.provider {
        ProviderSpec::Custom(spec) => Some(spec),
        _ => None,
    };
    let (client, path) = match custom {
        None => {
            if args.api_base.is_some() {
                return Err(CliError::usage(
                    "--api-base is for custom providers: Cal.com's API is at its own address",
                )
                .into());
            }
            let path = normalize_path(&args.path)?;
            let client = CalClient::for_profile(
                &session.record.provider.profile()?,
                session.http.clone(),
                session.token_source(),
            )
            .map_err(|e| CliError::usage(e.to_string()))?
            .build();
            (client, path)
        }
        Some(spec) => {
            let base = args.api_base.as_deref().or(spec.api_base.as_deref()).ok_or_else(|| {
                CliError::usage(format!(
                    "the provider at {} has no API base for this connection: pass --api-base URL (its API root)",
                    spec.host()
                ))
            })?;
            let base = calconnect::EndpointUrl::parse(base, crate::custom::url_policy())
                .map_err(|e| {
                    CliError::usage(format!(
                        "--api-base {base}: {e}: use an https URL (http only for 127.0.0.1/localhost)"
                    ))
                })?;
            // Cal.com's client-side rate governor is Cal.com's limit, not this API's.
            let client = CalClient::builder(base, session.http.clone(), session.token_source())
                .without_governor()
                .build();
            (client, custom_path(&args.path)?)
        }
    };
    let mut request = client.request(method, &path);
    // The route's documented version, the same default as the broker's proxy.
    let version = args.api_version.clone().or_else(|| {
        custom
            .is_none()
            .then(|| calconnect::api::default_api_version(&path))
            .flatten()
            .map(str::to_owned)
    });
    if let Some(v) = &version {
        request = request.api_version(v);
    }
    for pair in &args.query {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--query `{pair}` is not key=value")))?;
        request = request.query(k, v);
    }
    if let Some(body) = &body {
        request = request.json(body);
    }
    match request.send().await {
        Ok(response) => {
            print_body(response.body(), args.raw);
            Ok(())
        }
        Err(e) => {
            if let (Some(envelope), false) = (e.envelope(), args.raw) {
                let json = serde_json::json!({
                    "status": "error",
                    "error": {
                        "code": envelope.code,
                        "message": envelope.message,
                        "details": envelope.details,
                    },
                    "requestId": envelope.request_id,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
            }
            Err(api_error(&e).into())
        }
    }
}

fn api_error(e: &ApiError) -> CliError {
    let text = crate::fresh::chain(e).replace('\n', " ");
    match e {
        ApiError::Token { source, .. } if source.requires_reauthorization() => {
            CliError::auth(format!("{text}; run `calconnect login`"))
        }
        ApiError::Unauthorized { .. } | ApiError::InsufficientScope { .. } => CliError::auth(
            format!("{text}; run `calconnect login` (with --scopes if scopes are missing)"),
        ),
        ApiError::InvalidRequest { .. } => CliError::usage(text),
        // No answer at all (network, timeout): not the API's verdict.
        ApiError::Transient { envelope: None, .. } => CliError::other(text),
        ApiError::Token { .. } => {
            CliError::other(format!("{text}; `calconnect doctor` checks the setup"))
        }
        _ => CliError::api(text),
    }
}

/// A custom API's path, relative to its base: kept as given.
fn custom_path(path: &str) -> Result<String, CliError> {
    let trimmed = path.trim();
    if !trimmed.starts_with('/') || trimmed.contains("://") {
        return Err(CliError::usage(format!(
            "`{path}` is not an API path: pass it like /users/me (relative to the API base)"
        )));
    }
    if trimmed.contains('?') {
        return Err(CliError::usage(
            "put query parameters in --query key=value, not in the path",
        ));
    }
    Ok(trimmed.to_owned())
}

/// `/v2/schedules` → `/schedules` (the client's base already ends in /v2).
fn normalize_path(path: &str) -> Result<String, CliError> {
    let trimmed = path.trim();
    if !trimmed.starts_with('/') || trimmed.contains("://") {
        return Err(CliError::usage(format!(
            "`{path}` is not an API path: pass it like /v2/schedules"
        )));
    }
    // An optional `/v2` segment, as the proxy's optional `v2/` (not the `/v2` of `/v2x`).
    let rest = match trimmed.strip_prefix("/v2") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => trimmed,
    };
    if rest.contains('?') {
        return Err(CliError::usage(
            "put query parameters in --query key=value, not in the path",
        ));
    }
    Ok(if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    })
}

fn read_body(text: &str) -> Result<serde_json::Value, CliError> {
    let raw = match text.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::other(format!("cannot read standard input: {e}")))?,
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| CliError::usage(format!("cannot read --data file {file}: {e}")))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&raw).map_err(|e| {
        CliError::usage(format!(
            "--data is not valid JSON ({e}): pass a JSON object such as '{{\"name\":\"x\"}}'"
        ))
    })
}

fn print_body(body: &[u8], raw: bool) {
    if raw || body.is_empty() {
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let _ = out.write_all(body);
        return;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(_) => println!("{}", String::from_utf8_lossy(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/v2/schedules").unwrap(), "/schedules");
        assert_eq!(normalize_path("/me").unwrap(), "/me");
        assert_eq!(normalize_path("/v2").unwrap(), "/");
        assert_eq!(normalize_path("/v2x").unwrap(), "/v2x");
        assert!(normalize_path("https://x/v2/me").is_err());
        assert!(normalize_path("me").is_err());
        assert!(normalize_path("/v2/me?x=1").is_err());
    }
}
