//! [`ConnectionStore`] on PostgreSQL: several broker instances (processes) share one database.
//!
//! - Migrations run at start-up inside one transaction holding `pg_advisory_xact_lock`, so two
//!   instances starting together apply them once.
//! - Conditional single-statement writes (`UPDATE … WHERE version = $n`) fence token writes and
//!   leases; READ COMMITTED re-checks the condition after waiting for a concurrent writer.
//! - The due-for-refresh claim uses `FOR UPDATE SKIP LOCKED` and sets the lease in the same
//!   statement, so instances sweeping together never take the same rows.
//!
//! Error messages name the database as host, port, database and user, never the password.
//!
//! ```no_run
//! # async fn demo() -> Result<(), calconnect::StoreError> {
//! use calconnect::SystemClock;
//! use secrecy::SecretString;
//! use std::sync::Arc;
//! let url = SecretString::from("postgres://calconnect:secret@db.internal/calconnect");
//! let store = calconnect_postgres::PostgresStore::connect(&url, Arc::new(SystemClock)).await?;
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
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

pub use migrate::MIGRATIONS;
pub use sqlx::postgres::PgConnectOptions as ConnectOptions;

/// Connections per pool, by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// A [`ConnectionStore`] in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    database: Arc<str>,
}

/// Describes the database for messages: host, port, database and user; never the password.
pub fn describe(options: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL database {} on {}:{} as {}",
        options.get_database().unwrap_or("(default)"),
        options.get_host(),
        options.get_port(),
        options.get_username()
    )
}

impl PostgresStore {
    /// Connects with a `postgres://` URL and runs pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (the message never contains the password),
    /// [`StoreError::Migration`].
    pub async fn connect(url: &SecretString, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url.expose_secret()).map_err(|e| {
            StoreError::Unavailable {
                database: "PostgreSQL (URL not parsed)".to_owned(),
                operation: "parsing the database URL",
                source: match e {
                    // The URL parser's own message names the problem, not the URL.
                    sqlx::Error::Configuration(inner) => inner,
                    _ => "invalid PostgreSQL URL".into(),
                },
            }
        })?;
        Self::connect_with(options, clock).await
    }

    /// Connects with parsed options and runs pending migrations.
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn connect_with(
        options: PgConnectOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let database: Arc<str> = describe(&options).into();
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| rows::unavailable(&database, "connecting", e))?;
        migrate::run(&pool, &database).await?;
        Ok(Self {
            pool,
            clock,
            database,
        })
    }

    /// The connection pool (for operators' queries and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool.
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
impl ConnectionStore for PostgresStore {
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
    fn connect_is_send(options: PgConnectOptions, clock: Arc<dyn Clock>) {
        is_send(&PostgresStore::connect_with(options, clock));
    }
}
