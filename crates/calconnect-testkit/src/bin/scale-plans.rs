//! The store at a million rows (docs/scaling.md): fills a fresh PostgreSQL database with
//! connections, then times the due-for-refresh claim (keep-alive and on-demand variants) and the
//! status counts through the store, and prints PostgreSQL's plans for the claim.
//!
//! ```text
//! CALCONNECT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p calconnect-testkit --bin scale-plans -- [rows, default 1000000]
//! ```
//!
//! Rows: 97 % active, 2 % needs_reauth, 1 % refresh_lost; refresh tokens obtained uniformly over
//! the last 30 days, access tokens expiring 30 minutes after that (so most are expired, as for
//! idle connections). Every row carries the same sealed blob (never opened here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: a measuring tool; failing loudly is right

use calconnect::crypto::{SealContext, SealedField};
use calconnect::store::{ConnectionStore, DueQuery, LeaseOwner};
use calconnect::{Clock, SystemClock};
use calconnect_sql::PostgresStore;
use calconnect_testkit::postgres::TestDatabase;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;
use time::Duration;

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("rows: a number"));
    let db = TestDatabase::create()
        .await
        .expect("set CALCONNECT_TEST_POSTGRES_URL to a reachable PostgreSQL");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = PostgresStore::connect(&SecretString::from(db.url()), clock.clone())
        .await
        .expect("store");
    let ring = calconnect_testkit::fixtures::keyring("scale");
    let blob = ring
        .seal(
            &mut rand::rngs::OsRng,
            SealContext::connection(uuid::Uuid::nil(), SealedField::AccessToken),
            b"not-a-real-token",
        )
        .unwrap();
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO connections (id, end_user, client_id, owner_kind, owner_id, scopes, status, \
           status_reason, status_changed_at, access_token, refresh_token, access_expires_at, \
           last_refreshed_at, refresh_expires_at_estimate, version, created_at, updated_at) \
         SELECT gen_random_uuid(), 'user-' || i, 'scale-client', 'user', i, '[\"PROFILE_READ\"]', \
           CASE WHEN i % 100 < 97 THEN 'active' WHEN i % 100 < 99 THEN 'needs_reauth' \
                ELSE 'refresh_lost' END, \
           '', t, $2, $2, t + interval '30 minutes', t, t + interval '30 days', 1, t, t \
         FROM (SELECT i, now() - (random() * interval '30 days') AS t \
               FROM generate_series(1, $1) AS i) s",
    )
    .bind(rows)
    .bind(blob.as_bytes())
    .execute(store.pool())
    .await
    .expect("insert");
    sqlx::query("ANALYZE connections")
        .execute(store.pool())
        .await
        .unwrap();
    println!("inserted {rows} connections in {:.1?}", started.elapsed());

    let now = clock.now();
    let keep_alive = |owner: &str, limit| DueQuery {
        access_expires_before: time::OffsetDateTime::UNIX_EPOCH,
        last_refreshed_before: now - Duration::days(15),
        limit,
        owner: LeaseOwner::new(owner),
        lease_for: Duration::seconds(60),
    };
    let on_demand = |owner: &str, limit| DueQuery {
        access_expires_before: now + Duration::minutes(5),
        last_refreshed_before: now - Duration::days(15),
        limit,
        owner: LeaseOwner::new(owner),
        lease_for: Duration::seconds(60),
    };
    for (name, query) in [
        (
            "keep-alive claim, 8 rows (the sweep's chunk)",
            keep_alive("a", 8),
        ),
        ("keep-alive claim, 100 rows", keep_alive("b", 100)),
        ("due claim (expiring or old), 100 rows", on_demand("c", 100)),
    ] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let claimed = store.claim_due_for_refresh(query.clone()).await.unwrap();
            times.push(t.elapsed());
            assert!(!claimed.is_empty());
        }
        times.sort();
        println!(
            "{name}: median {:.2?}, max {:.2?} (20 runs; each run leases what it claims, so later runs walk past leased rows)",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    let t = Instant::now();
    let counts = store.count_by_status().await.unwrap();
    println!(
        "count by status: {:.2?} ({} connections)",
        t.elapsed(),
        counts.total()
    );

    println!("\nEXPLAIN (ANALYZE, BUFFERS) of the keep-alive claim (100 rows), rolled back:");
    let mut tx = store.pool().begin().await.unwrap();
    let plan: Vec<(String,)> = sqlx::query_as(&format!(
        "EXPLAIN (ANALYZE, BUFFERS) {}",
        calconnect_sql::claim_due_sql(" FOR UPDATE SKIP LOCKED")
    ))
    .bind("explain")
    .bind(now + Duration::seconds(60))
    .bind(time::OffsetDateTime::UNIX_EPOCH)
    .bind(now - Duration::days(15))
    .bind(now)
    .bind(100_i64)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    for (line,) in plan {
        println!("  {line}");
    }
    tx.rollback().await.unwrap();
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!("\n{peak}");
}
