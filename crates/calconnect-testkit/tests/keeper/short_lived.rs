//! Short-lived access tokens (docs/architecture.md §3.5): the margin adapts to the token's lifetime, so a token
//! just received is never refreshed again at once, and a connection in constant use is
//! refreshed once per lifetime, whatever the lifetime (docs/architecture.md §3.5).

use super::env;
use calconnect::Clock as _;
use calconnect_testkit::keeper::{invalid_grants, refreshes};
use time::Duration;

/// 300 access-token calls over 3 connections and two keepers (two broker instances on one
/// store), spread evenly over one token lifetime from the moment the tokens were obtained: each
/// connection is refreshed exactly once (three quarters into the lifetime), and every token
/// handed out is valid for more than a quarter of its lifetime.
async fn one_refresh_per_connection_per_lifetime(ttl: Duration) {
    let env = env().await;
    env.sandbox.update_settings(|s| s.access_token_ttl = ttl);
    let mut ids = Vec::new();
    for user in 1..=3 {
        ids.push(env.connect(user).await);
    }
    env.sandbox.reset_token_calls();
    let (a, b) = (env.keeper(), env.keeper());
    let steps: i32 = 100;
    for step in 0..steps {
        for (i, id) in ids.iter().enumerate() {
            let keeper = if (step as usize + i) % 2 == 0 { &a } else { &b };
            let fresh = keeper.access_token(*id).await.unwrap();
            let left = fresh.expires_at - env.parts.clock.now();
            assert!(
                left > ttl / 4,
                "{ttl}: step {step}: a token with {left} left was handed out"
            );
        }
        env.advance(ttl / steps);
    }
    assert_eq!(
        refreshes(&env.sandbox),
        3,
        "{ttl}: {:?}",
        env.sandbox.token_call_counts()
    );
    assert_eq!(invalid_grants(&env.sandbox), 0);

    // A token just received is not refreshed again, by either keeper.
    for id in &ids {
        a.access_token(*id).await.unwrap();
        b.access_token(*id).await.unwrap();
    }
    assert_eq!(refreshes(&env.sandbox), 3);
}

#[tokio::test]
async fn sixty_second_tokens() {
    one_refresh_per_connection_per_lifetime(Duration::seconds(60)).await;
}

#[tokio::test]
async fn ten_second_tokens() {
    one_refresh_per_connection_per_lifetime(Duration::seconds(10)).await;
}

/// Over several lifetimes of constant use a connection is refreshed every three quarters of a
/// lifetime: 5 refreshes in 4 lifetimes, not one per call.
#[tokio::test]
async fn steady_use_over_several_lifetimes() {
    let env = env().await;
    let ttl = Duration::seconds(60);
    env.sandbox.update_settings(|s| s.access_token_ttl = ttl);
    let id = env.connect(1).await;
    let keeper = env.keeper();
    for _ in 0..(4 * 60) {
        keeper.access_token(id).await.unwrap();
        env.advance(Duration::seconds(1));
    }
    // Refreshes at 45 s, 90 s, 135 s, 180 s and 225 s.
    assert_eq!(refreshes(&env.sandbox), 5);
    assert_eq!(invalid_grants(&env.sandbox), 0);
}

/// Cal.com's 30-minute tokens keep the configured 5-minute margin.
#[tokio::test]
async fn long_lived_tokens_keep_the_configured_margin() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    env.advance(Duration::minutes(24) + Duration::seconds(59));
    keeper.access_token(id).await.unwrap();
    assert_eq!(refreshes(&env.sandbox), 0, "5:01 left");
    env.advance(Duration::seconds(2));
    keeper.access_token(id).await.unwrap();
    assert_eq!(refreshes(&env.sandbox), 1, "4:59 left");
}
