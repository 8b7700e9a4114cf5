//! The broker's own tables (API keys, connect sessions, webhook outbox) on the same SQLite file or
//! PostgreSQL database as the connection store, through the store's query layer
//! ([`calconnect_sql::Db`]): the queries are written once, the times and scope lists stored as
//! the store's are (docs/architecture.md §6.3), and the migrations run by the store's runner
//! (versions 1001–1999 of the one ledger; the earlier `calconnect_broker_migrations` is adopted).
//!
//! The broker's functions and API keep unix milliseconds; [`at_ms`] and
//! [`crate::state::unix_ms`] convert.

use calconnect::store::StoreError;
use calconnect_sql::migrate::{LegacyLedger, Migrations};
use calconnect_sql::{Db, migrate};
use time::OffsetDateTime;

/// The broker's tables.
pub static BROKER_MIGRATIONS: Migrations = Migrations {
    name: "broker",
    versions: 1001..=1999,
    sqlite: &[
        (
            1001,
            "init",
            include_str!("../migrations/sqlite/0001_init.sql"),
        ),
        (
            1002,
            "one time and scope encoding",
            include_str!("../migrations/sqlite/0002_times_and_scopes.sql"),
        ),
        (
            1003,
            "single-use connect sessions",
            include_str!("../migrations/sqlite/0003_single_use_sessions.sql"),
        ),
        (
            1004,
            "API keys' last use",
            include_str!("../migrations/sqlite/0004_api_key_last_used.sql"),
        ),
    ],
    postgres: &[
        (
            1001,
            "init",
            include_str!("../migrations/postgres/0001_init.sql"),
        ),
        (
            1002,
            "one time and scope encoding",
            include_str!("../migrations/postgres/0002_times_and_scopes.sql"),
        ),
        (
            1003,
            "single-use connect sessions",
            include_str!("../migrations/postgres/0003_single_use_sessions.sql"),
        ),
        (
            1004,
            "API keys' last use",
            include_str!("../migrations/postgres/0004_api_key_last_used.sql"),
        ),
    ],
    legacy: Some(LegacyLedger {
        table: "calconnect_broker_migrations",
        offset: 1000,
    }),
};

/// The broker's database: the connection store's pool, shared.
#[derive(Debug, Clone)]
pub struct BrokerDb(Db);

/// A broker database error: logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
#[error("broker database: {operation} failed: {source}")]
pub struct DbError {
    /// What was being done.
    pub operation: &'static str,
    /// The driver error.
    #[source]
    pub source: calconnect_sql::sqlx::Error,
}

/// Maps a driver error for `operation`.
pub(crate) fn db_err(operation: &'static str) -> impl Fn(calconnect_sql::sqlx::Error) -> DbError {
    move |source| DbError { operation, source }
}

/// Unix milliseconds as a time (the epoch if out of range).
pub(crate) fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl BrokerDb {
    /// The broker's tables on `db` (the store's database).
    pub fn new(db: Db) -> Self {
        Self(db)
    }

    /// The database.
    pub fn sql(&self) -> &Db {
        &self.0
    }

    /// Applies the broker's pending migrations (in one transaction; concurrent starts wait).
    ///
    /// # Errors
    /// [`StoreError::Migration`], [`StoreError::Unavailable`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.0, &BROKER_MIGRATIONS).await
    }

    /// Whether the database answers and the broker's migrations are applied (for `/readyz`).
    pub async fn ready(&self) -> bool {
        migrate::status(&self.0, &BROKER_MIGRATIONS)
            .await
            .is_ok_and(|s| s.pending == 0)
    }
}

#[cfg(test)]
mod upgrade_tests;
