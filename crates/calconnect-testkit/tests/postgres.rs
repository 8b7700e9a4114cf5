//! The store conformance suite and the at-rest scan against the SQL store on PostgreSQL (one
//! database per test; skipped when the server is not reachable unless `CALCONNECT_REQUIRE_ALL=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calconnect::store::StoreError;
use calconnect_sql::PostgresStore;
use calconnect_testkit::backends::PgBackend;
use secrecy::SecretString;

async fn backend() -> Option<PgBackend> {
    PgBackend::create().await
}

calconnect_testkit::conformance_tests!(backend());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_verifier_or_state_in_clear_in_any_column() {
    let Some(backend) = backend().await else {
        return;
    };
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.store(clock).await;
    let ring = calconnect_testkit::fixtures::keyring("k1");
    calconnect_testkit::conformance::store_level_flow(&store, &ring).await;

    let mut cells = 0;
    let mut everything = Vec::new();
    for (place, bytes) in calconnect_testkit::postgres::all_text_cells(store.pool()).await {
        calconnect_testkit::conformance::assert_no_plaintext(&bytes, &place);
        everything.extend_from_slice(&bytes);
        cells += 1;
    }
    assert!(cells > 20, "the scan read {cells} cells");
    // The scan can find things: the client id is stored in clear.
    assert!(everything.windows(11).any(|w| w == b"scan-client"));
}

#[tokio::test]
async fn unreachable_database_error_names_it_without_password() {
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let url = SecretString::from("postgres://calconnect:hunter2-secret@127.0.0.1:1/appdb");
    let err = PostgresStore::connect(&url, clock).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    let debug = format!("{err:?}");
    assert!(
        msg.contains("appdb") && msg.contains("127.0.0.1:1"),
        "{msg}"
    );
    assert!(
        !msg.contains("hunter2") && !debug.contains("hunter2"),
        "{msg} / {debug}"
    );

    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let bad = SecretString::from("postgres://u:hunter2-secret@127.0.0.1:notaport/db");
    let err = PostgresStore::connect(&bad, clock).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_query_uses_the_partial_indexes() {
    let Some(backend) = backend().await else {
        return;
    };
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.store(clock).await;
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (column, index) in [
        ("access_expires_at", "connections_due_access"),
        ("last_refreshed_at", "connections_due_keepalive"),
    ] {
        // The shape of each branch of the due-for-refresh claim.
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN SELECT id FROM connections WHERE status = 'active' AND {column} < now() \
             AND (lease_until IS NULL OR lease_until <= now()) ORDER BY {column} LIMIT 100 \
             FOR UPDATE SKIP LOCKED"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{plan}");
    }
}
