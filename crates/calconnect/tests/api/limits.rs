//! Rate limits (docs/calcom.md §6): the governor keeps a burst under the sandbox's limit with
//! zero 429s; a 429 is waited out until the reset and retried; the headers tighten the governor.

use crate::helpers::{ALICE, ALL_READ, CountingSource, env_with, governor, quick_retries};
use calconnect::api::{ApiError, RetryPolicy};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_stays_under_the_limit_with_zero_429s() {
    let env = env_with(|b| b.rate_limit(100, time::Duration::seconds(2))).await;
    let api = env
        .client(CountingSource::fixed(env.mint(ALICE, ALL_READ, 1800)))
        .governor(governor(100, Duration::from_secs(2)))
        .retry(RetryPolicy::none())
        .build();
    let calls = (0..2000).map(|_| {
        let api = api.clone();
        tokio::spawn(async move { api.me().await.map(|me| me.id) })
    });
    let results = futures::future::join_all(calls).await;
    let ok = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(ALICE))))
        .count();
    assert_eq!(ok, 2000);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 429), 0);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 200), 2000);
    // 2,000 requests at 100 per window need at least 19 waits for a new window.
    let waited: Duration = env.timer.sleeps().iter().sum();
    assert!(waited >= Duration::from_secs(38), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_real_time_stays_under_the_limit() {
    // The default timer (tokio's clock) against the sandbox's wall clock: the sliding log holds
    // with real latency too. 300 requests at 100 per 250 ms (the whole-second `Reset` header
    // stretches each wait to 1 s).
    let sandbox = calconnect_sandbox::Sandbox::builder()
        .signing_key(crate::helpers::KEY)
        .rate_limit(100, time::Duration::milliseconds(250))
        .start()
        .await
        .unwrap();
    let token = {
        let now = sandbox.now().unix_timestamp();
        let claims = calconnect_sandbox::jwt::Claims {
            user_id: Some(ALICE),
            team_id: None,
            scope: vec!["PROFILE_READ".into()],
            token_type: calconnect_sandbox::jwt::ACCESS_TOKEN_TYPE.into(),
            client_id: calconnect_sandbox::CONFIDENTIAL_CLIENT_ID.into(),
            secret: None,
            code_challenge: None,
            code_challenge_method: None,
            iat: now,
            exp: now + 1800,
        };
        calconnect::AccessToken::new(calconnect_sandbox::jwt::sign(&claims, crate::helpers::KEY))
    };
    let base = sandbox.base_url().as_str().trim_end_matches('/').to_owned();
    let profile = calconnect::ProviderProfile::sandbox(
        &base,
        calconnect::UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap();
    let api = calconnect::api::CalClient::for_profile(
        &profile,
        crate::helpers::http(),
        CountingSource::fixed(token),
    )
    .unwrap()
    .governor(governor(100, Duration::from_millis(250)))
    .retry(RetryPolicy::none())
    .build();
    let calls = (0..300).map(|_| {
        let api = api.clone();
        tokio::spawn(async move { api.me().await.map(|me| me.id) })
    });
    let ok = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(ALICE))))
        .count();
    assert_eq!(ok, 300);
    assert_eq!(sandbox.api_calls_with_status("/v2/me", 429), 0);
}

#[tokio::test]
async fn a_429_is_waited_out_and_retried() {
    let env = env_with(|b| b.rate_limit(3, time::Duration::seconds(60))).await;
    let api = env
        .client(CountingSource::fixed(env.mint(ALICE, ALL_READ, 1800)))
        .without_governor()
        .retry(quick_retries())
        .build();
    for _ in 0..3 {
        api.me().await.unwrap();
    }
    // The 4th request is throttled; the client waits for the reset (60 s) and retries.
    assert_eq!(api.me().await.unwrap().id, ALICE);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 429), 1);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 200), 4);
    assert_eq!(env.timer.sleeps(), vec![Duration::from_secs(60)]);
}

#[tokio::test]
async fn a_reset_beyond_the_cap_fails_at_once() {
    let env = env_with(|b| b.rate_limit(1, time::Duration::seconds(60))).await;
    let api = env
        .client(CountingSource::fixed(env.mint(ALICE, ALL_READ, 1800)))
        .without_governor()
        .retry(quick_retries().rate_limit_waits(2, Duration::from_secs(10)))
        .build();
    api.me().await.unwrap();
    let err = api.me().await.unwrap_err();
    match &err {
        ApiError::RateLimited {
            attempts,
            reset,
            envelope,
            ..
        } => {
            assert_eq!(*attempts, 1);
            assert_eq!(*reset, Some(Duration::from_secs(60)));
            assert_eq!(envelope.code.as_deref(), Some("ThrottlerException"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
    assert!(err.to_string().contains("resets in 60s"), "{err}");
    assert!(env.timer.sleeps().is_empty());
}

#[tokio::test]
async fn the_governor_adopts_a_smaller_announced_limit() {
    // Configured for 500/min, but the API announces 5/min: the governor queues the
    // 6th request until the window ends instead of provoking a 429.
    let env = env_with(|b| b.rate_limit(5, time::Duration::seconds(60))).await;
    let api = env
        .client(CountingSource::fixed(env.mint(ALICE, ALL_READ, 1800)))
        .retry(RetryPolicy::none())
        .build();
    for _ in 0..12 {
        api.me().await.unwrap();
    }
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 429), 0);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 200), 12);
    assert!(!env.timer.sleeps().is_empty());
}
