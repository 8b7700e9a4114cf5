//! Ending a connection at the provider (RFC 7009 revocation) as well as in the store.
//!
//! [`AuthorizationFlow::revoke_tokens`] revokes a pair: the refresh token first (RFC 7009 §2.1:
//! a server that supports it SHOULD then also invalidate the access tokens of the same grant),
//! then the access token, and reports each. [`Connector::disconnect`] does that for a stored
//! connection and deletes it. Cal.com has no revocation endpoint (docs/calcom.md §4): there the
//! report says the tokens stay valid until they expire.

use crate::connect::Connector;
use crate::crypto::{SealContext, SealedField};
use crate::errors::RevokeError;
use crate::flow::{AuthorizationFlow, RevocableToken};
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{ConnectionId, StoreError};
use secrecy::ExposeSecret;
use std::fmt;

/// What revoking one token did.
#[derive(Debug)]
#[non_exhaustive]
pub enum RevokeOutcome {
    /// The provider accepted the revocation (RFC 7009 §2.2: also for a token it no longer knew).
    Revoked,
    /// There was no such token to revoke (the provider issued no refresh token).
    Absent,
    /// The provider refused, or could not be reached.
    Failed(RevokeError),
}

impl RevokeOutcome {
    fn ok(&self) -> bool {
        !matches!(self, Self::Failed(_))
    }
}

/// What revoking a connection's tokens did.
#[derive(Debug)]
#[non_exhaustive]
pub enum TokensRevoked {
    /// The provider has no revocation endpoint: the tokens stay valid until they expire.
    NotSupported,
    /// Each token's outcome, refresh token first.
    Attempted {
        /// The refresh token.
        refresh: RevokeOutcome,
        /// The access token.
        access: RevokeOutcome,
    },
}

impl TokensRevoked {
    /// Whether every token that exists was revoked.
    pub fn all_revoked(&self) -> bool {
        matches!(self, Self::Attempted { refresh, access } if refresh.ok() && access.ok())
    }
}

impl fmt::Display for TokensRevoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported => f.write_str(
                "the provider has no revocation endpoint, so the tokens stay valid until they expire",
            ),
            Self::Attempted { refresh, access } => {
                let one = |name: &str, outcome: &RevokeOutcome| match outcome {
                    RevokeOutcome::Revoked => format!("the {name} token was revoked"),
                    RevokeOutcome::Absent => format!("there was no {name} token"),
                    RevokeOutcome::Failed(e) => {
                        format!("revoking the {name} token failed ({e})")
                    }
                };
                write!(f, "{}; {}", one("refresh", refresh), one("access", access))
            }
        }
    }
}

impl AuthorizationFlow {
    /// Revokes `refresh` (if any), then `access`, at the profile's RFC 7009 endpoint, with the
    /// client's authentication. Both are tried whatever the first one's outcome.
    pub async fn revoke_tokens(
        &self,
        access: &AccessToken,
        refresh: Option<&RefreshToken>,
    ) -> TokensRevoked {
        if self.profile().revocation_url().is_none() {
            return TokensRevoked::NotSupported;
        }
        let outcome = |result: Result<(), RevokeError>| match result {
            Ok(()) => RevokeOutcome::Revoked,
            Err(e) => RevokeOutcome::Failed(e),
        };
        let refresh = match refresh {
            Some(token) => outcome(self.revoke(RevocableToken::Refresh(token)).await),
            None => RevokeOutcome::Absent,
        };
        let access = outcome(self.revoke(RevocableToken::Access(access)).await);
        TokensRevoked::Attempted { refresh, access }
    }
}

/// A disconnected connection.
#[derive(Debug)]
#[non_exhaustive]
pub struct Disconnected {
    /// What the provider was told.
    pub revocation: TokensRevoked,
    /// Whether the connection was deleted from the store.
    pub deleted: bool,
}

/// [`Connector::disconnect`] failed before anything was revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectError {
    /// The store failed (or has no such connection).
    #[error("the connection cannot be read or deleted: {0}")]
    Store(#[source] StoreError),
    /// Its tokens cannot be opened with the keyring (so they cannot be revoked).
    #[error("the connection's tokens cannot be opened ({reason}), so they cannot be revoked")]
    Unreadable {
        /// Why (no secret).
        reason: String,
    },
}

impl Connector {
    /// Revokes the connection's tokens at the provider (refresh token first, then the access
    /// token, RFC 7009) and deletes it from the store with `reason` — unless a revocation
    /// failed and `delete_anyway` is false: then the connection stays, so the revocation can be
    /// tried again. A provider without a revocation endpoint (Cal.com) only gets the delete.
    ///
    /// # Errors
    /// [`DisconnectError`]; nothing was revoked or deleted then.
    #[tracing::instrument(name = "calconnect.connect.disconnect", skip_all, fields(connection_id = %id))]
    pub async fn disconnect(
        &self,
        id: ConnectionId,
        reason: &str,
        delete_anyway: bool,
    ) -> Result<Disconnected, DisconnectError> {
        let c = self
            .store()
            .get_connection(id)
            .await
            .map_err(DisconnectError::Store)?;
        let open = |field, blob| {
            self.keyring()
                .open_string(blob, SealContext::connection(id.as_uuid(), field))
                .map_err(|e| DisconnectError::Unreadable {
                    reason: e.to_string(),
                })
        };
        let access =
            AccessToken::new(open(SealedField::AccessToken, &c.access_token)?.expose_secret());
        let refresh = match &c.refresh_token {
            Some(blob) => Some(RefreshToken::new(
                open(SealedField::RefreshToken, blob)?.expose_secret(),
            )),
            None => None,
        };
        let revocation = self.flow().revoke_tokens(&access, refresh.as_ref()).await;
        let keep = matches!(revocation, TokensRevoked::Attempted { .. })
            && !revocation.all_revoked()
            && !delete_anyway;
        if keep {
            return Ok(Disconnected {
                revocation,
                deleted: false,
            });
        }
        self.store()
            .delete_connection(id, reason)
            .await
            .map_err(DisconnectError::Store)?;
        Ok(Disconnected {
            revocation,
            deleted: true,
        })
    }
}
