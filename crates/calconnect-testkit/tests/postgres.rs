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

/// One truth across instances through PostgreSQL's LISTEN/NOTIFY: keeper B has the token cached
/// and would not ask the store again for an hour, yet a delete through another pool (another
/// instance) reaches it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_elsewhere_reaches_a_keepers_cache_through_notify() {
    use calconnect::keeper::{KeeperConfig, KeeperError, TokenKeeper};
    use calconnect::store::{
        CalIdentity, CalOwner, ConnectionStore, EndUserId, TokensToSave, save_connection,
    };
    use calconnect::{ClientConfig, ClientSecret, ProviderProfile, SystemClock, UrlPolicy};
    use std::sync::Arc;
    let Some(backend) = backend().await else {
        return;
    };
    let clock: Arc<dyn calconnect::Clock> = Arc::new(SystemClock);
    let a: Arc<dyn ConnectionStore> = Arc::new(backend.store(clock.clone()).await);
    let b: Arc<dyn ConnectionStore> = Arc::new(backend.store(clock.clone()).await);
    let ring = Arc::new(calconnect_testkit::fixtures::keyring("k1"));
    let now = calconnect::Clock::now(clock.as_ref());
    let saved = save_connection(
        a.as_ref(),
        &ring,
        &mut rand::rngs::OsRng,
        TokensToSave {
            end_user: EndUserId::new("u1").unwrap(),
            identity: CalIdentity {
                client_id: "cid".into(),
                owner: CalOwner::User(1),
            },
            scopes: vec!["PROFILE_READ".into()],
            access_token: SecretString::from("eyJ-access"),
            refresh_token: Some(SecretString::from("eyJ-refresh")),
            access_expires_at: Some(now + time::Duration::minutes(30)),
            refresh_expires_at_estimate: None,
            profile: None,
        },
    )
    .await
    .unwrap();
    let id = saved.connection().id;
    // A flow that is never called: the token is fresh.
    let profile = ProviderProfile::sandbox(
        "http://127.0.0.1:9",
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap();
    let client =
        ClientConfig::confidential("cid", ClientSecret::new("s"), "http://127.0.0.1:9/cb").unwrap();
    let flow = calconnect::AuthorizationFlow::new(
        profile,
        client,
        calconnect::http::HttpClient::new(calconnect::http::HttpConfig::default()).unwrap(),
        clock.clone(),
    );
    let config = KeeperConfig::builder()
        .revalidate_after(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let keeper_b = TokenKeeper::new(b, ring, Arc::new(flow), clock, config);
    keeper_b.access_token(id).await.unwrap();
    keeper_b.access_token(id).await.unwrap(); // cached
    a.delete_connection(id, "disconnected on another instance")
        .await
        .unwrap();
    let deleted = std::time::Instant::now();
    loop {
        match keeper_b.access_token(id).await {
            Err(KeeperError::NotFound { .. }) => break,
            Ok(_) => assert!(
                deleted.elapsed() < std::time::Duration::from_secs(1),
                "the cached token outlived the delete by a second"
            ),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
