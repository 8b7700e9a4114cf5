//! Errors of the token operations (docs/architecture.md §7.4: one enum per operation), and the shared
//! classification pieces they are made of. Later layers decide a connection's status from this
//! classification (docs/architecture.md §3.6, docs/calcom.md §8), so each provider answer maps to
//! exactly one variant.

use crate::http::TransportError;
use crate::token_response::Failure;
use std::fmt;

macro_rules! reason_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// The provider gave no description (legacy Cal.com routes, most other servers).
            Unspecified,
            /// A description calconnect does not know (sanitised provider text).
            Other(String),
        }

        impl $name {
            pub(crate) fn from_description(description: Option<String>) -> Self {
                match description.as_deref() {
                    None => Self::Unspecified,
                    $(Some($text) => Self::$variant,)*
                    Some(_) => Self::Other(description.unwrap_or_default()),
                }
            }

            /// The provider's reason as sent (`None` when unspecified).
            pub fn as_str(&self) -> Option<&str> {
                match self {
                    $(Self::$variant => Some($text),)*
                    Self::Unspecified => None,
                    Self::Other(text) => Some(text),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str().unwrap_or("no reason given"))
            }
        }
    };
}

reason_enum!(
    /// Cal.com's `error_description` for `invalid_grant` (docs/calcom.md §3.4, §3.5).
    InvalidGrantReason {
        /// Code unknown, used or older than 10 minutes.
        CodeInvalidOrExpired => "code_invalid_or_expired",
        /// `redirect_uri` is not a registered URI.
        RedirectUriMismatch => "redirect_uri_mismatch",
        /// The PKCE verifier does not match the challenge (the code is burned anyway).
        PkceVerificationFailed => "pkce_verification_failed",
        /// The refresh token is malformed, badly signed or expired (30-day sliding window).
        InvalidRefreshToken => "invalid_refresh_token",
        /// The refresh token was rotated out or revoked.
        RefreshTokenRevoked => "refresh_token_revoked",
        /// The refresh token belongs to another client.
        ClientIdMismatch => "client_id_mismatch",
    }
);

reason_enum!(
    /// Cal.com's `error_description` for `invalid_client`.
    InvalidClientReason {
        /// No client with that id (deleted?).
        ClientNotFound => "client_not_found",
        /// The secret matches neither active secret.
        InvalidClientCredentials => "invalid_client_credentials",
    }
);

reason_enum!(
    /// Cal.com's `error_description` for `unauthorized_client`.
    UnauthorizedClientReason {
        /// The client is still PENDING review and the user is not its owner.
        ClientNotApproved => "client_not_approved",
        /// A Cal.com admin rejected the client.
        ClientRejected => "client_rejected",
    }
);

/// How long to wait after a token-endpoint 429 that named no wait: Cal.com's throttler blocks
/// for 60 s ([docs/calcom.md](../../../docs/calcom.md), rate limits).
pub const TOKEN_RATE_LIMIT_DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) fn wait_text(wait: &Option<std::time::Duration>) -> String {
    let secs = wait
        .unwrap_or(TOKEN_RATE_LIMIT_DEFAULT_WAIT)
        .as_secs()
        .max(1);
    format!("{secs} s")
}

/// A failure worth retrying later: the connection stays healthy (docs/architecture.md §3.6).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransientError {
    /// Network, timeout, broken connection.
    #[error(transparent)]
    Transport(TransportError),
    /// A 5xx answer, or `server_error`/`temporarily_unavailable`.
    #[error("the provider failed with HTTP {status}{}: try again later", .error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    ServerError {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code, if the body had one.
        error: Option<String>,
    },
    /// An HTML page where JSON was expected (a proxy's or CDN's error page).
    #[error(
        "the provider answered HTTP {status} with an HTML page instead of JSON (a proxy or outage page): try again later"
    )]
    HtmlErrorPage {
        /// The HTTP status.
        status: u16,
    },
}

/// The provider's answer broke the protocol; retrying will not help, a person must look.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not the JSON expected.
    #[error(
        "the provider's answer (HTTP {status}) is not the JSON expected: is the token URL right?"
    )]
    MalformedBody {
        /// The HTTP status.
        status: u16,
    },
    /// A success without `access_token`.
    #[error("the provider's token answer has no access_token")]
    MissingAccessToken,
    /// `token_type` is not bearer.
    #[error("the provider issued a `{token_type}` token; calconnect only uses bearer tokens")]
    UnsupportedTokenType {
        /// The type sent.
        token_type: String,
    },
    /// The answer exceeded the size limit.
    #[error("the provider's answer is larger than {limit} bytes: is the token URL right?")]
    Oversized {
        /// The limit in bytes.
        limit: usize,
    },
    /// A redirect (never followed: a token endpoint must not redirect).
    #[error(
        "the token endpoint redirected (HTTP {status}): set the profile's URL to the final address"
    )]
    Redirected {
        /// The HTTP status.
        status: u16,
    },
    /// A status the protocol does not use, without an OAuth error.
    #[error("the provider answered HTTP {status} without an OAuth error: check the profile's URLs")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
    },
}

/// Declares a per-operation error enum with the shared classified variants.
macro_rules! token_operation_error {
    ($(#[$meta:meta])* $name:ident, $what:literal, grant: $grant_msg:literal, extra: { $($(#[$xmeta:meta])* $xvariant:ident $({ $($xfield:ident : $xty:ty),* })? => $xmsg:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            /// `invalid_grant`: the grant is dead.
            #[error($grant_msg)]
            InvalidGrant {
                /// Cal.com's reason.
                reason: InvalidGrantReason,
            },
            /// `invalid_client`: wrong client id or secret, or the client was deleted.
            #[error("{} failed: the provider does not accept the client credentials ({reason}): check the client id and secret", $what)]
            InvalidClient {
                /// Cal.com's reason.
                reason: InvalidClientReason,
            },
            /// `unauthorized_client`: the client is not (or no longer) approved.
            #[error("{} failed: the provider does not allow this client ({reason}): check the client's approval status", $what)]
            UnauthorizedClient {
                /// Cal.com's reason.
                reason: UnauthorizedClientReason,
            },
            /// HTTP 401 without an OAuth error body (very old Cal.com, docs/calcom.md §3.5).
            #[error("{} failed: the provider answered 401 Unauthorized without details: reconnect the account", $what)]
            Unauthorized,
            /// `invalid_request`: the request was malformed for this provider (a calconnect bug
            /// or a provider version mismatch; Cal.com names the offending field).
            #[error("{} failed: the provider rejected the request as invalid ({}): report this with the provider's version", $what, .description.as_deref().unwrap_or("no details"))]
            InvalidRequest {
                /// The provider's description (sanitised).
                description: Option<String>,
            },
            /// Any other OAuth error code.
            #[error("{} failed with OAuth error `{code}` ({}): check the client settings", $what, .description.as_deref().unwrap_or("no details"))]
            Provider {
                /// The `error` code.
                code: String,
                /// The provider's description.
                description: Option<String>,
            },
            /// HTTP 429. Cal.com's token endpoint is limited per client IP and its 429 carries
            /// no `Retry-After`; wait [`TOKEN_RATE_LIMIT_DEFAULT_WAIT`] when `retry_after` is `None`.
            #[error("{} was rate limited by the provider: try again in {}", $what, crate::errors::wait_text(.retry_after))]
            RateLimited {
                /// How long the provider asks to wait: `Retry-After`, else its
                /// `X-RateLimit-Reset-*` header; `None` when it sent neither.
                retry_after: Option<std::time::Duration>,
            },
            /// Network, timeout, 5xx, an HTML error page: retry later.
            #[error("{what} failed for now: {source}", what = $what, source = .0)]
            Transient(#[source] TransientError),
            /// A malformed, oversized or unexpected answer.
            #[error("{what} failed: {source}", what = $what, source = .0)]
            Protocol(#[source] ProtocolError),
            /// The token endpoint answered 404 and the profile has no fallback.
            #[error("{} failed: the token endpoint answered 404: check the profile (Cal.com versions without the v2 endpoint need the legacy endpoints)", $what)]
            EndpointNotFound,
            $($(#[$xmeta])* #[error($xmsg)] $xvariant $({ $($xfield : $xty),* })?,)*
        }

        impl From<Failure> for $name {
            fn from(failure: Failure) -> Self {
                match failure {
                    Failure::InvalidGrant(reason) => Self::InvalidGrant { reason },
                    Failure::InvalidClient(reason) => Self::InvalidClient { reason },
                    Failure::UnauthorizedClient(reason) => Self::UnauthorizedClient { reason },
                    Failure::Unauthorized => Self::Unauthorized,
                    Failure::InvalidRequest(description) => Self::InvalidRequest { description },
                    Failure::OtherOAuthError { code, description } => Self::Provider { code, description },
                    Failure::RateLimited(retry_after) => Self::RateLimited { retry_after },
                    Failure::NotFound => Self::EndpointNotFound,
                    Failure::Transient(e) => Self::Transient(e),
                    Failure::Protocol(e) => Self::Protocol(e),
                }
            }
        }

        impl $name {
            /// Whether retrying later may succeed and the connection should stay healthy
            /// (network, timeout, 5xx, HTML error page, 429).
            pub fn is_transient(&self) -> bool {
                matches!(self, Self::Transient(_) | Self::RateLimited { .. })
            }
        }
    };
}

token_operation_error!(
    /// Exchanging an authorization code failed.
    ExchangeError, "the code exchange",
    grant: "the authorization code was rejected ({reason}): start the connection again",
    extra: {
        /// The verified callback belongs to another client configuration.
        WrongClient => "the callback was started by another client configuration: finish it with the flow that started it",
        /// The connection attempt was started under another PKCE setting (a challenge was sent
        /// and the policy now sends no verifier, or the reverse): the code cannot be exchanged.
        PkceSettingChanged => "the connection attempt was started under another PKCE setting (confidential_pkce changed since): start the connection again",
        /// `confidential_pkce = "legacy-endpoint"`, but the provider has no legacy token
        /// endpoint (it answered 404).
        LegacyEndpointMissing => "the code exchange failed: confidential_pkce = \"legacy-endpoint\" sends the code to Cal.com's legacy token endpoint (/api/auth/oauth/token), and this server has none (HTTP 404): set confidential_pkce = \"off\"",
    }
);

token_operation_error!(
    /// Refreshing an access token failed.
    RefreshError, "the token refresh",
    grant: "the refresh token is no longer valid ({reason}): the user must reconnect",
    extra: {}
);

impl RefreshError {
    /// Whether the connection is dead and the user must authorize again: `invalid_grant` (any
    /// reason), `invalid_client`, `unauthorized_client`, or a bare 401 (docs/calcom.md §8).
    ///
    /// A refresh that loses a race with another refresh of the same connection also gets
    /// `invalid_grant`/`refresh_token_revoked`; callers re-read their store before concluding.
    pub fn needs_reauthorization(&self) -> bool {
        matches!(
            self,
            Self::InvalidGrant { .. }
                | Self::InvalidClient { .. }
                | Self::UnauthorizedClient { .. }
                | Self::Unauthorized
        )
    }
}

token_operation_error!(
    /// Revoking a token (RFC 7009) failed.
    RevokeError, "the token revocation",
    grant: "the revocation was refused ({reason})",
    extra: {
        /// The profile has no revocation endpoint (Cal.com has none, docs/calcom.md §4): delete
        /// the tokens locally instead.
        NotSupported => "this provider has no revocation endpoint: delete the stored tokens instead",
    }
);
