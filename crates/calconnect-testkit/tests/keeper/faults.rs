//! Faults during refresh: 5xx, delays beyond the timeout, dropped connections and 429 leave
//! the connection active, serve the old token while it is valid, back off on the injected
//! clock, and recover when the fault clears.

use super::{Env, env, env_with_timeout};
use calconnect::store::ConnectionStatus;
use calconnect::{keeper::KeeperError, store::ConnectionId};
use calconnect_sandbox::FaultKind;
use calconnect_testkit::keeper::{invalid_grants, refreshes, usable};
use std::time::Duration as StdDuration;
use time::Duration;

async fn status(env: &Env, id: ConnectionId) -> ConnectionStatus {
    env.parts.store.get_connection(id).await.unwrap().status
}

/// With the token inside the margin but still valid, a fault serves the old token; once
/// expired, callers get `Transient` with a retry time; after the backoff and the fault, the
/// refresh succeeds. Never a status change, never `invalid_grant`.
async fn survives(env: Env, fault: FaultKind) {
    let id = env.connect(1).await;
    let keeper = env.keeper();
    let old = keeper.access_token(id).await.unwrap();
    env.sandbox.inject_fault(fault.clone(), 1000).unwrap();

    env.advance(Duration::minutes(27)); // 3 minutes left: refresh wanted, old still valid
    let served = keeper.access_token(id).await.unwrap();
    assert!(
        served.access_token.ct_eq(&old.access_token),
        "{fault:?}: old token served"
    );
    assert_eq!(status(&env, id).await, ConnectionStatus::Active);
    // Backing off: the next call does not hit Cal.com again.
    let calls = env
        .sandbox
        .token_call_counts()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    keeper.access_token(id).await.unwrap();
    let after = env
        .sandbox
        .token_call_counts()
        .iter()
        .map(|c| c.count)
        .sum::<u64>();
    assert_eq!(calls, after, "{fault:?}: no call during backoff");

    env.advance(Duration::minutes(4)); // expired now
    let err = keeper.access_token(id).await.unwrap_err();
    let KeeperError::Transient { retry_after, .. } = &err else {
        panic!("{fault:?}: expected Transient, got {err}");
    };
    assert!(retry_after.is_some());
    assert_eq!(status(&env, id).await, ConnectionStatus::Active);

    env.sandbox.clear_faults();
    env.advance(Duration::minutes(10)); // past any backoff
    let fresh = keeper.access_token(id).await.unwrap();
    assert!(!fresh.access_token.ct_eq(&old.access_token));
    assert!(usable(env.sandbox.base_url().as_str(), &fresh.access_token).await);
    assert_eq!(status(&env, id).await, ConnectionStatus::Active);
    assert_eq!(
        refreshes(&env.sandbox),
        1,
        "{:?}",
        env.sandbox.token_call_counts()
    );
    assert_eq!(invalid_grants(&env.sandbox), 0, "{fault:?}");
}

#[tokio::test]
async fn server_errors_keep_the_connection_active() {
    survives(env().await, FaultKind::ServerError { status: 503 }).await;
}

#[tokio::test]
async fn rate_limits_keep_the_connection_active() {
    survives(env().await, FaultKind::RateLimited).await;
}

#[tokio::test]
async fn dropped_connections_keep_the_connection_active() {
    survives(env().await, FaultKind::Drop).await;
}

#[tokio::test]
async fn delays_beyond_the_timeout_keep_the_connection_active() {
    let env = env_with_timeout(StdDuration::from_millis(200)).await;
    survives(env, FaultKind::Delay { ms: 600 }).await;
}

#[tokio::test]
async fn backoff_grows_exponentially_with_jitter_on_the_injected_clock() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    env.sandbox
        .inject_fault(FaultKind::ServerError { status: 500 }, 1000)
        .unwrap();
    env.advance(Duration::minutes(31));
    let mut waits = Vec::new();
    for _ in 0..6 {
        let err = keeper.access_token(id).await.unwrap_err();
        let KeeperError::Transient {
            retry_after: Some(wait),
            ..
        } = err
        else {
            panic!("expected Transient, got {err}");
        };
        waits.push(wait);
        // Still backing off just before the wait ends: no call, same answer.
        let calls = env
            .sandbox
            .token_calls("refresh_token", "fault:server_error");
        env.advance(Duration::try_from(wait).unwrap() - Duration::milliseconds(1));
        assert!(keeper.access_token(id).await.is_err());
        assert_eq!(
            calls,
            env.sandbox
                .token_calls("refresh_token", "fault:server_error")
        );
        env.advance(Duration::milliseconds(1));
    }
    // Base 1 s doubling, each between half and all of its step.
    for (n, wait) in waits.iter().enumerate() {
        let step = StdDuration::from_secs(1 << n);
        assert!(*wait >= step / 2 && *wait <= step, "attempt {n}: {wait:?}");
    }
    assert_eq!(
        env.sandbox
            .token_calls("refresh_token", "fault:server_error"),
        6
    );
    env.sandbox.clear_faults();
    env.advance(Duration::minutes(2));
    keeper.access_token(id).await.unwrap();
    assert_eq!(status(&env, id).await, ConnectionStatus::Active);
}

/// Cal.com's token endpoint is limited per IP and its 429 has no `Retry-After`, only
/// `X-RateLimit-Reset-Default` (docs/calcom.md §6): the keeper waits that long, not its own
/// first backoff of about a second, before it asks again.
#[tokio::test]
async fn a_token_endpoint_429_without_retry_after_waits_for_the_reset() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    env.sandbox.inject_fault(FaultKind::RateLimited, 1).unwrap();
    env.advance(Duration::minutes(31)); // expired
    let err = keeper.access_token(id).await.unwrap_err();
    let KeeperError::Transient {
        retry_after: Some(wait),
        ..
    } = err
    else {
        panic!("expected Transient with a wait, got {err}");
    };
    assert!(wait >= StdDuration::from_secs(60), "{wait:?}");
    let calls = || {
        env.sandbox
            .token_call_counts()
            .iter()
            .map(|c| c.count)
            .sum::<u64>()
    };
    let before = calls();
    env.advance(Duration::seconds(59));
    assert!(keeper.access_token(id).await.is_err());
    assert_eq!(calls(), before, "no token call before the reset");
    env.advance(Duration::seconds(2));
    keeper.access_token(id).await.unwrap();
    assert_eq!(calls(), before + 1);
    assert_eq!(status(&env, id).await, ConnectionStatus::Active);
}
