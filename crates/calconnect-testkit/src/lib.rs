//! Test helpers for calconnect (dev only): the store conformance suite, run here against every
//! [`ConnectionStore`] (memory, and the one SQL store on SQLite and on PostgreSQL: `tests/`),
//! per-test PostgreSQL databases, the store benchmarks and the token keeper's fixtures.
//!
//! The testkit depends on the stores; the store crates do not depend on it, so their tests live
//! here (docs/architecture.md §2.2). A store runs the whole suite with one line in a test:
//!
//! ```ignore
//! calconnect_testkit::conformance_tests!(my_backend());
//! ```
//!
//! where `my_backend()` is an `async` expression giving `Option<impl TestBackend>` (`None`
//! skips, for example when PostgreSQL is not reachable and `CALCONNECT_REQUIRE_ALL` is unset).

pub mod backends;
pub mod bench;
pub mod conformance;
pub mod fixtures;
pub mod keeper;
pub mod postgres;
pub mod simulation;

use async_trait::async_trait;
use calconnect::Clock;
use calconnect::store::{ConnectionStore, MemoryStore};
use std::sync::{Arc, Mutex};

/// One test's database. Each call to [`TestBackend::open`] opens a new handle (a new pool, as a
/// second process would) on the same data, running migrations as a real start-up does.
#[async_trait]
pub trait TestBackend: Send + Sync {
    /// Opens a handle on this test's database.
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn ConnectionStore>;
}

/// The in-memory store as a [`TestBackend`]: every handle is the same store.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    store: Mutex<Option<Arc<MemoryStore>>>,
}

#[async_trait]
impl TestBackend for MemoryBackend {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn ConnectionStore> {
        let mut store = self.store.lock().unwrap();
        store
            .get_or_insert_with(|| Arc::new(MemoryStore::new(clock)))
            .clone()
    }
}

/// Whether optional suites must run (CI sets `CALCONNECT_REQUIRE_ALL=1`).
pub fn require_all() -> bool {
    std::env::var("CALCONNECT_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Generates one `#[tokio::test]` per conformance check for a backend.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@each $backend;
            pending_round_trip,
            pending_expiry_and_purge,
            pending_single_use_under_concurrent_consumers,
            connection_round_trip_and_listing,
            identity_uniqueness,
            concurrent_saves_of_one_identity_make_one_connection,
            lease_contention_between_tasks,
            lease_expiry_renewal_and_release,
            fenced_token_writes,
            clearing_refresh_intent,
            concurrent_fenced_writers_one_wins,
            status_changes_and_events,
            delete_keeps_events,
            due_for_refresh_claims,
            due_for_refresh_concurrent_claimers_are_disjoint,
            missing_records,
            migrations_run_twice_and_concurrently,
            key_rotation_with_concurrent_writes,
            counts_by_status,
            refresh_budget_is_shared_by_instances,
            profiles_are_kept_with_connections,
            profile_checks_are_claimed_once,
            listing_pages_with_filters
        );
    };
    (@each $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(backend) = $backend.await else { return };
                $crate::conformance::$name(&backend).await;
            }
        )*
    };
}
