//! The keeper as the [`AccessTokenSource`] of a [`crate::api::CalClient`].

use super::TokenKeeper;
use crate::api::{AccessTokenSource, TokenSourceError};
use crate::secret::AccessToken;
use crate::store::ConnectionId;
use async_trait::async_trait;

/// Access tokens of one connection from a [`TokenKeeper`]: fresh ones before each call, and a
/// refresh (only if the stored token is still the rejected one) after a 401.
#[derive(Debug, Clone)]
pub struct KeeperTokenSource {
    keeper: TokenKeeper,
    id: ConnectionId,
}

impl KeeperTokenSource {
    pub(crate) fn new(keeper: TokenKeeper, id: ConnectionId) -> Self {
        Self { keeper, id }
    }

    /// The connection.
    pub fn connection(&self) -> ConnectionId {
        self.id
    }
}

#[async_trait]
impl AccessTokenSource for KeeperTokenSource {
    async fn access_token(&self) -> Result<AccessToken, TokenSourceError> {
        Ok(self.keeper.access_token(self.id).await?.access_token)
    }

    async fn refresh_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        Ok(self
            .keeper
            .refresh_rejected(self.id, rejected)
            .await?
            .access_token)
    }
}
