//! A fresh access token for a stored connection, from the library's [`TokenKeeper`]: cached
//! while valid for longer than its margin, refreshed under the store's lease with a refresh
//! intent and a fenced write, single flight within the process (docs/calcom.md §3.4,
//! docs/architecture.md §3.5–§3.6). Two `calconnect token` processes never refresh the same connection at
//! once; `invalid_grant`/`invalid_client`/`unauthorized_client` mark it `needs_reauth`.

use crate::exit::CliError;
use crate::local::{self, Home, ProviderSpec, Record, Records};
use calconnect::api::AccessTokenSource;
use calconnect::crypto::Keyring;
use calconnect::store::Connection;
use calconnect::{
    AccessToken, AuthorizationFlow, ClientConfig, SystemClock, http::HttpClient, http::HttpConfig,
    keeper::KeeperConfig, keeper::KeeperError, keeper::TokenKeeper,
};
use rand::RngCore as _;
use std::sync::Arc;

/// Everything needed to use one stored connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub keeper: TokenKeeper,
    pub http: HttpClient,
    pub connection: Connection,
    pub record: Record,
}

impl Session {
    /// Opens the store and key, and finds the connection `selector` names (or the default).
    pub async fn open(selector: Option<&str>) -> Result<Self, CliError> {
        let home = Home::locate()?;
        if !home.key_file().exists() && !home.database().exists() {
            return Err(CliError::auth(
                "not logged in on this machine: run `calconnect login`",
            ));
        }
        let keyring = Arc::new(local::load_keyring(&home, false)?);
        let store = local::open_store(&home).await?;
        let records = Records::load(&home)?;
        let (connection, record) = local::select(store.as_ref(), &records, selector).await?;
        let http = HttpClient::new(HttpConfig::default())
            .map_err(|e| CliError::other(format!("cannot build the HTTP client: {e}")))?;
        let flow = Arc::new(flow_for(&record, http.clone(), Some(keyring.as_ref()))?);
        let mut suffix = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let config = KeeperConfig::builder()
            .instance_name(format!(
                "calconnect-cli-{}-{}",
                std::process::id(),
                hex::encode(suffix)
            ))
            .build()
            .unwrap_or_default();
        let keeper = TokenKeeper::new(
            store.clone(),
            keyring.clone(),
            flow,
            Arc::new(SystemClock),
            config,
        );
        Ok(Self {
            keeper,
            http,
            connection,
            record,
        })
    }

    /// A token valid for longer than the keeper's margin, refreshing first when needed.
    pub async fn fresh_token(&self) -> Result<AccessToken, CliError> {
        self.keeper
            .access_token(self.connection.id)
            .await
            .map(|fresh| fresh.access_token)
            .map_err(|e| keeper_error(&e))
    }

    /// The keeper as the token source of `CalClient` (refresh-and-retry once on 401).
    pub fn token_source(&self) -> Arc<dyn AccessTokenSource> {
        Arc::new(self.keeper.token_source(self.connection.id))
    }
}

/// The flow for a stored record: a public client, or a custom provider's confidential client
/// whose sealed secret `keyring` opens.
pub fn flow_for(
    record: &Record,
    http: HttpClient,
    keyring: Option<&Keyring>,
) -> Result<AuthorizationFlow, CliError> {
    let bad = |e: calconnect::ClientConfigError| CliError::usage(format!("{e}"));
    let (profile, client) = match &record.provider {
        ProviderSpec::Custom(spec) => {
            let profile = spec.profile(record.name.as_deref())?;
            let client = match (&spec.client_secret, keyring) {
                (Some(sealed), Some(keyring)) => ClientConfig::confidential(
                    record.client_id.clone(),
                    sealed.open(keyring)?,
                    &record.redirect_uri,
                )
                .map_err(bad)?,
                (Some(_), None) => {
                    return Err(CliError::other(
                        "the client secret is sealed and no key file was loaded",
                    ));
                }
                (None, _) => ClientConfig::public(record.client_id.clone(), &record.redirect_uri)
                    .map_err(bad)?,
            };
            (profile, client)
        }
        other => (
            other.profile()?,
            ClientConfig::public(record.client_id.clone(), &record.redirect_uri).map_err(bad)?,
        ),
    };
    Ok(AuthorizationFlow::new(
        profile,
        client,
        http,
        Arc::new(SystemClock),
    ))
}

/// A keeper failure as a one-line CLI error with its exit code.
fn keeper_error(e: &KeeperError) -> CliError {
    let text = chain(e);
    if e.requires_reauthorization() {
        CliError::auth(format!("{text}; run `calconnect login` to connect again"))
    } else if let KeeperError::NotFound { .. } = e {
        CliError::auth(format!("{text}; run `calconnect login`"))
    } else if let KeeperError::Crypto { .. } = e {
        CliError::other(format!(
            "{text}; put back the key file that sealed it (see `calconnect doctor`), or delete the connection and run `calconnect login`"
        ))
    } else {
        CliError::other(text)
    }
}

pub fn chain(e: &dyn std::error::Error) -> String {
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
