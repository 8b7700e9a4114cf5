use crate::TestBackend;
use crate::fixtures::*;
use calconnect::Clock;
use calconnect::budget::{BudgetConfig, Priority, Taken};
use futures::future::join_all;
use time::Duration;

fn config(name: &str) -> BudgetConfig {
    BudgetConfig {
        name: name.into(),
        per_minute: 60,
        burst: 6,
        exchange_reserve: 1,
        ..BudgetConfig::default()
    }
}

/// The refresh budget is one bucket for every handle on the store (every instance on one
/// database): permits taken through one are gone for the others, a pause stops them all, and
/// it refills with time; budgets of other names are separate.
pub async fn refresh_budget_is_shared_by_instances(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let a = backend.open(dyn_clock.clone()).await;
    let b = backend.open(dyn_clock.clone()).await;
    let c = backend.open(dyn_clock.clone()).await;
    let budget_a = a.budget(config("egress-1"), dyn_clock.clone());
    let budget_b = b.budget(config("egress-1"), dyn_clock.clone());
    let budget_c = c.budget(config("egress-1"), dyn_clock.clone());
    let other = b.budget(config("egress-2"), dyn_clock.clone());
    // 6 permits in all, taken by 30 callers at once through three handles: the SQL budget's
    // optimistic writes lose races here (and fall back to the locked one), never a permit.
    let handles = [&budget_a, &budget_b, &budget_c];
    let takes = (0..30).map(|i| {
        let budget = handles[i % 3];
        async move { budget.try_take(Priority::Exchange).await.unwrap() }
    });
    let granted = join_all(takes)
        .await
        .into_iter()
        .filter(|t| *t == Taken::Granted)
        .count();
    assert_eq!(granted, 6, "the burst is shared, never exceeded");
    // One per second at 60 per minute.
    assert_eq!(
        budget_b.try_take(Priority::Exchange).await.unwrap(),
        Taken::Wait(Duration::seconds(1))
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        budget_b.try_take(Priority::Exchange).await.unwrap(),
        Taken::Granted
    );
    // Another budget's bucket is untouched.
    assert_eq!(
        other.try_take(Priority::Exchange).await.unwrap(),
        Taken::Granted
    );
    // A pause through one handle stops the other.
    clock.advance(Duration::minutes(5));
    budget_a
        .pause(clock.now() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        budget_b.try_take(Priority::Exchange).await.unwrap(),
        Taken::Wait(Duration::seconds(60))
    );
    let state = budget_b.state().await.unwrap();
    assert_eq!(
        state.paused_until,
        Some(clock.now() + Duration::seconds(60))
    );
    clock.advance(Duration::seconds(61));
    assert_eq!(
        budget_a.try_take(Priority::Exchange).await.unwrap(),
        Taken::Granted
    );
}
