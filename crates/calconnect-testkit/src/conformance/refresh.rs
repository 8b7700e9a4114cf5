use crate::TestBackend;
use crate::fixtures::*;
use calconnect::crypto::SealedField;
use calconnect::store::*;
use std::collections::HashSet;
use std::sync::Arc;
use time::Duration;

async fn one_connection(
    store: &dyn ConnectionStore,
    ring: &calconnect::crypto::Keyring,
) -> Connection {
    let n = new_connection(
        ring,
        user("client-a", 1),
        "u1",
        "acc-0",
        "ref-0",
        start_time(),
        Duration::minutes(30),
    );
    store
        .upsert_connection(n)
        .await
        .unwrap()
        .connection()
        .clone()
}

/// Many tasks (on separate handles) race for one lease: exactly one gets it, the others are told
/// who holds it.
pub async fn lease_contention_between_tasks(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let store = backend.open(dyn_clock.clone()).await;
    let c = one_connection(store.as_ref(), &ring).await;
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..12 {
            let handle = if i % 2 == 0 {
                store.clone()
            } else {
                backend.open(dyn_clock.clone()).await
            };
            tasks.push(tokio::spawn(async move {
                let owner = LeaseOwner::new(format!("task-{round}-{i}"));
                (
                    owner.clone(),
                    handle
                        .acquire_lease(c.id, &owner, Duration::minutes(1))
                        .await,
                )
            }));
        }
        let mut winners = Vec::new();
        for t in futures::future::join_all(tasks).await {
            match t.unwrap() {
                (owner, Ok(grant)) => {
                    assert_eq!(grant.version, c.version);
                    winners.push(owner);
                }
                (_, Err(StoreError::LeaseHeld { id, .. })) => assert_eq!(id, c.id),
                (_, Err(e)) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one task gets the lease"
        );
        let held = store.get_connection(c.id).await.unwrap().lease.unwrap();
        assert_eq!(held.owner, winners[0]);
        assert!(store.release_lease(c.id, &winners[0]).await.unwrap());
    }
}

/// Leases expire by the clock, renew only for their owner, release only by their owner.
pub async fn lease_expiry_renewal_and_release(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let store = backend.open(dyn_clock).await;
    let c = one_connection(store.as_ref(), &ring).await;
    let (a, b) = (LeaseOwner::new("a"), LeaseOwner::new("b"));
    let grant = store
        .acquire_lease(c.id, &a, Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(grant.until, start_time() + Duration::minutes(1));
    match store.acquire_lease(c.id, &b, Duration::minutes(1)).await {
        Err(StoreError::LeaseHeld { owner, until, .. }) => {
            assert_eq!(owner, a);
            assert_eq!(until, grant.until);
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
    // Re-acquiring as the owner extends; renewing too.
    clock.advance(Duration::seconds(30));
    let again = store
        .acquire_lease(c.id, &a, Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(again.until, start_time() + Duration::seconds(90));
    let renewed = store
        .renew_lease(c.id, &a, Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(renewed.until, start_time() + Duration::seconds(150));
    assert!(matches!(
        store.renew_lease(c.id, &b, Duration::minutes(1)).await,
        Err(StoreError::LeaseNotHeld { .. })
    ));
    assert!(!store.release_lease(c.id, &b).await.unwrap());
    // Expired: someone else may take it; the old owner can no longer renew.
    clock.advance(Duration::minutes(2));
    store
        .acquire_lease(c.id, &b, Duration::minutes(1))
        .await
        .unwrap();
    assert!(matches!(
        store.renew_lease(c.id, &a, Duration::minutes(1)).await,
        Err(StoreError::LeaseNotHeld { .. })
    ));
    assert!(store.release_lease(c.id, &b).await.unwrap());
    assert_eq!(store.get_connection(c.id).await.unwrap().lease, None);
    store
        .acquire_lease(c.id, &a, Duration::minutes(1))
        .await
        .unwrap();
}

/// Clearing an intent (after a call that certainly did not rotate) needs the lease owner and
/// the version, keeps the version, and works after our lease ran out if nobody took it.
pub async fn clearing_refresh_intent(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let store = backend.open(dyn_clock).await;
    let c = one_connection(store.as_ref(), &ring).await;
    let a = LeaseOwner::new("a");
    let b = LeaseOwner::new("b");
    let grant = store
        .acquire_lease(c.id, &a, Duration::minutes(1))
        .await
        .unwrap();
    store
        .record_refresh_intent(c.id, &a, grant.version)
        .await
        .unwrap();
    assert!(matches!(
        store.clear_refresh_intent(c.id, &b, grant.version).await,
        Err(StoreError::LeaseNotHeld { .. })
    ));
    assert!(matches!(
        store
            .clear_refresh_intent(c.id, &a, grant.version + 1)
            .await,
        Err(StoreError::VersionMismatch { .. })
    ));
    clock.advance(Duration::minutes(2)); // our lease ran out; nobody took it
    store
        .clear_refresh_intent(c.id, &a, grant.version)
        .await
        .unwrap();
    let cleared = store.get_connection(c.id).await.unwrap();
    assert_eq!(cleared.refresh_intent_started_at, None);
    assert_eq!(cleared.version, grant.version, "not a token write");
    // Once someone else holds the lease, the old owner cannot clear its intent.
    store
        .acquire_lease(c.id, &b, Duration::minutes(1))
        .await
        .unwrap();
    store
        .record_refresh_intent(c.id, &b, grant.version)
        .await
        .unwrap();
    assert!(matches!(
        store.clear_refresh_intent(c.id, &a, grant.version).await,
        Err(StoreError::LeaseNotHeld { .. })
    ));
    assert!(
        store
            .get_connection(c.id)
            .await
            .unwrap()
            .refresh_intent_started_at
            .is_some()
    );
}

/// Refresh intent needs the lease and the version; token writes are fenced by the version and
/// clear the intent; `None` keeps the refresh token; re-sealing keeps the version.
pub async fn fenced_token_writes(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let store = backend.open(dyn_clock).await;
    let c = one_connection(store.as_ref(), &ring).await;
    let keeper = LeaseOwner::new("keeper");
    assert!(matches!(
        store.record_refresh_intent(c.id, &keeper, c.version).await,
        Err(StoreError::LeaseNotHeld { .. })
    ));
    let grant = store
        .acquire_lease(c.id, &keeper, Duration::minutes(1))
        .await
        .unwrap();
    assert!(matches!(
        store
            .record_refresh_intent(c.id, &keeper, grant.version + 1)
            .await,
        Err(StoreError::VersionMismatch { .. })
    ));
    clock.advance(Duration::seconds(5));
    store
        .record_refresh_intent(c.id, &keeper, grant.version)
        .await
        .unwrap();
    let with_intent = store.get_connection(c.id).await.unwrap();
    assert_eq!(
        with_intent.refresh_intent_started_at,
        Some(start_time() + Duration::seconds(5))
    );
    assert_eq!(
        with_intent.version, c.version,
        "recording an intent is not a token write"
    );

    clock.advance(Duration::seconds(1));
    let mut write = token_write(&ring, &with_intent, "acc-1", "ref-1");
    write.scopes = Some(vec!["BOOKING_WRITE".to_owned()]);
    let written = store.write_tokens(c.id, write.clone()).await.unwrap();
    assert_eq!(written.version, c.version + 1);
    assert_eq!(written.refresh_intent_started_at, None);
    assert_eq!(
        written.last_refreshed_at,
        start_time() + Duration::seconds(6)
    );
    assert_eq!(written.access_expires_at, write.access_expires_at);
    assert_eq!(written.scopes, ["BOOKING_WRITE"]);
    assert_eq!(open(&ring, &written, SealedField::RefreshToken), "ref-1");
    assert_eq!(
        store.get_connection(c.id).await.unwrap(),
        written,
        "read after write"
    );

    // A stale writer loses and learns the current version.
    match store
        .write_tokens(c.id, token_write(&ring, &with_intent, "acc-x", "ref-x"))
        .await
    {
        Err(StoreError::VersionMismatch {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (c.version, c.version + 1));
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    // No refresh token in the response: keep the stored one.
    let mut keep = token_write(&ring, &written, "acc-2", "unused");
    keep.refresh_token = None;
    let kept = store.write_tokens(c.id, keep).await.unwrap();
    assert_eq!(open(&ring, &kept, SealedField::AccessToken), "acc-2");
    assert_eq!(open(&ring, &kept, SealedField::RefreshToken), "ref-1");
    assert_eq!(kept.scopes, ["BOOKING_WRITE"], "None keeps the scopes");

    // Re-sealing is fenced too but keeps the version.
    let access = seal(&ring, c.id, SealedField::AccessToken, "acc-2");
    store
        .reseal_tokens(
            c.id,
            kept.version,
            access.clone(),
            kept.refresh_token.clone(),
        )
        .await
        .unwrap();
    let resealed = store.get_connection(c.id).await.unwrap();
    assert_eq!(resealed.version, kept.version);
    assert_eq!(resealed.access_token, access);
    assert!(matches!(
        store
            .reseal_tokens(c.id, kept.version - 1, access, None)
            .await,
        Err(StoreError::VersionMismatch { .. })
    ));
}

/// Writers racing with the same expected version (separate handles): exactly one wins.
pub async fn concurrent_fenced_writers_one_wins(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let ring = Arc::new(keyring("k1"));
    let store = backend.open(dyn_clock.clone()).await;
    let mut c = one_connection(store.as_ref(), &ring).await;
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let handle = backend.open(dyn_clock.clone()).await;
            let write = token_write(
                &ring,
                &c,
                &format!("acc-{round}-{i}"),
                &format!("ref-{round}-{i}"),
            );
            tasks.push(tokio::spawn(async move {
                handle.write_tokens(c.id, write).await
            }));
        }
        let mut winner = None;
        for t in futures::future::join_all(tasks).await {
            match t.unwrap() {
                Ok(w) => {
                    assert!(winner.is_none(), "two fenced writers won");
                    winner = Some(w);
                }
                Err(StoreError::VersionMismatch { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        let winner = winner.expect("one writer wins");
        let stored = store.get_connection(c.id).await.unwrap();
        assert_eq!(stored, winner);
        assert_eq!(stored.version, c.version + 1);
        c = stored;
    }
}

/// Status changes record events with reasons, are fenced when asked, and are idempotent.
pub async fn status_changes_and_events(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let store = backend.open(dyn_clock).await;
    let c = one_connection(store.as_ref(), &ring).await;
    clock.advance(Duration::minutes(1));
    let change = |status, reason: &str, expected_version| StatusChange {
        status,
        reason: reason.to_owned(),
        expected_version,
    };
    assert!(matches!(
        store
            .set_status(
                c.id,
                change(ConnectionStatus::NeedsReauth, "x", Some(c.version + 5))
            )
            .await,
        Err(StoreError::VersionMismatch { .. })
    ));
    let lost = store
        .set_status(
            c.id,
            change(
                ConnectionStatus::RefreshLost,
                "crash between answer and write",
                Some(c.version),
            ),
        )
        .await
        .unwrap();
    assert_eq!(lost.status, ConnectionStatus::RefreshLost);
    assert_eq!(lost.status_reason, "crash between answer and write");
    assert_eq!(lost.status_changed_at, start_time() + Duration::minutes(1));
    assert_eq!(lost.version, c.version + 1);
    let same = store
        .set_status(c.id, change(ConnectionStatus::RefreshLost, "again", None))
        .await
        .unwrap();
    assert_eq!(same.version, lost.version, "no change, no new version");
    store
        .set_status(
            c.id,
            change(
                ConnectionStatus::NeedsReauth,
                "invalid_grant:refresh_token_revoked",
                None,
            ),
        )
        .await
        .unwrap();

    let events = store.events_for_connection(c.id).await.unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.from_status, e.to_status, e.reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                EventKind::Created,
                None,
                Some(ConnectionStatus::Active),
                "authorized"
            ),
            (
                EventKind::StatusChanged,
                Some(ConnectionStatus::Active),
                Some(ConnectionStatus::RefreshLost),
                "crash between answer and write"
            ),
            (
                EventKind::StatusChanged,
                Some(ConnectionStatus::RefreshLost),
                Some(ConnectionStatus::NeedsReauth),
                "invalid_grant:refresh_token_revoked"
            ),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    // The global feed pages by sequence number.
    let first = store.events_after(0, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = store.events_after(first[1].seq, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0], events[2]);
}

async fn seed_due_set(
    store: &dyn ConnectionStore,
    ring: &calconnect::crypto::Keyring,
) -> HashSet<ConnectionId> {
    // Access expiry in minutes from start; ids of those due at start + 10 min.
    let mut due = HashSet::new();
    for (i, minutes) in [5_i64, 8, 30, 60, 9, 120].into_iter().enumerate() {
        let n = new_connection(
            ring,
            user("due", i as i64),
            "u",
            "a",
            "r",
            start_time(),
            Duration::minutes(minutes),
        );
        let c = store
            .upsert_connection(n)
            .await
            .unwrap()
            .connection()
            .clone();
        if minutes < 10 {
            due.insert(c.id);
        }
    }
    due
}

/// The claim returns active connections whose access expires soon or whose refresh token is
/// old, skips leased and inactive ones, and leases what it returns.
pub async fn due_for_refresh_claims(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let store = backend.open(dyn_clock).await;
    let due = seed_due_set(store.as_ref(), &ring).await;
    let inactive = *due.iter().next().unwrap();
    store
        .set_status(
            inactive,
            StatusChange {
                status: ConnectionStatus::NeedsReauth,
                reason: "r".into(),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    let leased = *due.iter().find(|id| **id != inactive).unwrap();
    store
        .acquire_lease(leased, &LeaseOwner::new("other"), Duration::minutes(5))
        .await
        .unwrap();
    let query = |owner: &str, limit| DueQuery {
        access_expires_before: start_time() + Duration::minutes(10),
        last_refreshed_before: start_time() - Duration::days(7),
        limit,
        owner: LeaseOwner::new(owner),
        lease_for: Duration::minutes(2),
    };
    let claimed = store
        .claim_due_for_refresh(query("sweeper", 10))
        .await
        .unwrap();
    let expected: HashSet<_> = due
        .iter()
        .copied()
        .filter(|id| *id != inactive && *id != leased)
        .collect();
    assert_eq!(
        claimed.iter().map(|c| c.id).collect::<HashSet<_>>(),
        expected
    );
    for c in &claimed {
        let lease = c.lease.as_ref().unwrap();
        assert_eq!(lease.owner, LeaseOwner::new("sweeper"));
        assert_eq!(lease.until, start_time() + Duration::minutes(2));
        assert_eq!(
            store.get_connection(c.id).await.unwrap().lease.as_ref(),
            Some(lease)
        );
    }
    assert!(
        store
            .claim_due_for_refresh(query("second", 10))
            .await
            .unwrap()
            .is_empty()
    );
    // Leases expire: everything due and active is claimable again; the limit holds.
    clock.advance(Duration::minutes(6));
    assert_eq!(
        store
            .claim_due_for_refresh(query("third", 1))
            .await
            .unwrap()
            .len(),
        1
    );
    // Keep-alive: refresh tokens obtained long ago are due whatever the access expiry.
    let later = DueQuery {
        access_expires_before: start_time(),
        last_refreshed_before: start_time() + Duration::minutes(1),
        ..query("keepalive", 100)
    };
    let keepalive = store.claim_due_for_refresh(later).await.unwrap();
    // 6 seeded, 1 inactive, 1 still leased by "third".
    assert_eq!(keepalive.len(), 4);
}

/// Concurrent claimers on separate handles never receive the same connection.
pub async fn due_for_refresh_concurrent_claimers_are_disjoint(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let store = backend.open(dyn_clock.clone()).await;
    let mut all = HashSet::new();
    for i in 0..60 {
        let n = new_connection(
            &ring,
            user("many", i),
            "u",
            "a",
            "r",
            start_time(),
            Duration::minutes(1),
        );
        all.insert(store.upsert_connection(n).await.unwrap().connection().id);
    }
    let mut tasks = Vec::new();
    for i in 0..6 {
        let handle = backend.open(dyn_clock.clone()).await;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = handle
                    .claim_due_for_refresh(DueQuery {
                        access_expires_before: start_time() + Duration::minutes(5),
                        last_refreshed_before: start_time() - Duration::days(1),
                        limit: 4,
                        owner: LeaseOwner::new(format!("instance-{i}")),
                        lease_for: Duration::minutes(5),
                    })
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for t in futures::future::join_all(tasks).await {
        for id in t.unwrap() {
            assert!(seen.insert(id), "connection {id} claimed twice");
        }
    }
    assert_eq!(seen, all);
}
