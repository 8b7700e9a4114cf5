//! `calconnect doctor`: checks configuration, redirect URIs, clock, database, keys and the token
//! endpoint, and optionally runs a synthetic flow against the sandbox; prints each check with a
//! fix for what fails. Never prints a token.
//!
//! With `--config broker.toml` it checks the broker's configuration instead
//! ([`calconnect_broker::checks`], the checks `calconnect serve` runs at start).

use crate::doctor_custom::{self, Probe};
use crate::exit::CliError;
use crate::local::{self, Home, ProviderSpec, Records};
use crate::login_cmd::DEFAULT_PORT;
use crate::loopback::CALLBACK_PATH;
use crate::provider_args::{self, ProviderArgs};
use calconnect::crypto::{SealContext, SealedField};
use calconnect::{
    ClientSecret, Clock as _, ProviderProfile, RedirectUri, SystemClock, TokenEndpoints,
};
use std::time::Duration;

/// More clock skew than this breaks expiry decisions (Cal.com's access tokens live 30 minutes).
const MAX_SKEW_SECS: i64 = 60;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Check this provider instead of the default connection's.
    #[command(flatten)]
    provider: ProviderArgs,
    /// Loopback port `calconnect login` will use.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Also check these redirect URIs against the provider's rules (repeatable).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Also run a full synthetic flow against the sandbox (sign in as a seeded user, consent,
    /// code exchange, /v2/me). Sandbox profile only; stores nothing.
    #[arg(long)]
    synthetic: bool,
    /// Check a broker configuration instead (`calconnect serve --config`): the client id and
    /// secret at the token endpoint, the scopes, the database, the keys against the stored
    /// tokens, the redirect URI to register, the webhook receivers. CALCONNECT_* variables apply.
    /// Opening the database applies pending migrations, as `serve` would.
    #[arg(long, short, conflicts_with_all = ["synthetic", "redirect_uris"])]
    config: Option<std::path::PathBuf>,
}

/// The outcome of one check.
#[derive(Debug)]
pub enum Outcome {
    Ok(String),
    Warn(String, String),
    Fail(String, String),
    Skip(String),
}

fn ok(s: impl Into<String>) -> Outcome {
    Outcome::Ok(s.into())
}

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Fail(problem.into(), fix.into())
}

fn warn(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Warn(problem.into(), fix.into())
}

struct Report {
    failures: usize,
}

impl Report {
    fn print(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Outcome::Ok(detail) => println!("[ok]   {name}: {detail}"),
            Outcome::Skip(detail) => println!("[skip] {name}: {detail}"),
            Outcome::Warn(problem, fix) => {
                println!("[warn] {name}: {problem}");
                println!("       fix: {fix}");
            }
            Outcome::Fail(problem, fix) => {
                self.failures += 1;
                println!("[FAIL] {name}: {problem}");
                println!("       fix: {fix}");
            }
        }
    }
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.config {
        return broker_checks(path).await;
    }
    let mut report = Report { failures: 0 };

    // Configuration: folders, connections.json, and which provider to check.
    let home = match Home::locate() {
        Ok(home) => home,
        Err(e) => {
            report.print("configuration", fail(e.message, "set CALCONNECT_HOME"));
            return finish(&report);
        }
    };
    let records = Records::load(&home);
    let chosen = choose_provider(&args, records.as_ref().ok()).await;
    match (&records, &chosen) {
        (Err(e), _) => report.print(
            "configuration",
            fail(e.message.clone(), "move connections.json aside and log in again"),
        ),
        (Ok(_), Err(e)) => report.print(
            "configuration",
            fail(e.message.clone(), "pass --profile/--client-id as for `calconnect login`"),
        ),
        (Ok(r), Ok(Target { spec, client, .. })) => report.print(
            "configuration",
            ok(format!(
                "home {} (data) and {} (config); {} stored connection(s); checking {} with client {client}",
                home.data.display(),
                home.config.display(),
                r.connections.len(),
                describe(spec)
            )),
        ),
    }

    // Redirect URIs against Cal.com's rules (docs/calcom.md §1), or a custom provider's
    // (RFC 8252 §7.3, §8.3: loopback http or https).
    let cal_com = chosen.as_ref().map_or(true, |t| t.spec.is_cal_com());
    let mut uris: Vec<String> = match &chosen {
        Ok(Target {
            redirect_uri: Some(uri),
            ..
        }) => vec![uri.clone()],
        _ => vec![format!("http://127.0.0.1:{}{CALLBACK_PATH}", args.port)],
    };
    uris.extend(args.redirect_uris.iter().cloned());
    for uri in &uris {
        report.print("redirect URI", redirect_uri_outcome(uri, cal_com));
    }

    let profile = chosen.as_ref().ok().map(|t| t.spec.profile());
    if let (Some(Ok(profile)), Ok(target)) = (&profile, &chosen) {
        report.print("client policy", client_policy(profile, target));
    }
    let http = probe_client()?;
    match (&chosen, profile) {
        (Ok(target), Some(Ok(_))) if !cal_com => {
            custom_checks(&mut report, &http, target).await;
        }
        (Ok(Target { client, .. }), Some(Ok(profile))) => {
            let (endpoint, clock) = check_token_endpoint(&http, &profile, client).await;
            report.print("clock", clock);
            report.print("token endpoint", endpoint);
        }
        (_, Some(Err(e))) => {
            report.print("clock", Outcome::Skip("no usable provider".into()));
            report.print("token endpoint", fail(e.message, "fix the provider URL"));
        }
        _ => {
            report.print("clock", Outcome::Skip("no provider configured".into()));
            report.print(
                "token endpoint",
                Outcome::Skip("no provider configured".into()),
            );
        }
    }

    // Keys, then the database (opening it applies the migrations).
    let key_path = home.key_file();
    let keyring = if key_path.exists() {
        match local::load_keyring(&home, false) {
            Ok(k) => {
                report.print("key file", key_file_outcome(&key_path, &k));
                Some(k)
            }
            Err(e) => {
                let (problem, fix) = split_fix(&e.message);
                report.print("key file", fail(problem, fix));
                None
            }
        }
    } else {
        report.print(
            "key file",
            Outcome::Skip(format!(
                "none yet at {} (`calconnect login` creates it)",
                key_path.display()
            )),
        );
        None
    };
    if home.database().exists() {
        match local::open_sqlite(&home).await {
            Ok(store) => {
                report.print("database", database_outcome(&store, &home).await);
                if let Some(keyring) = &keyring {
                    report.print("sealed tokens", sealed_outcome(&store, keyring).await);
                }
            }
            Err(e) => report.print(
                "database",
                fail(
                    e.message,
                    "move the database aside and run `calconnect login`",
                ),
            ),
        }
    } else {
        report.print(
            "database",
            Outcome::Skip(format!(
                "none yet at {} (`calconnect login` creates it)",
                home.database().display()
            )),
        );
    }

    if args.synthetic {
        let outcome = match &chosen {
            Ok(Target {
                spec: ProviderSpec::Sandbox { url },
                ..
            }) => crate::synthetic::run(url).await,
            _ => fail(
                "the synthetic flow needs the sandbox profile",
                "pass --profile sandbox --sandbox-url http://127.0.0.1:PORT",
            ),
        };
        report.print("synthetic flow", outcome);
    }
    finish(&report)
}

/// `doctor --config`: the broker's checks, printed as the local ones.
async fn broker_checks(path: &std::path::Path) -> anyhow::Result<()> {
    use calconnect_broker::checks::Outcome as Broker;
    let mut report = Report { failures: 0 };
    let config = match crate::serve_cmd::load_config(Some(path)) {
        Ok(config) => config,
        Err(e) => {
            report.print(
                "configuration",
                fail(
                    crate::exit::one_line(&e),
                    "correct the file or the CALCONNECT_* variable named above",
                ),
            );
            return finish_broker(&report, path);
        }
    };
    report.print(
        "configuration",
        ok(format!("{} parses and validates", path.display())),
    );
    let checks = calconnect_broker::checks::run(&config, std::sync::Arc::new(SystemClock)).await;
    for check in checks.checks {
        let outcome = match check.outcome {
            Broker::Ok(detail) => Outcome::Ok(detail),
            Broker::Warn { problem, fix } => Outcome::Warn(problem, fix),
            Broker::Fail { problem, fix } => Outcome::Fail(problem, fix),
            Broker::Skip(why) => Outcome::Skip(why),
        };
        report.print(check.name, outcome);
    }
    finish_broker(&report, path)
}

fn finish_broker(report: &Report, path: &std::path::Path) -> anyhow::Result<()> {
    if report.failures == 0 {
        println!(
            "All checks passed: `calconnect serve --config {}` will start.",
            path.display()
        );
        Ok(())
    } else {
        Err(CliError::other(format!(
            "{} check(s) failed: apply the fixes above and run `calconnect doctor --config {}` again",
            report.failures,
            path.display()
        ))
        .into())
    }
}

fn finish(report: &Report) -> anyhow::Result<()> {
    if report.failures == 0 {
        println!("All checks passed.");
        Ok(())
    } else {
        Err(CliError::other(format!(
            "{} check(s) failed: apply the fixes above and run `calconnect doctor` again",
            report.failures
        ))
        .into())
    }
}

fn describe(spec: &ProviderSpec) -> String {
    match spec {
        ProviderSpec::CalCom => "cal.com".into(),
        ProviderSpec::Sandbox { url } => format!("the sandbox at {url}"),
        ProviderSpec::Custom(custom) => format!("the custom provider at {}", custom.host()),
    }
}

/// The provider and client to check.
struct Target {
    spec: ProviderSpec,
    client: String,
    redirect_uri: Option<String>,
    /// A custom client's secret (from the flags, or opened from the record or saved profile)
    /// and where it came from.
    secret: Option<(ClientSecret, &'static str)>,
}

/// Flags first; else the default connection's record; else cal.com with CALCONNECT_CLIENT_ID.
async fn choose_provider(args: &DoctorArgs, records: Option<&Records>) -> Result<Target, CliError> {
    if !args.provider.given() {
        if let Some(records) = records {
            let record = records
                .default
                .as_ref()
                .and_then(|d| records.connections.get(d))
                .or_else(|| records.connections.values().next());
            if let Some(r) = record {
                return Ok(Target {
                    secret: doctor_custom::sealed_secret(&r.provider),
                    spec: r.provider.clone(),
                    client: r.client_id.clone(),
                    redirect_uri: Some(r.redirect_uri.clone()),
                });
            }
        }
    }
    let http = calconnect::http::HttpClient::new(calconnect::http::HttpConfig::default())
        .map_err(|e| CliError::other(format!("cannot build the HTTP client: {e}")))?;
    let chosen = provider_args::choose(&args.provider, false, &http).await?;
    let redirect_uri = chosen
        .saved
        .as_ref()
        .and_then(|(_, p)| p.port)
        .map(|port| format!("http://127.0.0.1:{port}{CALLBACK_PATH}"));
    let secret = match chosen.secret {
        Some((secret, source)) => Some((secret, source.describe())),
        None => doctor_custom::sealed_secret(&chosen.spec),
    };
    Ok(Target {
        spec: chosen.spec,
        client: chosen.client_id,
        redirect_uri,
        secret,
    })
}

/// The client policy (docs/architecture.md §5): `login` at Cal.com is a public client, so
/// PKCE S256 always; a custom client is public or confidential as configured.
fn client_policy(profile: &ProviderProfile, target: &Target) -> Outcome {
    match &target.spec {
        ProviderSpec::Custom(custom) => {
            doctor_custom::client_policy(profile, custom, target.secret.is_some())
        }
        _ => ok(format!("public client: {}", profile.pkce_use(false))),
    }
}

/// A custom provider's checks, in its own words ([`doctor_custom`]).
async fn custom_checks(report: &mut Report, http: &reqwest::Client, target: &Target) {
    let ProviderSpec::Custom(spec) = &target.spec else {
        return;
    };
    let probe = Probe {
        http,
        spec,
        client_id: &target.client,
        secret: target.secret.as_ref().map(|(s, _)| s),
        secret_source: target.secret.as_ref().map(|(_, from)| *from),
    };
    for (name, outcome) in doctor_custom::checks(&probe).await {
        report.print(name, outcome);
    }
}

/// docs/calcom.md §1 for Cal.com; RFC 8252 for any other provider ([`doctor_custom`]).
fn redirect_uri_outcome(uri: &str, cal_com: bool) -> Outcome {
    if cal_com {
        check_redirect_uri(uri)
    } else {
        doctor_custom::redirect_uri(uri)
    }
}

/// docs/calcom.md §1: https, or http only for localhost, 127.0.0.1, [::1], *.local; no
/// fragment; matched exactly, so the loopback port must be fixed.
pub fn check_redirect_uri(uri: &str) -> Outcome {
    match RedirectUri::parse(uri) {
        Err(e) => fail(
            format!("{uri}: {e}"),
            "use https://…, or http://127.0.0.1:PORT/callback for a local tool (Cal.com allows http only for loopback hosts), without #fragment",
        ),
        Ok(_) => {
            let Ok(url) = url::Url::parse(uri) else {
                return fail(format!("{uri} is not a URL"), "use an absolute URL");
            };
            if url.scheme() == "http" && url.port().is_none() {
                return warn(
                    format!("{uri} has no port: Cal.com matches redirect URIs exactly"),
                    "register the exact URI calconnect uses, e.g. http://127.0.0.1:8976/callback",
                );
            }
            ok(format!(
                "{uri} is acceptable to Cal.com; register exactly this URI with your client"
            ))
        }
    }
}

/// The library's one reqwest builder (no redirects), with the probes' shorter timeouts.
fn probe_client() -> Result<reqwest::Client, CliError> {
    calconnect::http::reqwest_client(
        &calconnect::http::HttpConfig::default()
            .connect_timeout(Duration::from_secs(5))
            .total_timeout(Duration::from_secs(15)),
    )
    .map_err(|e| CliError::other(format!("cannot build the HTTP client: {e}")))
}

/// POSTs a harmless request with an unknown grant type: Cal.com's v2 endpoint answers 400
/// `invalid_request` "grant_type must be …" (docs/calcom.md §3.2); an RFC 6749 server 400
/// `unsupported_grant_type`. The answer's `Date` header gives the clock check.
async fn check_token_endpoint(
    http: &reqwest::Client,
    profile: &ProviderProfile,
    client_id: &str,
) -> (Outcome, Outcome) {
    let (url, json) = match profile.token_endpoints() {
        TokenEndpoints::Unified { url, encoding, .. } => (
            url.as_str().to_owned(),
            matches!(encoding, calconnect::BodyEncoding::Json),
        ),
        TokenEndpoints::Legacy(legacy) => (legacy.token.as_str().to_owned(), false),
        _ => {
            return (
                Outcome::Skip("unknown endpoint kind".into()),
                Outcome::Skip(String::new()),
            );
        }
    };
    let fields = [
        ("client_id", client_id),
        ("grant_type", "calconnect_doctor_probe"),
    ];
    let request = http.post(&url);
    let request = if json {
        request.json(
            &serde_json::json!({"client_id": client_id, "grant_type": "calconnect_doctor_probe"}),
        )
    } else {
        request.form(&fields)
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let why = if e.is_timeout() {
                "timed out"
            } else {
                "connection failed"
            };
            let problem = format!("cannot reach {url} ({why})");
            return (
                fail(problem.clone(), "check the provider URL and your network"),
                fail(
                    problem,
                    "check the provider URL and your network (or a proxy)",
                ),
            );
        }
    };
    let clock = clock_outcome(response.headers().get(http::header::DATE));
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    let error = body.get("error").and_then(|e| e.as_str()).unwrap_or("");
    let endpoint = match (status, error) {
        (400, "invalid_request" | "unsupported_grant_type") => ok(format!(
            "{url} answers like Cal.com (400 {error} for an unknown grant type)"
        )),
        (404, _) => warn(
            format!("{url} answers 404 (calcom#27685)"),
            "calconnect falls back to the legacy /api/auth/oauth/token endpoints; if that fails too, check the provider URL",
        ),
        (401, "invalid_client") => fail(
            format!("{url} does not know client `{client_id}` (401 invalid_client)"),
            "check --client-id: create a PUBLIC client at https://app.cal.com/settings/developer/oauth",
        ),
        _ => fail(
            format!("{url} answered HTTP {status} without an OAuth error body"),
            "check that the URL is the provider's token endpoint",
        ),
    };
    (endpoint, clock)
}

pub fn clock_outcome(date: Option<&http::HeaderValue>) -> Outcome {
    let Some(theirs) = date.and_then(|d| d.to_str().ok()).and_then(parse_http_date) else {
        return warn(
            "the provider sent no Date header",
            "compare your clock with a time server (timedatectl / sntp)",
        );
    };
    let skew = (SystemClock.now() - theirs).whole_seconds();
    if skew.abs() > MAX_SKEW_SECS {
        fail(
            format!("your clock is {skew}s off the provider's"),
            "enable time synchronisation (timedatectl set-ntp true); token expiry depends on it",
        )
    } else {
        ok(format!(
            "within {}s of the provider's Date header",
            skew.abs()
        ))
    }
}

/// RFC 9110 §5.6.7 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(s: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

fn split_fix(message: &str) -> (String, String) {
    match message.split_once(": move it aside") {
        Some((problem, fix)) => (problem.to_owned(), format!("move it aside{fix}")),
        None => (
            message.to_owned(),
            "run `calconnect login` again".to_owned(),
        ),
    }
}

fn key_file_outcome(path: &std::path::Path, keyring: &calconnect::crypto::Keyring) -> Outcome {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return warn(
                    format!("{} is readable by others (mode {mode:o})", path.display()),
                    format!("chmod 600 {}", path.display()),
                );
            }
        }
    }
    ok(format!(
        "{} loads (active key `{}`), owner-only",
        path.display(),
        keyring.active_key_id()
    ))
}

/// Opening applied any missing migration; compare the schema with this build's.
async fn database_outcome(store: &calconnect_sqlite::SqliteStore, home: &Home) -> Outcome {
    use calconnect::store::ConnectionStore as _;
    let db = home.database();
    let status = store.migration_status().await;
    let known = status.as_ref().map_or(0, |s| s.known);
    let applied = status.map(|s| s.applied);
    let count = store.count_connections().await;
    match (applied, count) {
        (Ok(Some(v)), Ok(n)) if v == known => ok(format!(
            "{} opens, schema at migration {v} of {known}, {n} connection(s)",
            db.display()
        )),
        (Ok(Some(v)), Ok(_)) if v > known => fail(
            format!(
                "{} has schema version {v}, newer than this build knows ({known})",
                db.display()
            ),
            "upgrade calconnect",
        ),
        (Ok(v), Ok(_)) => fail(
            format!(
                "{} is at schema version {} of {known} after opening",
                db.display(),
                v.unwrap_or(0)
            ),
            "check that the folder is writable, then run `calconnect doctor` again",
        ),
        (Err(e), _) => fail(
            format!("{} has no migration record: {e}", db.display()),
            "move the database aside and run `calconnect login`",
        ),
        (_, Err(e)) => fail(
            format!("{} does not answer: {e}", db.display()),
            "move the database aside and run `calconnect login`",
        ),
    }
}

async fn sealed_outcome(
    store: &calconnect_sqlite::SqliteStore,
    keyring: &calconnect::crypto::Keyring,
) -> Outcome {
    use calconnect::store::ConnectionStore as _;
    let all = match store.list_for_end_user(&local::end_user()).await {
        Ok(all) => all,
        Err(e) => {
            return fail(
                format!("cannot list connections: {e}"),
                "run `calconnect doctor` again",
            );
        }
    };
    let mut unreadable = 0;
    let mut not_active = 0;
    for c in &all {
        let ctx = SealContext::connection(c.id.as_uuid(), SealedField::AccessToken);
        if keyring.open_string(&c.access_token, ctx).is_err() {
            unreadable += 1;
        }
        if c.status != calconnect::store::ConnectionStatus::Active {
            not_active += 1;
        }
    }
    if unreadable > 0 {
        fail(
            format!(
                "{unreadable} of {} connection(s) cannot be opened with the key file",
                all.len()
            ),
            "put the key that sealed them back into the key file, or delete them and log in again",
        )
    } else if not_active > 0 {
        warn(
            format!(
                "{not_active} connection(s) need a new login (see `calconnect connections list`)"
            ),
            "run `calconnect login` again",
        )
    } else {
        ok(format!(
            "{} connection(s) open with the key file and are active",
            all.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 784_111_777);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(matches!(
            check_redirect_uri("http://127.0.0.1:8976/callback"),
            Outcome::Ok(_)
        ));
        assert!(matches!(
            check_redirect_uri("https://app.example.com/cb"),
            Outcome::Ok(_)
        ));
        assert!(matches!(
            check_redirect_uri("http://example.com/cb"),
            Outcome::Fail(..)
        ));
        assert!(matches!(
            check_redirect_uri("https://x.com/cb#frag"),
            Outcome::Fail(..)
        ));
        assert!(matches!(
            check_redirect_uri("http://localhost/cb"),
            Outcome::Warn(..)
        ));
    }
}
