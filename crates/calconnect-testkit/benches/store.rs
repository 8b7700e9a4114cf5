//! `cargo bench -p calconnect-testkit --bench store`: sealed-token writes/reads per second and the
//! due-for-refresh claim over 100,000 connections, on a SQLite file (WAL, synchronous=FULL) and
//! on a fresh PostgreSQL database (`CALCONNECT_TEST_POSTGRES_URL`; skipped when not reachable).
//! Benchmark ids start with the backend (`sqlite/…`, `postgres/…`); pass one as a filter to run
//! one backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: a benchmark binary; failing loudly is right

use calconnect::store::{ConnectionId, ConnectionStore};
use calconnect_sql::{Db, PostgresStore, SqliteStore, query};
use calconnect_testkit::bench::{self, BenchSetup, SeedRow};
use calconnect_testkit::fixtures::start_time;
use calconnect_testkit::postgres::TestDatabase;
use secrecy::SecretString;
use std::sync::Arc;

const CONNECTIONS: usize = 100_000;
/// Rows per `INSERT` (16 parameters each). SQLite looks a `$n` parameter up by a linear scan of
/// the statement's parameters, so thousands of them in one statement make seeding quadratic.
const CHUNK: usize = 50;

/// Bulk-inserts `rows` through the store's own query layer (its time and scope encodings).
async fn seed(db: &Db, rows: &[SeedRow]) {
    let started = std::time::Instant::now();
    let mut tx = db.begin_write().await.unwrap();
    for chunk in rows.chunks(CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=16).map(|k| format!("${}", i * 16 + k)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO connections (id, end_user, client_id, owner_kind, owner_id, scopes, \
             status, status_reason, status_changed_at, access_token, refresh_token, \
             access_expires_at, last_refreshed_at, version, created_at, updated_at) VALUES {}",
            values.join(", ")
        );
        let mut q = query(&sql);
        for r in chunk {
            q = q
                .bind(r.id.as_uuid())
                .bind(r.end_user.as_str())
                .bind(r.client_id.as_str())
                .bind("user")
                .bind(r.owner_id)
                .bind("[\"BOOKING_READ\"]")
                .bind("active")
                .bind("authorized")
                .bind(r.last_refreshed_at)
                .bind(r.access_token.as_bytes())
                .bind(r.refresh_token.as_bytes())
                .bind(r.access_expires_at)
                .bind(r.last_refreshed_at)
                .bind(1_i64)
                .bind(r.last_refreshed_at)
                .bind(r.last_refreshed_at);
        }
        q.execute(&mut tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    query("ANALYZE connections").execute(db).await.unwrap();
    eprintln!(
        "{}: seeded {} connections in {:?}",
        db.description(),
        rows.len(),
        started.elapsed()
    );
    // The plan of the keep-alive branch of the claim, for the record.
    let branch = "SELECT id FROM connections WHERE status = 'active' \
         AND last_refreshed_at < $1 AND (lease_until IS NULL OR lease_until <= $2) \
         ORDER BY last_refreshed_at LIMIT 100";
    let explain = match db.dialect().name {
        "SQLite" => format!("EXPLAIN QUERY PLAN {branch}"),
        _ => format!("EXPLAIN ANALYZE {branch} FOR UPDATE SKIP LOCKED"),
    };
    let plan = query(&explain)
        .bind(start_time() - time::Duration::days(25))
        .bind(start_time())
        .fetch_all(db)
        .await
        .unwrap();
    for row in plan {
        let line = row
            .get::<String>("detail")
            .or_else(|_| row.get::<String>("QUERY PLAN"))
            .unwrap_or_default();
        eprintln!("plan: {line}");
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let setup = BenchSetup::new();
    let rows = setup.rows(CONNECTIONS);
    let ids: Vec<ConnectionId> = rows.iter().map(|r| r.id).collect();
    let mut c = bench::criterion();

    let dir = tempfile::tempdir().unwrap();
    let sqlite = runtime.block_on(async {
        let store = SqliteStore::open(&dir.path().join("bench.db"), setup.dyn_clock())
            .await
            .unwrap();
        seed(store.db(), &rows).await;
        store
    });
    let store: Arc<dyn ConnectionStore> = Arc::new(sqlite.clone());
    bench::run(&mut c, "sqlite", &runtime, store, &setup, &ids);
    runtime.block_on(sqlite.close());

    // A fresh clock and lease state for the second backend, the same rows.
    let setup = BenchSetup {
        keyring: setup.keyring.clone(),
        clock: Arc::new(calconnect::MockClock::new(start_time())),
    };
    if let Some(db) = runtime.block_on(TestDatabase::create()) {
        let postgres = runtime.block_on(async {
            let store = PostgresStore::connect(&SecretString::from(db.url()), setup.dyn_clock())
                .await
                .unwrap();
            seed(store.db(), &rows).await;
            store
        });
        let store: Arc<dyn ConnectionStore> = Arc::new(postgres.clone());
        bench::run(&mut c, "postgres", &runtime, store, &setup, &ids);
        runtime.block_on(postgres.close());
        drop(db);
    }
    c.final_summary();
}
