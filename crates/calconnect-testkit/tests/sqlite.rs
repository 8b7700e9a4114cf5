//! The store conformance suite and the at-rest scan against the SQL store on SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calconnect::store::StoreError;
use calconnect_sql::SqliteStore;
use calconnect_testkit::backends::SqliteBackend;

async fn backend() -> Option<SqliteBackend> {
    Some(SqliteBackend::new())
}

calconnect_testkit::conformance_tests!(backend());

#[tokio::test]
async fn no_token_verifier_or_state_in_clear_in_the_file_or_wal() {
    let backend = SqliteBackend::new();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.store(clock).await;
    let ring = calconnect_testkit::fixtures::keyring("k1");
    calconnect_testkit::conformance::store_level_flow(&store, &ring).await;
    // Scan every file (database, WAL, shared memory) with the latest pages in the WAL, then
    // again after checkpointing them into the database file.
    let scan = || {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(backend.dir()).unwrap() {
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
    let backend = SqliteBackend::new();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.store(clock).await;
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
    let status = store.migration_status().await.unwrap();
    assert_eq!((status.applied, status.pending), (Some(status.known), 0));
}

async fn plan(store: &SqliteStore, sql: &str) -> String {
    let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(store.pool())
        .await
        .unwrap();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
        .collect();
    lines.join("\n")
}

#[tokio::test]
async fn counting_by_status_reads_indexes_only() {
    let backend = SqliteBackend::new();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.store(clock).await;
    let plan = plan(
        &store,
        "SELECT status, COUNT(*) AS n FROM connections WHERE status <> 'active' \
         GROUP BY status UNION ALL SELECT NULL, COUNT(*) FROM connections",
    )
    .await;
    assert!(
        plan.contains("COVERING INDEX connections_not_active"),
        "{plan}"
    );
    assert!(
        !plan.lines().any(|l| l.ends_with("SCAN connections")),
        "{plan}"
    );
}

#[tokio::test]
async fn due_query_uses_the_partial_indexes() {
    let backend = SqliteBackend::new();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.store(clock).await;
    for (column, index) in [
        ("access_expires_at", "connections_due_access"),
        ("last_refreshed_at", "connections_due_keepalive"),
    ] {
        // The shape of each branch of the due-for-refresh claim.
        let plan = plan(
            &store,
            &format!(
                "SELECT id FROM connections WHERE status = 'active' AND {column} < 1 \
                 AND (lease_until IS NULL OR lease_until <= 1) ORDER BY {column} LIMIT 100"
            ),
        )
        .await;
        assert!(plan.contains(index), "{plan}");
    }
}

/// A value bound in [`bound_plan`].
#[derive(Clone)]
enum Bind {
    Text(&'static str),
    Int(i64),
    Blob(Vec<u8>),
}

/// The query plan of `sql` with `binds` bound, as the store runs it (a bound status is not the
/// literal a partial index names).
async fn bound_plan(store: &SqliteStore, sql: &str, binds: Vec<Bind>) -> String {
    let sql = format!("EXPLAIN QUERY PLAN {sql}");
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = match b {
            Bind::Text(t) => q.bind(t),
            Bind::Int(i) => q.bind(i),
            Bind::Blob(v) => q.bind(v),
        };
    }
    let rows = q.fetch_all(store.pool()).await.unwrap();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
        .collect();
    lines.join("\n")
}

/// Listing pages (the shapes `query_connections` writes, with their bound values) read an index
/// in listing order, never every row; the profile-check claim reads an index too.
#[tokio::test]
async fn listing_and_profile_checks_use_indexes() {
    use Bind::{Blob, Int, Text};
    let backend = SqliteBackend::new();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.store(clock).await;
    let cursor = || vec![Int(1), Blob(vec![0; 16])];
    let cases: Vec<(&str, Vec<Bind>, &str)> = vec![
        ("", vec![], "connections_created"),
        (
            "WHERE (created_at, id) > ($2, $3)",
            cursor(),
            "connections_created",
        ),
        (
            "WHERE status = $2",
            vec![Text("active")],
            "connections_created",
        ),
        (
            "WHERE status = $2 AND status <> 'active' AND (created_at, id) > ($3, $4)",
            [vec![Text("needs_reauth")], cursor()].concat(),
            "connections_listing_not_active",
        ),
        (
            "WHERE end_user = $2",
            vec![Text("u")],
            "connections_end_user",
        ),
        (
            "WHERE status = $2 AND end_user = $3 AND (created_at, id) > ($4, $5)",
            [vec![Text("active"), Text("u")], cursor()].concat(),
            "connections_end_user",
        ),
    ];
    for (filter, mut binds, index) in cases {
        binds.insert(0, Int(26));
        let plan = bound_plan(
            &store,
            &format!(
                "SELECT id, end_user, status, created_at FROM connections {filter} \
                 ORDER BY created_at, id LIMIT $1"
            ),
            binds,
        )
        .await;
        assert!(plan.contains(index), "{filter}: {plan}");
        assert!(
            !plan.lines().any(|l| l.ends_with("SCAN connections")),
            "{filter}: {plan}"
        );
    }
    let plan = bound_plan(
        &store,
        "SELECT id FROM connections WHERE status = 'active' AND profile_check_at <= $1 \
         AND access_expires_at > $2 ORDER BY profile_check_at LIMIT $3",
        vec![Int(1), Int(1), Int(50)],
    )
    .await;
    assert!(
        plan.contains("connections_profile_check") || plan.contains("connections_due_access"),
        "{plan}"
    );
    assert!(
        !plan.lines().any(|l| l.ends_with("SCAN connections")),
        "{plan}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_wal_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = SqliteStore::open(&path, clock.clone()).await.unwrap();
    let ring = calconnect_testkit::fixtures::keyring("k1");
    calconnect_testkit::conformance::store_level_flow(&store, &ring).await;
    let mode = |suffix: &str| {
        let file = dir.path().join(format!("private.db{suffix}"));
        std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions()
            .mode()
            & 0o777
    };
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "private.db{suffix}");
    }
    // A file created by an earlier version with a looser mode is narrowed when opened.
    drop(store);
    std::fs::set_permissions(
        dir.path().join("private.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _again = SqliteStore::open(&path, clock).await.unwrap();
    assert_eq!(mode(""), 0o600);
}
