//! `calconnect login`: a public-client PKCE flow with a loopback redirect (RFC 8252), like
//! `gh auth login`. The connection is sealed into the local SQLite store.

use crate::exit::CliError;
use crate::fresh::flow_for;
use crate::local::{self, Home, ProviderSpec, Record, Records};
use crate::loopback;
use calconnect::connect::{CompleteError, Connector};
use calconnect::store::CalOwner;
use calconnect::{
    AuthorizeOptions, Callback, CallbackError, SystemClock, http::HttpClient, http::HttpConfig,
};
use rand::rngs::OsRng;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_PORT: u16 = 8976;
const DEFAULT_SCOPES: &str = "PROFILE_READ,SCHEDULE_READ";

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    provider: ProviderArgs,
    /// Scopes, comma-separated (e.g. PROFILE_READ,SCHEDULE_READ,BOOKING_READ).
    #[arg(long, default_value = DEFAULT_SCOPES)]
    scopes: String,
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// Loopback port for the redirect: register http://127.0.0.1:<port>/callback with your client.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// How long to wait for the browser (e.g. 90s, 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
}

/// Which provider and client (shared by `login` and `doctor`).
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderArgs {
    /// Provider: cal.com (default), sandbox (a local `calconnect sandbox`) or custom.
    #[arg(long, value_parser = parse_profile)]
    profile: Option<ProfileName>,
    /// OAuth client id (a PUBLIC client). Default for the sandbox: calconnect-cli.
    #[arg(long, env = "CALCONNECT_CLIENT_ID")]
    client_id: Option<String>,
    /// Sandbox base URL (with --profile sandbox), e.g. http://127.0.0.1:5555.
    #[arg(long, env = "CALCONNECT_SANDBOX_URL")]
    sandbox_url: Option<String>,
    /// Authorization endpoint (with --profile custom).
    #[arg(long)]
    authorize_url: Option<String>,
    /// Token endpoint (with --profile custom).
    #[arg(long)]
    token_url: Option<String>,
}

impl ProviderArgs {
    /// Whether any provider flag was given.
    pub fn given(&self) -> bool {
        self.profile.is_some()
            || self.sandbox_url.is_some()
            || self.authorize_url.is_some()
            || self.token_url.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileName {
    CalCom,
    Sandbox,
    Custom,
}

fn parse_profile(s: &str) -> Result<ProfileName, String> {
    match s.to_ascii_lowercase().as_str() {
        "cal.com" | "calcom" | "cal-com" => Ok(ProfileName::CalCom),
        "sandbox" => Ok(ProfileName::Sandbox),
        "custom" => Ok(ProfileName::Custom),
        _ => Err(format!(
            "unknown profile `{s}`: use cal.com, sandbox or custom"
        )),
    }
}

/// `90s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: use e.g. 90s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{s}` is not a duration: use e.g. 90s, 5m or 1h")),
    };
    if secs == 0 {
        return Err("the timeout must be at least 1s".into());
    }
    Ok(Duration::from_secs(secs))
}

/// The provider and client id the flags name.
pub fn provider(args: &ProviderArgs) -> Result<(ProviderSpec, String), CliError> {
    let client_id = args.client_id.clone().filter(|c| !c.trim().is_empty());
    match args.profile.unwrap_or(ProfileName::CalCom) {
        ProfileName::CalCom => {
            let id = client_id.ok_or_else(|| {
                CliError::usage(
                    "--profile cal.com needs your OAuth client id: pass --client-id ID or set CALCONNECT_CLIENT_ID (create a PUBLIC client at https://app.cal.com/settings/developer/oauth)",
                )
            })?;
            Ok((ProviderSpec::CalCom, id))
        }
        ProfileName::Sandbox => {
            let url = args.sandbox_url.clone().ok_or_else(|| {
                CliError::usage(
                    "--profile sandbox needs --sandbox-url http://127.0.0.1:PORT (the address `calconnect sandbox` prints)",
                )
            })?;
            let url = url.trim_end_matches('/').to_owned();
            Ok((
                ProviderSpec::Sandbox { url },
                client_id.unwrap_or_else(|| calconnect_sandbox::PUBLIC_CLIENT_ID.to_owned()),
            ))
        }
        ProfileName::Custom => {
            let (Some(authorize_url), Some(token_url)) =
                (args.authorize_url.clone(), args.token_url.clone())
            else {
                return Err(CliError::usage(
                    "--profile custom needs --authorize-url URL and --token-url URL",
                ));
            };
            let id = client_id.ok_or_else(|| {
                CliError::usage("--profile custom needs --client-id ID (or CALCONNECT_CLIENT_ID)")
            })?;
            Ok((
                ProviderSpec::Custom {
                    authorize_url,
                    token_url,
                },
                id,
            ))
        }
    }
}

fn scopes(text: &str) -> Result<AuthorizeOptions, CliError> {
    let list: Vec<&str> = text
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err(CliError::usage(
            "--scopes is empty: pass scope names such as PROFILE_READ,SCHEDULE_READ",
        ));
    }
    if let Some(bad) = list.iter().find(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }) {
        return Err(CliError::usage(format!(
            "scope `{bad}` is malformed: Cal.com scopes look like PROFILE_READ or BOOKING_WRITE (upper case, comma-separated)"
        )));
    }
    AuthorizeOptions::new(list).map_err(|e| CliError::usage(e.to_string()))
}

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let (spec, client_id) = provider(&args.provider)?;
    let options = scopes(&args.scopes)?;
    let redirect_uri = format!("http://127.0.0.1:{}{}", args.port, loopback::CALLBACK_PATH);
    let record = Record {
        provider: spec.clone(),
        client_id,
        redirect_uri: redirect_uri.clone(),
        username: None,
        email: None,
    };
    let http = HttpClient::new(HttpConfig::default())
        .map_err(|e| CliError::other(format!("cannot build the HTTP client: {e}")))?;
    let flow = flow_for(&record, http)?;

    // Bind before printing the URL, so the redirect cannot arrive before we listen; then the
    // local state: a broken key file stops us before the browser is involved.
    let listener = loopback::bind(args.port).await?;
    let home = Home::locate()?;
    let keyring = local::load_keyring(&home, true)?;
    let store = local::open_store(&home).await?;
    let (url, pending) = flow.start(&options, &mut OsRng);
    let connector = Connector::new(flow, store, Arc::new(keyring), Arc::new(SystemClock))
        .with_profile_lookup(true);
    eprintln!("Log in to {} in your browser:", spec.name());
    eprintln!("  {}", url.as_str());
    if !args.no_browser && !open_browser(url.as_str()) {
        eprintln!("(could not open a browser: open the URL above yourself)");
    }
    eprintln!(
        "Waiting up to {} for the redirect to {redirect_uri} ...",
        loopback::humanize(args.timeout)
    );

    // A request that is not this login's answer (another tab, a port scan, a forged link: no
    // state, another state, or neither code nor error) gets an error page, and the login keeps
    // waiting for the right one until the timeout.
    let deadline = tokio::time::Instant::now() + args.timeout;
    let expected = pending.state_key();
    let (arrived, callback) = loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let arrived = loopback::wait(&listener, remaining, args.timeout).await?;
        match Callback::parse(&arrived.query) {
            Ok(cb) if cb.state_key() == Some(expected) && cb.has_code_or_error() => {
                break (arrived, cb);
            }
            _ => {
                arrived
                    .respond(
                        false,
                        "This request is not the answer of the login calconnect is waiting for (its state is missing or different), so it was ignored; the login in the terminal is still waiting",
                    )
                    .await;
                eprintln!(
                    "(ignored a request to the callback that does not belong to this login; still waiting)"
                );
            }
        }
    };
    let verified = match pending.verify(callback, &SystemClock) {
        Ok(v) => v,
        Err(e) => {
            arrived.respond(false, &e.to_string()).await;
            return Err(callback_error(&e).into());
        }
    };
    // The browser waits for the outcome, so the page tells the truth.
    let done = Done {
        connector: &connector,
        home: &home,
        record,
        scopes: options.scopes(),
    };
    match done.complete(verified).await {
        Ok((who, id)) => {
            arrived.respond(true, &format!("Logged in as {who}")).await;
            println!("Logged in as {who} on {}.", spec.name());
            println!(
                "Connection {id} is stored in {}.",
                home.database().display()
            );
            Ok(())
        }
        Err(e) => {
            arrived.respond(false, &e.message).await;
            Err(e.into())
        }
    }
}

/// What completes a login once the callback is verified.
struct Done<'a> {
    connector: &'a Connector,
    home: &'a Home,
    record: Record,
    scopes: &'a [String],
}

impl Done<'_> {
    /// The connector's exchange, identification and sealed save; then the local record. Returns
    /// who logged in and the connection id.
    async fn complete(
        self,
        verified: calconnect::VerifiedCallback,
    ) -> Result<(String, String), CliError> {
        let connected = self
            .connector
            .complete(verified, local::end_user(), self.scopes, &mut OsRng)
            .await
            .map_err(|e| complete_error(&e))?;
        let id = connected.connection.id.as_uuid().to_string();
        let me = connected.user;
        let mut records = Records::load(self.home)?;
        records.connections.insert(
            id.clone(),
            Record {
                username: me.as_ref().and_then(|m| m.username.clone()),
                email: me.as_ref().and_then(|m| m.email.clone()),
                ..self.record
            },
        );
        records.default = Some(id.clone());
        records.save(self.home)?;
        let owner = connected.connection.identity.owner;
        let who = match &me {
            Some(m) => format!(
                "{} ({}{})",
                m.username.as_deref().unwrap_or("?"),
                m.email
                    .as_deref()
                    .map(|e| format!("{e}, "))
                    .unwrap_or_default(),
                match owner {
                    CalOwner::Team(t) => format!("team {t}"),
                    CalOwner::User(u) => format!("user {u}"),
                }
            ),
            None => format!("{} {}", owner.kind(), owner.id()),
        };
        Ok((who, id))
    }
}

/// A failed completion as a one-line CLI error with its exit code.
fn complete_error(e: &CompleteError) -> CliError {
    let text = chain(e);
    match e {
        CompleteError::Exchange(x) if x.is_transient() => {
            CliError::other(format!("{text}; try `calconnect login` again"))
        }
        CompleteError::Exchange(_) => {
            CliError::auth(format!("{text}; run `calconnect login` again"))
        }
        CompleteError::Identity(calconnect::MeError::NotSupported) => CliError::other(format!(
            "{text}: the provider's tokens name no Cal.com user and it has no /v2/me"
        )),
        CompleteError::Identity(_) => {
            CliError::api(format!("logged in, but asking who you are failed: {text}"))
        }
        _ => CliError::other(format!("cannot store the connection: {text}")),
    }
}

fn callback_error(e: &CallbackError) -> CliError {
    match e {
        CallbackError::AccessDenied { .. } => CliError::auth(
            "access was denied in the browser: run `calconnect login` again and choose Allow",
        ),
        other => CliError::auth(format!("{other}; run `calconnect login` again")),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let t = inner.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        source = inner.source();
    }
    s
}

/// Opens `url` with the platform's opener; `false` when none could be started.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0").is_err());
    }

    #[test]
    fn scopes_are_checked() {
        assert!(scopes("PROFILE_READ, SCHEDULE_READ").is_ok());
        assert!(scopes("profile read!").is_err());
        assert!(scopes("").is_err());
    }
}
