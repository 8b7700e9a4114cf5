//! The keeper simulation at any scale (docs/scaling.md, `calconnect_testkit::simulation`), on a
//! fresh PostgreSQL database, printing the report, the wall time and the peak RSS.
//!
//! ```text
//! CALCONNECT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p calconnect-testkit --bin simulate -- \
//!   [--connections N] [--days D] [--dormant SHARE] [--burst-per-hour P] [--calls-per-burst K]
//!   [--overload-from-day D] [--overload-factor F] [--per-minute R] [--burst B]
//!   [--exchange-reserve N]
//!   [--max-wait-secs S] [--ip-rate-limit L] [--sweep-every-seconds S] [--sweep-batch N]
//!   [--sweep-permit-wait-secs S] [--connected-over-days D] [--seed S] [--threads N]
//!   [--small | --full] [--quiet]
//! ```
//!
//! Without flags: 2,000 connections, Cal.com's numbers (a budget of 100 per minute, burst 10,
//! against the sandbox's 120 per minute per IP), half dormant, 5 % of the others calling in any
//! hour, 60 days, no overload. `--small` starts from the test suite's configuration instead.
//! `--full` is the issue's full scale: 1,000,000 connections, 2 % of them in use (5 % of those
//! start a burst of 3 calls in any hour: about 1,000 bursts an hour, within what one egress IP
//! keeps fresh), the rest dormant; from day 57 the bursts are 6 times as frequent (past
//! capacity); a sweep every 5 s, the instances taking turns, each taking the background permits
//! free then (about what the real keeper's continuous sweeping takes, docs/scaling.md). A sweep
//! that does not wait must come before the background bucket is full (here 4.2 of its 5 permits
//! accrue between two sweeps), or permits are lost and keep-alive runs below its share.
//! Flags after a preset change it. `--connected-over-days D` seeds the connections hour by hour
//! over the D days before the run, so it starts in the steady state (refresh tokens of every age
//! below D days; with 15, keep-alive is due from the first day). `--threads N` runs on N runtime
//! threads (default 1: a simulated day is a chain of round trips, cheapest on one thread, and
//! cheaper still with PostgreSQL pinned to the same core; see SIMULATION.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: a measuring tool; failing loudly is right

use calconnect::MockClock;
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
        sweep_every_seconds: 5 * 60,
        calls_per_burst: 3,
        progress: true,
        ..SimConfig::small()
    }
}

fn full_config() -> SimConfig {
    SimConfig {
        connections: 1_000_000,
        dormant_share: 0.98,
        burst_per_hour: 0.05,
        overload_from_day: Some(57),
        overload_factor: 6.0,
        sweep_every_seconds: 5,
        sweep_batch: 5,
        sweep_permit_wait: Duration::ZERO,
        seed_concurrency: 16,
        ..default_config()
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
    let mut threads = 1;
    while let Some(flag) = args.next() {
        if flag == "--small" {
            config = SimConfig::small();
            continue;
        }
        if flag == "--full" {
            config = full_config();
            continue;
        }
        if flag == "--quiet" {
            config.progress = false;
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
            "--exchange-reserve" => config.budget.exchange_reserve = num(&flag, &value),
            "--max-wait-secs" => {
                config.budget.max_wait = Duration::from_secs(num(&flag, &value));
            }
            "--ip-rate-limit" => config.ip_rate_limit = num(&flag, &value),
            "--sweep-every-seconds" => {
                config.sweep_every_seconds = num(&flag, &value);
            }
            "--sweep-batch" => config.sweep_batch = num(&flag, &value),
            "--sweep-permit-wait-secs" => {
                config.sweep_permit_wait = Duration::from_secs(num(&flag, &value));
            }
            "--connected-over-days" => config.connected_over_days = num(&flag, &value),
            "--seed" => config.seed = num(&flag, &value),
            "--threads" => threads = num(&flag, &value),
            other => panic!("unknown flag {other} (see --help)"),
        }
    }
    config.budget.validate().expect("budget");
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .unwrap();
    runtime.block_on(async {
        let backend = PgBackend::create()
            .await
            .expect("set CALCONNECT_TEST_POSTGRES_URL to a reachable PostgreSQL");
        let clock = Arc::new(MockClock::new(calconnect_testkit::fixtures::start_time()));
        println!("{config:#?}");
        let report = run(&config, &backend, clock).await;
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
