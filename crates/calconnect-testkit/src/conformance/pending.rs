use crate::TestBackend;
use crate::fixtures::*;
use calconnect::crypto::SealContext;
use calconnect::store::*;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

/// A pending authorization for state `state` and binding `cookie`, verifier sealed.
pub fn pending(
    keyring: &calconnect::crypto::Keyring,
    state: &str,
    cookie: &str,
    verifier: &str,
    expires_at: OffsetDateTime,
) -> NewPendingRecord {
    let id = PendingId::random(&mut OsRng);
    NewPendingRecord {
        id,
        state_key: StateKey::of(&SecretString::from(state)),
        pkce_verifier: keyring
            .seal_secret(
                &mut OsRng,
                SealContext::pending_verifier(id.as_uuid()),
                &SecretString::from(verifier),
            )
            .unwrap(),
        end_user: end_user("app-user-1"),
        scopes: vec!["BOOKING_READ".to_owned()],
        redirect_uri: "http://127.0.0.1:3000/callback".to_owned(),
        return_to: Some("/settings".to_owned()),
        browser_binding: BrowserBinding::of(&SecretString::from(cookie)),
        expires_at,
    }
}

fn keys(state: &str, cookie: &str) -> (StateKey, BrowserBinding) {
    (
        StateKey::of(&SecretString::from(state)),
        BrowserBinding::of(&SecretString::from(cookie)),
    )
}

/// Insert, consume once with every field intact, duplicates refused, wrong browser refused
/// without burning the authorization.
pub async fn pending_round_trip(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let p = pending(
        &ring,
        "state-1",
        "cookie-1",
        "verifier-1",
        start_time() + Duration::minutes(10),
    );
    store.insert_pending(p.clone()).await.unwrap();

    let mut dup = p.clone();
    dup.id = PendingId::random(&mut OsRng);
    assert!(matches!(
        store.insert_pending(dup).await,
        Err(StoreError::Duplicate { .. })
    ));
    let mut dup_id = pending(
        &ring,
        "state-2",
        "cookie-1",
        "v",
        start_time() + Duration::minutes(10),
    );
    dup_id.id = p.id;
    assert!(matches!(
        store.insert_pending(dup_id).await,
        Err(StoreError::Duplicate { .. })
    ));

    let (state, cookie) = keys("state-1", "cookie-1");
    let (_, other_cookie) = keys("state-1", "cookie-2");
    assert!(matches!(
        store.consume_pending(&state, &other_cookie).await,
        Err(StoreError::NotFound { .. })
    ));
    let got = store.consume_pending(&state, &cookie).await.unwrap();
    assert_eq!(got.id, p.id);
    assert_eq!(got.state_key, p.state_key);
    assert_eq!(got.pkce_verifier, p.pkce_verifier);
    assert_eq!(got.end_user, p.end_user);
    assert_eq!(got.scopes, p.scopes);
    assert_eq!(got.redirect_uri, p.redirect_uri);
    assert_eq!(got.return_to, p.return_to);
    assert_eq!(got.browser_binding, p.browser_binding);
    assert_eq!(got.expires_at, p.expires_at);
    assert_eq!(got.created_at, start_time());
    let verifier = ring
        .open_string(
            &got.pkce_verifier,
            SealContext::pending_verifier(got.id.as_uuid()),
        )
        .unwrap();
    assert_eq!(verifier.expose_secret(), "verifier-1");
    assert!(matches!(
        store.consume_pending(&state, &cookie).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Expired authorizations are refused (and deleted); purge removes only those expired for longer
/// than the grace period.
pub async fn pending_expiry_and_purge(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let soon = start_time() + Duration::minutes(10);
    store
        .insert_pending(pending(&ring, "a", "c", "v", soon))
        .await
        .unwrap();
    store
        .insert_pending(pending(&ring, "b", "c", "v", soon))
        .await
        .unwrap();
    store
        .insert_pending(pending(&ring, "late", "c", "v", soon + Duration::hours(1)))
        .await
        .unwrap();
    clock.advance(Duration::minutes(10));
    let (a, c) = keys("a", "c");
    assert!(matches!(
        store.consume_pending(&a, &c).await,
        Err(StoreError::PendingExpired)
    ));
    assert!(matches!(
        store.consume_pending(&a, &c).await,
        Err(StoreError::NotFound { .. })
    ));
    // "b" expired but is kept for the grace period: a late callback is told "expired".
    assert_eq!(store.purge_expired_pending().await.unwrap(), 0);
    let (late, c) = keys("late", "c");
    store.consume_pending(&late, &c).await.unwrap();
    clock.advance(calconnect::store::PENDING_PURGE_GRACE);
    assert_eq!(store.purge_expired_pending().await.unwrap(), 1);
    assert_eq!(store.purge_expired_pending().await.unwrap(), 0);
    let (b, c) = keys("b", "c");
    assert!(matches!(
        store.consume_pending(&b, &c).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Many concurrent callbacks with the same state (on separate handles): exactly one wins.
pub async fn pending_single_use_under_concurrent_consumers(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(backend.open(dyn_clock.clone()).await);
    }
    for round in 0..5 {
        let state = format!("state-{round}");
        handles[0]
            .insert_pending(pending(
                &ring,
                &state,
                "c",
                "v",
                start_time() + Duration::minutes(10),
            ))
            .await
            .unwrap();
        let (key, cookie) = keys(&state, "c");
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = handles[i % handles.len()].clone();
                tokio::spawn(async move { store.consume_pending(&key, &cookie).await })
            })
            .collect();
        let mut wins = 0;
        for t in futures::future::join_all(tasks).await {
            match t.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => panic!("unexpected error from a concurrent consumer: {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one consumer must win");
    }
}
