//! calconnect: connect your users' Cal.com accounts over OAuth 2.0 and keep the connections alive.

pub mod callback;
pub mod claims;
pub mod client;
pub mod clock;
pub mod endpoint;
pub mod errors;
pub mod flow;
pub mod http;
pub mod pending;
pub mod pending_registry;
mod pkce;
pub mod profile;
pub mod secret;
mod token_request;
pub mod token_response;

pub use callback::{AuthorizationCode, Callback, CallbackError, VerifiedCallback};
pub use claims::{CalIdentity, UnverifiedClaims, read_unverified_claims};
pub use client::{ClientConfig, ClientConfigError, RedirectUri};
pub use clock::{Clock, MockClock, SystemClock};
pub use endpoint::{EndpointUrl, EndpointUrlError, UrlPolicy};
pub use errors::{
    ExchangeError, InvalidClientReason, InvalidGrantReason, ProtocolError, RefreshError,
    RevokeError, TransientError, UnauthorizedClientReason,
};
pub use flow::{
    AuthorizationFlow, AuthorizeOptions, AuthorizeOptionsError, AuthorizeUrl, RevocableToken,
};
pub use http::{HttpClient, HttpClientError, HttpConfig, TransportError, TransportErrorKind};
pub use pending::{PENDING_AUTHORIZATION_TTL, PendingAuthorization, PendingDecodeError, StateKey};
pub use pending_registry::PendingAuthorizations;
pub use pkce::PkceVerifier;
pub use profile::{
    BodyEncoding, ClientAuthMethod, CustomProvider, LegacyTokenEndpoints, ProfileError,
    ProviderKind, ProviderProfile, ScopeDelimiter, TokenEndpoints,
};
pub use secret::{AccessToken, ClientSecret, RefreshToken};
pub use token_response::{ExpirySource, TokenSet, parse_token_response};
