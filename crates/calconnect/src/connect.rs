//! [`Connector`]: starting and finishing a connection, in one place.
//!
//! A connection is made in two halves (docs/architecture.md §3.1–§3.4):
//!
//! 1. **Start** ([`Connector::start`]): the authorize URL (with `state`, and PKCE where the client
//!    policy uses it), the pending authorization sealed and recorded in the store (so a flow
//!    started on one instance can finish on another), and a random **browser binding**: a value
//!    for a cookie of the browser that started, without which the callback is refused.
//! 2. **Finish** ([`Connector::finish`]): the pending authorization is consumed exactly once
//!    (state digest + browser binding), the callback verified against it, the code exchanged,
//!    the account identified by the profile's identity strategy (Cal.com: the tokens' claims or
//!    `/v2/me`; a custom provider: userinfo, introspection, claims or a label, see
//!    [`crate::IdentitySource`]), the tokens sealed and saved: one connection per account identity and
//!    client, created or updated. Tokens whose account cannot be told are revoked where the
//!    provider can (RFC 7009), not silently dropped.
//!
//! A process that keeps the pending authorization itself (a command-line login on a loopback
//! redirect) verifies the callback and calls [`Connector::complete`]; code that already holds a
//! token set calls [`Connector::save`]. All three end in the same identify-seal-save step, with
//! one refresh-window rule ([`Connector::with_refresh_window`]).
//!
//! # Quick start
//!
//! A web app with the local sandbox (in production: [`ProviderProfile::cal_com`](crate::ProviderProfile::cal_com) and your own
//! client, and a database store such as `calconnect-sqlite`):
//!
//! ```
//! use calconnect::connect::{ConnectRequest, Connector};
//! use calconnect::crypto::{KeyId, Keyring, SealingKey};
//! use calconnect::store::{ConnectionStore, EndUserId, MemoryStore};
//! use calconnect::{
//!     AuthorizationFlow, AuthorizeOptions, Callback, ClientConfig, ClientSecret, http::HttpClient,
//!     http::HttpConfig, ProviderProfile, SystemClock, UrlPolicy,
//! };
//! use rand::rngs::OsRng;
//! use std::sync::Arc;
//! # use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI};
//! # type Error = Box<dyn std::error::Error>;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! # let sandbox = calconnect_sandbox::Sandbox::builder().start().await?;
//! # let sandbox_url = sandbox.base_url().as_str().trim_end_matches('/').to_owned();
//!
//! // Once, at startup.
//! let clock = Arc::new(SystemClock);
//! let profile = ProviderProfile::sandbox(&sandbox_url, UrlPolicy::allow_insecure_loopback_http())?;
//! let client = ClientConfig::confidential(
//!     CONFIDENTIAL_CLIENT_ID,
//!     ClientSecret::new(CONFIDENTIAL_CLIENT_SECRET),
//!     DEFAULT_REDIRECT_URI,
//! )?;
//! let flow = AuthorizationFlow::new(profile, client, HttpClient::new(HttpConfig::default())?, clock.clone());
//! let store: Arc<dyn ConnectionStore> = Arc::new(MemoryStore::new(clock.clone()));
//! let keyring = Arc::new(Keyring::new(vec![SealingKey::generate(KeyId::new("k1")?, &mut OsRng)])?);
//! let connector = Connector::new(flow, store, keyring, clock);
//!
//! // "Connect Cal.com" pressed by your user 17: send the browser to the authorize URL, and set
//! // a cookie (HttpOnly, SameSite=Lax) holding the browser binding.
//! let request = ConnectRequest::new(
//!     EndUserId::new("user-17")?,
//!     AuthorizeOptions::new(["PROFILE_READ", "SCHEDULE_READ"])?,
//! );
//! let started = connector.start(request, &mut OsRng).await?;
//!
//! // The user signs in at Cal.com and presses Allow; Cal.com redirects to your callback.
//! # let browser = calconnect_sandbox::browser::SandboxBrowser::new(sandbox.base_url())?;
//! # let redirect = browser.sign_in_and_allow(1, started.authorize_url.as_str()).await?;
//!
//! // At the callback: its query, and the cookie's value.
//! let callback = Callback::from_redirect_url(&redirect)?;
//! let finished = connector.finish(callback, &started.browser_binding, &mut OsRng).await?;
//! println!(
//!     "{:?} connection {} for {:?}",
//!     finished.connected.outcome,
//!     finished.connected.connection.id,
//!     finished.connected.connection.identity.owner
//! );
//! # assert_eq!(finished.connected.connection.end_user.as_str(), "user-17");
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//! [`StartError`], [`FinishError`] and [`CompleteError`] say which step failed; errors after the
//! pending authorization was consumed carry its `return_to` ([`FinishError::return_to`]) so a web
//! adapter can send the browser back to the application with the outcome.
//!
//! # Security
//! The state, PKCE verifier and browser binding never reach the store in clear (the pending
//! authorization is sealed, the state and binding are stored as digests); tokens are sealed before
//! they are saved. A callback is accepted only once, only in the browser that started it.

use crate::callback::{Callback, CallbackError, VerifiedCallback};
use crate::clock::Clock;
use crate::crypto::{Keyring, OpenError, SealContext, SealError};
use crate::disconnect::TokensRevoked;
use crate::errors::ExchangeError;
use crate::flow::{AuthorizationFlow, AuthorizeOptions, AuthorizeUrl};
use crate::identity::{AccountIdentity, IdentifyError};
use crate::me::CalUser;
use crate::pending::{PendingAuthorization, PendingDecodeError};
use crate::store::{
    AccountProfile, BrowserBinding, CalIdentity, Connection, ConnectionId, ConnectionStore,
    EndUserId, NewPendingRecord, PendingId, SaveError, StateKey, StoreError, TokensToSave,
    UpsertOutcome, save_connection,
};
use crate::token_response::TokenSet;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{CryptoRng, RngCore};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::fmt;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// How long a refresh token is assumed to live after it was obtained, when nothing better is
/// known: Cal.com's sliding 30-day window (docs/calcom.md §3.6). Only an estimate, for the
/// keep-alive sweep; a dead grant is still recognised by `invalid_grant`.
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::days(30);

/// Starts and finishes connections: the authorization flow, the store and the keyring together.
#[derive(Clone)]
pub struct Connector {
    flow: AuthorizationFlow,
    store: Arc<dyn ConnectionStore>,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    refresh_window: Duration,
    profile_lookup: bool,
    allow_reassignment: bool,
    budget: Option<Arc<dyn crate::budget::RefreshBudget>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("flow", &self.flow)
            .field("store", &self.store)
            .field("refresh_window", &self.refresh_window)
            .finish_non_exhaustive()
    }
}

/// What to connect: whose connection, with which scopes, and where to send the browser after.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    end_user: EndUserId,
    options: AuthorizeOptions,
    return_to: Option<String>,
}

impl ConnectRequest {
    /// Connects `end_user` (your application's id for the person) with `options`.
    pub fn new(end_user: EndUserId, options: AuthorizeOptions) -> Self {
        Self {
            end_user,
            options,
            return_to: None,
        }
    }

    /// Where a web adapter sends the browser when the flow ends (kept with the pending
    /// authorization, handed back by [`Connector::finish`]).
    #[must_use]
    pub fn return_to(mut self, url: impl Into<String>) -> Self {
        self.return_to = Some(url.into());
        self
    }
}

/// A started connection: where to send the browser, and the browser binding to give it.
pub struct Started {
    /// The authorize URL.
    pub authorize_url: AuthorizeUrl,
    /// The value of the cookie that binds the flow to this browser. Secret: set it `HttpOnly`
    /// and `SameSite=Lax`, scoped to the callback path, for at most [`Started::expires_at`].
    pub browser_binding: SecretString,
    /// The digest of the flow's `state` (not secret): [`Callback::state_key`] gives the same for
    /// its callback, so a cookie name derived from it finds the binding again.
    pub state_key: StateKey,
    /// When the pending authorization stops being usable (10 minutes).
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("authorize_url", &self.authorize_url)
            .field("browser_binding", &"[redacted]")
            .field("state_key", &self.state_key)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Whether the identity was new to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectOutcome {
    /// A new connection.
    Created,
    /// The identity was already connected: its tokens (and end user) were replaced.
    Updated,
}

impl ConnectOutcome {
    /// `created` or `updated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }
}

/// A saved connection.
#[derive(Debug, Clone)]
pub struct Connected {
    /// Created or updated.
    pub outcome: ConnectOutcome,
    /// The stored connection (tokens sealed).
    pub connection: Connection,
    /// Whose account it holds. For a custom provider the store keeps only a digest of it
    /// ([`AccountIdentity::store_owner`]): keep this for display.
    pub account: AccountIdentity,
    /// The Cal.com profile, when `/v2/me` was asked (the tokens' claims named nobody).
    pub user: Option<CalUser>,
}

/// A callback whose pending authorization was consumed for the browser that started it
/// ([`Connector::claim`]); finish it with [`Connector::finish_claim`].
pub struct Claim {
    callback: Callback,
    pending: PendingAuthorization,
    state_key: StateKey,
    end_user: EndUserId,
    scopes: Vec<String>,
    return_to: Option<String>,
}

impl Claim {
    /// The digest of the flow's state.
    pub fn state_key(&self) -> StateKey {
        self.state_key
    }

    /// Whose connection this flow makes.
    pub fn end_user(&self) -> &EndUserId {
        &self.end_user
    }

    /// Where the application asked to send the browser.
    pub fn return_to(&self) -> Option<&str> {
        self.return_to.as_deref()
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("state_key", &self.state_key)
            .field("end_user", &self.end_user)
            .field("return_to", &self.return_to)
            .finish_non_exhaustive()
    }
}

/// A finished web flow.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The saved connection.
    pub connected: Connected,
    /// Where the application asked to send the browser.
    pub return_to: Option<String>,
}

/// [`Connector::start`] failed; nothing was recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Sealing the pending authorization failed.
    #[error("cannot seal the connection attempt: {0}")]
    Seal(#[source] SealError),
    /// The store refused or is unreachable.
    #[error("cannot record the connection attempt: {0}")]
    Store(#[source] StoreError),
}

/// Identifying or saving a connection failed (after the code exchange started).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompleteError {
    /// The callback was refused: the user declined, Cal.com refused the team, a forged or
    /// expired state, … (see [`CallbackError`]).
    #[error(transparent)]
    Callback(CallbackError),
    /// The code exchange failed.
    #[error(transparent)]
    Exchange(ExchangeError),
    /// The token-endpoint budget had no permit in time ([`Connector::with_budget`]): too many
    /// requests at once for the provider's rate limit. Nothing was sent; the code is unused
    /// but the attempt was consumed: start the connection again after `retry_after`.
    #[error("the code exchange was not sent: {0}")]
    Busy(#[source] crate::budget::BudgetError),
    /// The account could not be identified (Cal.com: the tokens name no user or team and
    /// `/v2/me` failed; a custom provider: its identity source failed). The tokens were not
    /// kept; [`IdentityFailure::discarded`] says whether they were revoked.
    #[error(transparent)]
    Identity(Box<IdentityFailure>),
    /// The tokens could not be sealed or saved.
    #[error("the connection could not be saved: {0}")]
    Save(#[source] SaveError),
    /// The Cal.com account is already connected for another end user, and moving connections
    /// between end users is not allowed ([`Connector::allow_reassignment`]). Nothing was saved;
    /// the tokens received are dropped (Cal.com cannot revoke them, docs/calcom.md §4).
    #[error(
        "this Cal.com account is already connected for another user of the application (connection {connection_id}); nothing was changed"
    )]
    Conflict {
        /// The existing connection (untouched).
        connection_id: ConnectionId,
        /// Its end user.
        existing_end_user: EndUserId,
        /// The end user of the refused flow.
        requested_end_user: EndUserId,
    },
}

/// Identification failed after the tokens were received; they were not kept.
#[derive(Debug, thiserror::Error)]
#[error("cannot tell whose account the tokens are for: {error}; {discarded}")]
pub struct IdentityFailure {
    /// Why.
    #[source]
    pub error: IdentifyError,
    /// What happened to the tokens received (RFC 7009 revocation where the provider has it).
    pub discarded: TokensRevoked,
}

/// [`Connector::finish`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FinishError {
    /// The callback has no `state`.
    #[error("the callback has no state: start the connection again from the application")]
    MissingState,
    /// No pending authorization matches this state and browser: used already, issued elsewhere,
    /// or started in another browser (a mismatching binding leaves it in place).
    #[error(
        "no connection attempt of this browser matches the callback (already used, or started elsewhere): start the connection again"
    )]
    UnknownState,
    /// The pending authorization expired (10 minutes, like Cal.com's codes).
    #[error("the connection attempt took longer than 10 minutes: start the connection again")]
    Expired,
    /// The stored attempt cannot be opened: its sealing key is gone, or its format unknown.
    #[error("the stored connection attempt cannot be read ({reason}): start the connection again")]
    Unreadable {
        /// Why (no secret).
        reason: String,
    },
    /// The store failed before anything was consumed.
    #[error("the connection attempt cannot be looked up: {0}")]
    Store(#[source] StoreError),
    /// The pending authorization was consumed, then a later step failed.
    #[error("{error}")]
    Failed {
        /// Where the application asked to send the browser.
        return_to: Option<String>,
        /// What failed.
        #[source]
        error: CompleteError,
    },
}

impl FinishError {
    /// Where to send the browser, when the failure happened after the pending authorization
    /// (which knows it) was consumed.
    pub fn return_to(&self) -> Option<&str> {
        match self {
            Self::Failed { return_to, .. } => return_to.as_deref(),
            _ => None,
        }
    }
}

impl Connector {
    /// A connector over `flow` (provider and client), `store` and `keyring`, with `clock`.
    pub fn new(
        flow: AuthorizationFlow,
        store: Arc<dyn ConnectionStore>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            flow,
            store,
            keyring,
            clock,
            refresh_window: DEFAULT_REFRESH_WINDOW,
            profile_lookup: false,
            allow_reassignment: false,
            budget: None,
        }
    }

    /// The token-endpoint budget code exchanges take a permit from, first in line
    /// ([`crate::budget::Priority::Exchange`]); share it with the keeper (default none). An
    /// exchange waits for a permit up to the budget's `max_wait`, then fails with
    /// [`CompleteError::Busy`]; a 429 from the token endpoint pauses the budget.
    #[must_use]
    pub fn with_budget(mut self, budget: Arc<dyn crate::budget::RefreshBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Whether a flow for end user B may take over a Cal.com account connected for end user A
    /// (default: no — [`CompleteError::Conflict`]). When allowed, the move is visible: the
    /// store records a `reauthorized` event with the previous end user.
    #[must_use]
    pub fn allow_reassignment(mut self, allow: bool) -> Self {
        self.allow_reassignment = allow;
        self
    }

    /// Also ask `GET /v2/me` when the tokens' claims already name the account, to get the
    /// profile (name, username, e-mail) into [`Connected::user`] and the stored connection
    /// ([`crate::store::Connection::profile`]). The claims still decide the account: when they
    /// name it, a failed lookup (no `PROFILE_READ`, Cal.com down) only leaves the profile out.
    /// Providers without a Cal.com API are identified by their claims alone. Default off: one
    /// call fewer per connection.
    #[must_use]
    pub fn with_profile_lookup(mut self, lookup: bool) -> Self {
        self.profile_lookup = lookup;
        self
    }

    /// How long a refresh token is assumed to live after it was obtained (default
    /// [`DEFAULT_REFRESH_WINDOW`]; use the keeper's `refresh_window` so both agree).
    #[must_use]
    pub fn with_refresh_window(mut self, window: std::time::Duration) -> Self {
        self.refresh_window = Duration::try_from(window).unwrap_or(DEFAULT_REFRESH_WINDOW);
        self
    }

    /// The authorization flow.
    pub fn flow(&self) -> &AuthorizationFlow {
        &self.flow
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ConnectionStore> {
        &self.store
    }

    /// The keyring.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// Starts a connection: the authorize URL, the pending authorization sealed into the store,
    /// and the browser binding.
    ///
    /// # Errors
    /// [`StartError`]; nothing is recorded then.
    #[tracing::instrument(name = "calconnect.connect.start", skip_all)]
    pub async fn start(
        &self,
        request: ConnectRequest,
        rng: &mut (impl RngCore + CryptoRng + Send),
    ) -> Result<Started, StartError> {
        let (authorize_url, pending) = self.flow.start(&request.options, rng);
        let id = PendingId::random(rng);
        let sealed = self
            .keyring
            .seal(
                rng,
                SealContext::pending_verifier(id.as_uuid()),
                pending.to_sealable_bytes().expose_secret(),
            )
            .map_err(StartError::Seal)?;
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let browser_binding = SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
        bytes.zeroize();
        let state_key = pending.state_key();
        let expires_at = pending.expires_at();
        self.store
            .insert_pending(NewPendingRecord {
                id,
                state_key,
                pkce_verifier: sealed,
                end_user: request.end_user,
                scopes: request.options.scopes().to_vec(),
                redirect_uri: self.flow.client().redirect_uri().as_str().to_owned(),
                return_to: request.return_to,
                browser_binding: BrowserBinding::of(&browser_binding),
                expires_at,
            })
            .await
            .map_err(StartError::Store)?;
        Ok(Started {
            authorize_url,
            browser_binding,
            state_key,
            expires_at,
        })
    }

    /// Finishes a connection from its callback and the browser binding the browser sent back:
    /// consumes the pending authorization (once, for this browser only), verifies the callback,
    /// exchanges the code, identifies the account and saves the connection.
    ///
    /// # Errors
    /// [`FinishError`]; after the pending authorization was consumed,
    /// [`FinishError::Failed`] with its `return_to`.
    #[tracing::instrument(name = "calconnect.connect.finish", skip_all)]
    pub async fn finish(
        &self,
        callback: Callback,
        browser_binding: &SecretString,
        rng: &mut (impl RngCore + CryptoRng + Send),
    ) -> Result<Finished, FinishError> {
        let claim = self.claim(callback, browser_binding).await?;
        self.finish_claim(claim, rng).await
    }

    /// The first half of [`Connector::finish`]: consumes the pending authorization of
    /// `callback` for this browser (exactly once) and opens it, without calling the provider. An
    /// adapter that must record "this flow is being finished" (a single-use link) does so between
    /// this and [`Connector::finish_claim`]: only the browser that started the flow gets here.
    ///
    /// # Errors
    /// As [`Connector::finish`], before anything was exchanged.
    pub async fn claim(
        &self,
        callback: Callback,
        browser_binding: &SecretString,
    ) -> Result<Claim, FinishError> {
        let state_key = callback.state_key().ok_or(FinishError::MissingState)?;
        let stored = self
            .store
            .consume_pending(&state_key, &BrowserBinding::of(browser_binding))
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => FinishError::UnknownState,
                StoreError::PendingExpired => FinishError::Expired,
                other => FinishError::Store(other),
            })?;
        let pending = self
            .keyring
            .open(
                &stored.pkce_verifier,
                SealContext::pending_verifier(stored.id.as_uuid()),
            )
            .map_err(|e: OpenError| FinishError::Unreadable {
                reason: e.to_string(),
            })
            .and_then(|bytes| {
                PendingAuthorization::from_unsealed_bytes(&SecretSlice::from(
                    bytes.expose_secret().to_vec(),
                ))
                .map_err(|e: PendingDecodeError| FinishError::Unreadable {
                    reason: e.to_string(),
                })
            })?;
        Ok(Claim {
            callback,
            pending,
            state_key,
            end_user: stored.end_user,
            scopes: stored.scopes,
            return_to: stored.return_to,
        })
    }

    /// The second half of [`Connector::finish`]: verifies the claimed callback, exchanges the
    /// code, identifies the account and saves the connection.
    ///
    /// # Errors
    /// [`FinishError::Failed`], with the flow's `return_to`.
    pub async fn finish_claim(
        &self,
        claim: Claim,
        rng: &mut (impl RngCore + CryptoRng + Send),
    ) -> Result<Finished, FinishError> {
        let Claim {
            callback,
            pending,
            end_user,
            scopes,
            return_to,
            ..
        } = claim;
        let failed = |error| FinishError::Failed {
            return_to: return_to.clone(),
            error,
        };
        let verified = pending
            .verify(callback, self.clock.as_ref())
            .map_err(|e| failed(CompleteError::Callback(e)))?;
        let connected = self
            .complete(verified, end_user, &scopes, rng)
            .await
            .map_err(failed)?;
        Ok(Finished {
            connected,
            return_to,
        })
    }

    /// Exchanges the code of a callback verified by the caller (who kept the pending
    /// authorization itself), then identifies and saves as [`Connector::save`].
    /// `requested_scopes` stand in when the token answer names none.
    ///
    /// # Errors
    /// [`CompleteError`].
    pub async fn complete(
        &self,
        verified: VerifiedCallback,
        end_user: EndUserId,
        requested_scopes: &[String],
        rng: &mut (impl RngCore + CryptoRng + Send),
    ) -> Result<Connected, CompleteError> {
        if let Some(budget) = self.budget.as_deref() {
            let timer = crate::api::TokioTimer::new();
            crate::budget::acquire(
                budget,
                crate::budget::Priority::Exchange,
                budget.config().max_wait,
                &timer,
            )
            .await
            .map_err(CompleteError::Busy)?;
        }
        let tokens = match self.flow.exchange(verified).await {
            Ok(tokens) => tokens,
            Err(e) => {
                if let (Some(budget), ExchangeError::RateLimited { retry_after }) =
                    (self.budget.as_deref(), &e)
                {
                    let wait = retry_after.unwrap_or(crate::errors::TOKEN_RATE_LIMIT_DEFAULT_WAIT);
                    let until = self.clock.now() + Duration::try_from(wait).unwrap_or_default();
                    crate::budget::pause_after_rate_limit(budget, until).await;
                }
                return Err(CompleteError::Exchange(e));
            }
        };
        self.save(tokens, end_user, requested_scopes, rng).await
    }

    /// Identifies the account of `tokens` with the profile's identity strategy
    /// ([`AuthorizationFlow::identify`]: Cal.com's claims, else `GET /v2/me`; a custom provider's
    /// userinfo, introspection, claims or label), seals them and saves the connection: one per
    /// account identity and client, so an account connected before is updated, not duplicated
    /// (Cal.com keeps one live refresh token per client and user, docs/calcom.md §3.4).
    ///
    /// # Errors
    /// [`CompleteError::Identity`] (the tokens are then revoked where the provider can, refresh
    /// token first), [`CompleteError::Save`].
    pub async fn save(
        &self,
        tokens: TokenSet,
        end_user: EndUserId,
        requested_scopes: &[String],
        rng: &mut (impl RngCore + CryptoRng + Send),
    ) -> Result<Connected, CompleteError> {
        let identified = match self.flow.identify(&tokens, self.profile_lookup).await {
            Ok(identified) => identified,
            Err(error) => {
                tracing::warn!(error = %error, "the account could not be identified; revoking the tokens received");
                let discarded = self
                    .flow
                    .revoke_tokens(&tokens.access_token, tokens.refresh_token.as_ref())
                    .await;
                return Err(CompleteError::Identity(Box::new(IdentityFailure {
                    error,
                    discarded,
                })));
            }
        };
        let owner = identified
            .account
            .store_owner(&self.flow.profile().identity_namespace());
        let identity = CalIdentity {
            client_id: self.flow.client().client_id().to_owned(),
            owner,
        };
        if !self.allow_reassignment {
            if let Some(existing) = self
                .store
                .find_by_identity(&identity)
                .await
                .map_err(|e| CompleteError::Save(SaveError::Store(e)))?
            {
                if existing.end_user != end_user {
                    return Err(CompleteError::Conflict {
                        connection_id: existing.id,
                        existing_end_user: existing.end_user,
                        requested_end_user: end_user,
                    });
                }
            }
        }
        let obtained_at = self.clock.now();
        let outcome = save_connection(
            self.store.as_ref(),
            &self.keyring,
            rng,
            TokensToSave {
                end_user,
                identity,
                scopes: tokens
                    .scopes
                    .clone()
                    .unwrap_or_else(|| requested_scopes.to_vec()),
                access_token: SecretString::from(tokens.access_token.expose_secret().to_owned()),
                refresh_token: tokens
                    .refresh_token
                    .as_ref()
                    .map(|t| SecretString::from(t.expose_secret().to_owned())),
                access_expires_at: Some(tokens.expires_at),
                refresh_expires_at_estimate: Some(obtained_at + self.refresh_window),
                profile: identified
                    .user
                    .as_ref()
                    .map(|user| AccountProfile::from_cal_user(user, obtained_at)),
            },
        )
        .await
        .map_err(CompleteError::Save)?;
        let (outcome, connection) = match outcome {
            UpsertOutcome::Created(c) => (ConnectOutcome::Created, c),
            UpsertOutcome::Updated { connection, .. } => (ConnectOutcome::Updated, connection),
        };
        Ok(Connected {
            outcome,
            connection,
            account: identified.account,
            user: identified.user,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_binding() {
        let started = Started {
            authorize_url: AuthorizeUrl(url::Url::parse("https://x.example/a?state=S").unwrap()),
            browser_binding: SecretString::from("BINDING-VALUE"),
            state_key: StateKey::of(&SecretString::from("S")),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        let shown = format!("{started:?}");
        assert!(!shown.contains("BINDING-VALUE"), "{shown}");
        assert!(!shown.contains("state=S"), "{shown}");
    }
}
