//! Store benchmarks shared by the backend crates: sealed-token writes and reads per second, and
//! the due-for-refresh claim over a large seeded table. Each backend seeds rows with bulk
//! inserts of its own (see its `benches/store.rs`), then calls [`run`].

use crate::fixtures::{keyring, start_time};
use calconnect::crypto::{Keyring, SealContext, SealedBlob, SealedField};
use calconnect::store::*;
use calconnect::{Clock, MockClock};
use criterion::{Criterion, Throughput};
use rand::rngs::OsRng;
use rand::{Rng as _, SeedableRng as _};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::Duration;

/// One row to bulk-insert.
#[derive(Debug)]
pub struct SeedRow {
    /// Id.
    pub id: ConnectionId,
    /// End user.
    pub end_user: String,
    /// Client id.
    pub client_id: String,
    /// Cal.com user id.
    pub owner_id: i64,
    /// Sealed access token.
    pub access_token: SealedBlob,
    /// Sealed refresh token.
    pub refresh_token: SealedBlob,
    /// Access expiry.
    pub access_expires_at: time::OffsetDateTime,
    /// Refresh token obtained.
    pub last_refreshed_at: time::OffsetDateTime,
}

/// The benchmark setup: keyring and clock shared by seeding and measuring.
#[derive(Debug)]
pub struct BenchSetup {
    /// Keyring that sealed the rows.
    pub keyring: Arc<Keyring>,
    /// Clock the store must use.
    pub clock: Arc<MockClock>,
}

impl BenchSetup {
    /// A fresh setup.
    pub fn new() -> Self {
        Self {
            keyring: Arc::new(keyring("bench")),
            clock: Arc::new(MockClock::new(start_time())),
        }
    }

    /// The clock as `Arc<dyn Clock>`.
    pub fn dyn_clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// `n` rows: refresh tokens obtained uniformly over the last 30 days, access tokens expiring
    /// 30 minutes after that (so most are expired, as for idle connections).
    pub fn rows(&self, n: usize) -> Vec<SeedRow> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..n)
            .map(|i| {
                let id = ConnectionId::random(&mut OsRng);
                let seal = |field, value: String| {
                    self.keyring
                        .seal_secret(
                            &mut OsRng,
                            SealContext::connection(id.as_uuid(), field),
                            &SecretString::from(value),
                        )
                        .unwrap_or_else(|e| panic!("{e}"))
                };
                let age = Duration::seconds(rng.gen_range(0..30 * 24 * 3600));
                let last = start_time() - age;
                SeedRow {
                    id,
                    end_user: format!("app-user-{}", i % 50_000),
                    client_id: "bench-client".to_owned(),
                    owner_id: i64::try_from(i).unwrap_or(i64::MAX),
                    access_token: seal(
                        SealedField::AccessToken,
                        format!("eyJ-access-{i}-{}", "x".repeat(300)),
                    ),
                    refresh_token: seal(
                        SealedField::RefreshToken,
                        format!("eyJ-refresh-{i}-{}", "y".repeat(350)),
                    ),
                    access_expires_at: last + Duration::minutes(30),
                    last_refreshed_at: last,
                }
            })
            .collect()
    }
}

impl Default for BenchSetup {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs the benchmarks against `store` (seeded with `rows`, whose ids are given).
pub fn run(
    c: &mut Criterion,
    backend: &str,
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn ConnectionStore>,
    setup: &BenchSetup,
    ids: &[ConnectionId],
) {
    let mut group = c.benchmark_group(format!("{backend}/sealed_tokens"));
    group.throughput(Throughput::Elements(1));
    let next = AtomicUsize::new(0);
    group.bench_function("write (read version, seal 2 tokens, fenced write)", |b| {
        b.to_async(runtime).iter(|| async {
            let id = ids[next.fetch_add(1, Ordering::Relaxed) % ids.len()];
            let current = store
                .get_connection(id)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let seal = |field, v: &str| {
                setup
                    .keyring
                    .seal_secret(
                        &mut OsRng,
                        SealContext::connection(id.as_uuid(), field),
                        &SecretString::from(v),
                    )
                    .unwrap_or_else(|e| panic!("{e}"))
            };
            let write = TokenWrite {
                expected_version: current.version,
                access_token: seal(SealedField::AccessToken, "eyJ-new-access-token-0123456789"),
                refresh_token: Some(seal(
                    SealedField::RefreshToken,
                    "eyJ-new-refresh-token-0123456789",
                )),
                access_expires_at: Some(start_time() + Duration::minutes(30)),
                refresh_expires_at_estimate: Some(start_time() + Duration::days(30)),
                scopes: None,
            };
            store
                .write_tokens(id, write)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        });
    });
    group.bench_function("read (get + open 2 tokens)", |b| {
        b.to_async(runtime).iter(|| async {
            let id = ids[next.fetch_add(7, Ordering::Relaxed) % ids.len()];
            let c = store
                .get_connection(id)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for (field, blob) in [
                (SealedField::AccessToken, &c.access_token),
                (
                    SealedField::RefreshToken,
                    c.refresh_token.as_ref().unwrap_or(&c.access_token),
                ),
            ] {
                let plain = setup
                    .keyring
                    .open_string(blob, SealContext::connection(id.as_uuid(), field))
                    .unwrap_or_else(|e| panic!("{e}"));
                std::hint::black_box(plain.expose_secret().len());
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{backend}/due_for_refresh"));
    group.bench_function(format!("claim 100 of {} connections", ids.len()), |b| {
        b.to_async(runtime).iter(|| async {
            // Leases last 2 minutes; moving the clock 3 minutes frees them again, so every
            // iteration claims a full batch.
            setup.clock.advance(Duration::minutes(3));
            let claimed = store
                .claim_due_for_refresh(DueQuery {
                    access_expires_before: start_time() + Duration::minutes(5),
                    last_refreshed_before: start_time() - Duration::days(25),
                    limit: 100,
                    owner: LeaseOwner::new("bench"),
                    lease_for: Duration::minutes(2),
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(claimed.len(), 100);
        });
    });
    group.finish();
}

/// Short measurement settings: the machine is shared, numbers are indicative.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .configure_from_args()
}
