//! Refresh-and-retry (docs/calcom.md §5, §8): on 401 and on 403 "no oAuth client found for
//! access token", exactly one refresh and exactly one retry; `insufficient_scope` never refreshes.

use crate::helpers::{ALICE, ALL_READ, CountingSource, FlowSource, env};
use calconnect::api::{ApiError, BookingFilters, StaticToken};
use std::sync::Arc;

const EXPIRE: time::Duration = time::Duration::minutes(31);

#[tokio::test]
async fn a_401_refreshes_once_and_retries_once() {
    let env = env().await;
    let flow = env.flow();
    let tokens = env.connect(&flow, ALL_READ).await;
    let source = FlowSource::new(flow, tokens);
    let api = env.client(source.clone()).build();
    assert_eq!(api.me().await.unwrap().id, ALICE);

    env.sandbox.advance_clock(EXPIRE);
    env.sandbox.reset_token_calls();
    let schedules = api.schedules().await.unwrap();
    assert_eq!(schedules.len(), 2);
    assert_eq!(source.refreshes(), 1);
    assert_eq!(env.sandbox.token_calls("refresh_token", "ok"), 1);
    assert_eq!(
        env.sandbox.token_call_counts().len(),
        1,
        "no other token calls"
    );
    assert_eq!(env.sandbox.api_calls_with_status("/v2/schedules", 401), 1);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/schedules", 200), 1);

    // The new token is used from now on: no further refresh.
    api.me().await.unwrap();
    assert_eq!(source.refreshes(), 1);
    assert_eq!(env.sandbox.token_calls("refresh_token", "ok"), 1);
}

#[tokio::test]
async fn a_403_no_oauth_client_refreshes_once_and_retries_once() {
    let env = env().await;
    env.sandbox.set_bookings_expired_token_403(true);
    let flow = env.flow();
    let tokens = env.connect(&flow, ALL_READ).await;
    let source = FlowSource::new(flow, tokens);
    let api = env.client(source.clone()).build();

    env.sandbox.advance_clock(EXPIRE);
    env.sandbox.reset_token_calls();
    let page = api.bookings(&BookingFilters::new()).await.unwrap();
    assert!(!page.bookings.is_empty());
    assert_eq!(source.refreshes(), 1);
    assert_eq!(env.sandbox.token_calls("refresh_token", "ok"), 1);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/bookings", 403), 1);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/bookings", 200), 1);
    assert_eq!(env.sandbox.api_calls("/v2/bookings"), 2);
}

#[tokio::test]
async fn a_second_rejection_is_final() {
    let env = env().await;
    // The "refreshed" token is expired too: one refresh, one retry, then Unauthorized.
    let source = CountingSource::with_refreshes(
        env.mint(ALICE, ALL_READ, -60),
        vec![env.mint(ALICE, ALL_READ, -30)],
    );
    let api = env.client(source.clone()).build();
    let err = api.me().await.unwrap_err();
    match &err {
        ApiError::Unauthorized {
            after_refresh,
            envelope,
            ..
        } => {
            assert!(after_refresh);
            assert_eq!(envelope.code.as_deref(), Some("UnauthorizedException"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(source.refreshes(), 1);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 401), 2);
    assert!(err.to_string().contains("even after a refresh"), "{err}");

    // A static token cannot refresh: one call, then Unauthorized.
    let api = env
        .client(Arc::new(StaticToken::new(env.mint(ALICE, ALL_READ, -1))))
        .build();
    let err = api.schedules().await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Unauthorized {
                after_refresh: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(env.sandbox.api_calls_with_status("/v2/schedules", 401), 1);
}

#[tokio::test]
async fn insufficient_scope_is_typed_and_never_refreshes() {
    let env = env().await;
    let flow = env.flow();
    let tokens = env.connect(&flow, &["PROFILE_READ"]).await;
    let source = FlowSource::new(flow, tokens);
    let api = env.client(source.clone()).build();
    env.sandbox.reset_token_calls();

    let err = api.schedules().await.unwrap_err();
    match &err {
        ApiError::InsufficientScope {
            request,
            required,
            granted,
            envelope,
        } => {
            assert_eq!(request.path, "/v2/schedules");
            assert_eq!(required, &vec!["SCHEDULE_READ".to_owned()]);
            assert_eq!(granted, &vec!["PROFILE_READ".to_owned()]);
            assert_eq!(envelope.code.as_deref(), Some("ForbiddenException"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.needs_reauthorization());
    assert!(!err.is_transient());
    assert!(err.to_string().contains("SCHEDULE_READ"), "{err}");
    assert_eq!(source.refreshes(), 0);
    assert!(env.sandbox.token_call_counts().is_empty());
    assert_eq!(env.sandbox.api_calls("/v2/schedules"), 1);
    // PROFILE_READ is enough for /v2/me.
    assert_eq!(api.me().await.unwrap().id, ALICE);
}

#[tokio::test]
async fn concurrent_rejections_share_one_refresh() {
    // The source contract: `refresh_after_rejection` refreshes only if the rejected token is
    // still the current one, so 20 calls rejected at once cause one refresh (Cal.com rotates
    // the refresh token: a second refresh with the old one would fail, §3.4).
    let env = env().await;
    let flow = env.flow();
    let tokens = env.connect(&flow, ALL_READ).await;
    let source = FlowSource::new(flow, tokens);
    let api = env.client(source.clone()).build();
    env.sandbox.advance_clock(EXPIRE);
    env.sandbox.reset_token_calls();
    let calls = (0..20).map(|_| {
        let api = api.clone();
        tokio::spawn(async move { api.me().await })
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().unwrap().id, ALICE);
    }
    assert_eq!(source.refreshes(), 1);
    assert_eq!(env.sandbox.token_calls("refresh_token", "ok"), 1);
    assert_eq!(env.sandbox.api_calls_with_status("/v2/me", 200), 20);
}
