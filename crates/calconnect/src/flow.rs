//! [`AuthorizationFlow`]: start (authorize URL + pending authorization), exchange, refresh, revoke.

use crate::callback::VerifiedCallback;
use crate::client::ClientConfig;
use crate::clock::Clock;
use crate::errors::{ExchangeError, ProtocolError, RefreshError, RevokeError, TransientError};
use crate::http::{HttpClient, PreparedRequest, RawResponse, TransportErrorKind};
use crate::pending::{PENDING_AUTHORIZATION_TTL, PendingAuthorization, State};
use crate::pkce::PkceVerifier;
use crate::profile::{
    BodyEncoding, ClientAuthMethod, LegacyTokenEndpoints, PkceUse, ProviderProfile, ScopeDelimiter,
    TokenEndpoints,
};
use crate::secret::{AccessToken, RefreshToken};
use crate::token_request::{Grant, Revocation, revocation_request, token_request};
use crate::token_response::{Failure, TokenSet, classify_failure, parse_token_response};
use rand::{CryptoRng, RngCore};
use secrecy::zeroize::Zeroize;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use time::OffsetDateTime;
use url::Url;

/// What to ask for at the authorization endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizeOptions {
    scopes: Vec<String>,
    show_account_selector: bool,
}

impl AuthorizeOptions {
    /// Requests `scopes` (e.g. `BOOKING_READ`, docs/calcom.md §5).
    ///
    /// # Errors
    /// [`AuthorizeOptionsError`] for a scope that is empty or holds a character outside RFC 6749
    /// §3.3 `scope-token`, or a comma (Cal.com splits on commas).
    pub fn new<I, S>(scopes: I) -> Result<Self, AuthorizeOptionsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::for_delimiter(scopes, ScopeDelimiter::Comma)
    }

    /// Requests `scopes` at a profile that joins them with `delimiter`
    /// ([`ProviderProfile::scope_delimiter`]): each must be an RFC 6749 §3.3 `scope-token` and
    /// may not hold the delimiter (so a custom provider's space-separated scopes may hold commas,
    /// `read:user`, `https://…`).
    ///
    /// # Errors
    /// [`AuthorizeOptionsError`] for an empty or unusable scope.
    pub fn for_delimiter<I, S>(
        scopes: I,
        delimiter: ScopeDelimiter,
    ) -> Result<Self, AuthorizeOptionsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let forbidden = match delimiter {
            ScopeDelimiter::Comma => b',',
            ScopeDelimiter::Space => b' ',
        };
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        for scope in &scopes {
            let valid = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E) && b != forbidden);
            if !valid {
                return Err(AuthorizeOptionsError::InvalidScope {
                    scope: crate::callback::sanitize(scope),
                });
            }
        }
        Ok(Self {
            scopes,
            show_account_selector: false,
        })
    }

    /// The requested scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Cal.com: show the account/team picker so the user can connect a team (sends
    /// `show_account_selector=true`, docs/calcom.md §2). Ignored by custom profiles.
    #[must_use]
    pub fn show_account_selector(mut self, show: bool) -> Self {
        self.show_account_selector = show;
        self
    }
}

/// The authorize options were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizeOptionsError {
    /// A scope name is unusable.
    #[error(
        "scope `{scope}` is not a valid scope name: RFC 6749 scopes are printable ASCII without spaces, quotes or backslashes (and without commas where the provider separates scopes with commas, as Cal.com does)"
    )]
    InvalidScope {
        /// The scope (sanitised).
        scope: String,
    },
}

/// The URL to send the user's browser to. `Debug` hides the `state`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizeUrl(pub(crate) Url);

impl AuthorizeUrl {
    /// The URL as text (for a redirect's `Location`).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URL, owned.
    pub fn into_url(self) -> Url {
        self.0
    }
}

impl fmt::Debug for AuthorizeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        let pairs: Vec<(String, String)> = self
            .0
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "state" {
                    "[redacted]".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
        write!(f, "AuthorizeUrl({shown})")
    }
}

/// Which token to revoke (RFC 7009 `token_type_hint`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RevocableToken<'a> {
    /// An access token.
    Access(&'a AccessToken),
    /// A refresh token (most servers then revoke the whole grant).
    Refresh(&'a RefreshToken),
}

/// The protocol half of a connection: one per (provider profile, client).
#[derive(Clone)]
pub struct AuthorizationFlow {
    profile: ProviderProfile,
    client: ClientConfig,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    /// When the v2 token endpoint last answered 404 (shared by clones: one per process in
    /// practice); token calls go straight to the legacy endpoints for the profile's
    /// `legacy_fallback_memory` after it.
    v2_missing_since: Arc<Mutex<Option<OffsetDateTime>>>,
}

impl fmt::Debug for AuthorizationFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationFlow")
            .field("profile", &self.profile)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl AuthorizationFlow {
    /// A flow for `client` at `profile`, using the shared `http` client and `clock`.
    pub fn new(
        profile: ProviderProfile,
        client: ClientConfig,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            profile,
            client,
            http,
            clock,
            v2_missing_since: Arc::new(Mutex::new(None)),
        }
    }

    /// What this flow does about PKCE: the client policy
    /// ([`ProviderProfile::pkce_use`]) for this client's type.
    pub fn pkce_use(&self) -> PkceUse {
        self.profile.pkce_use(self.client.is_confidential())
    }

    /// The provider profile.
    pub fn profile(&self) -> &ProviderProfile {
        &self.profile
    }

    /// The client configuration.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Starts an authorization: a fresh 256-bit `state` from `rng`, a PKCE S256 verifier when the
    /// client policy uses PKCE ([`Self::pkce_use`]: public clients always; confidential clients
    /// at Cal.com not by default), the authorize URL, and the pending authorization to keep
    /// (sealed) until the callback; it expires after 10 minutes.
    ///
    /// The URL is built with `oauth2`'s `AuthorizationRequest`: `response_type=code`, `client_id`,
    /// `state`, with PKCE `code_challenge` and `code_challenge_method=S256`, `redirect_uri`,
    /// `scope` (commas for Cal.com, see [docs/calcom.md](../../../docs/calcom.md); spaces
    /// otherwise), and `show_account_selector=true` if asked.
    pub fn start(
        &self,
        options: &AuthorizeOptions,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (AuthorizeUrl, PendingAuthorization) {
        let state = State::generate(rng);
        let verifier = self
            .pkce_use()
            .sends_challenge()
            .then(|| PkceVerifier::generate(rng));
        let oauth_client =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(self.client.client_id.clone()))
                .set_auth_uri(oauth2::AuthUrl::from_url(
                    self.profile.authorize_url.as_url().clone(),
                ))
                .set_redirect_uri(self.client.redirect_uri.as_oauth2().clone());
        let mut request =
            oauth_client.authorize_url(|| oauth2::CsrfToken::new(state.expose().to_owned()));
        if let Some(verifier) = &verifier {
            request = request.set_pkce_challenge(verifier.s256_challenge());
        }
        if !options.scopes.is_empty() {
            let delimiter = match self.profile.scope_delimiter {
                ScopeDelimiter::Comma => ",",
                ScopeDelimiter::Space => " ",
            };
            request = request.add_scope(oauth2::Scope::new(options.scopes.join(delimiter)));
        }
        if options.show_account_selector && self.profile.is_cal_com() {
            request = request.add_extra_param("show_account_selector", "true");
        }
        let (url, csrf) = request.url();
        csrf.into_secret().zeroize();
        let now = self.clock.now();
        let pending = PendingAuthorization {
            state,
            verifier,
            client_id: self.client.client_id.clone(),
            redirect_uri: self.client.redirect_uri.clone(),
            issuer: self.profile.issuer.clone(),
            created_at: now,
            expires_at: now + PENDING_AUTHORIZATION_TTL,
        };
        (AuthorizeUrl(url), pending)
    }

    /// Exchanges the code of a verified callback for tokens (RFC 6749 §4.1.3): at the profile's
    /// token endpoint, falling back to the legacy endpoint on a v2 404 when the profile allows
    /// it, or straight at Cal.com's legacy endpoint when the client policy says
    /// [`PkceUse::S256ViaLegacyEndpoint`]. The body holds exactly the fields Cal.com's input
    /// class for the case allows ([docs/calcom.md](../../../docs/calcom.md)).
    ///
    /// # Errors
    /// [`ExchangeError`], classified from the provider's answer;
    /// [`ExchangeError::PkceSettingChanged`] when the callback's flow was started under another
    /// PKCE setting; [`ExchangeError::LegacyEndpointMissing`] when the legacy-endpoint opt-in
    /// meets a server without that endpoint.
    #[tracing::instrument(name = "calconnect.exchange", skip_all, fields(client_id = %self.client.client_id))]
    pub async fn exchange(&self, verified: VerifiedCallback) -> Result<TokenSet, ExchangeError> {
        if verified.client_id != self.client.client_id
            || verified.redirect_uri != self.client.redirect_uri
        {
            return Err(ExchangeError::WrongClient);
        }
        let pkce = self.pkce_use();
        if pkce.sends_challenge() != verified.verifier.is_some() {
            return Err(ExchangeError::PkceSettingChanged);
        }
        let grant = Grant::AuthorizationCode {
            code: &verified.code,
            redirect_uri: verified.redirect_uri.as_str(),
            verifier: verified.verifier.as_ref(),
        };
        match (pkce, &self.profile.legacy) {
            (PkceUse::S256ViaLegacyEndpoint, Some(legacy)) => {
                match self.legacy_call(legacy, &grant).await {
                    Err(Failure::NotFound) => Err(ExchangeError::LegacyEndpointMissing),
                    other => Ok(other?),
                }
            }
            (PkceUse::S256ViaLegacyEndpoint, None) => Err(ExchangeError::LegacyEndpointMissing),
            _ => Ok(self.token_call(&grant).await?),
        }
    }

    /// Refreshes with `refresh_token` (RFC 6749 §6; docs/calcom.md §3.2). Cal.com rotates the
    /// refresh token: persist the returned one before using the new access token. When the server
    /// sends no new refresh token, the old one is kept in the result (docs/calcom.md §8).
    ///
    /// # Errors
    /// [`RefreshError`]; see [`RefreshError::needs_reauthorization`] and
    /// [`RefreshError::is_transient`].
    #[tracing::instrument(name = "calconnect.refresh", skip_all, fields(client_id = %self.client.client_id))]
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenSet, RefreshError> {
        let mut tokens = self.token_call(&Grant::RefreshToken(refresh_token)).await?;
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = Some(refresh_token.clone());
            tokens.refresh_token_rotated = false;
        }
        Ok(tokens)
    }

    /// Revokes a token at the profile's RFC 7009 endpoint.
    ///
    /// # Errors
    /// [`RevokeError::NotSupported`] when the profile has none (Cal.com, docs/calcom.md §4),
    /// otherwise the classified answer.
    #[tracing::instrument(name = "calconnect.revoke", skip_all, fields(client_id = %self.client.client_id))]
    pub async fn revoke(&self, token: RevocableToken<'_>) -> Result<(), RevokeError> {
        let Some(url) = &self.profile.revocation_url else {
            return Err(RevokeError::NotSupported);
        };
        let revocation = match token {
            RevocableToken::Access(t) => Revocation {
                token: t.expose_secret(),
                hint: "access_token",
            },
            RevocableToken::Refresh(t) => Revocation {
                token: t.expose_secret(),
                hint: "refresh_token",
            },
        };
        let request = revocation_request(url, self.profile.client_auth, &self.client, &revocation);
        let response = self.send(request).await?;
        if response.status.is_success() {
            Ok(())
        } else {
            Err(classify_failure(&response, self.clock.now()).into())
        }
    }

    async fn token_call(&self, grant: &Grant<'_>) -> Result<TokenSet, Failure> {
        let auth = self.profile.client_auth;
        match &self.profile.token {
            TokenEndpoints::Unified {
                url,
                encoding,
                legacy_fallback,
            } => {
                if let Some(legacy) = legacy_fallback {
                    if self.v2_recently_missing() {
                        return self.legacy_call(legacy, grant).await;
                    }
                }
                let response = self
                    .send(token_request(url, *encoding, auth, &self.client, grant))
                    .await?;
                match legacy_fallback {
                    // Cal.com issue 27685: v2 answered 404 in production; the request never
                    // reached the handler, so the code is not burned and the legacy endpoint can
                    // take it. Remembered, so the next calls skip the wasted round trip.
                    Some(legacy) if response.status == http::StatusCode::NOT_FOUND => {
                        tracing::warn!(
                            memory_secs = self.profile.legacy_fallback_memory.as_secs(),
                            "v2 token endpoint answered 404; using the legacy endpoint"
                        );
                        self.remember_v2_missing();
                        self.legacy_call(legacy, grant).await
                    }
                    _ => self.tokens_from(response),
                }
            }
            TokenEndpoints::Legacy(legacy) => self.legacy_call(legacy, grant).await,
        }
    }

    /// A token call at Cal.com's legacy web endpoints: one URL per grant, form body,
    /// `client_secret_post` (the only method they read).
    async fn legacy_call(
        &self,
        legacy: &LegacyTokenEndpoints,
        grant: &Grant<'_>,
    ) -> Result<TokenSet, Failure> {
        let url = match grant {
            Grant::AuthorizationCode { .. } => &legacy.token,
            Grant::RefreshToken(_) => &legacy.refresh,
        };
        let request = token_request(
            url,
            BodyEncoding::Form,
            ClientAuthMethod::ClientSecretPost,
            &self.client,
            grant,
        );
        self.tokens_from(self.send(request).await?)
    }

    fn v2_recently_missing(&self) -> bool {
        let since = *self
            .v2_missing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since.is_some_and(|at| self.clock.now() < at + self.profile.legacy_fallback_memory)
    }

    fn remember_v2_missing(&self) {
        if self.profile.legacy_fallback_memory.is_zero() {
            return;
        }
        *self
            .v2_missing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(self.clock.now());
    }

    fn tokens_from(&self, response: RawResponse) -> Result<TokenSet, Failure> {
        if !response.status.is_success() {
            return Err(classify_failure(&response, self.clock.now()));
        }
        if response.is_html() {
            return Err(Failure::Transient(TransientError::HtmlErrorPage {
                status: response.status.as_u16(),
            }));
        }
        parse_token_response(&response.body, self.clock.now()).map_err(Failure::Protocol)
    }

    async fn send(&self, request: PreparedRequest) -> Result<RawResponse, Failure> {
        self.http.send(request).await.map_err(|e| match e.kind() {
            TransportErrorKind::TooLarge { limit } => {
                Failure::Protocol(ProtocolError::Oversized { limit })
            }
            _ => Failure::Transient(TransientError::Transport(e)),
        })
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
