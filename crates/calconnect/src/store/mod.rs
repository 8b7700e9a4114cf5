//! Where connections live: the [`ConnectionStore`] trait, its records and an in-memory store.
//!
//! Stores only see sealed tokens ([`crate::crypto::SealedBlob`]); sealing happens before (see
//! [`save_connection`]). The SQL backends are one store in `calconnect-sql`: SQLite (the embedded
//! default) and PostgreSQL (several broker instances on one database), also named by the
//! `calconnect-sqlite` and `calconnect-postgres` crates. All three pass the same conformance suite
//! in `calconnect-testkit`.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use calconnect::crypto::{KeyId, Keyring, SealContext, SealedField, SealingKey};
//! use calconnect::store::*;
//! use calconnect::SystemClock;
//! use rand::rngs::OsRng;
//! use secrecy::{ExposeSecret, SecretString};
//! use std::sync::Arc;
//!
//! let keyring = Keyring::new(vec![SealingKey::generate(KeyId::new("k1")?, &mut OsRng)])?;
//! let store: Arc<dyn ConnectionStore> = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
//! let saved = save_connection(store.as_ref(), &keyring, &mut OsRng, TokensToSave {
//!     end_user: EndUserId::new("app-user-17")?,
//!     identity: CalIdentity { client_id: "my-client".into(), owner: CalOwner::User(42) },
//!     scopes: vec!["BOOKING_READ".into()],
//!     access_token: SecretString::from("eyJ-access"),
//!     refresh_token: Some(SecretString::from("eyJ-refresh")),
//!     access_expires_at: None,
//!     refresh_expires_at_estimate: None,
//!     profile: None,
//! }).await?;
//! let c = store.get_connection(saved.connection().id).await?;
//! let context = SealContext::connection(c.id.as_uuid(), SealedField::AccessToken);
//! assert_eq!(keyring.open_string(&c.access_token, context)?.expose_secret(), "eyJ-access");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

mod error;
mod memory;
mod profile;
mod rotate;
mod save;
#[cfg(test)]
mod tests;
mod types;

pub use error::{BoxError, StoreError};
pub use memory::MemoryStore;
pub use profile::{
    AccountProfile, ConnectionQuery, ListCursor, PROFILE_MAX_AGE, ProfileCheckQuery, ProfileWrite,
};
pub use rotate::{RotationError, RotationProgress, rotate_keys};
pub use save::{SaveError, TokensToSave, save_connection};
pub use types::*;

use async_trait::async_trait;
use time::Duration;

/// How long an expired pending authorization is kept before
/// [`ConnectionStore::purge_expired_pending`] deletes it, so that a callback arriving late is told
/// "expired" (and can start again) rather than "unknown state".
pub const PENDING_PURGE_GRACE: Duration = Duration::hours(1);

/// Storage for connections, pending authorizations and connection events.
///
/// Implementations are shared between tasks (`Arc<dyn ConnectionStore>`) and, for the database
/// backends, between processes: every operation is atomic and read-after-write consistent.
/// "Now" comes from the store's injected [`crate::Clock`].
#[async_trait]
pub trait ConnectionStore: Send + Sync + std::fmt::Debug {
    /// Ids of connections that changed in this store (created, reauthorized, status changed,
    /// deleted), as other processes change them: PostgreSQL's LISTEN/NOTIFY. `None` (the
    /// default) when the store has no such feed; the keeper then relies on revalidating its
    /// cached tokens (docs/architecture.md §4). The nil id ([`ConnectionId::ANY`]) means any
    /// connection may have changed: the feed (re)connected and may have missed notifications.
    fn subscribe_changes(&self) -> Option<tokio::sync::broadcast::Receiver<ConnectionId>> {
        None
    }

    // --- pending authorizations ---

    /// Records a pending authorization.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the id or state is already used.
    async fn insert_pending(&self, pending: NewPendingRecord) -> Result<(), StoreError>;

    /// Consumes the pending authorization for `state` if `binding` matches: exactly once, even
    /// under concurrent callbacks. A mismatching binding leaves it in place (so a leaked state
    /// cannot burn someone else's authorization).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] (unknown, consumed, or other browser),
    /// [`StoreError::PendingExpired`] (deleted now).
    async fn consume_pending(
        &self,
        state: &StateKey,
        binding: &BrowserBinding,
    ) -> Result<PendingRecord, StoreError>;

    /// The refresh budget `config.name` as this store shares it ([`crate::budget`]): the SQL
    /// stores keep it in a row every instance on the database takes from; the default keeps it
    /// in this process's memory ([`crate::budget::LocalBudget`]).
    fn budget(
        &self,
        config: crate::budget::BudgetConfig,
        clock: std::sync::Arc<dyn crate::Clock>,
    ) -> std::sync::Arc<dyn crate::budget::RefreshBudget> {
        std::sync::Arc::new(crate::budget::LocalBudget::new(config, clock))
    }

    /// Deletes pending authorizations that expired more than [`PENDING_PURGE_GRACE`] ago;
    /// returns how many.
    async fn purge_expired_pending(&self) -> Result<u64, StoreError>;

    /// Pending authorizations in id order after `after` (for key rotation).
    async fn list_pending(
        &self,
        after: Option<PendingId>,
        limit: u32,
    ) -> Result<Vec<PendingRecord>, StoreError>;

    /// Replaces the sealed verifier if it still equals `current`; `false` if it changed or the
    /// authorization is gone.
    async fn reseal_pending(
        &self,
        id: PendingId,
        current: &crate::crypto::SealedBlob,
        resealed: crate::crypto::SealedBlob,
    ) -> Result<bool, StoreError>;

    // --- connections ---

    /// Creates a connection, or replaces the tokens of the connection that already has this
    /// Cal.com identity (status back to active, version bumped, lease and intent cleared). Both
    /// record an event.
    ///
    /// # Errors
    /// [`StoreError::IdentityConflict`] when the identity belongs to another id: the tokens were
    /// sealed for the wrong id; seal them for the existing one and try again.
    async fn upsert_connection(&self, new: NewConnection) -> Result<UpsertOutcome, StoreError>;

    /// Reads a connection.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    async fn get_connection(&self, id: ConnectionId) -> Result<Connection, StoreError>;

    /// The connection of a Cal.com identity, if any.
    async fn find_by_identity(
        &self,
        identity: &CalIdentity,
    ) -> Result<Option<Connection>, StoreError>;

    /// An end user's connections, oldest first.
    async fn list_for_end_user(&self, end_user: &EndUserId) -> Result<Vec<Connection>, StoreError>;

    /// Connections in id order after `after`.
    async fn list_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Connections matching `query` (status, end user), in creation order (oldest first, ties
    /// by id), after `query.after`: one page of a listing. Answered from indexes in listing
    /// order, not by reading every row.
    async fn query_connections(
        &self,
        query: &ConnectionQuery,
    ) -> Result<Vec<Connection>, StoreError>;

    /// How many connections there are.
    async fn count_connections(&self) -> Result<u64, StoreError>;

    /// How many connections of `end_user` have each status.
    async fn count_by_status_for(&self, end_user: &EndUserId) -> Result<StatusCounts, StoreError>;

    /// How many connections have each status, in one query (for metrics: no row is read).
    async fn count_by_status(&self) -> Result<StatusCounts, StoreError>;

    /// Deletes a connection and records a `Deleted` event.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    async fn delete_connection(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError>;

    // --- refresh coordination ---

    /// Takes the refresh lease if it is free, expired, or already ours (then it is extended).
    ///
    /// # Errors
    /// [`StoreError::LeaseHeld`], [`StoreError::NotFound`].
    async fn acquire_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError>;

    /// Extends a lease we hold.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotHeld`] if another owner has it or it was released.
    async fn renew_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError>;

    /// Releases our lease; `false` if we did not hold it.
    async fn release_lease(&self, id: ConnectionId, owner: &LeaseOwner)
    -> Result<bool, StoreError>;

    /// Records that a refresh call is about to be made (before calling Cal.com).
    ///
    /// # Errors
    /// [`StoreError::LeaseNotHeld`], [`StoreError::VersionMismatch`].
    async fn record_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError>;

    /// Clears the refresh intent after a token call that certainly did not rotate the refresh
    /// token (the provider answered with an error that is neither a dead grant nor ambiguous,
    /// such as 5xx or 429), so a later `invalid_grant` is not mistaken for a lost refresh.
    /// Needs `owner` to be the lease holder (even if its lease ran out, as long as nobody took
    /// it over) and the version to match. Does not bump the version.
    ///
    /// The default does nothing (an intent left set only makes classification more
    /// pessimistic: `refresh_lost` instead of `needs_reauth`); every backend here implements it.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotHeld`], [`StoreError::VersionMismatch`], [`StoreError::NotFound`].
    async fn clear_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let _ = (id, owner, expected_version);
        Ok(())
    }

    /// Writes refreshed tokens if the version still matches; bumps the version, sets
    /// `last_refreshed_at` to now and clears the refresh intent. The lease is left alone.
    ///
    /// # Errors
    /// [`StoreError::VersionMismatch`], [`StoreError::NotFound`].
    async fn write_tokens(
        &self,
        id: ConnectionId,
        write: TokenWrite,
    ) -> Result<Connection, StoreError>;

    /// Key rotation: replaces the sealed tokens by the same tokens sealed with another key, if
    /// the version still matches. Does not bump the version (the tokens did not change), so a
    /// concurrent refresh's fenced write still succeeds.
    ///
    /// # Errors
    /// [`StoreError::VersionMismatch`], [`StoreError::NotFound`].
    async fn reseal_tokens(
        &self,
        id: ConnectionId,
        expected_version: i64,
        access_token: crate::crypto::SealedBlob,
        refresh_token: Option<crate::crypto::SealedBlob>,
    ) -> Result<(), StoreError>;

    /// Changes the status (and records an event) if it differs; otherwise only the reason is
    /// kept as is and nothing is recorded.
    ///
    /// # Errors
    /// [`StoreError::VersionMismatch`] when `expected_version` is given and differs.
    async fn set_status(
        &self,
        id: ConnectionId,
        change: StatusChange,
    ) -> Result<Connection, StoreError>;

    /// Keeps the account's profile (when `write.profile` is given) and when to ask again. Not a
    /// token or status write: the version is not bumped and no event is recorded, so it never
    /// disturbs a refresh.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    async fn write_profile(&self, id: ConnectionId, write: ProfileWrite) -> Result<(), StoreError>;

    /// Active connections whose profile check is due and whose access token stays valid after
    /// `query.access_valid_after`, oldest check first; their next check moves to
    /// `query.claim_until` in the same step, so concurrent callers never receive the same rows.
    async fn claim_profile_checks(
        &self,
        query: ProfileCheckQuery,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Active connections due for refresh (access expiring, or refresh token getting old) whose
    /// lease is free or expired, leased to `query.owner` in the same step: concurrent callers
    /// never receive the same rows.
    async fn claim_due_for_refresh(&self, query: DueQuery) -> Result<Vec<Connection>, StoreError>;

    // --- events ---

    /// Events with `seq > after`, in order.
    ///
    /// On PostgreSQL, sequence numbers are taken before commit, so an event with a lower `seq`
    /// can become visible after one with a higher `seq`; a webhook deliverer paging by `seq`
    /// should re-read a short window behind its cursor.
    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ConnectionEvent>, StoreError>;

    /// All events of one connection, in order.
    async fn events_for_connection(
        &self,
        id: ConnectionId,
    ) -> Result<Vec<ConnectionEvent>, StoreError>;
}

/// How many connections have each status ([`ConnectionStore::count_by_status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    counts: [u64; 3],
}

impl StatusCounts {
    /// Every status, in the order [`StatusCounts::iter`] gives them.
    pub const STATUSES: [ConnectionStatus; 3] = [
        ConnectionStatus::Active,
        ConnectionStatus::NeedsReauth,
        ConnectionStatus::RefreshLost,
    ];

    fn slot(status: ConnectionStatus) -> usize {
        match status {
            ConnectionStatus::Active => 0,
            ConnectionStatus::NeedsReauth => 1,
            ConnectionStatus::RefreshLost => 2,
        }
    }

    /// Connections with `status`.
    pub fn get(&self, status: ConnectionStatus) -> u64 {
        self.counts[Self::slot(status)]
    }

    /// Adds `n` connections with `status`.
    pub fn add(&mut self, status: ConnectionStatus, n: u64) {
        let slot = &mut self.counts[Self::slot(status)];
        *slot = slot.saturating_add(n);
    }

    /// Every status with its count, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (ConnectionStatus, u64)> + '_ {
        Self::STATUSES.iter().map(|s| (*s, self.get(*s)))
    }

    /// All connections.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0, |a, n| a.saturating_add(*n))
    }
}

impl FromIterator<(ConnectionStatus, u64)> for StatusCounts {
    fn from_iter<I: IntoIterator<Item = (ConnectionStatus, u64)>>(iter: I) -> Self {
        let mut counts = Self::default();
        for (status, n) in iter {
            counts.add(status, n);
        }
        counts
    }
}
