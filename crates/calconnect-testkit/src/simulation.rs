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

use crate::backends::PgBackend;
use crate::keeper::{self as kit, KeeperParts, SimTimer};
use calconnect::budget::BudgetConfig;
use calconnect::keeper::{KeeperConfig, KeeperError, SweepConfig, TokenKeeper};
use calconnect::store::{ConnectionId, ConnectionStatus, ConnectionStore};
use calconnect::{Clock, MockClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection as _;
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
    /// Simulated seconds between two sweeps; the instances take turns. A divisor or a multiple
    /// of 60: below a minute, time moves in steps of this length (callers still arrive on the
    /// minute).
    pub sweep_every_seconds: u32,
    /// Connections one sweep claims (`SweepConfig::batch`).
    pub sweep_batch: u32,
    /// How long a keep-alive refresh waits for a background permit (`SweepConfig::permit_wait`).
    /// Callers are served one at a time and a wait moves the clock, so a sweep that waits holds
    /// up every caller behind it; with sweeps every few seconds, zero (take what is free, defer
    /// the rest) is the faithful choice.
    pub sweep_permit_wait: StdDuration,
    /// Seeding spreads the connections over this many days before the run (connection `n` in
    /// hour `n mod 24 D`, the clocks moving an hour between), so the run starts with refresh
    /// tokens of every age below `D` days, as a deployment in its steady state has them; 0:
    /// all connected at the start (a wave due together later).
    pub connected_over_days: u32,
    /// Connections saved at once while seeding.
    pub seed_concurrency: usize,
    /// Print a line per simulated day to stderr.
    pub progress: bool,
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
            sweep_every_seconds: 30 * 60,
            sweep_batch: 50,
            sweep_permit_wait: StdDuration::from_secs(20),
            connected_over_days: 0,
            seed_concurrency: 8,
            progress: false,
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
    /// Connections whose refresh token passed its window while active (checked every 3 days and
    /// at the end).
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
    /// Access tokens held in the keepers' memory at the end (both instances).
    pub cached_tokens: usize,
    /// Wall time of seeding the connections.
    pub seeding: StdDuration,
    /// Wall time of the run (seeding excluded).
    pub wall: StdDuration,
}

/// Runs the simulation on two store handles (two instances) of the database of `backend`, the
/// stores on `clock`. Commits on that database are asynchronous (`synchronous_commit = off`):
/// a crash could lose the last commits, which a simulation does not care about, and the run
/// measures the keeper and the budget instead of the disk's flush latency.
///
/// # Panics
/// When the sandbox or the store fails (this is a test harness).
#[allow(clippy::too_many_lines)] // reason: one loop, read top to bottom
pub async fn run(config: &SimConfig, backend: &PgBackend, clock: Arc<MockClock>) -> SimReport {
    assert!(
        config.sweep_every_seconds > 0
            && (60 % config.sweep_every_seconds == 0 || config.sweep_every_seconds % 60 == 0),
        "sweep_every_seconds must divide a minute or be whole minutes"
    );
    sqlx::query(&format!(
        "ALTER DATABASE \"{}\" SET synchronous_commit = off",
        backend.db.name()
    ))
    .execute(
        &mut sqlx::postgres::PgConnection::connect(backend.db.url())
            .await
            .expect("database"),
    )
    .await
    .expect("synchronous_commit");
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let first = backend.store(dyn_clock.clone()).await;
    let pool = first.pool().clone();
    let stores: [Arc<dyn ConnectionStore>; 2] = [
        Arc::new(first),
        Arc::new(backend.store(dyn_clock.clone()).await),
    ];
    let sandbox = Arc::new(kit::sandbox(Some(clock.now())).await);
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
                    batch: config.sweep_batch,
                    permit_wait: config.sweep_permit_wait,
                    ..SweepConfig::default()
                })
                .build()
                .expect("keeper config"),
        )
    };
    let keepers: [TokenKeeper; 2] = [keeper(0), keeper(1)];

    // Seeding: every connection connected at the start (a wave due together later), or spread
    // over `connected_over_days` days before it.
    let seeding = Instant::now();
    let hours = (i64::from(config.connected_over_days) * 24).max(1);
    let mut connected: Vec<(i64, ConnectionId)> = Vec::with_capacity(config.connections as usize);
    for hour in 0..hours {
        if hour > 0 {
            timer.advance(Duration::hours(1));
        }
        // The users `n` with `n mod hours == hour`.
        let first = if hour == 0 { hours } else { hour };
        let users = (first..=i64::from(config.connections)).step_by(hours as usize);
        let ids = parts(&stores[0])
            .connect_many(&sandbox, users.clone(), config.seed_concurrency)
            .await;
        connected.extend(users.zip(ids));
    }
    connected.sort_unstable_by_key(|(n, _)| *n);
    let ids: Vec<ConnectionId> = connected.into_iter().map(|(_, id)| id).collect();
    sqlx::query("ANALYZE connections")
        .execute(&pool)
        .await
        .expect("analyze");
    sandbox.update_settings(|s| s.ip_rate_limit = config.ip_rate_limit);
    sandbox.reset_token_calls();
    let seeding = seeding.elapsed();
    let start = clock.now();
    if config.progress {
        eprintln!("seeded {} connections in {seeding:.1?}", ids.len());
    }
    let dormant = (f64::from(config.connections) * config.dormant_share).round() as usize;
    let users: Vec<ConnectionId> = ids[dormant..].to_vec();

    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut report = SimReport::default();
    let mut waits: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut schedule: BTreeMap<u32, Vec<ConnectionId>> = BTreeMap::new();
    let wall = Instant::now();
    let step = config.sweep_every_seconds.min(60);
    for tick in 0..config.days * 24 * 60 * (60 / step) {
        let second = tick * step;
        let at = start + Duration::seconds(i64::from(second));
        let now = clock.now();
        if now < at {
            timer.advance(at - now);
        }
        if second % config.sweep_every_seconds == 0 {
            let keeper = &keepers[(second / config.sweep_every_seconds) as usize % 2];
            loop {
                let sweep = keeper.sweep_once().await.expect("sweep");
                report.sweep_deferred += sweep.deferred as u64;
                report.kept_alive += sweep.kept_alive as u64;
                if !sweep.more_due(config.sweep_batch) {
                    break;
                }
            }
        }
        if second % 60 != 0 {
            continue;
        }
        let minute = second / 60;
        let at = start + Duration::minutes(i64::from(minute));
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
                        .entry(e.outcome().to_owned())
                        .or_default() += 1;
                }
            }
        }
        if minute % (3 * 24 * 60) == 0 {
            check_ages(&pool, clock.now(), &mut report).await;
        }
        if config.progress && minute % (24 * 60) == 0 {
            eprintln!(
                "day {day}: {:.0?} wall, {} kept alive, {} deferred, {} calls, {} refreshes",
                wall.elapsed(),
                report.kept_alive,
                report.sweep_deferred,
                report.calls[0] + report.calls[1],
                kit::refreshes(&sandbox),
            );
        }
    }
    check_ages(&pool, clock.now(), &mut report).await;
    report.wall = wall.elapsed();
    report.seeding = seeding;
    report.cached_tokens = keepers.iter().map(TokenKeeper::cached_tokens).sum();
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

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Adds the connections whose refresh token passed its window by `now` to the report, and
/// the oldest refresh token's age.
async fn check_ages(pool: &sqlx::PgPool, now: OffsetDateTime, report: &mut SimReport) {
    let (oldest, lapsed) = refresh_ages(pool, now, now - Duration::days(30)).await;
    report.oldest_refresh_token_days = report
        .oldest_refresh_token_days
        .max((now - oldest).as_seconds_f64() / 86_400.0);
    report.lapsed += lapsed;
}

/// The oldest `last_refreshed_at` among the active connections (`now` if none), and how many
/// of them were obtained before `cutoff` (lapsed). One query: a million rows are read in the
/// database, not fetched.
async fn refresh_ages(
    pool: &sqlx::PgPool,
    now: OffsetDateTime,
    cutoff: OffsetDateTime,
) -> (OffsetDateTime, u64) {
    let (oldest, lapsed): (Option<OffsetDateTime>, i64) = sqlx::query_as(
        "SELECT min(last_refreshed_at), count(*) FILTER (WHERE last_refreshed_at < $1) \
         FROM connections WHERE status = 'active'",
    )
    .bind(cutoff)
    .fetch_one(pool)
    .await
    .expect("refresh ages");
    (oldest.unwrap_or(now), u64::try_from(lapsed).unwrap_or(0))
}
