//! calconnect: connect your users' Cal.com accounts over OAuth 2.0 and keep the connections alive.
//!
//! # Quick start
//!
//! The whole authorization flow against the local sandbox and its seeded demo client (in
//! production use [`ProviderProfile::cal_com`] and your own client): build the authorize URL,
//! handle the callback, exchange the code, refresh.
//!
//! ```
//! use calconnect::{
//!     AuthorizationFlow, AuthorizeOptions, Callback, ClientConfig, ClientSecret, http::HttpClient, http::HttpConfig,
//!     ProviderProfile, SystemClock, UrlPolicy,
//! };
//! use std::sync::Arc;
//! # use calconnect_sandbox::{
//! #     CONFIDENTIAL_CLIENT_ID as CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET as CLIENT_SECRET, DEFAULT_REDIRECT_URI as REDIRECT_URI,
//! # };
//! # type Error = Box<dyn std::error::Error>;
//! #
//! # /// Plays the user: signs in as the seed's alice and clicks "Allow"; returns the redirect.
//! # async fn user_signs_in_and_allows(sandbox: &calconnect_sandbox::Sandbox, url: &str) -> Result<String, Error> {
//! #     let browser = calconnect_sandbox::browser::SandboxBrowser::new(sandbox.base_url())?;
//! #     Ok(browser.sign_in_and_allow(1, url).await?)
//! # }
//! #
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! # let sandbox = calconnect_sandbox::Sandbox::builder().start().await?;
//! # let sandbox_url = sandbox.base_url().as_str().trim_end_matches('/').to_owned();
//! // Once, at startup: the provider, your OAuth client, one shared HTTP client, a clock.
//! let profile = ProviderProfile::sandbox(&sandbox_url, UrlPolicy::allow_insecure_loopback_http())?;
//! let client = ClientConfig::confidential(CLIENT_ID, ClientSecret::new(CLIENT_SECRET), REDIRECT_URI)?;
//! let http = HttpClient::new(HttpConfig::default())?;
//! let flow = AuthorizationFlow::new(profile, client, http, Arc::new(SystemClock));
//!
//! // 1. Build the authorize URL and send the browser there. Keep `pending` until the callback:
//! //    persist it only sealed (`pending.to_sealable_bytes()`, then encrypt).
//! let options = AuthorizeOptions::new(["PROFILE_READ", "SCHEDULE_READ"])?;
//! let (authorize_url, pending) = flow.start(&options, &mut rand::rngs::OsRng);
//!
//! // The user signs in and clicks "Allow"; Cal.com redirects to REDIRECT_URI?code=…&state=…
//! # let redirect = user_signs_in_and_allows(&sandbox, authorize_url.as_str()).await?;
//!
//! // 2. Handle the callback: parse its query, verify it against the pending authorization.
//! let callback = Callback::from_redirect_url(&redirect)?;
//! let verified = pending.verify(callback, &SystemClock)?;
//!
//! // 3. Exchange the code for tokens.
//! let tokens = flow.exchange(verified).await?;
//! println!("connected {:?}, access token valid until {}", tokens.identity, tokens.expires_at);
//!
//! // 4. Refresh. Cal.com rotates the refresh token: store the new one before using the new
//! //    access token, and never refresh the same connection twice at once.
//! let refresh_token = tokens.refresh_token.ok_or("no refresh token")?;
//! let refreshed = flow.refresh(&refresh_token).await?;
//! assert!(refreshed.refresh_token_rotated);
//! # Ok(())
//! # }
//! ```
//!
//! # In a web app: the connector
//!
//! The steps above are what [`connect::Connector`] does for you, with the pending authorization
//! sealed in a [`store::ConnectionStore`], the callback bound to the browser that started it, and the
//! connection identified, sealed and saved (one per Cal.com identity). Its
//! [quick start](connect#quick-start) is the shortest correct integration; the broker's callback
//! and `calconnect login` are built on it.
//!
//! # Calling the API: the user's schedules
//!
//! The last step of the flow: an authenticated call to Cal.com API v2 with [`api::CalClient`] (it
//! sends the `cal-api-version` each endpoint needs, refreshes once on 401, waits out rate
//! limits). In a service the token keeper is the [`api::AccessTokenSource`]; a script can use
//! [`api::StaticToken`].
//!
//! ```
//! use calconnect::api::{CalClient, StaticToken};
//! # use calconnect::{AuthorizationFlow, AuthorizeOptions, Callback, ClientConfig, ClientSecret, http::HttpClient,
//! #     http::HttpConfig, ProviderProfile, SystemClock, UrlPolicy};
//! use std::sync::Arc;
//! # use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI};
//! # type Error = Box<dyn std::error::Error>;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! # let sandbox = calconnect_sandbox::Sandbox::builder().start().await?;
//! # let sandbox_url = sandbox.base_url().as_str().trim_end_matches('/').to_owned();
//! # let profile = ProviderProfile::sandbox(&sandbox_url, UrlPolicy::allow_insecure_loopback_http())?;
//! # let client = ClientConfig::confidential(CONFIDENTIAL_CLIENT_ID, ClientSecret::new(CONFIDENTIAL_CLIENT_SECRET), DEFAULT_REDIRECT_URI)?;
//! # let http = HttpClient::new(HttpConfig::default())?;
//! # let flow = AuthorizationFlow::new(profile.clone(), client, http.clone(), Arc::new(SystemClock));
//! # let (url, pending) = flow.start(&AuthorizeOptions::new(["PROFILE_READ", "SCHEDULE_READ"])?, &mut rand::rngs::OsRng);
//! # let browser = calconnect_sandbox::browser::SandboxBrowser::new(sandbox.base_url())?;
//! # let redirect = browser.sign_in_and_allow(1, url.as_str()).await?;
//! # let tokens = flow.exchange(pending.verify(Callback::from_redirect_url(&redirect)?, &SystemClock)?).await?;
//! // `profile` and `http` as above; `tokens` from `flow.exchange(…)`.
//! let tokens = Arc::new(StaticToken::new(tokens.access_token));
//! let api = CalClient::for_profile(&profile, http, tokens)?.build();
//!
//! // GET /v2/schedules with `cal-api-version: 2024-06-11` (scope SCHEDULE_READ).
//! for schedule in api.schedules().await? {
//!     println!("{} ({}), default: {}", schedule.name, schedule.time_zone, schedule.is_default);
//!     for slot in &schedule.availability {
//!         println!("  {:?} {}-{}", slot.days, slot.start_time, slot.end_time);
//!     }
//! }
//! # let schedules = api.schedules().await?;
//! # assert_eq!(schedules[0].availability[0].start_time, time::macros::time!(09:00));
//! # Ok(())
//! # }
//! ```
//!
//! # What is where
//!
//! The crate root holds the authorization flow; each subsystem is a module, and every item has
//! one path.
//!
//! - At the root: [`ProviderProfile`], [`ClientConfig`], [`UrlPolicy`] — where the provider is
//!   and who we are; URLs are `https` unless [`UrlPolicy::allow_insecure_loopback_http`] is
//!   named. The profile also holds the **client policy** ([`ProviderProfile::pkce_use`]): public
//!   clients always use PKCE S256; a confidential client at Cal.com sends no
//!   `code_challenge`/`code_verifier` (Cal.com's v2 token endpoint refuses its verifier) unless
//!   [`ConfidentialPkce::ViaLegacyEndpoint`] is chosen; custom providers use PKCE for every
//!   client ([`ConfidentialPkce`]). [`AuthorizationFlow`] starts, exchanges, refreshes and
//!   revokes; only [`PendingAuthorization::verify`] yields the [`VerifiedCallback`] an exchange
//!   needs; [`TokenSet`] is the tolerant parse of a token answer; each operation has its error
//!   enum ([`ExchangeError`], [`RefreshError`], [`CallbackError`], …) with Cal.com's reasons.
//! - [`connect`]: the [`connect::Connector`] — start and finish a connection with a store.
//! - [`store`]: the [`store::ConnectionStore`] trait, its records, the in-memory store.
//! - [`crypto`]: sealing tokens at rest ([`crypto::Keyring`]).
//! - [`http`]: the one hardened HTTP client ([`http::HttpClient`]).
//! - [`keeper`]: [`keeper::TokenKeeper`] — fresh access tokens, refreshes that never lose a
//!   connection (single flight, leases, intents, fenced writes), the keep-alive sweep.
//! - [`api`]: [`api::CalClient`], the Cal.com API v2 client, and the
//!   [`api::AccessTokenSource`] it takes tokens from.
//! - [`discovery`], [`disconnect`]: any standard OAuth 2.0 server as a `custom` profile
//!   (docs/architecture.md §3.8): endpoints from a discovery document, revoking a connection's
//!   tokens (RFC 7009) as it is deleted; whose account a connection holds is the profile's
//!   [`IdentitySource`] (userinfo, introspection, claims or a label).
//!
//! # Security
//!
//! Tokens, secrets, codes, states and verifiers are `secrecy` types with redacted `Debug`;
//! errors carry neither secrets nor URLs. Single-use values (code, verifier, pending
//! authorization, verified callback) are not `Clone` and are consumed by value.

pub mod api;
pub mod budget;
mod callback;
mod claims;
mod client;
mod clock;
pub mod connect;
pub mod crypto;
mod custom_profile;
pub mod disconnect;
pub mod discovery;
mod endpoint;
mod errors;
mod flow;
pub mod http;
mod identity;
pub mod keeper;
mod me;
mod pending;
mod pending_registry;
mod pkce;
mod profile;
pub mod scopes;
mod secret;
pub mod store;
mod token_request;
mod token_response;

// The flow-level API lives at the crate root; the subsystems (`api`, `connect`, `crypto`, `http`,
// `keeper`, `store`) are modules, and each item has one path.
pub use callback::{
    AuthorizationCode, Callback, CallbackError, TEAM_REFUSED_DESCRIPTION, VerifiedCallback,
};
pub use claims::{UnverifiedClaims, read_unverified_claims};
pub use client::{ClientConfig, ClientConfigError, RedirectUri};
pub use clock::{Clock, MockClock, SystemClock};
pub use endpoint::{EndpointUrl, EndpointUrlError, UrlPolicy};
pub use errors::{
    ExchangeError, InvalidClientReason, InvalidGrantReason, ProtocolError, RefreshError,
    RevokeError, TOKEN_RATE_LIMIT_DEFAULT_WAIT, TransientError, UnauthorizedClientReason,
};
pub use flow::{
    AuthorizationFlow, AuthorizeOptions, AuthorizeOptionsError, AuthorizeUrl, RevocableToken,
};
pub use identity::{
    AccountIdentity, Identified, IdentifyError, IdentitySource, InvalidJsonPointer, InvalidLabel,
    JsonPointer, SubjectSource,
};
pub use me::{CalUser, MeError};
pub use pending::{PENDING_AUTHORIZATION_TTL, PendingAuthorization, PendingDecodeError};
pub use pending_registry::PendingAuthorizations;
pub use pkce::PkceVerifier;
pub use profile::{
    BodyEncoding, ClientAuthMethod, ConfidentialPkce, CustomProvider,
    DEFAULT_LEGACY_FALLBACK_MEMORY, LegacyTokenEndpoints, PkcePolicyError, PkceUse, ProfileError,
    ProviderKind, ProviderProfile, ScopeDelimiter, TokenEndpoints,
};
pub use secret::{AccessToken, ClientSecret, IdToken, RefreshToken};
#[doc(hidden)]
pub use token_response::fuzz_classify;
pub use token_response::{ExpirySource, TokenSet, parse_token_response};
