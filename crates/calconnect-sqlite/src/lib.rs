//! [`ConnectionStore`] on SQLite: the embedded default. One file, WAL journal, busy timeout,
//! foreign keys on, `synchronous = FULL` (a refreshed token that was acknowledged must survive a
//! power cut: Cal.com has already killed the old one, docs/calcom.md §3.4).
//!
//! Several pools or processes may open the same file (two token keepers, a CLI next to the
//! broker): every read-modify-write runs in `BEGIN IMMEDIATE`, single-statement writes are atomic
//! by themselves, and writers wait for each other up to the busy timeout.
//!
//! ```no_run
//! # async fn demo() -> Result<(), calconnect::StoreError> {
//! use calconnect::SystemClock;
//! use std::sync::Arc;
//! let store = calconnect_sqlite::SqliteStore::open("calconnect.db".as_ref(), Arc::new(SystemClock)).await?;
//! # Ok(()) }
//! ```

mod connections;
mod migrate;
mod pending;
mod refresh;
mod rows;

use async_trait::async_trait;
use calconnect::Clock;
use calconnect::crypto::SealedBlob;
use calconnect::store::*;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

pub use migrate::MIGRATIONS;

/// How long a writer waits for another writer before failing with "database is locked".
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A [`ConnectionStore`] in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
    database: Arc<str>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and runs pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened, [`StoreError::Migration`].
    pub async fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let database: Arc<str> = format!("SQLite database {}", path.display()).into();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| rows::unavailable(&database, "opening", e))?;
        let store = Self {
            pool,
            clock,
            database,
        };
        migrate::run(&store.pool, &store.database).await?;
        Ok(store)
    }

    /// The connection pool (for operators' queries and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.clock.now())
    }

    fn err(&self, operation: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| rows::unavailable(&self.database, operation, e)
    }
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn insert_pending(&self, p: NewPendingAuthorization) -> Result<(), StoreError> {
        self.insert_pending_impl(p).await
    }
    async fn consume_pending(
        &self,
        state: &StateKey,
        binding: &BrowserBinding,
    ) -> Result<PendingAuthorization, StoreError> {
        self.consume_pending_impl(state, binding).await
    }
    async fn purge_expired_pending(&self) -> Result<u64, StoreError> {
        self.purge_expired_pending_impl().await
    }
    async fn list_pending(
        &self,
        after: Option<PendingId>,
        limit: u32,
    ) -> Result<Vec<PendingAuthorization>, StoreError> {
        self.list_pending_impl(after, limit).await
    }
    async fn reseal_pending(
        &self,
        id: PendingId,
        current: &SealedBlob,
        resealed: SealedBlob,
    ) -> Result<bool, StoreError> {
        self.reseal_pending_impl(id, current, resealed).await
    }
    async fn upsert_connection(&self, new: NewConnection) -> Result<UpsertOutcome, StoreError> {
        self.upsert_connection_impl(new).await
    }
    async fn get_connection(&self, id: ConnectionId) -> Result<Connection, StoreError> {
        self.get_connection_impl(id).await
    }
    async fn find_by_identity(
        &self,
        identity: &CalIdentity,
    ) -> Result<Option<Connection>, StoreError> {
        self.find_by_identity_impl(identity).await
    }
    async fn list_for_end_user(&self, end_user: &EndUserId) -> Result<Vec<Connection>, StoreError> {
        self.list_for_end_user_impl(end_user).await
    }
    async fn list_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>, StoreError> {
        self.list_connections_impl(after, limit).await
    }
    async fn count_connections(&self) -> Result<u64, StoreError> {
        self.count_connections_impl().await
    }
    async fn delete_connection(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError> {
        self.delete_connection_impl(id, reason).await
    }
    async fn acquire_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        self.acquire_lease_impl(id, owner, lease_for).await
    }
    async fn renew_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        self.renew_lease_impl(id, owner, lease_for).await
    }
    async fn release_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
    ) -> Result<bool, StoreError> {
        self.release_lease_impl(id, owner).await
    }
    async fn record_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        self.record_refresh_intent_impl(id, owner, expected_version)
            .await
    }
    async fn clear_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        self.clear_refresh_intent_impl(id, owner, expected_version)
            .await
    }
    async fn write_tokens(
        &self,
        id: ConnectionId,
        write: TokenWrite,
    ) -> Result<Connection, StoreError> {
        self.write_tokens_impl(id, write).await
    }
    async fn reseal_tokens(
        &self,
        id: ConnectionId,
        expected_version: i64,
        access_token: SealedBlob,
        refresh_token: Option<SealedBlob>,
    ) -> Result<(), StoreError> {
        self.reseal_tokens_impl(id, expected_version, access_token, refresh_token)
            .await
    }
    async fn set_status(
        &self,
        id: ConnectionId,
        change: StatusChange,
    ) -> Result<Connection, StoreError> {
        self.set_status_impl(id, change).await
    }
    async fn claim_due_for_refresh(&self, query: DueQuery) -> Result<Vec<Connection>, StoreError> {
        self.claim_due_for_refresh_impl(query).await
    }
    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        self.events_after_impl(after, limit).await
    }
    async fn events_for_connection(
        &self,
        id: ConnectionId,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        self.events_for_connection_impl(id).await
    }
}

#[cfg(test)]
mod send_check {
    use super::*;
    fn is_send<T: Send>(_: &T) {}
    #[allow(dead_code)] // reason: compile-time check only
    fn open_is_send(path: &Path, clock: Arc<dyn Clock>) {
        is_send(&SqliteStore::open(path, clock));
    }
}
