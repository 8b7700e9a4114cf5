//! The redirect back from the authorization endpoint (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 `iss`;
//! Cal.com: docs/calcom.md §2 "Allow", "Deny", "Errors after the client is validated").
//!
//! [`Callback::parse`] only reads the query; nothing in it is trusted until
//! [`PendingAuthorization::verify`](crate::PendingAuthorization::verify) has compared the state.

use crate::client::RedirectUri;
use crate::pkce::PkceVerifier;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use time::OffsetDateTime;

/// Longest callback query accepted. Cal.com codes are ~54 characters (docs/calcom.md §2); this
/// leaves room for long error descriptions and foreign parameters.
pub const MAX_CALLBACK_QUERY_BYTES: usize = 16 * 1024;

/// Longest provider-supplied text kept for an error message.
const MAX_DESCRIPTION_CHARS: usize = 300;

/// An authorization code. Single use: not `Clone`, consumed by the exchange.
pub struct AuthorizationCode(pub(crate) SecretString);

impl AuthorizationCode {
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorizationCode([redacted])")
    }
}

/// The error the authorization server sent to the redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorizeErrorResponse {
    pub(crate) code: String,
    pub(crate) description: Option<String>,
}

/// A parsed, not yet verified, callback query.
pub struct Callback {
    pub(crate) state: Option<SecretString>,
    pub(crate) code: Option<AuthorizationCode>,
    pub(crate) error: Option<AuthorizeErrorResponse>,
    pub(crate) iss: Option<String>,
}

impl Callback {
    /// Parses the query string of the redirect (with or without the leading `?`).
    ///
    /// Unknown parameters are ignored (an existing query on the redirect URI is kept by Cal.com,
    /// docs/calcom.md §2). When both `error` and `code` are present the error wins.
    ///
    /// # Errors
    /// [`CallbackError::Malformed`] for an oversized query or a parameter given twice
    /// (RFC 6749 §3.1 forbids repeats).
    pub fn parse(query: &str) -> Result<Self, CallbackError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        if query.len() > MAX_CALLBACK_QUERY_BYTES {
            return Err(CallbackError::Malformed {
                reason: "the callback query is longer than 16 KiB",
            });
        }
        let mut state = None;
        let mut code = None;
        let mut error: Option<String> = None;
        let mut description = None;
        let mut iss = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot: &mut Option<String> = match key.as_ref() {
                "state" => &mut state,
                "code" => &mut code,
                "error" => &mut error,
                "error_description" => &mut description,
                "iss" => &mut iss,
                _ => continue,
            };
            if slot.is_some() {
                return Err(CallbackError::Malformed {
                    reason: "a parameter (code, state, error, error_description or iss) appears more than once",
                });
            }
            *slot = Some(value.into_owned());
        }
        let error = error
            .filter(|e| !e.is_empty())
            .map(|code| AuthorizeErrorResponse {
                code: sanitize(&code),
                description: description.as_deref().map(sanitize),
            });
        Ok(Self {
            state: state.filter(|s| !s.is_empty()).map(SecretString::from),
            code: code
                .filter(|c| !c.is_empty())
                .map(|c| AuthorizationCode(SecretString::from(c))),
            error,
            iss,
        })
    }

    /// Parses the query of a full redirect URL (`https://app.example/cb?code=…&state=…`).
    ///
    /// # Errors
    /// As [`Callback::parse`], plus [`CallbackError::Malformed`] when `url` is not a URL.
    pub fn from_redirect_url(url: &str) -> Result<Self, CallbackError> {
        let parsed = url::Url::parse(url).map_err(|_| CallbackError::Malformed {
            reason: "the redirect is not an absolute URL",
        })?;
        Self::parse(parsed.query().unwrap_or(""))
    }

    /// Whether the callback carries a `state` at all.
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// Whether the callback carries an answer: a `code` or an `error`.
    pub fn has_code_or_error(&self) -> bool {
        self.code.is_some() || self.error.is_some()
    }

    /// The non-secret lookup key of the callback's state (see
    /// [`PendingAuthorization::state_key`](crate::PendingAuthorization::state_key)).
    pub fn state_key(&self) -> Option<crate::store::StateKey> {
        self.state.as_ref().map(crate::store::StateKey::of)
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("code", &self.code)
            .field("error", &self.error)
            .field("iss", &self.iss)
            .finish()
    }
}

/// Keeps provider text short and printable: it reaches users' screens and logs.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_DESCRIPTION_CHARS)
        .collect()
}

/// A callback that matched its pending authorization: the only way to get what the code
/// exchange needs (docs/architecture.md §7.3). Consumed by
/// [`AuthorizationFlow::exchange`](crate::AuthorizationFlow::exchange).
pub struct VerifiedCallback {
    pub(crate) code: AuthorizationCode,
    /// The PKCE verifier, when the flow sent a challenge.
    pub(crate) verifier: Option<PkceVerifier>,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: RedirectUri,
}

impl fmt::Debug for VerifiedCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCallback")
            .field("code", &self.code)
            .field("verifier", &self.verifier)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// Why a callback was not accepted. Each case has its own variant so that a page can tell the
/// user what happened and what to do.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackError {
    /// The user clicked "Go back" / "Deny" (Cal.com: `error=access_denied`, no description).
    #[error("access was denied at the provider's consent screen: connect again and choose Allow")]
    AccessDenied {
        /// The provider's description, if any (untrusted, sanitised).
        description: Option<String>,
    },
    /// The provider rejected the authorization request (`invalid_request`; Cal.com reports bad
    /// scopes, PKCE problems and team access this way, docs/calcom.md §2).
    #[error("the provider rejected the authorization request ({}): check the requested scopes and the client settings, then connect again", .description.as_deref().unwrap_or("no details"))]
    InvalidRequest {
        /// The provider's description (untrusted, sanitised).
        description: Option<String>,
    },
    /// Cal.com refused the team the user chose on the consent page: only a team's OWNER or ADMIN
    /// may connect it. The web authorize page reports it as `unauthorized_client` with the
    /// description [`TEAM_REFUSED_DESCRIPTION`] (API v2's authorize endpoint as `access_denied`
    /// / `team_not_found_or_no_access`); see [docs/calcom.md](../../../docs/calcom.md).
    #[error(
        "Cal.com refused the chosen team ({description}): only a team's owner or admin can connect it; connect again and choose your own account or a team you administer"
    )]
    TeamNotAllowed {
        /// Cal.com's description (sanitised).
        description: String,
    },
    /// `unauthorized_client`: the client may not use this flow (Cal.com: not approved/rejected).
    #[error("the provider does not allow this client to connect ({}): check that the OAuth client is approved", .description.as_deref().unwrap_or("no details"))]
    UnauthorizedClient {
        /// The provider's description.
        description: Option<String>,
    },
    /// `invalid_scope`.
    #[error("the provider refused the requested scopes ({}): request only scopes registered for the client", .description.as_deref().unwrap_or("no details"))]
    InvalidScope {
        /// The provider's description.
        description: Option<String>,
    },
    /// `server_error`.
    #[error("the provider failed while authorizing ({}): try connecting again later", .description.as_deref().unwrap_or("no details"))]
    ServerError {
        /// The provider's description.
        description: Option<String>,
    },
    /// `temporarily_unavailable`.
    #[error("the provider is temporarily unavailable: try connecting again in a few minutes")]
    TemporarilyUnavailable {
        /// The provider's description.
        description: Option<String>,
    },
    /// `unsupported_response_type`.
    #[error("the provider does not support the authorization code flow for this client")]
    UnsupportedResponseType {
        /// The provider's description.
        description: Option<String>,
    },
    /// Any other `error` code.
    #[error("the provider answered with error `{code}` ({}): connect again; if it persists, check the client settings", .description.as_deref().unwrap_or("no details"))]
    OtherProviderError {
        /// The `error` code (sanitised).
        code: String,
        /// The provider's description.
        description: Option<String>,
    },
    /// The callback has no `state`.
    #[error("the callback has no state parameter: start the connection again from the application")]
    MissingState,
    /// The state does not match the pending authorization: forged or crossed callback.
    #[error(
        "the callback's state does not match this browser's connection attempt: start the connection again"
    )]
    StateMismatch,
    /// No pending authorization has this state (forged, from another installation, or expired and
    /// forgotten).
    #[error("no connection attempt matches this callback: start the connection again")]
    UnknownState,
    /// The pending authorization was already used.
    #[error("this callback was already used: start the connection again")]
    StateAlreadyUsed,
    /// The pending authorization expired (10 minutes, like Cal.com's codes).
    #[error(
        "the connection attempt expired at {expired_at}: start the connection again and finish it within 10 minutes"
    )]
    Expired {
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// A successful callback without `code`.
    #[error("the callback has neither a code nor an error: start the connection again")]
    MissingCode,
    /// The profile names an issuer (RFC 9207) but the callback has no `iss`.
    #[error(
        "the callback lacks the `iss` parameter this provider must send (RFC 9207): start again; if it persists, check the profile's issuer"
    )]
    MissingIssuer,
    /// `iss` differs from the profile's issuer: a mix-up attack or a wrong profile.
    #[error(
        "the callback came from issuer `{got}`, not the configured provider: start the connection again"
    )]
    IssuerMismatch {
        /// The `iss` received (sanitised).
        got: String,
    },
    /// The query could not be read.
    #[error("the callback is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Cal.com's `error_description` when the user is not OWNER or ADMIN of the team they chose
/// (`generateAuthCode.handler.ts`, tRPC UNAUTHORIZED, mapped to `unauthorized_client` by
/// `authorize-view.tsx`).
pub const TEAM_REFUSED_DESCRIPTION: &str = "Team not found or user is not an admin/owner";

/// The same refusal from API v2's authorize endpoint (`OAuthService`'s reason).
const TEAM_REFUSED_REASON: &str = "team_not_found_or_no_access";

impl CallbackError {
    pub(crate) fn from_provider(error: AuthorizeErrorResponse) -> Self {
        let description = error.description;
        let team_refused = matches!(
            (error.code.as_str(), description.as_deref()),
            ("unauthorized_client", Some(TEAM_REFUSED_DESCRIPTION))
                | (
                    "access_denied" | "unauthorized_client",
                    Some(TEAM_REFUSED_REASON)
                )
        );
        if team_refused {
            return Self::TeamNotAllowed {
                description: description.unwrap_or_default(),
            };
        }
        match error.code.as_str() {
            "access_denied" => Self::AccessDenied { description },
            "invalid_request" => Self::InvalidRequest { description },
            "unauthorized_client" => Self::UnauthorizedClient { description },
            "invalid_scope" => Self::InvalidScope { description },
            "server_error" => Self::ServerError { description },
            "temporarily_unavailable" => Self::TemporarilyUnavailable { description },
            "unsupported_response_type" => Self::UnsupportedResponseType { description },
            _ => Self::OtherProviderError {
                code: error.code,
                description,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_team_is_its_own_error_not_an_unapproved_client() {
        let from = |query: &str| {
            CallbackError::from_provider(Callback::parse(query).unwrap().error.unwrap())
        };
        // The web authorize page (what third parties use): tRPC UNAUTHORIZED → unauthorized_client.
        assert_eq!(
            from(
                "error=unauthorized_client&error_description=Team+not+found+or+user+is+not+an+admin%2Fowner&state=s"
            ),
            CallbackError::TeamNotAllowed {
                description: TEAM_REFUSED_DESCRIPTION.into()
            }
        );
        // API v2's authorize endpoint.
        assert!(matches!(
            from("error=access_denied&error_description=team_not_found_or_no_access"),
            CallbackError::TeamNotAllowed { .. }
        ));
        // An unapproved client stays what it is.
        assert_eq!(
            from("error=unauthorized_client&error_description=client_not_approved"),
            CallbackError::UnauthorizedClient {
                description: Some("client_not_approved".into())
            }
        );
        let text = from("error=unauthorized_client&error_description=Team+not+found+or+user+is+not+an+admin%2Fowner").to_string();
        assert!(
            text.contains("owner or admin") && !text.contains("approved"),
            "{text}"
        );
    }

    #[test]
    fn success_callback() {
        let cb = Callback::parse("?code=abc123&state=xyz&foo=bar").unwrap();
        assert_eq!(cb.code.as_ref().unwrap().expose(), "abc123");
        assert_eq!(cb.state.as_ref().unwrap().expose_secret(), "xyz");
        assert!(cb.error.is_none());
        assert!(cb.iss.is_none());
    }

    #[test]
    fn cal_com_deny_has_no_description() {
        let cb = Callback::parse("error=access_denied&state=xyz").unwrap();
        let err = cb.error.unwrap();
        assert_eq!(err.code, "access_denied");
        assert_eq!(err.description, None);
    }

    #[test]
    fn cal_com_docs_error_example() {
        let cb = Callback::parse(
            "error=invalid_request&error_description=Requested+scope+exceeds+the+client%27s+registered+scopes&state=s",
        )
        .unwrap();
        let err = CallbackError::from_provider(cb.error.unwrap());
        assert_eq!(
            err,
            CallbackError::InvalidRequest {
                description: Some("Requested scope exceeds the client's registered scopes".into())
            }
        );
    }

    #[test]
    fn iss_and_full_url() {
        let cb = Callback::from_redirect_url(
            "http://127.0.0.1:9/cb?code=c&state=s&iss=http%3A%2F%2F127.0.0.1%3A5",
        )
        .unwrap();
        assert_eq!(cb.iss.as_deref(), Some("http://127.0.0.1:5"));
    }

    #[test]
    fn repeats_and_oversize_are_malformed() {
        assert!(matches!(
            Callback::parse("code=a&code=b&state=s"),
            Err(CallbackError::Malformed { .. })
        ));
        assert!(matches!(
            Callback::parse("state=a&state=a"),
            Err(CallbackError::Malformed { .. })
        ));
        let long = format!("code={}", "a".repeat(MAX_CALLBACK_QUERY_BYTES));
        assert!(matches!(
            Callback::parse(&long),
            Err(CallbackError::Malformed { .. })
        ));
    }

    #[test]
    fn empty_values_count_as_missing_and_debug_redacts() {
        let cb = Callback::parse("code=&state=").unwrap();
        assert!(cb.code.is_none() && cb.state.is_none());
        let cb = Callback::parse("code=SECRETCODE&state=SECRETSTATE").unwrap();
        let shown = format!("{cb:?}");
        assert!(
            !shown.contains("SECRETCODE") && !shown.contains("SECRETSTATE"),
            "{shown}"
        );
    }

    #[test]
    fn descriptions_are_sanitised() {
        let cb = Callback::parse(&format!(
            "error=x%0A&error_description={}%07",
            "d".repeat(400)
        ))
        .unwrap();
        let err = cb.error.unwrap();
        assert_eq!(err.code, "x");
        assert_eq!(err.description.unwrap().len(), 300);
    }
}
