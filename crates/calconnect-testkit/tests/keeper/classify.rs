//! Classification: a revoked grant is `needs_reauth` with Cal.com's reason on the first
//! refresh; `invalid_grant` after someone else refreshed is not; a stale intent plus
//! `invalid_grant` is `refresh_lost`; a stale intent with a live token just refreshes.

use super::{config, env};
use async_trait::async_trait;
use calconnect::crypto::{SealContext, SealedField};
use calconnect::store::{ConnectionId, ConnectionStatus, EventKind, LeaseOwner, TokenWrite};
use calconnect::{keeper::KeeperError, keeper::RefreshHooks, keeper::RefreshStep};
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, ClientStatus, Owner};
use calconnect_testkit::keeper::{KeeperParts, invalid_grants, refreshes, usable};
use rand::rngs::OsRng;
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use time::Duration;

async fn last_event_reason(parts: &KeeperParts, id: ConnectionId) -> String {
    let events = parts.store.events_for_connection(id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::StatusChanged);
    last.reason.clone()
}

#[tokio::test]
async fn revoked_grant_needs_reauth_with_calcom_reason_on_first_refresh() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    env.sandbox
        .revoke_grant(CONFIDENTIAL_CLIENT_ID, Owner::User(1));
    env.advance(Duration::minutes(31));
    let err = keeper.access_token(id).await.unwrap_err();
    let KeeperError::NeedsReauth { reason, .. } = &err else {
        panic!("expected NeedsReauth, got {err}");
    };
    assert_eq!(reason, "refresh_token_revoked");
    assert!(err.requires_reauthorization());
    let c = env.parts.store.get_connection(id).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    assert!(
        c.status_reason.starts_with("refresh_token_revoked: "),
        "{}",
        c.status_reason
    );
    let reason = last_event_reason(&env.parts, id).await;
    assert!(
        reason.contains("revoked") && reason.contains("reconnect"),
        "{reason}"
    );
    assert_eq!(invalid_grants(&env.sandbox), 1, "exactly one refresh call");
    // Later calls answer from the status without calling Cal.com again.
    assert!(matches!(
        keeper.access_token(id).await,
        Err(KeeperError::NeedsReauth { .. })
    ));
    assert_eq!(invalid_grants(&env.sandbox), 1);
}

#[tokio::test]
async fn rejected_client_needs_reauth_with_its_reason() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    env.sandbox
        .set_client_status(CONFIDENTIAL_CLIENT_ID, ClientStatus::Rejected)
        .unwrap();
    let err = keeper.refresh_now(id).await.unwrap_err();
    assert!(
        matches!(&err, KeeperError::NeedsReauth { reason, .. } if reason == "client_rejected"),
        "{err}"
    );
}

/// At `before_call`, another instance refreshes with the same stored refresh token and writes
/// its result: our call then gets `invalid_grant`, which must not be a revocation.
#[derive(Debug)]
struct RotateElsewhere {
    parts: KeeperParts,
    done: AtomicBool,
}

#[async_trait]
impl RefreshHooks for RotateElsewhere {
    async fn at(&self, step: RefreshStep, id: ConnectionId) {
        if step != RefreshStep::BeforeCall || self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let c = self.parts.store.get_connection(id).await.unwrap();
        let (_, refresh) = self.parts.open_tokens(id).await;
        let tokens = self.parts.flow.refresh(&refresh.unwrap()).await.unwrap();
        let seal = |field, value: &str| {
            self.parts
                .keyring
                .seal_secret(
                    &mut OsRng,
                    SealContext::connection(id.as_uuid(), field),
                    &SecretString::from(value),
                )
                .unwrap()
        };
        let write = TokenWrite {
            expected_version: c.version,
            access_token: seal(
                SealedField::AccessToken,
                tokens.access_token.expose_secret(),
            ),
            refresh_token: Some(seal(
                SealedField::RefreshToken,
                tokens.refresh_token.as_ref().unwrap().expose_secret(),
            )),
            access_expires_at: Some(tokens.expires_at),
            refresh_expires_at_estimate: None,
            scopes: None,
        };
        self.parts.store.write_tokens(id, write).await.unwrap();
    }
}

#[tokio::test]
async fn invalid_grant_after_another_refresh_uses_the_newer_tokens() {
    let env = env().await;
    let id = env.connect(1).await;
    let hooks = Arc::new(RotateElsewhere {
        parts: env.parts.clone(),
        done: AtomicBool::new(false),
    });
    let keeper = env
        .parts
        .keeper(config().to_builder().hooks(hooks).build().unwrap());
    env.advance(Duration::minutes(31));
    let fresh = keeper.access_token(id).await.unwrap();
    let (stored, _) = env.parts.open_tokens(id).await;
    assert!(
        fresh.access_token.ct_eq(&stored),
        "the other instance's token"
    );
    assert!(usable(env.sandbox.base_url().as_str(), &stored).await);
    let c = env.parts.store.get_connection(id).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Active);
    assert_eq!(invalid_grants(&env.sandbox), 1, "we lost the race once");
    assert_eq!(refreshes(&env.sandbox), 1, "the other instance's refresh");
}

/// A crashed instance: lease taken, intent recorded, maybe Cal.com called, nothing written.
async fn crashed_refresh(parts: &KeeperParts, id: ConnectionId, called_calcom: bool) {
    let dead = LeaseOwner::new("crashed-instance");
    let grant = parts
        .store
        .acquire_lease(id, &dead, Duration::seconds(60))
        .await
        .unwrap();
    parts
        .store
        .record_refresh_intent(id, &dead, grant.version)
        .await
        .unwrap();
    if called_calcom {
        let (_, refresh) = parts.open_tokens(id).await;
        parts.flow.refresh(&refresh.unwrap()).await.unwrap();
    }
}

#[tokio::test]
async fn stale_intent_and_invalid_grant_is_refresh_lost() {
    let env = env().await;
    let id = env.connect(1).await;
    crashed_refresh(&env.parts, id, true).await;
    env.advance(Duration::minutes(31)); // the crashed lease and the access token expired
    let keeper = env.keeper();
    let err = keeper.access_token(id).await.unwrap_err();
    assert!(matches!(err, KeeperError::RefreshLost { .. }), "{err}");
    let c = env.parts.store.get_connection(id).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::RefreshLost);
    let reason = last_event_reason(&env.parts, id).await;
    assert!(reason.starts_with("refresh_lost: "), "{reason}");
    assert!(reason.contains("refresh_token_revoked"), "{reason}");
}

#[tokio::test]
async fn stale_intent_with_a_live_refresh_token_just_refreshes() {
    let env = env().await;
    let id = env.connect(1).await;
    crashed_refresh(&env.parts, id, false).await;
    env.advance(Duration::minutes(31));
    let keeper = env.keeper();
    let fresh = keeper.access_token(id).await.unwrap();
    assert!(usable(env.sandbox.base_url().as_str(), &fresh.access_token).await);
    let c = env.parts.store.get_connection(id).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Active);
    assert!(
        c.refresh_intent_started_at.is_none(),
        "the write cleared the intent"
    );
    assert!(c.lease.is_none(), "the lease was released");
}

/// A real timer that reports each sleep (so the test knows the waiter is waiting).
#[derive(Debug)]
struct SignallingTimer(tokio::sync::mpsc::UnboundedSender<()>);

#[async_trait]
impl calconnect::api::Timer for SignallingTimer {
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    async fn sleep(&self, duration: std::time::Duration) {
        let _ = self.0.send(());
        tokio::time::sleep(duration).await;
    }
}

#[tokio::test]
async fn a_held_lease_makes_others_wait_then_use_the_result() {
    let env = env().await;
    let id = env.connect(1).await;
    // Another instance holds the lease and will write; we wait on the store.
    let other = env.parts.keeper(
        config()
            .to_builder()
            .instance_name("other")
            .build()
            .unwrap(),
    );
    env.advance(Duration::minutes(31));
    let lease = env
        .parts
        .store
        .acquire_lease(id, other.lease_owner(), Duration::seconds(60))
        .await
        .unwrap();
    let (slept, mut sleeping) = tokio::sync::mpsc::unbounded_channel();
    let waiter = env.parts.keeper(
        config()
            .to_builder()
            .timer(Arc::new(SignallingTimer(slept)))
            .build()
            .unwrap(),
    );
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.access_token(id).await }
    });
    // The waiter finds the lease held and starts polling the store.
    sleeping.recv().await.unwrap();
    assert!(
        !waiting.is_finished(),
        "the waiter must wait for the lease holder"
    );
    // The other instance refreshes (its own lease is "already ours" to it).
    let written = other.refresh_now(id).await.unwrap();
    let got = waiting.await.unwrap().unwrap();
    assert!(got.access_token.ct_eq(&written.access_token));
    assert_eq!(refreshes(&env.sandbox), 1);
    assert_eq!(invalid_grants(&env.sandbox), 0);
    let _ = lease;
}

#[tokio::test]
async fn no_refresh_token_needs_reauth() {
    let env = env().await;
    let id = env.connect(1).await;
    // Strip the refresh token: re-save the identity without one.
    let c = env.parts.store.get_connection(id).await.unwrap();
    env.parts
        .store
        .upsert_connection(calconnect::store::NewConnection {
            id,
            end_user: c.end_user.clone(),
            identity: c.identity.clone(),
            scopes: c.scopes.clone(),
            access_token: c.access_token.clone(),
            refresh_token: None,
            access_expires_at: c.access_expires_at,
            refresh_expires_at_estimate: None,
            profile: None,
        })
        .await
        .unwrap();
    env.advance(Duration::minutes(31));
    let err = env.keeper().access_token(id).await.unwrap_err();
    assert!(
        matches!(&err, KeeperError::NeedsReauth { reason, .. } if reason == "no_refresh_token"),
        "{err}"
    );
}

/// After a 5xx (Cal.com answered, nothing rotated) a revocation is the user's: `needs_reauth`.
/// After a dropped connection Cal.com may have rotated before the answer was lost, so the
/// same revocation reads as `refresh_lost` — the honest answer for an ambiguous loss.
#[tokio::test]
async fn answered_errors_clear_the_intent_lost_answers_keep_it() {
    use calconnect_sandbox::FaultKind;
    for (fault, lost) in [
        (FaultKind::ServerError { status: 502 }, false),
        (FaultKind::RateLimited, false),
        (FaultKind::Drop, true),
    ] {
        let env = env().await;
        let id = env.connect(1).await;
        let keeper = env.keeper();
        env.sandbox.inject_fault(fault.clone(), 1).unwrap();
        assert!(keeper.refresh_now(id).await.unwrap_err().is_transient());
        let c = env.parts.store.get_connection(id).await.unwrap();
        assert_eq!(c.refresh_intent_started_at.is_some(), lost, "{fault:?}");
        env.sandbox
            .revoke_grant(CONFIDENTIAL_CLIENT_ID, Owner::User(1));
        env.advance(Duration::minutes(31));
        let err = keeper.access_token(id).await.unwrap_err();
        if lost {
            assert!(
                matches!(err, KeeperError::RefreshLost { .. }),
                "{fault:?}: {err}"
            );
        } else {
            assert!(
                matches!(err, KeeperError::NeedsReauth { .. }),
                "{fault:?}: {err}"
            );
        }
    }
}

/// While our call is out (lease run out), another instance marks the row `refresh_lost`. Our
/// answer holds the only live refresh token: the fenced write retries at the new version and
/// the status goes back to `active`, with an event saying so.
#[derive(Debug)]
struct MarkLostMeanwhile {
    parts: KeeperParts,
}

#[async_trait]
impl RefreshHooks for MarkLostMeanwhile {
    async fn at(&self, step: RefreshStep, id: ConnectionId) {
        if step == RefreshStep::AfterResponse {
            self.parts
                .store
                .set_status(
                    id,
                    calconnect::store::StatusChange {
                        status: ConnectionStatus::RefreshLost,
                        reason: "refresh_lost: test".into(),
                        expected_version: None,
                    },
                )
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_write_that_outlived_its_lease_restores_the_connection() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.parts.keeper(
        config()
            .to_builder()
            .hooks(Arc::new(MarkLostMeanwhile {
                parts: env.parts.clone(),
            }))
            .build()
            .unwrap(),
    );
    env.advance(Duration::minutes(31));
    let fresh = keeper.access_token(id).await.unwrap();
    let c = env.parts.store.get_connection(id).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Active);
    let (stored, _) = env.parts.open_tokens(id).await;
    assert!(stored.ct_eq(&fresh.access_token));
    let reason = last_event_reason(&env.parts, id).await;
    assert!(reason.starts_with("refresh_recovered: "), "{reason}");
    assert!(usable(env.sandbox.base_url().as_str(), &stored).await);
}
