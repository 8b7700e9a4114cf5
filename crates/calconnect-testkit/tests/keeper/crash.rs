//! SIGKILL at each step of a refresh, many times: every run ends with valid, usable tokens or
//! an explicit `refresh_lost` — never `needs_reauth`, never a row the keyring cannot open.

use super::multiprocess::{SharedEnv, postgres_env, sqlite_env};
use calconnect::store::ConnectionStatus;
use calconnect::{Clock, MockClock, SystemClock, keeper::KeeperError};
use calconnect_testkit::keeper::usable;
use std::sync::Arc;
use time::Duration;

const RUNS_PER_STEP: i64 = 10;

/// What a fresh keeper must find after a kill at `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The refresh token was never used or the write happened: tokens work.
    Usable,
    /// Cal.com rotated and nobody saved the answer.
    RefreshLost,
}

async fn kill_at_each_step(env: SharedEnv) {
    let steps = [
        ("before_call", Expected::Usable),
        ("after_response", Expected::RefreshLost),
        ("after_write", Expected::Usable),
    ];
    for (step, expected) in steps {
        for run in 0..RUNS_PER_STEP {
            // Re-authorizing the seeded user replaces the tokens (and clears lease and intent).
            let id = env.expired_connection(1).await;
            let mut child = env.child("crash", id, step).await;
            child.expect(&format!("AT {step}")).await;
            child.child.kill().await.unwrap(); // SIGKILL on Unix

            // A fresh keeper after the dead child's lease (60 s) has run out.
            let clock = Arc::new(MockClock::new(SystemClock.now() + Duration::minutes(2)));
            let parts = env.reopen(clock).await;
            let keeper = parts.keeper(super::config());
            let result = keeper.access_token(id).await;
            let c = parts.store.get_connection(id).await.unwrap();
            let (stored, refresh) = parts.open_tokens(id).await; // never a corrupt row
            assert!(refresh.is_some());
            match (expected, result) {
                (Expected::Usable, Ok(fresh)) => {
                    assert_eq!(c.status, ConnectionStatus::Active, "{step} #{run}");
                    assert!(fresh.access_token.ct_eq(&stored), "{step} #{run}");
                    assert!(
                        usable(&env.url(), &fresh.access_token).await,
                        "{step} #{run}"
                    );
                    // And the stored refresh token still refreshes.
                    keeper.refresh_now(id).await.unwrap();
                }
                (Expected::RefreshLost, Err(KeeperError::RefreshLost { .. })) => {
                    assert_eq!(c.status, ConnectionStatus::RefreshLost, "{step} #{run}");
                    assert!(c.status_reason.starts_with("refresh_lost: "));
                }
                (expected, other) => {
                    panic!(
                        "{step} #{run}: expected {expected:?}, got {other:?} (status {:?})",
                        c.status
                    )
                }
            }
            assert_ne!(c.status, ConnectionStatus::NeedsReauth);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_each_refresh_step_on_sqlite() {
    kill_at_each_step(sqlite_env(Arc::new(SystemClock)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_each_refresh_step_on_postgres() {
    if let Some(env) = postgres_env(Arc::new(SystemClock)).await {
        kill_at_each_step(env).await;
    }
}
