//! A deterministic simulation of the keeper at scale (docs/scaling.md): connections in a store,
//! two keeper instances sharing one refresh budget through it, a usage model, and the sandbox's
//! token endpoint limited per IP as Cal.com's is. Time is a mock clock moved minute by minute;
//! waiting for a budget permit moves it too ([`crate::keeper::SimTimer`]), so nothing sleeps and
//! a run with the same seed makes the same requests.
//!
//! The usage model: a share of the connections is dormant (never calls the API: only the
//! keep-alive sweep keeps it); in every hour each other connection starts a burst of API calls
//! with a probability, the calls a few minutes apart, each asking a random instance for an
//! access token. From `overload_from_day` the probability is multiplied, to push the load past
//! what the budget carries and see what degrades.

use crate::keeper::{self as kit, KeeperParts, SimTimer};
use calconnect::budget::BudgetConfig;
use calconnect::keeper::{KeeperConfig, KeeperError, SweepConfig, TokenKeeper};
use calconnect::store::{ConnectionId, ConnectionStatus, ConnectionStore};
use calconnect::{Clock, MockClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use time::{Duration, OffsetDateTime};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Connections.
    pub connections: u32,
    /// Share of them that never call the API.
    pub dormant_share: f64,
    /// Probability that a non-dormant connection starts a burst in a given hour.
    pub burst_per_hour: f64,
    /// API calls per burst, two minutes apart.
    pub calls_per_burst: u32,
    /// Simulated days.
    pub days: u32,
    /// From this day on, `burst_per_hour` is multiplied by `overload_factor`.
    pub overload_from_day: Option<u32>,
    /// See `overload_from_day`.
    pub overload_factor: f64,
    /// The refresh budget both instances share.
    pub budget: BudgetConfig,
    /// The sandbox's per-IP limit on token requests per minute (Cal.com: 120).
    pub ip_rate_limit: u32,
    /// Minutes between two sweeps of one instance (the instances alternate).
    pub sweep_every_minutes: u32,
    /// The seed of the usage model.
    pub seed: u64,
}

impl SimConfig {
    /// The small run of the test suite: 120 connections, half dormant, a budget of 1 per
    /// minute (burst 3, callers wait up to a minute) against a sandbox limit of 4 per minute, 60 days, the last 3 with every
    /// active connection calling every hour (60 refreshes an hour wanted, 60 an hour allowed,
    /// keep-alive included: past capacity).
    pub fn small() -> Self {
        Self {
            connections: 120,
            dormant_share: 0.5,
            burst_per_hour: 0.05,
            calls_per_burst: 2,
            days: 60,
            overload_from_day: Some(57),
            overload_factor: 40.0,
            budget: BudgetConfig {
                name: "sim".into(),
                per_minute: 1,
                burst: 3,
                exchange_reserve: 1,
                background_share: 0.5,
                max_wait: StdDuration::from_secs(60),
            },
            ip_rate_limit: 4,
            sweep_every_minutes: 60,
            seed: 17,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Token-endpoint requests in the busiest minute of the sandbox clock.
    pub max_requests_per_minute: u64,
    /// 429 answers of the token endpoint.
    pub rate_limited: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Connections whose refresh token passed its window while active (checked every 3 days).
    pub lapsed: u64,
    /// Connections that are `needs_reauth` or `refresh_lost` at the end.
    pub broken: u64,
    /// On-demand calls (access tokens asked for) before the overload, and during it.
    pub calls: [u64; 2],
    /// Calls answered `BudgetExhausted` before the overload, and during it.
    pub budget_exhausted: [u64; 2],
    /// Calls failed otherwise, by outcome.
    pub other_errors: BTreeMap<String, u64>,
    /// Waits of on-demand callers in milliseconds of simulated time: p50 and p99 before the
    /// overload, and during it.
    pub wait_p50_ms: [u64; 2],
    /// See `wait_p50_ms`.
    pub wait_p99_ms: [u64; 2],
    /// Keep-alive refreshes deferred by the budget (summed sweep reports).
    pub sweep_deferred: u64,
    /// Keep-alive refreshes done.
    pub kept_alive: u64,
    /// The oldest refresh token among active connections at any check, in days.
    pub oldest_refresh_token_days: f64,
    /// Wall time of the run (seeding excluded).
    pub wall: StdDuration,
}

/// Runs the simulation on two store handles of one database (two instances), with `clock` the
/// stores' clock.
///
/// # Panics
/// When the sandbox or the store fails (this is a test harness).
#[allow(clippy::too_many_lines)] // reason: one loop, read top to bottom
pub async fn run(
    config: &SimConfig,
    stores: [Arc<dyn ConnectionStore>; 2],
    clock: Arc<MockClock>,
) -> SimReport {
    let start = clock.now();
    let sandbox = Arc::new(kit::sandbox(Some(start)).await);
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let url = sandbox.base_url().as_str().to_owned();
    let keyring = Arc::new(crate::fixtures::keyring("sim"));
    let flow = Arc::new(kit::flow(
        &url,
        kit::http(StdDuration::from_secs(10)),
        dyn_clock.clone(),
    ));
    let timer = Arc::new(SimTimer::new(clock.clone(), Some(sandbox.clone())));
    let parts = |store: &Arc<dyn ConnectionStore>| KeeperParts {
        store: store.clone(),
        keyring: keyring.clone(),
        flow: flow.clone(),
        clock: dyn_clock.clone(),
    };
    let keeper = |i: usize| {
        let store = &stores[i];
        parts(store).keeper(
            KeeperConfig::builder()
                .instance_name(format!("sim-{i}"))
                .jitter_seed(config.seed + i as u64)
                .timer(timer.clone())
                .budget(store.budget(config.budget.clone(), dyn_clock.clone()))
                .sweep(SweepConfig {
                    concurrency: 1,
                    batch: 50,
                    ..SweepConfig::default()
                })
                .build()
                .expect("keeper config"),
        )
    };
    let keepers: [TokenKeeper; 2] = [keeper(0), keeper(1)];

    // Seeding: every connection connected at the start (a wave due together later).
    sandbox.update_settings(|s| s.ip_rate_limit = u32::MAX);
    let seeder = parts(&stores[0]);
    let mut ids = Vec::with_capacity(config.connections as usize);
    for user in 1..=i64::from(config.connections) {
        ids.push(seeder.connect(&sandbox, user).await);
    }
    sandbox.update_settings(|s| s.ip_rate_limit = config.ip_rate_limit);
    sandbox.reset_token_calls();
    let dormant = (f64::from(config.connections) * config.dormant_share).round() as usize;
    let users: Vec<ConnectionId> = ids[dormant..].to_vec();

    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut report = SimReport::default();
    let mut waits: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut schedule: BTreeMap<u32, Vec<ConnectionId>> = BTreeMap::new();
    let window = Duration::days(30);
    let wall = Instant::now();
    for minute in 0..config.days * 24 * 60 {
        let at = start + Duration::minutes(i64::from(minute));
        let now = clock.now();
        if now < at {
            timer.advance(at - now);
        }
        let day = minute / (24 * 60);
        let phase = usize::from(config.overload_from_day.is_some_and(|d| day >= d));
        if minute % 60 == 0 {
            let p = if phase == 1 {
                (config.burst_per_hour * config.overload_factor).min(1.0)
            } else {
                config.burst_per_hour
            };
            for id in &users {
                if rng.gen_bool(p) {
                    let first = minute + rng.gen_range(0..60);
                    for k in 0..config.calls_per_burst {
                        schedule.entry(first + 2 * k).or_default().push(*id);
                    }
                }
            }
        }
        for id in schedule.remove(&minute).unwrap_or_default() {
            let keeper = &keepers[rng.gen_range(0..2)];
            report.calls[phase] += 1;
            // Callers are served in arrival order, one at a time, and a permit wait moves the
            // clock: when the clock has run ahead of this caller's arrival by more than the
            // budget's `max_wait`, the caller gave up in the queue (the typed error it gets).
            if clock.now() - at > config.budget.max_wait {
                report.budget_exhausted[phase] += 1;
                continue;
            }
            match keeper.access_token(id).await {
                Ok(_) => {
                    let waited = (clock.now() - at).whole_milliseconds().max(0);
                    waits[phase].push(u64::try_from(waited).unwrap_or(u64::MAX));
                }
                Err(KeeperError::BudgetExhausted { .. }) => report.budget_exhausted[phase] += 1,
                Err(e) => {
                    *report
                        .other_errors
                        .entry(outcome_of(&e).to_owned())
                        .or_default() += 1;
                }
            }
        }
        let every = config.sweep_every_minutes.max(2);
        for (i, keeper) in keepers.iter().enumerate() {
            if minute % every == (every / 2) * i as u32 {
                let sweep = keeper.sweep_once().await.expect("sweep");
                report.sweep_deferred += sweep.deferred as u64;
                report.kept_alive += sweep.kept_alive as u64;
            }
        }
        if minute % (3 * 24 * 60) == 0 {
            let now = clock.now();
            let (oldest, lapsed) = refresh_ages(&stores[0], &ids, now, now - window).await;
            report.oldest_refresh_token_days = report
                .oldest_refresh_token_days
                .max((now - oldest).as_seconds_f64() / 86_400.0);
            report.lapsed += lapsed;
        }
    }
    report.wall = wall.elapsed();
    let per_minute = sandbox.token_calls_per_minute();
    report.max_requests_per_minute = per_minute.values().copied().max().unwrap_or(0);
    report.rate_limited = sandbox
        .token_call_counts()
        .iter()
        .filter(|c| c.outcome == "rate_limited")
        .map(|c| c.count)
        .sum();
    report.refreshes = kit::refreshes(&sandbox);
    let counts = stores[0].count_by_status().await.expect("counts");
    report.broken =
        counts.get(ConnectionStatus::NeedsReauth) + counts.get(ConnectionStatus::RefreshLost);
    for (phase, w) in waits.iter_mut().enumerate() {
        w.sort_unstable();
        report.wait_p50_ms[phase] = percentile(w, 0.50);
        report.wait_p99_ms[phase] = percentile(w, 0.99);
    }
    report
}

fn outcome_of(e: &KeeperError) -> &'static str {
    match e {
        KeeperError::NeedsReauth { .. } => "needs_reauth",
        KeeperError::RefreshLost { .. } => "refresh_lost",
        KeeperError::Transient { .. } => "transient",
        KeeperError::NotFound { .. } => "not_found",
        KeeperError::Store { .. } => "store",
        KeeperError::Crypto { .. } => "crypto",
        KeeperError::Refresh { .. } => "protocol",
        _ => "other",
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The oldest `last_refreshed_at` among the active ones of `ids` (`now` if none), and how many
/// of them were obtained before `cutoff` (lapsed).
async fn refresh_ages(
    store: &Arc<dyn ConnectionStore>,
    ids: &[ConnectionId],
    now: OffsetDateTime,
    cutoff: OffsetDateTime,
) -> (OffsetDateTime, u64) {
    let mut oldest = now;
    let mut lapsed = 0;
    for id in ids {
        let c = store.get_connection(*id).await.expect("connection");
        if c.status == ConnectionStatus::Active {
            oldest = oldest.min(c.last_refreshed_at);
            if c.last_refreshed_at < cutoff {
                lapsed += 1;
            }
        }
    }
    (oldest, lapsed)
}
