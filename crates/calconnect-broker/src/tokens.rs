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
    /// Forget any cached token of `id` (after a delete).
    fn forget(&self, id: ConnectionId);
}

/// A provider that has no tokens (before the keeper is wired).
#[derive(Debug)]
pub struct Unavailable;

#[async_trait]
impl TokenProvider for Unavailable {
    async fn access_token(&self, _id: ConnectionId) -> Result<Fresh, TokenError> {
        Err(TokenError::Internal("no token keeper".into()))
    }
    async fn refresh_rejected(
        &self,
        _id: ConnectionId,
        _rejected: &AccessToken,
    ) -> Result<Fresh, TokenError> {
        Err(TokenError::Internal("no token keeper".into()))
    }
    fn forget(&self, _id: ConnectionId) {}
}
