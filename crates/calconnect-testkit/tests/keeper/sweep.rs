//! The keep-alive sweep on the injected clock: due connections (refresh token half the window
//! old) are refreshed, in batches, each by exactly one instance; the spawned sweep stops
//! gracefully.

use super::{config, env};
use async_trait::async_trait;
use calconnect::api::Timer;
use calconnect::{keeper::KeeperConfig, keeper::SweepConfig};
use calconnect_testkit::keeper::{invalid_grants, refreshes};
use futures::future::join_all;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;

fn sweep_config(batch: u32) -> KeeperConfig {
    config()
        .to_builder()
        .sweep(SweepConfig {
            batch,
            concurrency: 3,
            ..SweepConfig::default()
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn refreshes_idle_connections_before_the_window_closes() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.parts.keeper(sweep_config(100));
    env.advance(Duration::days(14));
    assert_eq!(
        keeper.sweep_once().await.unwrap().claimed,
        0,
        "14 of 30 days: not due"
    );
    env.advance(Duration::days(2));
    let report = keeper.sweep_once().await.unwrap();
    assert_eq!((report.claimed, report.kept_alive), (1, 1), "{report:?}");
    assert_eq!(refreshes(&env.sandbox), 1);
    let c = env.parts.store.get_connection(id).await.unwrap();
    assert_eq!(c.last_refreshed_at, env.parts.clock.now());
    assert!(c.lease.is_none());
    assert_eq!(keeper.sweep_once().await.unwrap().claimed, 0, "fresh again");
    assert_eq!(invalid_grants(&env.sandbox), 0);
}

#[tokio::test]
async fn a_one_year_window_sweeps_after_half_a_year() {
    let env = env().await;
    env.connect(1).await;
    let keeper = env.parts.keeper(
        sweep_config(100)
            .to_builder()
            .refresh_window(StdDuration::from_secs(365 * 86_400))
            .build()
            .unwrap(),
    );
    // The sandbox issues 30-day refresh tokens; keep its clock still, move only ours.
    env.clock.advance(Duration::days(100));
    assert_eq!(keeper.sweep_once().await.unwrap().claimed, 0);
    env.clock.advance(Duration::days(83));
    assert_eq!(keeper.sweep_once().await.unwrap().kept_alive, 1);
}

#[tokio::test]
async fn batches_spread_the_work_and_instances_never_share_a_connection() {
    let env = env().await;
    for user in 100..110 {
        env.connect(user).await;
    }
    env.advance(Duration::days(16));
    let a = env.parts.keeper(sweep_config(4));
    let first = a.sweep_once().await.unwrap();
    assert_eq!(first.kept_alive, 4, "one batch per sweep");
    // Two instances sweep the rest at the same time.
    let b = env.parts.keeper(sweep_config(4));
    let reports = join_all([
        a.sweep_once(),
        b.sweep_once(),
        a.sweep_once(),
        b.sweep_once(),
    ])
    .await;
    let kept: usize = reports.iter().map(|r| r.as_ref().unwrap().kept_alive).sum();
    assert_eq!(kept, 6);
    assert_eq!(refreshes(&env.sandbox), 10, "each connection exactly once");
    assert_eq!(invalid_grants(&env.sandbox), 0);
}

/// Sleeps only yield: the sweep loop runs as fast as the test polls it.
#[derive(Debug)]
struct InstantTimer;

#[async_trait]
impl Timer for InstantTimer {
    fn now(&self) -> StdDuration {
        StdDuration::ZERO
    }
    async fn sleep(&self, _duration: StdDuration) {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn spawned_sweep_runs_and_stops_gracefully() {
    let env = env().await;
    let id = env.connect(1).await;
    env.advance(Duration::days(20));
    let keeper = env.parts.keeper(
        sweep_config(10)
            .to_builder()
            .timer(Arc::new(InstantTimer))
            .build()
            .unwrap(),
    );
    let handle = keeper.spawn_sweep();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let c = env.parts.store.get_connection(id).await.unwrap();
        if c.last_refreshed_at == env.parts.clock.now() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep never ran"
        );
        tokio::task::yield_now().await;
    }
    handle.stop().await;
    assert_eq!(refreshes(&env.sandbox), 1);
}

/// Every connection the sweep keeps alive passes through the keeper's cache; at a million
/// connections, keeping one token per connection ever seen would be gigabytes. Expired tokens
/// are dropped as the cache grows: three groups of 1,000 connections read an hour apart leave
/// about one group's tokens, not three.
#[tokio::test]
async fn the_cache_drops_expired_tokens_as_it_grows() {
    let env = env().await;
    let keeper = env.keeper();
    for group in 0..3_i64 {
        let users = group * 1_000 + 1..=group * 1_000 + 1_000;
        let ids = env.parts.connect_many(&env.sandbox, users, 8).await;
        for id in ids {
            keeper.access_token(id).await.unwrap();
        }
        env.advance(Duration::hours(1));
    }
    assert_eq!(
        refreshes(&env.sandbox),
        0,
        "the stored tokens were still valid"
    );
    let cached = keeper.cached_tokens();
    assert!(
        (1_000..=1_100).contains(&cached),
        "{cached} tokens cached: the expired ones were kept"
    );
}
