//! The keeper at scale, simulated (docs/scaling.md): 60 days of two instances sharing one
//! refresh budget on PostgreSQL, against the sandbox's per-IP limit. Small scale here; the full
//! scale runs as `cargo run --release -p calconnect-testkit --bin simulate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calconnect_testkit::backends::PgBackend;
use calconnect_testkit::fixtures;
use calconnect_testkit::simulation::{SimConfig, run};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_days_within_the_budget_and_degrading_by_waiting_past_it() {
    let Some(backend) = PgBackend::create().await else {
        return;
    };
    let clock = Arc::new(calconnect::MockClock::new(fixtures::start_time()));
    let config = SimConfig::small();
    let report = run(&config, &backend, clock).await;
    eprintln!("{report:#?}");
    let budget = &config.budget;
    // Never past the budget, so never a 429.
    assert!(
        report.max_requests_per_minute <= u64::from(budget.per_minute + budget.burst),
        "{report:?}"
    );
    assert_eq!(report.rate_limited, 0, "{report:?}");
    // No connection lost, none lapsed: the dormant half was kept alive by the sweep.
    assert_eq!((report.lapsed, report.broken), (0, 0), "{report:?}");
    assert!(report.oldest_refresh_token_days < 30.0, "{report:?}");
    assert!(report.other_errors.is_empty(), "{report:?}");
    let dormant = (f64::from(config.connections) * config.dormant_share) as u64;
    assert!(report.kept_alive >= dormant * 3, "{report:?}");
    // Within capacity: every caller served, and quickly.
    assert_eq!(report.budget_exhausted[0], 0, "{report:?}");
    assert!(report.wait_p99_ms[0] <= 60_000, "{report:?}");
    // Past it: callers wait, then get the typed error; nothing else.
    assert!(report.budget_exhausted[1] > 0, "{report:?}");
    assert!(report.wait_p50_ms[1] >= report.wait_p50_ms[0], "{report:?}");
}
