//! SQLite: the embedded default. One file, WAL journal, busy timeout, foreign keys on,
//! `synchronous = FULL` (a refreshed token that was acknowledged must survive a power cut:
//! Cal.com has already killed the old one, docs/calcom.md §3.4, docs/architecture.md §4.4).
//!
//! Several pools or processes may open the same file (two token keepers, a CLI next to the
//! broker): every read-modify-write runs in `BEGIN IMMEDIATE`, single-statement writes are atomic
//! by themselves, and writers wait for each other up to the busy timeout.

use crate::store::SqlStore;
use calconnect::{Clock, store::StoreError};
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
        private_files(path);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Switching a new file to WAL takes an exclusive lock that SQLite does not wait for
        // (the busy timeout does not apply): processes opening a new file at once may be told
        // "database is locked". Try again shortly, a bounded number of times.
        let mut attempts = 0;
        let pool = loop {
            match SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.clone())
                .await
            {
                Err(sqlx::Error::Database(d))
                    if attempts < 20 && d.code().as_deref() == Some("5") =>
                {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => break other,
            }
        };
        let store = Self::start(pool, database, "opening", clock).await?;
        // The WAL and shared-memory files now exist: make sure they are private too.
        private_files(path);
        Ok(store)
    }
}

/// The database holds sealed tokens and digests, and its WAL the same: readable by the owner
/// only (0600). Creates the file 0600 when it is new (SQLite then creates `-wal` and `-shm`
/// with the main file's mode) and narrows existing files. Best effort: a file system without
/// Unix modes keeps its own rules.
fn private_files(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let file = std::path::PathBuf::from(file);
            if let Ok(meta) = std::fs::metadata(&file) {
                if meta.permissions().mode() & 0o077 != 0 {
                    let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
