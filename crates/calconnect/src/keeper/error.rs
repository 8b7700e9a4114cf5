//! What [`super::TokenKeeper`] hands out ([`FreshToken`]) and how it fails ([`KeeperError`]).

use crate::errors::RefreshError;
use crate::secret::AccessToken;
use crate::store::{ConnectionId, StoreError};
use std::sync::Arc;
use time::OffsetDateTime;

/// An access token the keeper vouches for, with its absolute expiry.
///
/// # Security
/// `Debug` shows the expiry only; the token prints as `[redacted]`.
#[derive(Debug, Clone)]
pub struct FreshToken {
    /// The bearer token.
    pub access_token: AccessToken,
    /// When Cal.com stops accepting it (30 minutes after issue, docs/calcom.md §3.6).
    pub expires_at: OffsetDateTime,
}

/// Why the keeper could not hand out a token. Cloneable, because one refresh answers every
/// caller waiting on it (single flight).
///
/// # Security
/// Never contains a token: reasons are Cal.com's machine reasons and our own prose.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperError {
    /// The grant is dead: the refresh token was revoked or expired, or Cal.com rejects the
    /// client (docs/calcom.md §3.4, §8). The connection's status is `needs_reauth`.
    #[error(
        "connection {id} must be authorized again ({reason}): ask the user to reconnect the account"
    )]
    NeedsReauth {
        /// The connection.
        id: ConnectionId,
        /// Cal.com's reason (`refresh_token_revoked`, `invalid_refresh_token`,
        /// `client_rejected`, ...) or ours (`no_refresh_token`).
        reason: String,
    },
    /// A refresh was interrupted after Cal.com rotated the refresh token and before the new
    /// one was saved: the stored refresh token is dead through our fault, not the user's. The
    /// connection's status is `refresh_lost`.
    #[error(
        "connection {id} lost its refresh token ({reason}): an interrupted refresh never saved the provider's answer; ask the user to reconnect and check the logs of the instance that crashed"
    )]
    RefreshLost {
        /// The connection.
        id: ConnectionId,
        /// What happened.
        reason: String,
    },
    /// No token right now (network, timeout, Cal.com 5xx or 429, another instance still
    /// refreshing); the connection stays `active`.
    #[error("no fresh access token for connection {id} for now ({reason}): try again{}", retry_hint(.retry_after))]
    Transient {
        /// The connection.
        id: ConnectionId,
        /// What happened.
        reason: String,
        /// When trying again makes sense.
        retry_after: Option<std::time::Duration>,
        /// The refresh failure, if there was one.
        #[source]
        source: Option<Arc<RefreshError>>,
    },
    /// The token-endpoint budget had no permit within the wait allowed
    /// ([`crate::budget`]): too many refreshes are due at once for the provider's rate limit.
    /// The connection stays `active`; nothing was sent.
    #[error(
        "no fresh access token for connection {id} for now: the token-endpoint budget is spent (too many refreshes at once for the provider's rate limit); try again in {} s",
        retry_after.as_secs().max(1)
    )]
    BudgetExhausted {
        /// The connection.
        id: ConnectionId,
        /// When a permit is expected at the earliest.
        retry_after: std::time::Duration,
    },
    /// No such connection.
    #[error("connection {id} not found: it was deleted or never existed")]
    NotFound {
        /// The connection.
        id: ConnectionId,
    },
    /// The store failed.
    #[error("the store failed for connection {id}: {source}")]
    Store {
        /// The connection.
        id: ConnectionId,
        /// The store error.
        #[source]
        source: Arc<StoreError>,
    },
    /// The stored tokens cannot be opened or new ones sealed (a missing or wrong key).
    #[error("the sealed tokens of connection {id} cannot be used: {source}")]
    Crypto {
        /// The connection.
        id: ConnectionId,
        /// The sealing error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// Cal.com's answer broke the protocol or named an OAuth error that is neither transient
    /// nor a dead grant (a configuration problem). The status is unchanged.
    #[error("the refresh of connection {id} failed: {source}")]
    Refresh {
        /// The connection.
        id: ConnectionId,
        /// The refresh error.
        #[source]
        source: Arc<RefreshError>,
    },
    /// The refresh task ended without an answer (the runtime is shutting down).
    #[error("the refresh task of connection {id} ended without an answer: try again")]
    Interrupted {
        /// The connection.
        id: ConnectionId,
    },
}

fn retry_hint(retry_after: &Option<std::time::Duration>) -> String {
    match retry_after {
        Some(d) => format!(" in {} ms", d.as_millis()),
        None => " later".to_owned(),
    }
}

impl KeeperError {
    /// Whether the user must connect the account again (`needs_reauth` or `refresh_lost`).
    pub fn requires_reauthorization(&self) -> bool {
        matches!(self, Self::NeedsReauth { .. } | Self::RefreshLost { .. })
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transient { .. } | Self::BudgetExhausted { .. } | Self::Interrupted { .. }
        )
    }

    /// When trying again makes sense, if known.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            Self::BudgetExhausted { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn store(id: ConnectionId, source: StoreError) -> Self {
        match source {
            StoreError::NotFound { .. } => Self::NotFound { id },
            source => Self::Store {
                id,
                source: Arc::new(source),
            },
        }
    }

    pub(crate) fn crypto(
        id: ConnectionId,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Crypto {
            id,
            source: Arc::new(source),
        }
    }

    /// A short, stable label of the kind of error (`needs_reauth`, `budget_exhausted`, …), as
    /// metrics and spans use it; never a secret.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NeedsReauth { .. } => "needs_reauth",
            Self::RefreshLost { .. } => "refresh_lost",
            Self::Transient { .. } => "transient",
            Self::BudgetExhausted { .. } => "budget_exhausted",
            Self::NotFound { .. } => "not_found",
            Self::Store { .. } => "store_error",
            Self::Crypto { .. } => "crypto_error",
            Self::Refresh { .. } => "protocol_error",
            Self::Interrupted { .. } => "interrupted",
        }
    }
}

impl From<KeeperError> for crate::api::TokenSourceError {
    fn from(err: KeeperError) -> Self {
        use crate::api::TokenSourceError as E;
        let reason = err.outcome();
        if err.requires_reauthorization() {
            E::needs_reauthorization(reason, Some(Box::new(err)))
        } else if err.is_transient() {
            E::transient(reason, Some(Box::new(err)))
        } else {
            E::other(reason, Some(Box::new(err)))
        }
    }
}
