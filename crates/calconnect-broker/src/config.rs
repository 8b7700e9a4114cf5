//! Configuration: a TOML file plus `CALCONNECT_*` environment variables (the variables win),
//! validated once at startup into [`BrokerConfig`]. Every error names the key and the fix
//! (docs/architecture.md §6: configuration).

use calconnect::crypto::{Keyring, KeyringError};
use calconnect::{
    AuthorizeOptions, ClientConfig, ClientSecret, ConfidentialPkce, ProviderProfile, UrlPolicy,
};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// An example configuration (shown by `calconnect serve --help`).
pub const EXAMPLE_CONFIG: &str = include_str!("example-config.toml");

/// A configuration problem: the key and what to do.
#[derive(Debug)]
pub struct ConfigError {
    /// The TOML key (and its environment variable); [`FILE_KEY`] for a TOML syntax error.
    pub key: String,
    /// What is wrong and the fix.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key == FILE_KEY {
            write!(f, "configuration file: {}", self.message)
        } else {
            write!(f, "configuration key `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The [`ConfigError::key`] of a TOML syntax error (the file does not parse at all).
pub const FILE_KEY: &str = "(file)";

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    allow_reassignment: Option<bool>,
    public_base_url: Option<String>,
    database_url: Option<String>,
    log_format: Option<String>,
    connect_session_ttl_secs: Option<i64>,
    #[serde(default)]
    provider: RawProvider,
    #[serde(default)]
    client: RawClient,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    webhooks: RawWebhooks,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    budget: RawBudget,
}

/// `[budget]`: the token-endpoint budget (docs/scaling.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    name: Option<String>,
    per_minute: Option<u32>,
    burst: Option<u32>,
    exchange_reserve: Option<u32>,
    background_share: Option<f64>,
    max_wait_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
    token: Option<String>,
}

/// Where `/metrics` is served and who may read it (`[metrics]`).
#[derive(Clone, Default)]
pub struct MetricsConfig {
    /// Serve `/metrics` on this address only (not on the main listener).
    pub listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Option<String>,
    web_url: Option<String>,
    api_url: Option<String>,
    confidential_pkce: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: Option<String>,
    secret: Option<String>,
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    urls: Option<Vec<String>>,
    secret: Option<String>,
    secrets: Option<Vec<String>>,
}

/// Where the broker keeps its data.
#[derive(Clone)]
pub enum DatabaseConfig {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (may hold a password: never shown).
    Postgres(SecretString),
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Self::Postgres(_) => f.write_str("Postgres([redacted])"),
        }
    }
}

impl DatabaseConfig {
    /// Where the data is, for messages: the SQLite file, or PostgreSQL's user, host, port and
    /// database (never the password or the query).
    pub fn describe(&self) -> String {
        use secrecy::ExposeSecret as _;
        match self {
            Self::Sqlite(path) => format!("SQLite {}", path.display()),
            Self::Postgres(url) => match Url::parse(url.expose_secret()) {
                Ok(u) => {
                    let user = if u.username().is_empty() {
                        String::new()
                    } else {
                        format!("{}@", u.username())
                    };
                    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                    format!(
                        "PostgreSQL {user}{}{port}{}",
                        u.host_str().unwrap_or(""),
                        u.path()
                    )
                }
                Err(_) => "PostgreSQL (URL not parsed)".to_owned(),
            },
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Webhook delivery settings.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Receivers; every event goes to each.
    pub urls: Vec<Url>,
    /// The HMAC secrets shared with the receivers, newest first: each signs every delivery (one
    /// `v1=` per secret), so a secret can be rotated without a moment when receivers reject.
    pub secrets: Vec<SecretString>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("urls", &self.urls)
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Public base URL of the broker (the browser reaches `/connect` and `/oauth/callback` there).
    pub public_base_url: Url,
    /// Database.
    pub database: DatabaseConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// The provider.
    pub profile: ProviderProfile,
    /// The OAuth client (its redirect URI is `<public_base_url>/oauth/callback`).
    pub client: ClientConfig,
    /// Scopes of a connect session that names none.
    pub default_scopes: Vec<String>,
    /// Sealing keys.
    pub keyring: std::sync::Arc<Keyring>,
    /// Webhooks.
    pub webhooks: WebhookConfig,
    /// How long a connect link stays usable.
    pub connect_session_ttl: time::Duration,
    /// Limits of the HTTP edge (`[http]`).
    pub edge: crate::edge::EdgeConfig,
    /// `/metrics` (`[metrics]`).
    pub metrics: MetricsConfig,
    /// Whether a connect flow for one end user may take over a Cal.com account connected for
    /// another (`allow_reassignment`, default false: refused, `connection.conflict` webhook).
    pub allow_reassignment: bool,
    /// The token-endpoint budget shared by every instance on the database (`[budget]`,
    /// docs/scaling.md).
    pub budget: calconnect::budget::BudgetConfig,
    /// The egress proxy of the API v2 proxy's client: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY` of the environment, as the OAuth client (reqwest) reads them.
    pub upstream_proxy: calconnect::http::ProxyEnv,
}

/// Environment lookup (tests pass a map; `calconnect serve` passes the process environment).
pub type Env = HashMap<String, String>;

impl BrokerConfig {
    /// Parses and validates `toml_text` with `env` overriding it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn from_toml_and_env(toml_text: &str, env: &Env) -> Result<Self, ConfigError> {
        Self::from_file_text(toml_text, env, None)
    }

    /// As [`Self::from_toml_and_env`] for the text of a configuration file in the folder
    /// `file_dir`: relative paths written in the file (`database_url = "sqlite://…"`,
    /// `keys.file`) are taken from that folder, so the broker finds its files whatever its
    /// working directory. Paths in `CALCONNECT_*` variables stay relative to the working
    /// directory.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key (and the line, for a mistake in the file).
    pub fn from_file_text(
        toml_text: &str,
        env: &Env,
        file_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let raw = parse_raw(toml_text)?;
        Self::validate(raw, env, file_dir)
    }

    fn validate(raw: RawConfig, env: &Env, file_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let get = |var: &str, file: Option<String>| -> Option<String> {
            env.get(var).cloned().filter(|v| !v.is_empty()).or(file)
        };
        let listen_text = get("CALCONNECT_LISTEN", raw.listen).unwrap_or("127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            bad("listen", format!("`{listen_text}` is not an address: use host:port such as 127.0.0.1:8080 (CALCONNECT_LISTEN)"))
        })?;
        let base_text = get("CALCONNECT_PUBLIC_BASE_URL", raw.public_base_url).ok_or_else(|| {
            bad("public_base_url", "missing: set the URL where browsers reach this broker, e.g. https://connect.example.com (CALCONNECT_PUBLIC_BASE_URL)")
        })?;
        let public_base_url = parse_base_url(&base_text)?;
        let database = database_of(env, raw.database_url, file_dir)?;
        let log_format = match get("CALCONNECT_LOG_FORMAT", raw.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "log_format",
                    format!(
                        "`{other}` is not a log format: use text or json (CALCONNECT_LOG_FORMAT)"
                    ),
                ));
            }
        };
        let profile = parse_profile(
            get("CALCONNECT_PROVIDER", raw.provider.kind),
            get("CALCONNECT_PROVIDER_URL", raw.provider.web_url),
            get("CALCONNECT_PROVIDER_API_URL", raw.provider.api_url),
        )?;
        let profile = match get(
            "CALCONNECT_CONFIDENTIAL_PKCE",
            raw.provider.confidential_pkce,
        ) {
            None => profile,
            Some(text) => {
                let key = "provider.confidential_pkce";
                let mode = ConfidentialPkce::parse(&text).ok_or_else(|| {
                    bad(key, format!("`{text}` is not a setting: use off (Cal.com's documented path, the default) or legacy-endpoint (CALCONNECT_CONFIDENTIAL_PKCE)"))
                })?;
                profile
                    .with_confidential_pkce(mode)
                    .map_err(|e| bad(key, e.to_string()))?
            }
        };
        let client_id = get("CALCONNECT_CLIENT_ID", raw.client.id).ok_or_else(|| {
            bad(
                "client.id",
                "missing: set your Cal.com OAuth client id (CALCONNECT_CLIENT_ID)",
            )
        })?;
        if raw.client.secret.is_some() {
            tracing::warn!(
                "client.secret is in the configuration file; prefer CALCONNECT_CLIENT_SECRET"
            );
        }
        let secret = get("CALCONNECT_CLIENT_SECRET", raw.client.secret);
        let redirect_uri = redirect_uri_for(&public_base_url);
        let client = match secret {
            Some(s) => {
                ClientConfig::confidential(client_id, ClientSecret::new(s), redirect_uri.as_str())
            }
            None => ClientConfig::public(client_id, redirect_uri.as_str()),
        }
        .map_err(|e| bad("client", format!("{e}")))?;
        let default_scopes = raw.client.scopes.unwrap_or_default();
        AuthorizeOptions::new(default_scopes.iter().cloned())
            .map_err(|e| bad("client.scopes", e.to_string()))?;
        let edge = parse_edge(&raw.http)?;
        let metrics = MetricsConfig {
            listen: match get("CALCONNECT_METRICS_LISTEN", raw.metrics.listen) {
                None => None,
                Some(text) => Some(text.parse().map_err(|_| {
                    bad("metrics.listen", format!("`{text}` is not an address: use host:port such as 127.0.0.1:9090 (CALCONNECT_METRICS_LISTEN)"))
                })?),
            },
            token: match get("CALCONNECT_METRICS_TOKEN", raw.metrics.token) {
                Some(t) if t.len() < 16 => {
                    return Err(bad(
                        "metrics.token",
                        "use at least 16 characters (CALCONNECT_METRICS_TOKEN)",
                    ));
                }
                other => other.map(SecretString::from),
            },
        };
        let keyring = load_keyring(env, raw.keys.file.map(|f| in_dir(file_dir, f)))?;
        let webhooks = parse_webhooks(
            env.get("CALCONNECT_WEBHOOK_URLS")
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .or(raw.webhooks.urls),
            env.get("CALCONNECT_WEBHOOK_SECRET")
                .filter(|v| !v.is_empty())
                .map(String::as_str),
            raw.webhooks.secret,
            raw.webhooks.secrets,
        )?;
        let ttl = raw.connect_session_ttl_secs.unwrap_or(15 * 60);
        if !(60..=7 * 24 * 3600).contains(&ttl) {
            return Err(bad(
                "connect_session_ttl_secs",
                "use between 60 and 604800 seconds",
            ));
        }
        let allow_reassignment = match env
            .get("CALCONNECT_ALLOW_REASSIGNMENT")
            .filter(|v| !v.is_empty())
        {
            None => raw.allow_reassignment.unwrap_or(false),
            Some(v) => match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(bad(
                        "allow_reassignment",
                        format!(
                            "`{other}` is not a boolean: use true or false (CALCONNECT_ALLOW_REASSIGNMENT)"
                        ),
                    ));
                }
            },
        };
        let budget = parse_budget(raw.budget, &get)?;
        // Last, so that the more basic mistakes are reported first.
        if default_scopes.is_empty() {
            return Err(bad(
                "client.scopes",
                "missing or empty: list the scopes your OAuth client is registered for, e.g. scopes = [\"PROFILE_READ\", \"SCHEDULE_READ\"] (Cal.com refuses an authorization without scopes)",
            ));
        }
        Ok(Self {
            listen,
            public_base_url,
            database,
            log_format,
            profile,
            client,
            default_scopes,
            keyring: std::sync::Arc::new(keyring),
            webhooks,
            connect_session_ttl: time::Duration::seconds(ttl),
            edge,
            metrics,
            allow_reassignment,
            budget,
            upstream_proxy: calconnect::http::ProxyEnv::from_lookup(|name| env.get(name).cloned()),
        })
    }
}

/// `[budget]` with `CALCONNECT_BUDGET_NAME` and `CALCONNECT_BUDGET_PER_MINUTE` over it.
fn parse_budget(
    raw: RawBudget,
    get: &dyn Fn(&str, Option<String>) -> Option<String>,
) -> Result<calconnect::budget::BudgetConfig, ConfigError> {
    let defaults = calconnect::budget::BudgetConfig::default();
    let per_minute = match get("CALCONNECT_BUDGET_PER_MINUTE", raw.per_minute.map(|n| n.to_string())) {
        None => defaults.per_minute,
        Some(text) => text.parse().map_err(|_| {
            bad("budget.per_minute", format!("`{text}` is not a whole number of requests per minute (CALCONNECT_BUDGET_PER_MINUTE)"))
        })?,
    };
    let config = calconnect::budget::BudgetConfig {
        name: get("CALCONNECT_BUDGET_NAME", raw.name).unwrap_or(defaults.name),
        per_minute,
        burst: raw.burst.unwrap_or(defaults.burst),
        exchange_reserve: raw.exchange_reserve.unwrap_or(defaults.exchange_reserve),
        background_share: raw.background_share.unwrap_or(defaults.background_share),
        max_wait: raw
            .max_wait_secs
            .map_or(defaults.max_wait, std::time::Duration::from_secs),
    };
    config
        .validate()
        .map_err(|e| bad("budget", e.to_string()))?;
    if config.per_minute + config.burst > 120 {
        tracing::warn!(
            per_minute = config.per_minute,
            burst = config.burst,
            "budget.per_minute + budget.burst is above Cal.com's 120 token requests per minute per IP: expect 429s unless this egress IP has a higher limit"
        );
    }
    Ok(config)
}

/// Only the database of a configuration (`database_url`, `CALCONNECT_DATABASE_URL`): what
/// `calconnect api-keys` needs, without the client, keys or webhook settings. The file must
/// still be valid TOML with known keys.
///
/// # Errors
/// [`ConfigError`] naming the key.
pub fn database_from_file_text(
    toml_text: &str,
    env: &Env,
    file_dir: Option<&Path>,
) -> Result<DatabaseConfig, ConfigError> {
    let raw = parse_raw(toml_text)?;
    database_of(env, raw.database_url, file_dir)
}

/// `CALCONNECT_DATABASE_URL`, else the file's `database_url` (a relative SQLite path taken from
/// the file's folder), else `sqlite://calconnect.db`.
fn database_of(
    env: &Env,
    from_file: Option<String>,
    file_dir: Option<&Path>,
) -> Result<DatabaseConfig, ConfigError> {
    if let Some(url) = env.get("CALCONNECT_DATABASE_URL").filter(|v| !v.is_empty()) {
        return parse_database(url);
    }
    match parse_database(from_file.as_deref().unwrap_or("sqlite://calconnect.db"))? {
        DatabaseConfig::Sqlite(path) if !path.as_os_str().to_string_lossy().starts_with(':') => {
            Ok(DatabaseConfig::Sqlite(in_dir(file_dir, path)))
        }
        other => Ok(other),
    }
}

/// `path` taken from `dir` when relative.
fn in_dir(dir: Option<&Path>, path: PathBuf) -> PathBuf {
    match dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

/// The file's text as [`RawConfig`]. A syntax error names its line and column; a value of the
/// wrong type or an unknown key names the key and its line.
fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| toml_error(text, &e))
}

fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().replace('\n', "; ");
    let example = "see `calconnect serve --help` for an example";
    let Some(at) = e.span().map(|s| s.start.min(text.len())) else {
        return bad(FILE_KEY, format!("{message}; {example}"));
    };
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    // The document parses as TOML, so the mistake is in a value or a key: name the key.
    if toml::from_str::<toml::Table>(text).is_ok()
        && let Some(key) = key_at(text, at)
    {
        return bad(&key, format!("{message} (line {line}); {example}"));
    }
    bad(
        FILE_KEY,
        format!("line {line}, column {column}: {message}; {example}"),
    )
}

/// The dotted key whose value or name is at byte `at` of a document that parses: the nearest
/// `name =` at or before that line, under the nearest `[table]` header before it.
fn key_at(text: &str, at: usize) -> Option<String> {
    let lines: Vec<&str> = text.get(..at)?.split('\n').collect();
    let current = text.get(at..)?.split('\n').next().unwrap_or("");
    let mut name = None;
    let mut table = None;
    for (i, line) in lines.iter().enumerate().rev() {
        let whole = if i + 1 == lines.len() {
            format!("{line}{current}")
        } else {
            (*line).to_owned()
        };
        let trimmed = whole.trim();
        if let Some(header) = trimmed
            .strip_prefix('[')
            .and_then(|h| h.split(']').next())
            .filter(|_| !trimmed.starts_with("[["))
        {
            table = Some(header.trim().to_owned());
            break;
        }
        if name.is_none()
            && let Some((key, _)) = trimmed.split_once('=')
        {
            // A bare or quoted key (not a string value that holds a `=` inside an array).
            let key = key.trim().trim_matches('"');
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                name = Some(key.to_owned());
            }
        }
    }
    match (table, name) {
        (Some(t), Some(n)) => Some(format!("{t}.{n}")),
        (None, Some(n)) => Some(n),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

/// The log format named by `CALCONNECT_LOG_FORMAT` or the file's `log_format` (before the rest
/// is validated, so logging can start first). Unknown values fall back to text here; validation
/// reports them.
pub fn log_format_of(toml_text: &str, env: &Env) -> LogFormat {
    let from_file = toml::from_str::<toml::Table>(toml_text).ok().and_then(|t| {
        t.get("log_format")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    });
    match env
        .get("CALCONNECT_LOG_FORMAT")
        .cloned()
        .or(from_file)
        .as_deref()
    {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// `<base>/oauth/callback`.
pub fn redirect_uri_for(base: &Url) -> String {
    format!("{}/oauth/callback", base.as_str().trim_end_matches('/'))
}

fn parse_base_url(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|_| {
        bad(
            "public_base_url",
            format!("`{text}` is not a URL: use e.g. https://connect.example.com"),
        )
    })?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !ok_scheme || url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(bad(
            "public_base_url",
            "use an https URL without query or fragment (http only for 127.0.0.1/localhost)",
        ));
    }
    // The broker's routes and its flow cookie live at the root of its origin.
    if url.path() != "/" {
        return Err(bad(
            "public_base_url",
            format!(
                "`{text}` has a path ({}): the broker serves at the root of its own host name, e.g. https://connect.example.com",
                url.path()
            ),
        ));
    }
    Ok(url)
}

fn parse_edge(raw: &RawHttp) -> Result<crate::edge::EdgeConfig, ConfigError> {
    let mut edge = crate::edge::EdgeConfig::default();
    let secs = |key: &str, v: Option<u64>, min: u64, max: u64| match v {
        None => Ok(None),
        Some(s) if (min..=max).contains(&s) => Ok(Some(std::time::Duration::from_secs(s))),
        Some(_) => Err(bad(key, format!("use between {min} and {max} seconds"))),
    };
    if let Some(t) = secs(
        "http.header_read_timeout_secs",
        raw.header_read_timeout_secs,
        1,
        300,
    )? {
        edge = edge.header_read_timeout(t);
    }
    if let Some(t) = secs("http.idle_timeout_secs", raw.idle_timeout_secs, 1, 3600)? {
        edge = edge.idle_timeout(t);
    }
    match raw.max_connections {
        None => {}
        Some(n) if (1..=1_000_000).contains(&n) => edge = edge.max_connections(n),
        Some(_) => return Err(bad("http.max_connections", "use between 1 and 1000000")),
    }
    Ok(edge)
}

fn parse_database(text: &str) -> Result<DatabaseConfig, ConfigError> {
    if let Some(path) = text
        .strip_prefix("sqlite://")
        .or_else(|| text.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(bad(
                "database_url",
                "the SQLite path is empty: use sqlite://calconnect.db",
            ));
        }
        return Ok(DatabaseConfig::Sqlite(PathBuf::from(path)));
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Ok(DatabaseConfig::Postgres(SecretString::from(
            text.to_owned(),
        )));
    }
    Err(bad(
        "database_url",
        "use sqlite://<path> or postgres://user@host/db (CALCONNECT_DATABASE_URL)",
    ))
}

fn parse_profile(
    kind: Option<String>,
    web: Option<String>,
    api: Option<String>,
) -> Result<ProviderProfile, ConfigError> {
    let need = |v: Option<String>, key: &str| {
        v.ok_or_else(|| bad(key, "missing for this provider kind (CALCONNECT_PROVIDER_URL / CALCONNECT_PROVIDER_API_URL)"))
    };
    match kind.as_deref().unwrap_or("cal_com") {
        "cal_com" => Ok(ProviderProfile::cal_com()),
        "sandbox" => {
            let web = need(web, "provider.web_url")?;
            ProviderProfile::sandbox(
                web.trim_end_matches('/'),
                UrlPolicy::allow_insecure_loopback_http(),
            )
            .map_err(|e| bad("provider.web_url", e.to_string()))
        }
        "self_hosted" => {
            let web = need(web, "provider.web_url")?;
            let api = need(api, "provider.api_url")?;
            ProviderProfile::cal_com_self_hosted(&web, &api, UrlPolicy::https_only())
                .map_err(|e| bad("provider", e.to_string()))
        }
        other => Err(bad(
            "provider.kind",
            format!(
                "`{other}` is unknown: use cal_com, self_hosted or sandbox (CALCONNECT_PROVIDER)"
            ),
        )),
    }
}

fn load_keyring(env: &Env, file: Option<PathBuf>) -> Result<Keyring, ConfigError> {
    let explain = |key: &str, e: KeyringError| {
        bad(
            key,
            format!("{e}; generate one with `calconnect keys generate`"),
        )
    };
    if let Some(value) = env
        .get(calconnect::crypto::KEYS_ENV)
        .filter(|v| !v.is_empty())
    {
        return Keyring::from_env_value(&SecretString::from(value.clone()))
            .map_err(|e| explain("CALCONNECT_KEYS", e));
    }
    let file = env.get("CALCONNECT_KEY_FILE").map(PathBuf::from).or(file);
    match file {
        Some(path) => Keyring::from_key_file(&path).map_err(|e| explain("keys.file", e)),
        None => Err(bad(
            "keys.file",
            "no sealing key: the broker refuses to store tokens unencrypted. Run `calconnect keys generate --out keys` and set keys.file (CALCONNECT_KEY_FILE) or CALCONNECT_KEYS",
        )),
    }
}

/// At most this many webhook secrets at once (a rotation needs two).
const MAX_WEBHOOK_SECRETS: usize = 5;

/// `[webhooks]`: `urls`, and the signing secrets from `CALCONNECT_WEBHOOK_SECRET` (several
/// separated by commas, newest first), else `secrets` (a list), else `secret` (one).
fn parse_webhooks(
    urls: Option<Vec<String>>,
    env_secrets: Option<&str>,
    secret: Option<String>,
    secrets: Option<Vec<String>>,
) -> Result<WebhookConfig, ConfigError> {
    let mut parsed = Vec::new();
    for u in urls.unwrap_or_default() {
        let url =
            Url::parse(&u).map_err(|_| bad("webhooks.urls", format!("`{u}` is not a URL")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("webhooks.urls", format!("`{u}` must be http or https")));
        }
        parsed.push(url);
    }
    let (key, list): (&str, Vec<String>) = match (env_secrets, secret, secrets) {
        (Some(text), _, _) => (
            if text.contains(',') {
                "webhooks.secrets"
            } else {
                "webhooks.secret"
            },
            text.split(',').map(|s| s.trim().to_owned()).collect(),
        ),
        (None, Some(_), Some(_)) => {
            return Err(bad(
                "webhooks.secret",
                "set either webhooks.secret or webhooks.secrets, not both (during a rotation, list both secrets in webhooks.secrets, newest first)",
            ));
        }
        (None, Some(one), None) => ("webhooks.secret", vec![one]),
        (None, None, Some(list)) => ("webhooks.secrets", list),
        (None, None, None) => ("webhooks.secret", Vec::new()),
    };
    if list.len() > MAX_WEBHOOK_SECRETS {
        return Err(bad(
            key,
            format!("at most {MAX_WEBHOOK_SECRETS} secrets at once (a rotation needs two)"),
        ));
    }
    // Positions only: a message never shows a secret.
    for (i, s) in list.iter().enumerate() {
        let place = if list.len() > 1 {
            format!("secret {} of {}: ", i + 1, list.len())
        } else {
            String::new()
        };
        if s.is_empty() {
            return Err(bad(
                key,
                format!(
                    "{place}empty: separate several secrets with single commas (CALCONNECT_WEBHOOK_SECRET=new,old), none empty"
                ),
            ));
        }
        if s.len() < 16 {
            return Err(bad(
                key,
                format!("{place}too short: use at least 16 (better 32+) random characters"),
            ));
        }
        if list[..i].contains(s) {
            return Err(bad(key, format!("{place}listed twice")));
        }
    }
    if !parsed.is_empty() && list.is_empty() {
        return Err(bad(
            "webhooks.secret",
            "missing: webhooks are signed; set CALCONNECT_WEBHOOK_SECRET (32+ random characters)",
        ));
    }
    Ok(WebhookConfig {
        urls: parsed,
        secrets: list.into_iter().map(SecretString::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const KEY: &str = "CALCONNECT_KEYS";

    fn key() -> String {
        use calconnect::crypto::{KeyId, SealingKey};
        SealingKey::generate(KeyId::new("t").unwrap(), &mut rand::rngs::OsRng)
            .to_text()
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn errors_name_the_key() {
        let k = key();
        let e = BrokerConfig::from_toml_and_env("", &env(&[(KEY, &k)])).unwrap_err();
        assert_eq!(e.key, "public_base_url");
        let e = BrokerConfig::from_toml_and_env(
            "public_base_url = \"http://example.com\"",
            &env(&[(KEY, &k)]),
        )
        .unwrap_err();
        assert_eq!(e.key, "public_base_url");
        let e = BrokerConfig::from_toml_and_env(
            "public_base_url = \"https://c.example\"\n[client]\nid = \"x\"",
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(e.key, "keys.file", "{e}");
        let e = BrokerConfig::from_toml_and_env("bogus = 1", &env(&[])).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = BrokerConfig::from_toml_and_env(
            "public_base_url = \"https://c.example\"\n[client]\nid = \"x\"\n[webhooks]\nurls=[\"https://h.example/x\"]",
            &env(&[(KEY, &k)]),
        )
        .unwrap_err();
        assert_eq!(e.key, "webhooks.secret");
    }

    #[test]
    fn several_webhook_secrets_for_rotation() {
        let k = key();
        let base = "public_base_url = \"https://c.example\"\n[client]\nid = \"x\"\nscopes = [\"PROFILE_READ\"]\n[webhooks]\nurls = [\"https://h.example/x\"]\n";
        let parse = |extra: &str, secret: Option<&str>| {
            let mut e = env(&[(KEY, &k)]);
            if let Some(s) = secret {
                e.insert("CALCONNECT_WEBHOOK_SECRET".into(), s.into());
            }
            BrokerConfig::from_toml_and_env(&format!("{base}{extra}"), &e)
        };
        let shown = |c: &BrokerConfig| {
            c.webhooks
                .secrets
                .iter()
                .map(|s| s.expose_secret().to_owned())
                .collect::<Vec<_>>()
        };
        let new = "new-secret-0123456789";
        let old = "old-secret-0123456789";
        // The file: one secret, or a list (newest first).
        let c = parse(&format!("secret = \"{old}\""), None).unwrap();
        assert_eq!(shown(&c), [old]);
        let c = parse(&format!("secrets = [\"{new}\", \"{old}\"]"), None).unwrap();
        assert_eq!(shown(&c), [new, old]);
        // The variable wins, commas separate, spaces around them go.
        let c = parse(
            &format!("secret = \"{old}\""),
            Some(&format!("{new} , {old}")),
        )
        .unwrap();
        assert_eq!(shown(&c), [new, old]);
        let debug = format!("{c:?}");
        assert!(!debug.contains(new) && !debug.contains(old), "{debug}");
        assert!(debug.contains("[2 redacted]"), "{debug}");
        // Mistakes name the key and never show a secret.
        let cases = [
            (
                format!("secret = \"{old}\"\nsecrets = [\"{new}\"]"),
                None,
                "webhooks.secret",
                "not both",
            ),
            (
                String::new(),
                Some(format!("{new},,{old}")),
                "webhooks.secrets",
                "secret 2 of 3: empty",
            ),
            (
                String::new(),
                Some(format!("{new},")),
                "webhooks.secrets",
                "secret 2 of 2: empty",
            ),
            (
                String::new(),
                Some(format!("{new},short")),
                "webhooks.secrets",
                "secret 2 of 2: too short",
            ),
            (
                String::new(),
                Some(format!("{new},{new}")),
                "webhooks.secrets",
                "listed twice",
            ),
            (
                String::new(),
                Some("short".into()),
                "webhooks.secret",
                "too short",
            ),
            ("secrets = []".into(), None, "webhooks.secret", "missing"),
            (
                format!("secrets = [\"{new}\", \"\"]"),
                None,
                "webhooks.secrets",
                "empty",
            ),
        ];
        for (extra, secret, key, words) in cases {
            let e = parse(&extra, secret.as_deref()).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().contains(words), "{e}");
            assert!(!e.to_string().contains(new), "{e}");
        }
        let six = (0..6)
            .map(|i| format!("secret-number-{i}-0123456789"))
            .collect::<Vec<_>>();
        let e = parse("", Some(&six.join(","))).unwrap_err();
        assert!(e.to_string().contains("at most 5"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_secrets_are_hidden() {
        let k = key();
        let c = BrokerConfig::from_toml_and_env(
            EXAMPLE_CONFIG,
            &env(&[
                (KEY, &k),
                ("CALCONNECT_CLIENT_SECRET", "super-secret-client-value"),
                ("CALCONNECT_WEBHOOK_SECRET", "webhook-secret-value-123456"),
                ("CALCONNECT_DATABASE_URL", "postgres://u:pgpassword@h/db"),
                ("CALCONNECT_LISTEN", "127.0.0.1:0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(
            c.client.redirect_uri().as_str(),
            "https://connect.example.com/oauth/callback"
        );
        let shown = format!("{c:?}");
        for secret in [
            "super-secret-client-value",
            "webhook-secret-value-123456",
            "pgpassword",
            &k,
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn empty_scopes_a_base_url_path_and_edge_limits_are_checked() {
        let k = key();
        let parse = |text: &str| BrokerConfig::from_toml_and_env(text, &env(&[(KEY, &k)]));
        let base = "public_base_url = \"https://c.example\"\n";
        let e = parse(&format!("{base}[client]\nid = \"x\"")).unwrap_err();
        assert_eq!(e.key, "client.scopes");
        assert!(e.to_string().contains("scopes = ["), "{e}");
        let e = parse(&format!("{base}[client]\nid = \"x\"\nscopes = []")).unwrap_err();
        assert_eq!(e.key, "client.scopes");
        let e = parse(
            "public_base_url = \"https://c.example/connect\"\n[client]\nid = \"x\"\nscopes = [\"PROFILE_READ\"]",
        )
        .unwrap_err();
        assert_eq!(e.key, "public_base_url");
        assert!(e.to_string().contains("/connect"), "{e}");
        let ok = format!("{base}[client]\nid = \"x\"\nscopes = [\"PROFILE_READ\"]\n");
        let c = parse(&ok).unwrap();
        assert_eq!(c.edge, crate::edge::EdgeConfig::default());
        let c = parse(&format!(
            "{ok}[http]\nheader_read_timeout_secs = 3\nidle_timeout_secs = 30\nmax_connections = 64"
        ))
        .unwrap();
        assert_eq!(
            c.edge.header_read_timeout,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(c.edge.idle_timeout, std::time::Duration::from_secs(30));
        assert_eq!(c.edge.max_connections, 64);
        let e = parse(&format!("{ok}[http]\nidle_timeout_secs = 0")).unwrap_err();
        assert_eq!(e.key, "http.idle_timeout_secs");
    }

    #[test]
    fn relative_paths_in_the_file_are_the_files() {
        let k = key();
        let text = "public_base_url = \"https://c.example\"\ndatabase_url = \"sqlite://data/broker.db\"\n[client]\nid = \"x\"\nscopes = [\"PROFILE_READ\"]\n";
        let dir = Path::new("/etc/calconnect");
        let c = BrokerConfig::from_file_text(text, &env(&[(KEY, &k)]), Some(dir)).unwrap();
        assert!(
            matches!(&c.database, DatabaseConfig::Sqlite(p) if p == Path::new("/etc/calconnect/data/broker.db")),
            "{:?}",
            c.database
        );
        assert_eq!(
            c.database.describe(),
            "SQLite /etc/calconnect/data/broker.db"
        );
        // A variable's path stays the working directory's; absolute paths stay as they are.
        let c = BrokerConfig::from_file_text(
            text,
            &env(&[(KEY, &k), ("CALCONNECT_DATABASE_URL", "sqlite://here.db")]),
            Some(dir),
        )
        .unwrap();
        assert!(matches!(&c.database, DatabaseConfig::Sqlite(p) if p == Path::new("here.db")));
        let db = database_from_file_text(
            "database_url = \"sqlite:///var/lib/c.db\"",
            &env(&[]),
            Some(dir),
        )
        .unwrap();
        assert!(matches!(&db, DatabaseConfig::Sqlite(p) if p == Path::new("/var/lib/c.db")));
        // The key file too (it does not exist there: the error names the resolved path).
        let e = BrokerConfig::from_file_text(
            &format!("{text}[keys]\nfile = \"keys\"\n"),
            &env(&[]),
            Some(dir),
        )
        .unwrap_err();
        assert_eq!(e.key, "keys.file");
        assert!(e.to_string().contains("/etc/calconnect/keys"), "{e}");
        let pg = database_from_file_text(
            "database_url = \"postgres://app:pw@db.internal:5433/calconnect?sslmode=require\"",
            &env(&[]),
            None,
        )
        .unwrap();
        assert_eq!(pg.describe(), "PostgreSQL app@db.internal:5433/calconnect");
    }

    #[test]
    fn toml_mistakes_name_the_line_and_the_key() {
        let e =
            BrokerConfig::from_toml_and_env("listen = \"a\"\nbroken = [\n", &env(&[])).unwrap_err();
        assert_eq!(e.key, FILE_KEY);
        assert!(
            e.to_string().starts_with("configuration file: line "),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'), "{e}");
        let e = BrokerConfig::from_toml_and_env("listen = 8080", &env(&[])).unwrap_err();
        assert_eq!(e.key, "listen");
        assert!(e.to_string().contains("(line 1)"), "{e}");
        let e = BrokerConfig::from_toml_and_env(
            "listen = \"127.0.0.1:0\"\n\n[webhooks]\nurls = [\n  \"https://a.example\",\n  7,\n]\n",
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(e.key, "webhooks.urls", "{e}");
        assert!(e.to_string().contains("(line 6)"), "{e}");
        let e = BrokerConfig::from_toml_and_env("[metrics]\nlisten = 9090", &env(&[])).unwrap_err();
        assert_eq!(e.key, "metrics.listen", "{e}");
        let e = BrokerConfig::from_toml_and_env("[clients]\nid = \"x\"", &env(&[])).unwrap_err();
        assert_eq!(e.key, "clients", "{e}");
        assert!(e.to_string().contains("unknown field `clients`"), "{e}");
    }

    #[test]
    fn confidential_pkce_follows_the_client_policy() {
        let k = key();
        let base = "public_base_url = \"https://c.example\"\n[client]\nid = \"x\"\nscopes = [\"PROFILE_READ\"]\n[provider]\n";
        let with = |extra: &str, vars: &[(&str, &str)]| {
            let mut all = vec![(KEY, k.as_str()), ("CALCONNECT_CLIENT_SECRET", "s3cret")];
            all.extend_from_slice(vars);
            BrokerConfig::from_toml_and_env(&format!("{base}{extra}"), &env(&all))
        };
        let c = with("", &[]).unwrap();
        assert_eq!(c.profile.confidential_pkce(), ConfidentialPkce::Off);
        assert_eq!(
            c.profile.pkce_use(c.client.is_confidential()),
            calconnect::PkceUse::None
        );
        let c = with("confidential_pkce = \"legacy-endpoint\"", &[]).unwrap();
        assert_eq!(
            c.profile.pkce_use(true),
            calconnect::PkceUse::S256ViaLegacyEndpoint
        );
        let c = with("", &[("CALCONNECT_CONFIDENTIAL_PKCE", "legacy-endpoint")]).unwrap();
        assert_eq!(
            c.profile.confidential_pkce(),
            ConfidentialPkce::ViaLegacyEndpoint
        );
        let e = with("confidential_pkce = \"on\"", &[]).unwrap_err();
        assert_eq!(e.key, "provider.confidential_pkce");
        assert!(e.to_string().contains("refuses code_verifier"), "{e}");
        let e = with("confidential_pkce = \"maybe\"", &[]).unwrap_err();
        assert_eq!(e.key, "provider.confidential_pkce");
        assert!(e.to_string().contains("legacy-endpoint"), "{e}");
    }
}
