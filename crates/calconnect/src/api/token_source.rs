//! Where [`CalClient`](super::CalClient) gets its access tokens: an [`AccessTokenSource`].
//!
//! The token keeper (docs/architecture.md §3.5) implements it for stored connections; [`StaticToken`]
//! serves one token for scripts. The client asks for a token before each call and, when the API
//! rejects it (401, or 403 "no oAuth client found for access token", docs/calcom.md §5 and
//! §8), asks for a replacement exactly once.

use crate::errors::RefreshError;
use crate::secret::AccessToken;
use async_trait::async_trait;
use std::error::Error as StdError;
use std::fmt::Debug;

/// A source of access tokens for one connection.
#[async_trait]
pub trait AccessTokenSource: Send + Sync + Debug {
    /// A token valid for at least the source's safety margin (the keeper refreshes first when
    /// the stored one is about to expire).
    ///
    /// # Errors
    /// [`TokenSourceError`]: the connection needs reauthorization, a transient failure, or
    /// something else.
    async fn access_token(&self) -> Result<AccessToken, TokenSourceError>;

    /// The API rejected `rejected` (401, or 403 "no oAuth client found for access token"):
    /// refresh unless someone already replaced it, and return the newer token.
    ///
    /// # Errors
    /// [`TokenSourceError`], as for [`AccessTokenSource::access_token`];
    /// [`TokenSourceError::NotRefreshable`] for sources that cannot refresh.
    async fn refresh_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError>;
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A token source could not hand out a token.
///
/// # Security
/// Implementations must not put tokens into the reason or the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenSourceError {
    /// The grant is dead (revoked, expired refresh token, client rejected): the user must
    /// connect the account again (docs/calcom.md §8 "UNUSABLE_TOKEN_OBJECT").
    #[error("the connection needs to be authorized again ({reason}): ask the user to reconnect")]
    NeedsReauthorization {
        /// What happened.
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// No token for now (network, provider outage, rate limit at the token endpoint); the
    /// connection stays healthy.
    #[error("no access token is available for now ({reason}): try again later")]
    Transient {
        /// What happened.
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The source cannot refresh (e.g. [`StaticToken`]).
    #[error(
        "the access token was rejected and this token source cannot refresh it: get a new token"
    )]
    NotRefreshable,
    /// Anything else (storage, configuration, a provider protocol error).
    #[error("the token source failed ({reason})")]
    Other {
        /// What happened.
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl TokenSourceError {
    /// [`TokenSourceError::NeedsReauthorization`].
    pub fn needs_reauthorization(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::NeedsReauthorization {
            reason: reason.into(),
            source,
        }
    }

    /// [`TokenSourceError::Transient`].
    pub fn transient(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Transient {
            reason: reason.into(),
            source,
        }
    }

    /// [`TokenSourceError::Other`].
    pub fn other(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Other {
            reason: reason.into(),
            source,
        }
    }

    /// Whether the user must connect the account again.
    pub fn requires_reauthorization(&self) -> bool {
        matches!(self, Self::NeedsReauthorization { .. })
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

impl From<RefreshError> for TokenSourceError {
    /// Classifies a failed refresh (docs/calcom.md §8): dead grant → reauthorization,
    /// network/5xx/429 → transient, anything else → other.
    fn from(err: RefreshError) -> Self {
        if err.needs_reauthorization() {
            Self::needs_reauthorization("the token refresh was refused", Some(Box::new(err)))
        } else if err.is_transient() {
            Self::transient("the token refresh failed for now", Some(Box::new(err)))
        } else {
            Self::other("the token refresh failed", Some(Box::new(err)))
        }
    }
}

/// One fixed access token, for scripts and tests. It cannot refresh: a rejection ends the call
/// with [`TokenSourceError::NotRefreshable`].
#[derive(Debug, Clone)]
pub struct StaticToken {
    token: AccessToken,
}

impl StaticToken {
    /// Serves `token`.
    pub fn new(token: AccessToken) -> Self {
        Self { token }
    }
}

#[async_trait]
impl AccessTokenSource for StaticToken {
    async fn access_token(&self) -> Result<AccessToken, TokenSourceError> {
        Ok(self.token.clone())
    }

    async fn refresh_after_rejection(
        &self,
        _rejected: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        Err(TokenSourceError::NotRefreshable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_token_serves_and_cannot_refresh() {
        let source = StaticToken::new(AccessToken::new("eyJsecret"));
        assert_eq!(
            source.access_token().await.unwrap().expose_secret(),
            "eyJsecret"
        );
        let err = source
            .refresh_after_rejection(&AccessToken::new("eyJsecret"))
            .await
            .unwrap_err();
        assert!(matches!(err, TokenSourceError::NotRefreshable));
        assert!(!format!("{source:?}").contains("eyJsecret"));
    }
}
