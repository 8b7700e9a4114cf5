//! Checks of a broker configuration against the world it runs in: the redirect URI to register,
//! the scopes against Cal.com's names, the database, the sealing keys against the stored tokens,
//! the client id and secret at the real token endpoint, and the webhook receivers.
//!
//! `calconnect doctor --config` prints them all; `calconnect serve` runs them before it starts,
//! refuses to start on a [`Outcome::Fail`] (certainly wrong) and prints an [`Outcome::Warn`]
//! (may be transient: the provider or a receiver is down for now).
//!
//! The client check refreshes a dummy refresh token: Cal.com authenticates the client before it
//! looks at the token (`refreshAccessToken`, docs/calcom.md §3.4 "Refresh" and §3.8), so a
//! wrong id or secret answers 401 `invalid_client`, and a right one 400 `invalid_grant` /
//! `invalid_refresh_token`. No user and no grant are involved, and nothing changes at Cal.com.

use crate::config::{BrokerConfig, redirect_uri_for};
use crate::db::BrokerDb;
use calconnect::crypto::{Keyring, OpenError, SealContext, SealedField};
use calconnect::http::{HttpClient, HttpConfig};
use calconnect::scopes::{CalComScope, classify_cal_com_scope};
use calconnect::store::{ConnectionStore, StoreError};
use calconnect::{
    AuthorizationFlow, Clock, InvalidClientReason, ProviderKind, RefreshError, RefreshToken,
    TokenEndpoints,
};
use std::sync::Arc;
use std::time::Duration;

/// How long a probe of the provider or a webhook receiver may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The refresh token sent by the client check: not a JWT, so Cal.com refuses it as
/// `invalid_refresh_token` once the client is authenticated.
const PROBE_REFRESH_TOKEN: &str = "calconnect-configuration-check";

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fine; what was seen.
    Ok(String),
    /// May be wrong or transient; the broker can start.
    Warn {
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// Certainly wrong; the broker does not start.
    Fail {
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// Not checked, and why.
    Skip(String),
}

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Fail {
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn warn(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Warn {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`client credentials`, `database`, …).
    pub name: &'static str,
    /// How it went.
    pub outcome: Outcome,
}

/// All checks of one configuration, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    fn push(&mut self, name: &'static str, outcome: Outcome) {
        self.checks.push(Check { name, outcome });
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail { .. }))
            .count()
    }

    /// The outcome of the check named `name`, if it ran.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.outcome)
    }
}

/// Runs every check of `config` (see the module documentation). Opening the database applies
/// pending migrations, as `calconnect serve` would.
pub async fn run(config: &BrokerConfig, clock: Arc<dyn Clock>) -> Report {
    let mut report = Report::default();
    report.push("redirect URI", redirect_uri(config));
    report.push("scopes", scopes(&config.default_scopes));
    // The network checks at once: a start waits for the slowest, not for their sum.
    let ((database, keys, budget), client, receivers) = tokio::join!(
        storage(config, clock.clone()),
        client_credentials(config, clock),
        webhooks(config)
    );
    report.push("database", database);
    report.push("sealing keys", keys);
    report.push("refresh budget", budget);
    report.push("client credentials", client);
    for outcome in receivers {
        report.push("webhook receiver", outcome);
    }
    report
}

/// The database, then the keys against what it stores, and the refresh budget against the
/// connections.
async fn storage(config: &BrokerConfig, clock: Arc<dyn Clock>) -> (Outcome, Outcome, Outcome) {
    match crate::open_storage(&config.database, clock.clone()).await {
        Ok((store, db)) => (
            database(config, &*store, &db).await,
            sealing_keys(&*store, &config.keyring).await,
            budget(config, &*store, clock).await,
        ),
        Err(e) => (
            database_failure(config, &e),
            Outcome::Skip("the database did not open".to_owned()),
            Outcome::Skip("the database did not open".to_owned()),
        ),
    }
}

/// The token-endpoint budget (docs/scaling.md): what it can carry against the active
/// connections, and whether a 429 paused it.
async fn budget(
    config: &BrokerConfig,
    store: &dyn ConnectionStore,
    clock: Arc<dyn Clock>,
) -> Outcome {
    let b = &config.budget;
    let window = calconnect::keeper::KeeperConfig::default().refresh_window();
    let window = time::Duration::try_from(window).unwrap_or(time::Duration::days(30));
    let keep_alive = b.keep_alive_capacity(window);
    let fresh = b.fresh_capacity(time::Duration::minutes(30));
    let active = match store.count_by_status().await {
        Ok(counts) => counts.get(calconnect::store::ConnectionStatus::Active),
        Err(e) => {
            return warn(
                format!("cannot count the connections: {e}"),
                "check the database",
            );
        }
    };
    let shared = store.budget(b.clone(), clock.clone());
    let now = clock.now();
    if let Ok(state) = shared.state().await {
        if let Some(until) = state.paused_until.filter(|u| *u > now) {
            return warn(
                format!(
                    "budget `{}` is paused for {} s after a 429 from Cal.com's token endpoint",
                    b.name,
                    (until - now).whole_seconds().max(1)
                ),
                "wait; if it recurs, lower budget.per_minute or check what else sends token requests from this IP (docs/scaling.md)",
            );
        }
    }
    let summary = format!(
        "budget `{}`: {} token requests per minute (burst {}); keeps about {fresh} connections in constant use fresh and {keep_alive} idle ones alive; {active} active",
        b.name, b.per_minute, b.burst
    );
    if active > keep_alive {
        return warn(
            format!("{summary}: more than the budget can keep alive"),
            "add an egress IP with its own budget (budget.name) or raise budget.background_share (docs/scaling.md)",
        );
    }
    // A caller that finds the bucket empty waits for the next permit: `max_wait` must cover a
    // few permit intervals, or callers are refused while the budget still has room.
    let interval = 60.0 / f64::from(b.per_minute.max(1));
    if b.max_wait.as_secs_f64() < 3.0 * interval {
        return warn(
            format!(
                "{summary}; max_wait ({} s) is under three permit intervals ({interval:.0} s each): API callers give up before the next permit while the budget still has room",
                b.max_wait.as_secs()
            ),
            format!(
                "raise budget.max_wait_secs to at least {} (docs/scaling.md)",
                (3.0 * interval).ceil()
            ),
        );
    }
    if b.per_minute + b.burst > 120 {
        return warn(
            format!("{summary}; per_minute + burst is above Cal.com's 120 per minute per IP"),
            "lower budget.per_minute or budget.burst unless this IP has a higher limit at Cal.com",
        );
    }
    Outcome::Ok(summary)
}

/// Where the OAuth client is registered, for messages.
pub fn developer_settings(config: &BrokerConfig) -> String {
    let authorize = config.profile.authorize_url().as_str();
    match config.profile.kind() {
        ProviderKind::Sandbox => format!(
            "the sandbox: `calconnect sandbox --redirect-uri {}`",
            redirect_uri_for(&config.public_base_url)
        ),
        _ => match url::Url::parse(authorize) {
            Ok(u) => format!(
                "{}://{}/settings/developer/oauth",
                u.scheme(),
                u.host_str().unwrap_or("app.cal.com")
            ),
            Err(_) => "Cal.com's developer settings (OAuth clients)".to_owned(),
        },
    }
}

/// Where the client's id and secret are shown.
fn credentials_place(config: &BrokerConfig) -> String {
    match config.profile.kind() {
        ProviderKind::Sandbox => "in the banner of `calconnect sandbox`".to_owned(),
        _ => format!("at {}", developer_settings(config)),
    }
}

/// `<public_base_url>/oauth/callback`, to register with the client (Cal.com matches it exactly,
/// docs/calcom.md §1.3).
fn redirect_uri(config: &BrokerConfig) -> Outcome {
    Outcome::Ok(format!(
        "{}: register exactly this URI for client `{}` at {}",
        config.client.redirect_uri().as_str(),
        config.client.client_id(),
        developer_settings(config)
    ))
}

/// `client.scopes` against Cal.com's names ([`calconnect::scopes`]).
fn scopes(scopes: &[String]) -> Outcome {
    let mut unknown = Vec::new();
    let mut legacy = Vec::new();
    for scope in scopes {
        match classify_cal_com_scope(scope) {
            CalComScope::Unknown { suggestion } => unknown.push(match suggestion {
                Some(s) => format!("`{scope}` (did you mean {s}?)"),
                None => format!("`{scope}`"),
            }),
            CalComScope::Legacy { replacement } => {
                legacy.push(format!("`{scope}` (now {replacement})"));
            }
            _ => {}
        }
    }
    if !unknown.is_empty() {
        return fail(
            format!(
                "not a Cal.com scope: {}; Cal.com would refuse every connect link with unknown_scope",
                unknown.join(", ")
            ),
            "correct client.scopes; Cal.com's scope names are listed at https://cal.com/docs/api-reference/v2/oauth",
        );
    }
    if !legacy.is_empty() {
        return warn(
            format!(
                "legacy scope names: {}; Cal.com refuses them from clients registered with legacy scopes only",
                legacy.join(", ")
            ),
            "use the current names in client.scopes (and register them with your client)",
        );
    }
    Outcome::Ok(format!(
        "{} are Cal.com scopes; the client must be registered with each",
        scopes.join(", ")
    ))
}

async fn database(config: &BrokerConfig, store: &dyn ConnectionStore, db: &BrokerDb) -> Outcome {
    let place = config.database.describe();
    if !db.ready().await {
        return fail(
            format!("{place} opens, but the broker's migrations are not all applied"),
            "check that the database user may create tables, then start again",
        );
    }
    match store.count_connections().await {
        Ok(n) => Outcome::Ok(format!(
            "{place} opens, schema up to date, {n} connection(s)"
        )),
        Err(e) => fail(
            format!("{place} does not answer: {e}"),
            "check database_url (CALCONNECT_DATABASE_URL) and the database server",
        ),
    }
}

fn database_failure(config: &BrokerConfig, e: &StoreError) -> Outcome {
    let fix = match config.database {
        crate::DatabaseConfig::Sqlite(_) => {
            "check that the folder of the SQLite file exists and is writable (database_url, CALCONNECT_DATABASE_URL)"
        }
        crate::DatabaseConfig::Postgres(_) => {
            "start PostgreSQL or correct database_url (CALCONNECT_DATABASE_URL)"
        }
    };
    fail(e.to_string(), fix)
}

/// Whether the keyring opens the stored tokens, judged on one sealed row.
#[derive(Debug)]
pub enum StoredData {
    /// No connection is stored yet.
    Empty,
    /// The first stored connection's access token opens.
    Opens {
        /// The key that sealed it.
        key_id: String,
    },
    /// It does not open.
    DoesNotOpen(OpenError),
}

/// Opens the access token of the first stored connection with `keyring` (the `/readyz` and
/// start-up test of the keys).
///
/// # Errors
/// [`StoreError`] when the store cannot be read.
pub async fn stored_data_opens(
    store: &dyn ConnectionStore,
    keyring: &Keyring,
) -> Result<StoredData, StoreError> {
    let Some(connection) = store.list_connections(None, 1).await?.into_iter().next() else {
        return Ok(StoredData::Empty);
    };
    let context = SealContext::connection(connection.id.as_uuid(), SealedField::AccessToken);
    Ok(
        match keyring.open_string(&connection.access_token, context) {
            Ok(_) => StoredData::Opens {
                key_id: connection
                    .access_token
                    .key_id()
                    .map(|k| k.as_str().to_owned())
                    .unwrap_or_default(),
            },
            Err(e) => StoredData::DoesNotOpen(e),
        },
    )
}

async fn sealing_keys(store: &dyn ConnectionStore, keyring: &Keyring) -> Outcome {
    let active = keyring.active_key_id().as_str().to_owned();
    match stored_data_opens(store, keyring).await {
        Ok(StoredData::Empty) => {
            Outcome::Ok(format!("active key `{active}`; no tokens stored yet"))
        }
        Ok(StoredData::Opens { key_id }) => Outcome::Ok(format!(
            "active key `{active}`; a stored connection (sealed with `{key_id}`) opens"
        )),
        Ok(StoredData::DoesNotOpen(e)) => {
            let fix = match &e {
                OpenError::UnknownKey { key_id, .. } => format!(
                    "add key `{key_id}` to keys.file (CALCONNECT_KEY_FILE) or CALCONNECT_KEYS, after the active key; `calconnect keys rotate` then re-seals everything under the active key"
                ),
                OpenError::Authentication { key_id, .. } => format!(
                    "the keyring's key `{key_id}` is not the one that sealed the stored tokens: restore the original key `{key_id}` in keys.file (CALCONNECT_KEY_FILE) or CALCONNECT_KEYS"
                ),
                _ => "restore the keys that sealed the stored tokens".to_owned(),
            };
            fail(format!("stored tokens do not open: {e}"), fix)
        }
        Err(e) => fail(
            format!("cannot read a stored connection: {e}"),
            "check the database, then run the checks again",
        ),
    }
}

/// A dummy refresh at the token endpoint the broker uses (see the module documentation).
async fn client_credentials(config: &BrokerConfig, clock: Arc<dyn Clock>) -> Outcome {
    let url = match config.profile.token_endpoints() {
        TokenEndpoints::Unified { url, .. } => url.as_str().to_owned(),
        TokenEndpoints::Legacy(legacy) => legacy.refresh.as_str().to_owned(),
        _ => String::new(),
    };
    let http = match HttpClient::new(
        HttpConfig::default()
            .connect_timeout(Duration::from_secs(5))
            .total_timeout(PROBE_TIMEOUT),
    ) {
        Ok(http) => http,
        Err(e) => return fail(format!("cannot build the HTTP client: {e}"), "report this"),
    };
    let flow = AuthorizationFlow::new(config.profile.clone(), config.client.clone(), http, clock);
    let id = config.client.client_id();
    let confidential = config.client.is_confidential();
    let result = flow.refresh(&RefreshToken::new(PROBE_REFRESH_TOKEN)).await;
    match result {
        Ok(_) => warn(
            format!("{url} accepted a made-up refresh token"),
            "check that the provider URL points at Cal.com",
        ),
        Err(RefreshError::InvalidGrant { reason }) => Outcome::Ok(format!(
            "{url} accepts client `{id}`{} (a made-up refresh token is refused with invalid_grant{}, as it must be)",
            if confidential { " and its secret" } else { "" },
            reason.as_str().map(|r| format!("/{r}")).unwrap_or_default()
        )),
        Err(RefreshError::InvalidClient {
            reason: InvalidClientReason::ClientNotFound,
        }) => fail(
            format!("{url} does not know client `{id}` (401 invalid_client, client_not_found)"),
            format!(
                "set client.id (CALCONNECT_CLIENT_ID) to the client id shown {}",
                credentials_place(config)
            ),
        ),
        Err(RefreshError::InvalidClient {
            reason: InvalidClientReason::Unspecified,
        }) => fail(
            format!(
                "{url} refuses client `{id}` or its secret (401 invalid_client, no reason given)"
            ),
            format!(
                "check client.id (CALCONNECT_CLIENT_ID) and CALCONNECT_CLIENT_SECRET against the client shown {}",
                credentials_place(config)
            ),
        ),
        Err(RefreshError::InvalidClient { reason }) if confidential => fail(
            format!("{url} refuses the secret of client `{id}` (401 invalid_client, {reason})"),
            format!(
                "set CALCONNECT_CLIENT_SECRET to the client's current secret, shown {}",
                credentials_place(config)
            ),
        ),
        Err(RefreshError::InvalidClient { reason }) => fail(
            format!(
                "{url} refuses client `{id}` without a secret (401 invalid_client, {reason}): it is a confidential client"
            ),
            "set CALCONNECT_CLIENT_SECRET to the client's secret",
        ),
        Err(e @ RefreshError::UnauthorizedClient { .. }) => fail(
            e.to_string(),
            format!("see the client's status at {}", developer_settings(config)),
        ),
        Err(e) if e.is_transient() => warn(
            format!("cannot check the client at {url} now: {e}"),
            "the broker starts anyway and retries refreshes; run `calconnect doctor --config …` once the provider answers",
        ),
        Err(e @ RefreshError::EndpointNotFound) => warn(
            e.to_string(),
            "check provider.web_url / provider.api_url (CALCONNECT_PROVIDER_URL)",
        ),
        Err(e) => fail(
            format!("{url}: {e}"),
            "check the provider settings ([provider] kind, web_url, api_url)",
        ),
    }
}

/// Each webhook URL answers HTTP (any status: deliveries are signed POSTs, this is a plain GET).
async fn webhooks(config: &BrokerConfig) -> Vec<Outcome> {
    if config.webhooks.urls.is_empty() {
        return vec![Outcome::Skip(
            "no receivers configured (webhooks.urls, CALCONNECT_WEBHOOK_URLS)".to_owned(),
        )];
    }
    let http = match calconnect::http::reqwest_client(
        &HttpConfig::default()
            .connect_timeout(Duration::from_secs(5))
            .total_timeout(PROBE_TIMEOUT),
    ) {
        Ok(http) => http,
        Err(e) => {
            return vec![fail(
                format!("cannot build the HTTP client: {e}"),
                "report this",
            )];
        }
    };
    // All receivers at once: a start waits for the slowest, not for their sum.
    futures::future::join_all(config.webhooks.urls.iter().map(|url| {
        let http = &http;
        async move {
            let shown = display_url(url);
            match http.get(url.clone()).send().await {
                Ok(response) => Outcome::Ok(format!(
                    "{shown} answers (HTTP {} to a GET; deliveries are signed POSTs)",
                    response.status().as_u16()
                )),
                Err(e) => warn(
                    format!(
                        "{shown} cannot be reached ({})",
                        if e.is_timeout() {
                            "no answer in time"
                        } else if e.is_connect() {
                            "connection refused or host unknown"
                        } else {
                            "request failed"
                        }
                    ),
                    "start the receiver or correct webhooks.urls (CALCONNECT_WEBHOOK_URLS); until then deliveries wait and are retried",
                ),
            }
        }
    }))
    .await
}

/// A URL as shown in messages: scheme, host, port and path (a query or user info may hold a
/// token).
pub fn display_url(url: &url::Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}
