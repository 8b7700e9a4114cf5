//! The token-endpoint budget in the keeper (docs/scaling.md): an on-demand refresh waits for a
//! permit and then fails typed, never sending what the budget refuses; a 429 pauses the budget
//! for every instance; the sweep defers when the budget is spent and catches up later.

use super::{Env, config, env};
use calconnect::budget::{BudgetConfig, RefreshBudget};
use calconnect::keeper::{KeeperError, SweepConfig, TokenKeeper};
use calconnect::store::ConnectionStatus;
use calconnect_sandbox::FaultKind;
use calconnect_testkit::keeper::{SimTimer, refreshes};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;

fn budget(env: &Env, burst: u32, max_wait: StdDuration) -> Arc<dyn RefreshBudget> {
    env.parts.store.budget(
        BudgetConfig {
            per_minute: 60,
            burst,
            exchange_reserve: 1,
            max_wait,
            ..BudgetConfig::default()
        },
        env.parts.clock.clone(),
    )
}

fn keeper(env: &Env, budget: Arc<dyn RefreshBudget>, name: &str) -> TokenKeeper {
    sweeper(env, budget, name, StdDuration::from_secs(5))
}

/// A keeper on the simulated timer whose sweep runs one refresh at a time and waits at most
/// `permit_wait` for a background permit.
fn sweeper(
    env: &Env,
    budget: Arc<dyn RefreshBudget>,
    name: &str,
    permit_wait: StdDuration,
) -> TokenKeeper {
    env.parts.keeper(
        config()
            .to_builder()
            .budget(budget)
            .timer(Arc::new(SimTimer::new(
                env.clock.clone(),
                Some(env.sandbox.clone()),
            )))
            .instance_name(name)
            .sweep(SweepConfig {
                concurrency: 1,
                permit_wait,
                ..SweepConfig::default()
            })
            .build()
            .unwrap(),
    )
}

fn token_calls(env: &Env) -> u64 {
    env.sandbox
        .token_call_counts()
        .iter()
        .map(|c| c.count)
        .sum()
}

/// Burst 3 with one permit kept for code exchanges: two on-demand refreshes go through, the
/// third waits. Allowed to wait half a second it fails with `BudgetExhausted` and nothing is
/// sent (the old token is still served while valid); allowed two seconds it waits one
/// (simulated) second and refreshes.
#[tokio::test]
async fn on_demand_refreshes_wait_for_a_permit_then_fail_typed() {
    let env = env().await;
    let ids = [
        env.connect(1).await,
        env.connect(2).await,
        env.connect(3).await,
    ];
    env.sandbox.reset_token_calls();
    let impatient = keeper(&env, budget(&env, 3, StdDuration::from_millis(500)), "a");
    let old = impatient.access_token(ids[2]).await.unwrap();
    env.advance(Duration::minutes(26)); // 4 minutes left: within the margin
    impatient.refresh_now(ids[0]).await.unwrap();
    impatient.refresh_now(ids[1]).await.unwrap();
    assert_eq!(refreshes(&env.sandbox), 2);
    let err = impatient.refresh_now(ids[2]).await.unwrap_err();
    let KeeperError::BudgetExhausted { retry_after, .. } = err else {
        panic!("expected BudgetExhausted, got {err}");
    };
    assert_eq!(retry_after, StdDuration::from_secs(1));
    assert!(err_text_is_plain(&impatient, ids[2]).await);
    assert_eq!(token_calls(&env), 2, "nothing sent past the budget");
    let served = impatient.access_token(ids[2]).await.unwrap();
    assert!(
        served.access_token.ct_eq(&old.access_token),
        "old token served while valid"
    );
    let status = env.parts.store.get_connection(ids[2]).await.unwrap().status;
    assert_eq!(status, ConnectionStatus::Active);

    let patient = keeper(&env, budget(&env, 3, StdDuration::from_secs(2)), "b");
    let before = env.parts.clock.now();
    let fresh = patient.refresh_now(ids[2]).await.unwrap();
    assert!(!fresh.access_token.ct_eq(&old.access_token));
    assert_eq!(
        env.parts.clock.now() - before,
        Duration::seconds(1),
        "waited one permit"
    );
    assert_eq!(refreshes(&env.sandbox), 3);
}

/// The budget error names the cause and holds no token.
async fn err_text_is_plain(keeper: &TokenKeeper, id: calconnect::store::ConnectionId) -> bool {
    let err = keeper.refresh_now(id).await.unwrap_err();
    let text = err.to_string();
    text.contains("budget is spent") && !text.contains("eyJ")
}

/// A 429 from the token endpoint pauses the budget for every instance until the provider's
/// reset: the other instance sends nothing meanwhile and refreshes after it.
#[tokio::test]
async fn a_429_pauses_the_budget_for_every_instance() {
    let env = env().await;
    let first = env.connect(1).await;
    let second = env.connect(2).await;
    env.sandbox.reset_token_calls();
    let a = keeper(&env, budget(&env, 5, StdDuration::from_secs(2)), "a");
    let b = keeper(&env, budget(&env, 5, StdDuration::from_secs(2)), "b");
    env.sandbox.inject_fault(FaultKind::RateLimited, 1).unwrap();
    env.advance(Duration::minutes(31));
    let err = a.refresh_now(first).await.unwrap_err();
    assert!(matches!(err, KeeperError::Transient { .. }), "{err}");
    assert_eq!(token_calls(&env), 1);
    let paused = a.config().budget().unwrap().state().await.unwrap();
    let until = paused.paused_until.expect("paused");
    assert!(
        until - env.parts.clock.now() >= Duration::seconds(59),
        "{until}"
    );

    let err = b.refresh_now(second).await.unwrap_err();
    let KeeperError::BudgetExhausted { retry_after, .. } = err else {
        panic!("expected BudgetExhausted, got {err}");
    };
    assert!(retry_after >= StdDuration::from_secs(57), "{retry_after:?}");
    assert_eq!(token_calls(&env), 1, "no request during the pause");

    env.advance(Duration::seconds(62));
    b.refresh_now(second).await.unwrap();
    assert_eq!(refreshes(&env.sandbox), 1);
}

/// Ten idle connections due for keep-alive, background permits for a few: the sweep refreshes
/// what the budget grants, defers the rest without backing them off, and later sweeps finish
/// the work. Every connection is refreshed exactly once.
#[tokio::test]
async fn the_sweep_defers_when_the_budget_is_spent_and_catches_up() {
    let env = env().await;
    let mut ids = Vec::new();
    for user in 1..=10 {
        ids.push(env.connect(user).await);
    }
    env.sandbox.reset_token_calls();
    // Background: a bucket of 2, refilled at 30 per minute; waits of at most 1 s.
    let budget = env.parts.store.budget(
        BudgetConfig {
            per_minute: 60,
            burst: 4,
            exchange_reserve: 1,
            ..BudgetConfig::default()
        },
        env.parts.clock.clone(),
    );
    let sweeper = sweeper(&env, budget, "sweeper", StdDuration::from_secs(1));
    env.advance(Duration::days(16));
    let report = sweeper.sweep_once().await.unwrap();
    assert!(report.kept_alive >= 2, "{report:?}");
    assert!(report.deferred >= 1, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    let mut kept = report.kept_alive;
    for _ in 0..20 {
        if kept == ids.len() {
            break;
        }
        env.advance(Duration::seconds(30));
        let report = sweeper.sweep_once().await.unwrap();
        assert_eq!(report.failed, 0, "{report:?}");
        kept += report.kept_alive;
    }
    assert_eq!(kept, ids.len());
    assert_eq!(
        refreshes(&env.sandbox),
        ids.len() as u64,
        "one refresh each"
    );
    let capacity = sweeper.capacity().await.unwrap().unwrap();
    assert_eq!(capacity.active_connections, 10);
    assert!(!capacity.keep_alive_exceeded());
}

/// A keep-alive near the end of the window (24 of 30 days) does not yield to API calls: with
/// the background permits spent, the urgent connection is refreshed with an on-demand permit
/// while the merely due one is deferred.
#[tokio::test]
async fn an_urgent_keep_alive_does_not_yield_to_api_calls() {
    let env = env().await;
    let old = env.connect(1).await;
    env.advance(Duration::days(9));
    let due = env.connect(2).await;
    env.advance(Duration::days(16)); // old: 25 days, due: 16 days
    env.sandbox.reset_token_calls();
    let budget = env.parts.store.budget(
        BudgetConfig {
            per_minute: 60,
            burst: 4,
            exchange_reserve: 1,
            ..BudgetConfig::default()
        },
        env.parts.clock.clone(),
    );
    // Spend the background share.
    while budget
        .try_take(calconnect::budget::Priority::Background)
        .await
        .unwrap()
        == calconnect::budget::Taken::Granted
    {}
    let sweeper = sweeper(&env, budget, "sweeper", StdDuration::from_millis(100));
    let before = env.parts.clock.now();
    let report = sweeper.sweep_once().await.unwrap();
    assert_eq!((report.kept_alive, report.deferred), (1, 1), "{report:?}");
    let store = &env.parts.store;
    let old = store.get_connection(old).await.unwrap();
    let due = store.get_connection(due).await.unwrap();
    assert!(
        old.last_refreshed_at >= before,
        "the urgent one was kept alive"
    );
    assert!(
        due.last_refreshed_at < before,
        "the due one waits for background permits"
    );
}
