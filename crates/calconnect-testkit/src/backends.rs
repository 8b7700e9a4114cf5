//! The SQL store as a [`TestBackend`]: one SQLite file or one PostgreSQL database per test, every
//! [`TestBackend::open`] a new pool on it, as a second process would have.

use crate::TestBackend;
use crate::postgres::TestDatabase;
use async_trait::async_trait;
use calconnect::Clock;
use calconnect::store::ConnectionStore;
use calconnect_sql::{PostgresStore, SqliteStore};
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;

/// A SQLite file in its own temporary folder.
#[derive(Debug)]
pub struct SqliteBackend {
    dir: tempfile::TempDir,
}

impl SqliteBackend {
    /// A fresh folder.
    ///
    /// # Panics
    /// It cannot be created.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a folder: {e}")),
        }
    }

    /// The folder (database, WAL and shared-memory files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("calconnect.db")
    }

    /// Opens the store on the file.
    ///
    /// # Panics
    /// It does not open.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> SqliteStore {
        SqliteStore::open(&self.path(), clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Default for SqliteBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl TestBackend for SqliteBackend {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn ConnectionStore> {
        Arc::new(self.store(clock).await)
    }
}

/// A PostgreSQL database of its own ([`TestDatabase`]).
#[derive(Debug)]
pub struct PgBackend {
    /// The database.
    pub db: TestDatabase,
}

impl PgBackend {
    /// A fresh database; `None` when PostgreSQL is not reachable (see [`TestDatabase::create`]).
    pub async fn create() -> Option<Self> {
        Some(Self {
            db: TestDatabase::create().await?,
        })
    }

    /// Connects the store to the database.
    ///
    /// # Panics
    /// It does not connect.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> PostgresStore {
        PostgresStore::connect(&SecretString::from(self.db.url()), clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

#[async_trait]
impl TestBackend for PgBackend {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn ConnectionStore> {
        Arc::new(self.store(clock).await)
    }
}
