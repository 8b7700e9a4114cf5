//! `GET /v2/me`: the authority on whose account a token acts for (docs/calcom.md §5). The JWT
//! claims in [`TokenSet::identity`](crate::TokenSet) are only a hint (§3.6). For a team token,
//! Cal.com answers with the team *owner's* profile (§3.7), so keep the claims' `Team` identity
//! for the connection and use this to show who connected it.

use crate::errors::{ProtocolError, TransientError};
use crate::flow::AuthorizationFlow;
use crate::http::{PreparedRequest, TransportErrorKind};
use crate::secret::AccessToken;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;

/// The Cal.com user behind an access token (`/v2/me` `data`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CalUser {
    /// The user id (the `userId` claim of user tokens).
    pub id: i64,
    /// The username.
    #[serde(default)]
    pub username: Option<String>,
    /// The e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The organization, for org members.
    #[serde(default)]
    pub organization_id: Option<i64>,
}

#[derive(Deserialize)]
struct Envelope {
    data: CalUser,
}

/// `GET /v2/me` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeError {
    /// The profile has no Cal.com API (a custom provider).
    #[error("this provider has no Cal.com API v2 to ask who the token belongs to")]
    NotSupported,
    /// 401: the access token is expired or invalid: refresh and retry once (docs/calcom.md §5).
    #[error("the access token was not accepted (401): refresh it and try again")]
    Unauthorized,
    /// 403: the token lacks `PROFILE_READ` (or another permission problem). Not a refresh trigger.
    #[error(
        "the access token may not read the profile (403): request the PROFILE_READ scope when connecting"
    )]
    Forbidden,
    /// 429.
    #[error("reading the profile was rate limited: try again later")]
    RateLimited,
    /// Network, timeout, 5xx, HTML error page.
    #[error("reading the profile failed for now: {0}")]
    Transient(#[source] TransientError),
    /// A malformed, oversized or unexpected answer.
    #[error("reading the profile failed: {0}")]
    Protocol(#[source] ProtocolError),
}

impl AuthorizationFlow {
    /// Asks Cal.com whose account `access_token` acts for (`GET {api}/me`).
    ///
    /// # Errors
    /// [`MeError`]; `Unauthorized` means "refresh and retry once".
    #[tracing::instrument(name = "calconnect.me", skip_all)]
    pub async fn me(&self, access_token: &AccessToken) -> Result<CalUser, MeError> {
        // A custom provider's API base is not Cal.com's API (docs/architecture.md §3.8).
        let Some(api) = self
            .profile()
            .api_base()
            .filter(|_| self.profile().is_cal_com())
        else {
            return Err(MeError::NotSupported);
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", access_token.expose_secret()))
            .map_err(|_| MeError::Protocol(ProtocolError::MissingAccessToken))?;
        bearer.set_sensitive(true);
        headers.insert(AUTHORIZATION, bearer);
        let request = PreparedRequest {
            method: Method::GET,
            url: api.join_path("me").as_url().clone(),
            headers,
            body: None,
        };
        let response = self
            .http()
            .send(request)
            .await
            .map_err(|e| match e.kind() {
                TransportErrorKind::TooLarge { limit } => {
                    MeError::Protocol(ProtocolError::Oversized { limit })
                }
                _ => MeError::Transient(TransientError::Transport(e)),
            })?;
        let status = response.status;
        match status {
            StatusCode::UNAUTHORIZED => return Err(MeError::Unauthorized),
            StatusCode::FORBIDDEN if !response.is_html() => return Err(MeError::Forbidden),
            StatusCode::TOO_MANY_REQUESTS => return Err(MeError::RateLimited),
            _ => {}
        }
        if response.is_html() {
            return Err(MeError::Transient(TransientError::HtmlErrorPage {
                status: status.as_u16(),
            }));
        }
        if status.is_server_error() {
            return Err(MeError::Transient(TransientError::ServerError {
                status: status.as_u16(),
                error: None,
            }));
        }
        if !status.is_success() {
            return Err(MeError::Protocol(ProtocolError::UnexpectedStatus {
                status: status.as_u16(),
            }));
        }
        serde_json::from_slice::<Envelope>(&response.body)
            .map(|e| e.data)
            .map_err(|_| {
                MeError::Protocol(ProtocolError::MalformedBody {
                    status: status.as_u16(),
                })
            })
    }
}
