//! The keeper simulation at any scale (docs/scaling.md, `calconnect_testkit::simulation`), on a
//! fresh PostgreSQL database, printing the report, the wall time and the peak RSS.
//!
//! ```text
//! CALCONNECT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p calconnect-testkit --bin simulate -- \
//!   [--connections N] [--days D] [--dormant SHARE] [--burst-per-hour P] [--calls-per-burst K]
//!   [--overload-from-day D] [--overload-factor F] [--per-minute R] [--burst B]
//!   [--max-wait-secs S] [--ip-rate-limit L] [--sweep-every-minutes M] [--seed S] [--small]
//! ```
//!
//! Without flags: 2,000 connections, Cal.com's numbers (a budget of 100 per minute, burst 10,
//! against the sandbox's 120 per minute per IP), half dormant, 5 % of the others calling in any
//! hour, 60 days, no overload. `--small` starts from the test suite's configuration instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: a measuring tool; failing loudly is right

use calconnect::store::ConnectionStore;
use calconnect::{Clock, MockClock};
use calconnect_testkit::backends::PgBackend;
use calconnect_testkit::simulation::{SimConfig, run};
use std::sync::Arc;
use std::time::Duration;

fn default_config() -> SimConfig {
    SimConfig {
        connections: 2_000,
        overload_from_day: None,
        overload_factor: 1.0,
        budget: calconnect::budget::BudgetConfig {
            name: "sim".into(),
            ..calconnect::budget::BudgetConfig::default()
        },
        ip_rate_limit: 120,
        sweep_every_minutes: 10,
        calls_per_burst: 3,
        ..SimConfig::small()
    }
}

fn num<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{flag}: `{value}` is not a number"))
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut config = default_config();
    while let Some(flag) = args.next() {
        if flag == "--small" {
            config = SimConfig::small();
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!(
                "{}",
                include_str!("simulate.rs")
                    .lines()
                    .take_while(|l| l.starts_with("//!"))
                    .map(|l| l.trim_start_matches("//!").trim_start())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            return;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--connections" => config.connections = num(&flag, &value),
            "--days" => config.days = num(&flag, &value),
            "--dormant" => config.dormant_share = num(&flag, &value),
            "--burst-per-hour" => config.burst_per_hour = num(&flag, &value),
            "--calls-per-burst" => config.calls_per_burst = num(&flag, &value),
            "--overload-from-day" => {
                config.overload_from_day = Some(num(&flag, &value));
            }
            "--overload-factor" => config.overload_factor = num(&flag, &value),
            "--per-minute" => config.budget.per_minute = num(&flag, &value),
            "--burst" => config.budget.burst = num(&flag, &value),
            "--max-wait-secs" => {
                config.budget.max_wait = Duration::from_secs(num(&flag, &value));
            }
            "--ip-rate-limit" => config.ip_rate_limit = num(&flag, &value),
            "--sweep-every-minutes" => {
                config.sweep_every_minutes = num(&flag, &value);
            }
            "--seed" => config.seed = num(&flag, &value),
            other => panic!("unknown flag {other} (see --help)"),
        }
    }
    config.budget.validate().expect("budget");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = PgBackend::create()
            .await
            .expect("set CALCONNECT_TEST_POSTGRES_URL to a reachable PostgreSQL");
        let clock = Arc::new(MockClock::new(calconnect_testkit::fixtures::start_time()));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let a: Arc<dyn ConnectionStore> = Arc::new(backend.store(dyn_clock.clone()).await);
        let b: Arc<dyn ConnectionStore> = Arc::new(backend.store(dyn_clock).await);
        println!("{config:#?}");
        let report = run(&config, [a, b], clock).await;
        println!("{report:#?}");
    });
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!("{peak}");
}
