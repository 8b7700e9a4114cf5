//! PostgreSQL: several broker instances (processes) share one database.
//!
//! - Migrations run at start-up inside one transaction holding `pg_advisory_xact_lock`, so two
//!   instances starting together apply them once.
//! - Conditional single-statement writes (`UPDATE … WHERE version = $n`) fence token writes and
//!   leases; READ COMMITTED re-checks the condition after waiting for a concurrent writer.
//! - The due-for-refresh claim uses `FOR UPDATE SKIP LOCKED` and sets the lease in the same
//!   statement, so instances sweeping together never take the same rows.
//!
//! Error messages name the database as host, port, database and user, never the password.

use crate::store::SqlStore;
use calconnect::{Clock, store::StoreError};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;

pub use sqlx::postgres::PgConnectOptions as ConnectOptions;

/// Connections per pool, by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// The [`SqlStore`] in a PostgreSQL database.
pub type PostgresStore = SqlStore<sqlx::Postgres>;

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

impl SqlStore<sqlx::Postgres> {
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
        let database = describe(&options);
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await;
        Self::start(pool, database, "connecting", clock).await
    }
}
