//! A database where calconnect 0.1 ran the broker (its tables at version 1, its own ledger
//! `calconnect_broker_migrations`, times in milliseconds, space-separated scopes) opens with
//! [`crate::open_storage`]: the ledger is adopted, the times and scopes are converted, and the API
//! keys, connect sessions, webhook cursor and outbox read back as they were. The fixtures are
//! copies of 0.1's migration files and rows in its encodings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::config::DatabaseConfig;
use crate::db::BrokerDb;
use crate::webhooks::outbox;
use crate::{api_keys, open_storage, sessions};
use calconnect::{Clock, SystemClock};
use secrecy::SecretString;
use std::sync::Arc;

const ROWS: &str = include_str!("fixtures/v0_1/broker_ledger_and_rows.sql");

async fn reads_back(db: &BrokerDb) {
    assert!(db.ready().await);

    let keys = api_keys::list(db).await.unwrap();
    let listed: Vec<_> = keys
        .iter()
        .map(|k| (k.id.as_str(), k.created_at_ms, k.revoked_at_ms))
        .collect();
    assert_eq!(
        listed,
        [
            ("key-1", 1_700_000_000_123, None),
            ("key-2", 1_700_000_500_000, Some(1_700_000_600_000))
        ]
    );
    let key = SecretString::from("cck_legacy-key-1");
    let used = time::macros::datetime!(2026-12-01 12:00 UTC);
    assert!(api_keys::verify(db, &key, used).await.unwrap());
    // Its use is recorded; a use within the minute does not write again.
    assert!(
        api_keys::verify(db, &key, used + time::Duration::seconds(30))
            .await
            .unwrap()
    );
    let last_used: Vec<_> = api_keys::list(db)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.last_used_at_ms)
        .collect();
    assert_eq!(last_used, [Some(used.unix_timestamp() * 1000), None]);

    let s = sessions::find(db, "token-1")
        .await
        .unwrap()
        .unwrap()
        .session;
    assert_eq!(s.end_user_id, "app-user-1");
    assert_eq!(s.scopes, ["BOOKING_READ", "SCHEDULE_READ"]);
    assert_eq!(s.return_to.as_deref(), Some("https://app.example/back"));
    assert!(s.team);
    assert_eq!(s.expires_at_ms, 1_700_001_800_000);
    let s = sessions::find(db, "token-2")
        .await
        .unwrap()
        .unwrap()
        .session;
    assert!(s.scopes.is_empty());
    assert!(!s.team);
    assert_eq!(
        sessions::purge_expired(db, 1_700_002_000_000)
            .await
            .unwrap(),
        1
    );

    assert_eq!(outbox::cursor(db).await.unwrap(), 5);
    let log = outbox::list(db, Some("c-1"), 10).await.unwrap();
    let rows: Vec<_> = log
        .iter()
        .map(|d| {
            (
                d.event_id.as_str(),
                d.status.as_str(),
                d.attempts,
                d.next_attempt_at_ms,
                d.created_at_ms,
                d.delivered_at_ms,
                d.last_status_code,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "evt_5",
                "pending",
                2,
                1_700_000_060_000,
                1_700_000_001_000,
                None,
                Some(503)
            ),
            (
                "evt_4",
                "delivered",
                1,
                1_700_000_000_000,
                1_700_000_000_000,
                Some(1_700_000_000_500),
                Some(200)
            ),
        ]
    );
    assert_eq!(log[0].payload, r#"{"n":5}"#);
    // The lease 0.1 set ran out at ...030 000; the retry is due at ...060 000.
    assert!(
        outbox::claim_due(db, 1_700_000_059_999, 30_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = outbox::claim_due(db, 1_700_000_060_000, 30_000, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].event_id, "evt_5");
}

#[test]
fn the_broker_set_is_well_formed_and_apart_from_the_store_set() {
    use crate::db::BROKER_MIGRATIONS;
    use calconnect_sql::STORE_MIGRATIONS;
    assert!(BROKER_MIGRATIONS.is_well_formed());
    assert!(
        !BROKER_MIGRATIONS
            .versions
            .contains(STORE_MIGRATIONS.versions.end())
    );
    assert!(
        !STORE_MIGRATIONS
            .versions
            .contains(BROKER_MIGRATIONS.versions.start())
    );
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[tokio::test]
async fn a_sqlite_file_of_calconnect_0_1_keeps_its_broker_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        for sql in [
            include_str!("fixtures/v0_1/sqlite_broker_0001_init.sql"),
            ROWS,
        ] {
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let database = DatabaseConfig::Sqlite(path);
    let (_store, db) = open_storage(&database, clock()).await.unwrap();
    reads_back(&db).await;
    // A second start finds nothing left to do.
    let (_store, again) = open_storage(&database, clock()).await.unwrap();
    assert!(again.ready().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_of_calconnect_0_1_keeps_its_broker_tables() {
    let Some(test_db) = calconnect_testkit::postgres::TestDatabase::create().await else {
        return;
    };
    {
        let pool = sqlx::PgPool::connect(test_db.url()).await.unwrap();
        for sql in [
            include_str!("fixtures/v0_1/postgres_broker_0001_init.sql"),
            ROWS,
        ] {
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let database = DatabaseConfig::Postgres(SecretString::from(test_db.url()));
    // Two instances start together on the old database.
    let (a, b) = tokio::join!(
        open_storage(&database, clock()),
        open_storage(&database, clock())
    );
    let ((_a, db), (_b, other)) = (a.unwrap(), b.unwrap());
    assert!(other.ready().await);
    reads_back(&db).await;
}
