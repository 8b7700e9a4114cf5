//! SQLite: the embedded default. One file, WAL journal, busy timeout, foreign keys on,
//! `synchronous = FULL` (a refreshed token that was acknowledged must survive a power cut:
//! Cal.com has already killed the old one, docs/calcom.md §3.4, docs/architecture.md §4.4).
//!
//! Several pools or processes may open the same file (two token keepers, a CLI next to the
//! broker): every read-modify-write runs in `BEGIN IMMEDIATE`, single-statement writes are atomic
//! by themselves, and writers wait for each other up to the busy timeout.

use crate::store::SqlStore;
use calconnect::{Clock, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::sync::Arc;

/// How long a writer waits for another writer before failing with "database is locked".
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The [`SqlStore`] in one SQLite file.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

impl SqlStore<sqlx::Sqlite> {
    /// Opens (creating if missing) the database file and runs pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened, [`StoreError::Migration`].
    pub async fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let database = format!("SQLite database {}", path.display());
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
            .await;
        Self::start(pool, database, "opening", clock).await
    }
}
