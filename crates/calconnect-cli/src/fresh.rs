//! A fresh access token for a stored connection: the CLI's own small token keeper, until the
//! library's `TokenKeeper` is merged (then this module delegates to it).
//!
//! Safe under Cal.com's rotating refresh tokens (calcom-facts.md §3.3, DESIGN.md step 6): the
//! refresh runs under the store's lease (so two `calconnect token` processes never refresh the
//! same connection at once), a refresh intent is recorded before the call, and the new pair is
//! written with the version read under the lease (a fenced write) before the new access token
//! is handed out. `invalid_grant`/`invalid_client`/`unauthorized_client` mark the connection
//! `needs_reauth`; network, 5xx and 429 leave it alone.

use crate::exit::CliError;
use crate::local::{self, Home, Record, Records};
use async_trait::async_trait;
use calconnect::api::{AccessTokenSource, TokenSourceError};
use calconnect::crypto::{Keyring, SealContext, SealedField};
use calconnect::store::{
    Connection, ConnectionId, ConnectionStatus, ConnectionStore, LeaseOwner, StatusChange,
    StoreError, TokenWrite,
};
use calconnect::{
    AccessToken, AuthorizationFlow, ClientConfig, Clock as _, HttpClient, HttpConfig, RefreshToken,
    SystemClock,
};
use rand::rngs::OsRng;
use secrecy::ExposeSecret as _;
use std::sync::Arc;
use time::Duration;

/// Hand out a stored token only while it stays valid this long.
const MARGIN: Duration = Duration::seconds(60);
const LEASE: Duration = Duration::seconds(30);
/// Cal.com's sliding refresh window (calcom-facts.md §3.5; may be up to a year).
const REFRESH_WINDOW: Duration = Duration::days(30);

/// Everything needed to use one stored connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub store: Arc<dyn ConnectionStore>,
    pub keyring: Arc<Keyring>,
    pub flow: Arc<AuthorizationFlow>,
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
        let flow = Arc::new(flow_for(&record, http.clone())?);
        Ok(Self {
            store,
            keyring,
            flow,
            http,
            connection,
            record,
        })
    }

    pub fn id(&self) -> ConnectionId {
        self.connection.id
    }

    /// A token valid for at least a minute, refreshing first when needed.
    pub async fn fresh_token(&self) -> Result<AccessToken, CliError> {
        fresh(self, None).await.map_err(token_error)
    }

    /// The keeper-like token source for `CalClient`.
    pub fn token_source(&self) -> Arc<dyn AccessTokenSource> {
        Arc::new(StoredToken {
            session: self.clone(),
        })
    }
}

/// The flow for a stored record (public client: no secret to keep).
pub fn flow_for(record: &Record, http: HttpClient) -> Result<AuthorizationFlow, CliError> {
    let profile = record.provider.profile()?;
    let client = ClientConfig::public(record.client_id.clone(), &record.redirect_uri)
        .map_err(|e| CliError::usage(format!("{e}")))?;
    Ok(AuthorizationFlow::new(
        profile,
        client,
        http,
        Arc::new(SystemClock),
    ))
}

/// A token-source failure as a one-line CLI error with its exit code.
pub fn token_error(e: TokenSourceError) -> CliError {
    let text = chain(&e);
    if e.requires_reauthorization() {
        CliError::auth(format!("{text}; run `calconnect login` to connect again"))
    } else {
        CliError::other(text)
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

#[derive(Debug)]
struct StoredToken {
    session: Session,
}

#[async_trait]
impl AccessTokenSource for StoredToken {
    async fn access_token(&self) -> Result<AccessToken, TokenSourceError> {
        fresh(&self.session, None).await
    }

    async fn refresh_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        fresh(&self.session, Some(rejected)).await
    }
}

fn other(reason: &str, e: impl std::error::Error + Send + Sync + 'static) -> TokenSourceError {
    TokenSourceError::other(reason.to_owned(), Some(Box::new(e)))
}

fn open(s: &Session, c: &Connection, field: SealedField) -> Result<String, TokenSourceError> {
    let blob = match field {
        SealedField::RefreshToken => c.refresh_token.as_ref().ok_or_else(|| {
            TokenSourceError::needs_reauthorization("no refresh token is stored", None)
        })?,
        _ => &c.access_token,
    };
    s.keyring
        .open_string(blob, SealContext::connection(c.id.as_uuid(), field))
        .map(|t| t.expose_secret().to_owned())
        .map_err(|e| other("cannot open the stored token with the key file", e))
}

/// Returns the stored token if it is fresh (and not `rejected`), else refreshes under the lease.
async fn fresh(
    s: &Session,
    rejected: Option<&AccessToken>,
) -> Result<AccessToken, TokenSourceError> {
    let owner = LeaseOwner::new(format!("calconnect-cli-{}", std::process::id()));
    for _ in 0..100 {
        let c = read(s).await?;
        if let Some(token) = usable(s, &c, rejected)? {
            return Ok(token);
        }
        match s.store.acquire_lease(c.id, &owner, LEASE).await {
            Ok(grant) => {
                let result = refresh_leased(s, &owner, grant.version, rejected).await;
                let _ = s.store.release_lease(c.id, &owner).await;
                return result;
            }
            // Another process is refreshing: wait for its write, then use its token.
            Err(StoreError::LeaseHeld { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(other("cannot take the refresh lease", e)),
        }
    }
    Err(TokenSourceError::transient(
        "another process held the refresh lease for too long",
        None,
    ))
}

async fn read(s: &Session) -> Result<Connection, TokenSourceError> {
    let c = s
        .store
        .get_connection(s.id())
        .await
        .map_err(|e| other("cannot read the connection", e))?;
    if c.status != ConnectionStatus::Active {
        return Err(TokenSourceError::needs_reauthorization(
            format!(
                "the connection is {} ({})",
                c.status.as_str(),
                c.status_reason
            ),
            None,
        ));
    }
    Ok(c)
}

fn usable(
    s: &Session,
    c: &Connection,
    rejected: Option<&AccessToken>,
) -> Result<Option<AccessToken>, TokenSourceError> {
    let now = SystemClock.now();
    let fresh = c.access_expires_at.is_some_and(|t| t > now + MARGIN);
    if !fresh {
        return Ok(None);
    }
    let token = AccessToken::new(open(s, c, SealedField::AccessToken)?);
    Ok(match rejected {
        Some(r) if r.ct_eq(&token) => None,
        _ => Some(token),
    })
}

async fn refresh_leased(
    s: &Session,
    owner: &LeaseOwner,
    version: i64,
    rejected: Option<&AccessToken>,
) -> Result<AccessToken, TokenSourceError> {
    // Someone may have refreshed between our read and the lease.
    let c = read(s).await?;
    if let Some(token) = usable(s, &c, rejected)? {
        return Ok(token);
    }
    let refresh_token = RefreshToken::new(open(s, &c, SealedField::RefreshToken)?);
    s.store
        .record_refresh_intent(c.id, owner, version)
        .await
        .map_err(|e| other("cannot record the refresh intent", e))?;
    let tokens = match s.flow.refresh(&refresh_token).await {
        Ok(tokens) => tokens,
        Err(e) => {
            if e.needs_reauthorization() {
                let reason = format!("refresh refused: {}", chain(&e));
                let _ = s
                    .store
                    .set_status(
                        c.id,
                        StatusChange {
                            status: ConnectionStatus::NeedsReauth,
                            reason,
                            expected_version: Some(version),
                        },
                    )
                    .await;
            }
            return Err(e.into());
        }
    };
    let seal = |field, value: &str| {
        s.keyring.seal_secret(
            &mut OsRng,
            SealContext::connection(c.id.as_uuid(), field),
            &secrecy::SecretString::from(value.to_owned()),
        )
    };
    let access = seal(
        SealedField::AccessToken,
        tokens.access_token.expose_secret(),
    )
    .map_err(|e| other("cannot seal the new token", e))?;
    let refresh = match (&tokens.refresh_token, tokens.refresh_token_rotated) {
        (Some(t), true) => Some(
            seal(SealedField::RefreshToken, t.expose_secret())
                .map_err(|e| other("cannot seal the new token", e))?,
        ),
        _ => None,
    };
    s.store
        .write_tokens(
            c.id,
            TokenWrite {
                expected_version: version,
                access_token: access,
                refresh_token: refresh,
                access_expires_at: Some(tokens.expires_at),
                refresh_expires_at_estimate: Some(SystemClock.now() + REFRESH_WINDOW),
                scopes: tokens.scopes.clone(),
            },
        )
        .await
        .map_err(|e| other("cannot store the refreshed tokens", e))?;
    Ok(tokens.access_token)
}
