//! `calconnect login`: an authorization-code flow with a loopback redirect (RFC 8252), like
//! `gh auth login`: a public PKCE client at Cal.com, or any OAuth 2.0 server's public or
//! confidential client (`--profile custom`, docs/architecture.md §3.8). The connection is sealed
//! into the local SQLite store.

use crate::custom::saved::{self, SavedProfile, SavedProfiles};
use crate::custom::secret::SealedSecret;
use crate::custom::{Delimiter, wording};
use crate::exit::CliError;
use crate::fresh::{chain, flow_for};
use crate::local::{self, Home, ProviderSpec, Record, Records};
use crate::loopback;
use crate::provider_args::{self, ProviderArgs};
use calconnect::connect::{CompleteError, Connected, Connector};
use calconnect::{
    AccountIdentity, AuthorizeOptions, AuthorizeOptionsError, Callback, CallbackError, SystemClock,
    http::HttpClient, http::HttpConfig,
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
    /// Scopes. Cal.com: comma-separated names (default PROFILE_READ,SCHEDULE_READ). Custom:
    /// the provider's scopes, separated by its delimiter (space by default), e.g.
    /// "openid offline_access read:user"; none by default.
    #[arg(long)]
    scopes: Option<String>,
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// Loopback port for the redirect: register http://127.0.0.1:<port>/callback with your client
    /// (default 8976, or the saved profile's).
    #[arg(long)]
    port: Option<u16>,
    /// How long to wait for the browser (e.g. 90s, 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// A name for the connection (select it with --connection NAME). At a custom provider that
    /// names no account, it also identifies the connection: one per name (default: the
    /// provider's host).
    #[arg(long)]
    name: Option<String>,
    /// Save the provider settings (and the client secret, sealed with your key file) under this
    /// name, for `--profile NAME` in login and doctor, and `--connection NAME` elsewhere.
    #[arg(long, value_name = "NAME")]
    save_as: Option<String>,
    /// After this long without an answer, print what usually keeps the provider from
    /// redirecting back (an error page shown instead).
    #[arg(long, default_value = "15s", value_parser = parse_duration, hide = true)]
    hint_after: Duration,
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

/// Cal.com's scope names: upper case, comma-separated.
fn cal_com_scopes(text: &str) -> Result<AuthorizeOptions, CliError> {
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

/// A custom provider's scopes: free-form RFC 6749 scope tokens, split on its delimiter.
fn custom_scopes(text: &str, delimiter: Delimiter) -> Result<AuthorizeOptions, CliError> {
    let list: Vec<&str> = match delimiter {
        Delimiter::Space => text.split_whitespace().collect(),
        Delimiter::Comma => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
    };
    if delimiter == Delimiter::Space {
        if let Some(odd) = list.iter().find(|s| s.contains(',')) {
            eprintln!(
                "warning: scope `{odd}` holds a comma, and this provider's scopes are separated by spaces (pass --scope-delimiter comma if it wants commas)"
            );
        }
    }
    AuthorizeOptions::for_delimiter(list, delimiter.library()).map_err(|e| match e {
        AuthorizeOptionsError::InvalidScope { scope } => CliError::usage(format!(
            "scope `{scope}` is malformed: RFC 6749 scopes are printable ASCII without spaces, quotes (\") or backslashes, separated by the provider's delimiter ({})",
            match delimiter {
                Delimiter::Space => "space",
                Delimiter::Comma => "comma",
            }
        )),
        other => CliError::usage(other.to_string()),
    })
}

fn scopes_for(spec: &ProviderSpec, text: Option<&str>) -> Result<AuthorizeOptions, CliError> {
    match spec {
        ProviderSpec::Custom(custom) => custom_scopes(text.unwrap_or(""), custom.scope_delimiter),
        _ => cal_com_scopes(text.unwrap_or(DEFAULT_SCOPES)),
    }
}

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let http = HttpClient::new(HttpConfig::default())
        .map_err(|e| CliError::other(format!("cannot build the HTTP client: {e}")))?;
    let wants_openid = args
        .scopes
        .as_deref()
        .is_some_and(|s| s.split([' ', ',']).any(|x| x == "openid"));
    let chosen = provider_args::choose(&args.provider, wants_openid, &http).await?;
    if let Some(name) = &args.save_as {
        saved::check_name(name)?;
    }
    let saved_profile = chosen.saved.as_ref().map(|(_, p)| p);
    let scopes_text = args
        .scopes
        .clone()
        .or_else(|| saved_profile.and_then(|p| p.scopes.clone()));
    let options = scopes_for(&chosen.spec, scopes_text.as_deref())?;
    let port = args
        .port
        .or_else(|| saved_profile.and_then(|p| p.port))
        .unwrap_or(DEFAULT_PORT);
    let redirect_uri = format!("http://127.0.0.1:{port}{}", loopback::CALLBACK_PATH);
    if let Some(name) = &args.name {
        calconnect::IdentitySource::label(name)
            .map_err(|e| CliError::usage(format!("--name: {e}")))?;
    }

    // Bind before printing the URL, so the redirect cannot arrive before we listen; then the
    // local state: a broken key file stops us before the browser is involved.
    let listener = loopback::bind(port).await?;
    let home = Home::locate()?;
    let keyring = local::load_keyring(&home, true)?;
    let store = local::open_store(&home).await?;
    let mut spec = chosen.spec.clone();
    if let (ProviderSpec::Custom(custom), Some((secret, _))) = (&mut spec, &chosen.secret) {
        custom.client_secret = Some(SealedSecret::seal(&keyring, secret)?);
    }
    let record = Record {
        provider: spec,
        client_id: chosen.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        username: None,
        email: None,
        name: args.name.clone(),
        account: None,
        saved_profile: args
            .save_as
            .clone()
            .or_else(|| chosen.saved.as_ref().map(|(n, _)| n.clone())),
    };
    let flow = flow_for(&record, http, Some(&keyring))?;
    let (url, pending) = flow.start(&options, &mut OsRng);
    let connector = Connector::new(flow, store, Arc::new(keyring), Arc::new(SystemClock))
        .with_profile_lookup(true);
    let shown_name = match &record.provider {
        ProviderSpec::Custom(custom) => custom.host(),
        other => other.name().to_owned(),
    };
    eprintln!("Log in to {shown_name} in your browser:");
    eprintln!("  {}", url.as_str());
    if !args.no_browser && !open_browser(url.as_str()) {
        eprintln!("(could not open a browser: open the URL above yourself)");
    }
    eprintln!(
        "Waiting up to {} for the redirect to {redirect_uri} ...",
        loopback::humanize(args.timeout)
    );
    // The provider may show an error page instead of redirecting (we cannot see it): after a
    // quiet period, say what usually causes that, and keep waiting.
    let hint = (args.hint_after < args.timeout).then(|| {
        let text = hint_text(&record);
        let after = args.hint_after;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            eprintln!("{text}");
        })
    });

    // A request that is not this login's answer (another tab, a port scan, a forged link: no
    // state, another state, or neither code nor error) gets an error page, and the login keeps
    // waiting for the right one until the timeout.
    let deadline = tokio::time::Instant::now() + args.timeout;
    let expected = pending.state_key();
    let waited = loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let arrived = match loopback::wait(&listener, remaining, args.timeout).await {
            Ok(arrived) => arrived,
            Err(e) => break Err(e),
        };
        match Callback::parse(&arrived.query) {
            Ok(cb) if cb.state_key() == Some(expected) && cb.has_code_or_error() => {
                break Ok((arrived, cb));
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
    if let Some(task) = hint {
        task.abort();
    }
    let (arrived, callback) = waited?;
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
        secret_source: chosen.secret.as_ref().map(|(_, s)| s.describe()),
    };
    match done.complete(verified).await {
        Ok((who, id, record)) => {
            arrived.respond(true, &format!("Logged in as {who}")).await;
            match &record.provider {
                ProviderSpec::Custom(custom) => {
                    println!("Logged in as {who} at {}.", custom.host())
                }
                other => println!("Logged in as {who} on {}.", other.name()),
            }
            println!(
                "Connection {id} is stored in {}.",
                home.database().display()
            );
            if let Some(name) = &args.save_as {
                save_profile(&home, name, &record, port, scopes_text)?;
                println!(
                    "Saved the provider settings as profile `{name}`: `calconnect login --profile {name}` and `calconnect doctor --profile {name}` use them; --connection {name} selects this connection."
                );
            }
            Ok(())
        }
        Err(e) => {
            arrived.respond(false, &e.message).await;
            Err(e.into())
        }
    }
}

fn save_profile(
    home: &Home,
    name: &str,
    record: &Record,
    port: u16,
    scopes: Option<String>,
) -> Result<(), CliError> {
    let mut profiles = SavedProfiles::load(home)?;
    profiles.profiles.insert(
        name.to_owned(),
        SavedProfile {
            provider: record.provider.clone(),
            client_id: record.client_id.clone(),
            port: Some(port),
            scopes,
        },
    );
    profiles.save(home)
}

/// What usually keeps a provider from redirecting back, for the quiet-period hint.
fn hint_text(record: &Record) -> String {
    let common = format!(
        "the redirect URI {} is not registered for client `{}` (it must match exactly, port included); the client id is unknown",
        record.redirect_uri, record.client_id
    );
    match &record.provider {
        ProviderSpec::Custom(custom) => format!(
            "No answer from the browser yet. If the provider shows an error page instead of a sign-in or consent page, calconnect cannot see it; likely causes: {common}; a requested scope is not allowed for this client; the client must authenticate differently (--auth-method, now {}) or use PKCE. Fix it at {} or in the flags, and run `calconnect login` again (Ctrl-C stops this one); still waiting.",
            custom.auth_method.as_str(),
            custom.host()
        ),
        _ => format!(
            "No answer from the browser yet. If Cal.com shows an error page instead of a sign-in or consent page, calconnect cannot see it; likely causes: {common} or not a PUBLIC client; a requested scope is not enabled for the client. Fix it at https://app.cal.com/settings/developer/oauth and run `calconnect login` again (Ctrl-C stops this one); still waiting."
        ),
    }
}

/// What completes a login once the callback is verified.
struct Done<'a> {
    connector: &'a Connector,
    home: &'a Home,
    record: Record,
    scopes: &'a [String],
    secret_source: Option<&'static str>,
}

impl Done<'_> {
    /// The connector's exchange, identification and sealed save; then the local record. Returns
    /// who logged in, the connection id and the record kept.
    async fn complete(
        self,
        verified: calconnect::VerifiedCallback,
    ) -> Result<(String, String, Record), CliError> {
        let connected = self
            .connector
            .complete(verified, local::end_user(), self.scopes, &mut OsRng)
            .await
            .map_err(|e| self.complete_error(&e))?;
        let id = connected.connection.id.as_uuid().to_string();
        let who = who(&connected);
        let me = connected.user;
        let account = match &connected.account {
            AccountIdentity::Cal(_) => None,
            AccountIdentity::Subject { value, .. } | AccountIdentity::Label(value) => {
                Some(value.clone())
            }
            other => Some(other.describe()),
        };
        let record = Record {
            username: me.as_ref().and_then(|m| m.username.clone()),
            email: me.as_ref().and_then(|m| m.email.clone()),
            account,
            ..self.record
        };
        let mut records = Records::load(self.home)?;
        records.connections.insert(id.clone(), record.clone());
        records.default = Some(id.clone());
        records.save(self.home)?;
        Ok((who, id, record))
    }

    /// A failed completion as a one-line CLI error with its exit code.
    fn complete_error(&self, e: &CompleteError) -> CliError {
        if let ProviderSpec::Custom(spec) = &self.record.provider {
            return match e {
                CompleteError::Exchange(x) => {
                    wording::exchange_error(x, &self.record.client_id, spec, self.secret_source)
                }
                CompleteError::Identity(failure) => wording::identity_error(failure),
                _ => CliError::other(format!("cannot store the connection: {}", chain(e))),
            };
        }
        let text = chain(e);
        match e {
            CompleteError::Exchange(x) if x.is_transient() => {
                CliError::other(format!("{text}; try `calconnect login` again"))
            }
            CompleteError::Exchange(_) => {
                CliError::auth(format!("{text}; run `calconnect login` again"))
            }
            CompleteError::Identity(_) => {
                CliError::api(format!("logged in, but asking who you are failed: {text}"))
            }
            _ => CliError::other(format!("cannot store the connection: {text}")),
        }
    }
}

/// Who logged in, for people: `alice (alice@example.com, user 1)`, `interop-user (userinfo)`.
fn who(connected: &Connected) -> String {
    match (&connected.account, &connected.user) {
        (AccountIdentity::Cal(owner), Some(m)) => format!(
            "{} ({}{} {})",
            m.username.as_deref().unwrap_or("?"),
            m.email
                .as_deref()
                .map(|e| format!("{e}, "))
                .unwrap_or_default(),
            owner.kind(),
            owner.id()
        ),
        (AccountIdentity::Label(label), _) => format!(
            "`{label}` (the provider names no account; the connection is known by this name)"
        ),
        (account, _) => account.describe(),
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
        assert!(cal_com_scopes("PROFILE_READ, SCHEDULE_READ").is_ok());
        assert!(cal_com_scopes("profile read!").is_err());
        assert!(cal_com_scopes("").is_err());
        let custom = custom_scopes("openid read:user https://x/y a,b", Delimiter::Space).unwrap();
        assert_eq!(
            custom.scopes(),
            ["openid", "read:user", "https://x/y", "a,b"]
        );
        assert_eq!(
            custom_scopes("a, b", Delimiter::Comma).unwrap().scopes(),
            ["a", "b"]
        );
        assert!(
            custom_scopes("", Delimiter::Space)
                .unwrap()
                .scopes()
                .is_empty()
        );
        let err = custom_scopes("openid \"x", Delimiter::Space).unwrap_err();
        assert!(err.message.contains("is malformed"), "{}", err.message);
        assert!(!err.message.contains("Cal.com"), "{}", err.message);
    }
}
