//! A database made by calconnect 0.1 (schema version 1 applied by its own runner, recorded in its
//! own ledger `calconnect_migrations`) opens with the one SQL store: the ledger is adopted into
//! sqlx's with checksums, the new migrations run, and every row reads back as it was written.
//! The fixtures are copies of 0.1's migration file and rows in its encodings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calconnect::store::*;
use calconnect::{Clock, MockClock, store::StoreError};
use calconnect_sql::{Db, query};
use calconnect_testkit::backends::{PgBackend, SqliteBackend};
use std::sync::Arc;
use time::macros::datetime;
use uuid::uuid;

const SQLITE_V0_1: [&str; 2] = [
    include_str!("fixtures/v0_1/sqlite/store_0001_init.sql"),
    include_str!("fixtures/v0_1/sqlite/store_ledger_and_rows.sql"),
];
const POSTGRES_V0_1: [&str; 2] = [
    include_str!("fixtures/v0_1/postgres/store_0001_init.sql"),
    include_str!("fixtures/v0_1/postgres/store_ledger_and_rows.sql"),
];

fn first() -> ConnectionId {
    ConnectionId::from_uuid(uuid!("0190a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b"))
}

fn second() -> ConnectionId {
    ConnectionId::from_uuid(uuid!("0190a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6c"))
}

fn clock() -> (Arc<MockClock>, Arc<dyn Clock>) {
    // Before the pending authorization expires (22:23:20).
    let clock = Arc::new(MockClock::new(datetime!(2023-11-14 22:20:00 UTC)));
    (clock.clone(), clock)
}

/// Everything 0.1 wrote reads back; the store works on; the ledger is sqlx's.
async fn reads_back(store: Arc<dyn ConnectionStore>, db: &Db) {
    let c = store.get_connection(first()).await.unwrap();
    assert_eq!(c.end_user.as_str(), "app-user-1");
    assert_eq!(
        c.identity,
        CalIdentity {
            client_id: "client-a".into(),
            owner: CalOwner::User(42)
        }
    );
    assert_eq!(c.scopes, ["BOOKING_READ", "SCHEDULE_READ"]);
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    assert_eq!(c.status_reason, "invalid_grant:refresh_token_revoked");
    assert_eq!(c.status_changed_at, datetime!(2023-11-14 22:18:20 UTC));
    assert_eq!(c.access_token.as_bytes(), [0x0a, 0x0b, 0x0c, 0x0d]);
    assert_eq!(
        c.refresh_token.as_ref().map(|t| t.as_bytes().to_vec()),
        Some(vec![0x1a, 0x1b, 0x1c, 0x1d])
    );
    assert_eq!(
        c.access_expires_at,
        Some(datetime!(2023-11-14 22:43:20 UTC))
    );
    assert_eq!(
        c.last_refreshed_at,
        datetime!(2023-11-14 22:13:20.123456 UTC)
    );
    assert_eq!(
        c.refresh_expires_at_estimate,
        Some(datetime!(2023-12-14 22:13:20 UTC))
    );
    assert_eq!(c.version, 3);
    assert_eq!(
        c.lease,
        Some(RefreshLease {
            owner: LeaseOwner::new("instance-a"),
            until: datetime!(2023-11-14 22:14:20 UTC)
        })
    );
    assert_eq!(
        c.refresh_intent_started_at,
        Some(datetime!(2023-11-14 22:13:30 UTC))
    );
    assert_eq!(c.created_at, datetime!(2023-11-14 21:56:40 UTC));
    assert_eq!(c.updated_at, datetime!(2023-11-14 22:18:20 UTC));
    // Migration 4: no profile yet, and its first check due at once.
    assert_eq!(c.profile, None);
    assert_eq!(c.profile_check_at, time::OffsetDateTime::UNIX_EPOCH);

    let team = store.get_connection(second()).await.unwrap();
    assert_eq!(team.identity.owner, CalOwner::Team(7));
    assert!(team.scopes.is_empty());
    assert_eq!(team.refresh_token, None);
    assert_eq!(team.access_expires_at, None);
    assert_eq!(team.lease, None);

    let counts = store.count_by_status().await.unwrap();
    assert_eq!(counts.get(ConnectionStatus::Active), 1);
    assert_eq!(counts.get(ConnectionStatus::NeedsReauth), 1);

    let pending = store
        .consume_pending(
            &StateKey::from_bytes([0x11; 32]),
            &BrowserBinding::from_bytes([0x22; 32]),
        )
        .await
        .unwrap();
    assert_eq!(pending.end_user.as_str(), "app-user-3");
    assert_eq!(pending.scopes, ["PROFILE_READ"]);
    assert_eq!(pending.pkce_verifier.as_bytes(), [0x3a, 0x3b, 0x3c]);
    assert_eq!(
        pending.return_to.as_deref(),
        Some("https://app.example/done")
    );
    assert_eq!(pending.expires_at, datetime!(2023-11-14 22:23:20 UTC));

    // The event log goes on where 0.1 left it.
    store
        .set_status(
            first(),
            StatusChange {
                status: ConnectionStatus::Active,
                reason: "authorized again".into(),
                expected_version: Some(3),
            },
        )
        .await
        .unwrap();
    let events = store.events_for_connection(first()).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, EventKind::Created),
            (2, EventKind::StatusChanged),
            (3, EventKind::StatusChanged)
        ]
    );
    assert_eq!(events[0].at, datetime!(2023-11-14 21:56:40 UTC));

    let legacy: i64 = query(db.dialect().table_exists)
        .bind("calconnect_migrations")
        .fetch_one(db)
        .await
        .unwrap()
        .get("n")
        .unwrap();
    assert_eq!(legacy, 0, "the earlier ledger is dropped once adopted");
    let versions: Vec<i64> = query("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("version").unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
}

/// An applied migration whose file changed is refused at start, naming the migration.
async fn edited_migration_is_refused(db: &Db, reopen: impl AsyncFnOnce() -> StoreError) {
    query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1")
        .bind(&[0u8; 48][..])
        .execute(db)
        .await
        .unwrap();
    let err = reopen().await;
    assert!(matches!(err, StoreError::Migration { .. }), "{err:?}");
    assert!(err.to_string().contains("store 0001 init"), "{err}");
}

#[tokio::test]
async fn a_sqlite_file_of_calconnect_0_1_opens_with_its_rows() {
    let backend = SqliteBackend::new();
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(backend.path())
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        for sql in SQLITE_V0_1 {
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let (_clock, dyn_clock) = clock();
    let store = backend.store(dyn_clock.clone()).await;
    let status = store.migration_status().await.unwrap();
    assert_eq!((status.applied, status.pending), (Some(5), 0));
    reads_back(Arc::new(store.clone()), store.db()).await;
    // Opening again finds nothing to do.
    let again = backend.store(dyn_clock.clone()).await;
    assert_eq!(again.count_connections().await.unwrap(), 2);
    edited_migration_is_refused(store.db(), async || {
        calconnect_sql::SqliteStore::open(&backend.path(), dyn_clock)
            .await
            .unwrap_err()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_of_calconnect_0_1_opens_with_its_rows() {
    let Some(backend) = PgBackend::create().await else {
        return;
    };
    {
        let pool = sqlx::PgPool::connect(backend.db.url()).await.unwrap();
        for sql in POSTGRES_V0_1 {
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let (_clock, dyn_clock) = clock();
    // Two instances start together on the old database: the ledger is adopted once.
    let (a, b) = tokio::join!(
        backend.store(dyn_clock.clone()),
        backend.store(dyn_clock.clone())
    );
    assert_eq!(b.count_connections().await.unwrap(), 2);
    let status = a.migration_status().await.unwrap();
    assert_eq!((status.applied, status.pending), (Some(5), 0));
    reads_back(Arc::new(a.clone()), a.db()).await;
    edited_migration_is_refused(a.db(), async || {
        calconnect_sql::PostgresStore::connect(
            &secrecy::SecretString::from(backend.db.url()),
            dyn_clock,
        )
        .await
        .unwrap_err()
    })
    .await;
}
