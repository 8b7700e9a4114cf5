//! `cargo bench -p calconnect-postgres`: sealed-token writes/reads per second and the
//! due-for-refresh claim over 100,000 connections, on a fresh PostgreSQL database
//! (`CALCONNECT_TEST_POSTGRES_URL`; skipped when not reachable).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: a benchmark binary; failing loudly is right

use calconnect::store::ConnectionId;
use calconnect_postgres::PostgresStore;
use calconnect_testkit::bench::{self, BenchSetup, SeedRow};
use calconnect_testkit::postgres::TestDatabase;
use secrecy::SecretString;
use std::sync::Arc;

const CONNECTIONS: usize = 100_000;

async fn seed(store: &PostgresStore, rows: &[SeedRow]) {
    let mut tx = store.pool().begin().await.unwrap();
    for chunk in rows.chunks(1_000) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO connections (id, end_user, client_id, owner_kind, owner_id, scopes, status, \
             status_reason, status_changed_at, access_token, refresh_token, access_expires_at, \
             last_refreshed_at, version, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.as_uuid())
                .push_bind(&r.end_user)
                .push_bind(&r.client_id)
                .push_bind("user")
                .push_bind(r.owner_id)
                .push_bind("[\"BOOKING_READ\"]")
                .push_bind("active")
                .push_bind("authorized")
                .push_bind(r.last_refreshed_at)
                .push_bind(r.access_token.as_bytes())
                .push_bind(r.refresh_token.as_bytes())
                .push_bind(r.access_expires_at)
                .push_bind(r.last_refreshed_at)
                .push_bind(1_i64)
                .push_bind(r.last_refreshed_at)
                .push_bind(r.last_refreshed_at);
        });
        q.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE connections")
        .execute(store.pool())
        .await
        .unwrap();
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(TestDatabase::create()) else {
        return;
    };
    let setup = BenchSetup::new();
    let rows = setup.rows(CONNECTIONS);
    let ids: Vec<ConnectionId> = rows.iter().map(|r| r.id).collect();
    let store = runtime.block_on(async {
        let store = PostgresStore::connect(&SecretString::from(db.url()), setup.dyn_clock())
            .await
            .unwrap();
        let started = std::time::Instant::now();
        seed(&store, &rows).await;
        eprintln!(
            "seeded {CONNECTIONS} connections in {:?}",
            started.elapsed()
        );
        // The plan of the keep-alive branch of the claim, for the record.
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN ANALYZE SELECT id FROM connections WHERE status = 'active' \
             AND last_refreshed_at < $1 AND (lease_until IS NULL OR lease_until <= $2) \
             ORDER BY last_refreshed_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .bind(calconnect_testkit::fixtures::start_time() - time::Duration::days(25))
        .bind(calconnect_testkit::fixtures::start_time())
        .fetch_all(store.pool())
        .await
        .unwrap();
        eprintln!("{}", plan.join("\n"));
        store
    });
    let mut c = bench::criterion();
    bench::run(
        &mut c,
        "postgres",
        &runtime,
        Arc::new(store.clone()),
        &setup,
        &ids,
    );
    c.final_summary();
    runtime.block_on(store.close());
    drop(db);
}
