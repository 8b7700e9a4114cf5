//! The store conformance suite and the at-rest scan against SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use calconnect::store::ConnectionStore;
use calconnect::{Clock, StoreError};
use calconnect_sqlite::SqliteStore;
use calconnect_testkit::TestBackend;
use std::path::PathBuf;
use std::sync::Arc;

/// One database file per test, in its own temporary folder; every `open` is a new pool, as a
/// second process would have.
struct SqliteBackend {
    dir: tempfile::TempDir,
}

impl SqliteBackend {
    fn path(&self) -> PathBuf {
        self.dir.path().join("calconnect.db")
    }
}

#[async_trait]
impl TestBackend for SqliteBackend {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn ConnectionStore> {
        Arc::new(SqliteStore::open(&self.path(), clock).await.unwrap())
    }
}

async fn backend() -> Option<SqliteBackend> {
    Some(SqliteBackend {
        dir: tempfile::tempdir().unwrap(),
    })
}

calconnect_testkit::conformance_tests!(backend());

#[tokio::test]
async fn no_token_verifier_or_state_in_clear_in_the_file_or_wal() {
    let backend = backend().await.unwrap();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = SqliteStore::open(&backend.path(), clock).await.unwrap();
    let ring = calconnect_testkit::fixtures::keyring("k1");
    calconnect_testkit::conformance::store_level_flow(&store, &ring).await;
    // Scan every file (database, WAL, shared memory) with the latest pages in the WAL, then
    // again after checkpointing them into the database file.
    let scan = || {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(backend.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            calconnect_testkit::conformance::assert_no_plaintext(
                &bytes,
                &path.display().to_string(),
            );
            all.extend(bytes);
        }
        // The scan can find things: the client id is stored in clear.
        assert!(all.windows(11).any(|w| w == b"scan-client"));
    };
    scan();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await
        .unwrap();
    scan();
    store.close().await;
}

#[tokio::test]
async fn unopenable_file_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let err = SqliteStore::open(&dir.path().join("missing-dir").join("x.db"), clock)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("missing-dir") && msg.contains("opening"),
        "{msg}"
    );
}

#[tokio::test]
async fn journal_is_wal_and_foreign_keys_are_on() {
    let backend = backend().await.unwrap();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = SqliteStore::open(&backend.path(), clock).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM calconnect_migrations")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(versions, [1]);
}
