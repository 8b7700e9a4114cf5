//! Where the broker gets fresh access tokens: a small trait in front of the token keeper, so
//! handlers can be tested without it and the keeper stays the only refresher.

use async_trait::async_trait;
use calconnect::AccessToken;
use calconnect::store::ConnectionId;
use std::fmt::Debug;
use time::OffsetDateTime;

/// A token valid for a while.
#[derive(Debug, Clone)]
pub struct Fresh {
    /// The token (`Debug` redacted).
    pub access_token: AccessToken,
    /// Its expiry.
    pub expires_at: OffsetDateTime,
}

/// Why no token could be given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No such connection.
    #[error("connection not found")]
    NotFound,
    /// The user must reconnect (`needs_reauth` or `refresh_lost`).
    #[error("the connection must be authorized again ({status}: {reason})")]
    Reauth {
        /// `needs_reauth` or `refresh_lost`.
        status: &'static str,
        /// Why.
        reason: String,
    },
    /// Try again later (network, Cal.com 5xx/429, store unavailable).
    #[error("no token for now: {0}")]
    Transient(String),
    /// Anything else (logged; hidden from clients).
    #[error("token failure: {0}")]
    Internal(String),
}

/// Fresh access tokens for stored connections.
#[async_trait]
pub trait TokenProvider: Send + Sync + Debug {
    /// A token valid for longer than the provider's margin, refreshing first if needed.
    async fn access_token(&self, id: ConnectionId) -> Result<Fresh, TokenError>;
    /// The API rejected `rejected` (401): refresh unless someone already did; the newer token.
    async fn refresh_rejected(
        &self,
        id: ConnectionId,
        rejected: &AccessToken,
    ) -> Result<Fresh, TokenError>;
    /// Refresh now, whatever the stored token's expiry (a "refresh now" button, an app that
    /// knows better); the new token.
    async fn refresh_now(&self, id: ConnectionId) -> Result<Fresh, TokenError>;
    /// Forget any cached token of `id` (after a delete).
    fn forget(&self, id: ConnectionId);
}

/// The token keeper as the broker's [`TokenProvider`].
#[derive(Debug, Clone)]
pub struct KeeperTokens(pub calconnect::keeper::TokenKeeper);

fn map(e: calconnect::keeper::KeeperError) -> TokenError {
    use calconnect::keeper::KeeperError as K;
    match e {
        K::NotFound { .. } => TokenError::NotFound,
        K::NeedsReauth { reason, .. } => TokenError::Reauth {
            status: "needs_reauth",
            reason,
        },
        K::RefreshLost { reason, .. } => TokenError::Reauth {
            status: "refresh_lost",
            reason,
        },
        e if e.is_transient() => TokenError::Transient(e.to_string()),
        K::Store { ref source, .. }
            if matches!(**source, calconnect::StoreError::Unavailable { .. }) =>
        {
            TokenError::Transient(e.to_string())
        }
        other => TokenError::Internal(other.to_string()),
    }
}

#[async_trait]
impl TokenProvider for KeeperTokens {
    async fn access_token(&self, id: ConnectionId) -> Result<Fresh, TokenError> {
        let f = self.0.access_token(id).await.map_err(map)?;
        Ok(Fresh {
            access_token: f.access_token,
            expires_at: f.expires_at,
        })
    }
    async fn refresh_rejected(
        &self,
        id: ConnectionId,
        rejected: &AccessToken,
    ) -> Result<Fresh, TokenError> {
        let f = self.0.refresh_rejected(id, rejected).await.map_err(map)?;
        Ok(Fresh {
            access_token: f.access_token,
            expires_at: f.expires_at,
        })
    }
    async fn refresh_now(&self, id: ConnectionId) -> Result<Fresh, TokenError> {
        let f = self.0.refresh_now(id).await.map_err(map)?;
        Ok(Fresh {
            access_token: f.access_token,
            expires_at: f.expires_at,
        })
    }
    fn forget(&self, id: ConnectionId) {
        self.0.forget(id);
    }
}
