use crate::TestBackend;
use crate::fixtures::*;
use calconnect::crypto::SealedField;
use calconnect::store::*;
use rand::rngs::OsRng;
use secrecy::SecretString;
use std::sync::Arc;
use time::Duration;

/// Every field survives a round trip; lookups by id, identity and end user; paging; counting.
pub async fn connection_round_trip_and_listing(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let new = new_connection(
        &ring,
        user("client-a", 7),
        "u1",
        "acc-1",
        "ref-1",
        start_time(),
        Duration::minutes(30),
    );
    let created = match store.upsert_connection(new.clone()).await.unwrap() {
        UpsertOutcome::Created(c) => c,
        other => panic!("expected Created, got {other:?}"),
    };
    assert_eq!(created.id, new.id);
    assert_eq!(created.end_user, new.end_user);
    assert_eq!(created.identity, new.identity);
    assert_eq!(created.scopes, new.scopes);
    assert_eq!(created.status, ConnectionStatus::Active);
    assert_eq!(created.access_token, new.access_token);
    assert_eq!(created.refresh_token, new.refresh_token);
    assert_eq!(created.access_expires_at, new.access_expires_at);
    assert_eq!(
        created.refresh_expires_at_estimate,
        new.refresh_expires_at_estimate
    );
    assert_eq!(created.last_refreshed_at, start_time());
    assert_eq!(created.created_at, start_time());
    assert_eq!(created.updated_at, start_time());
    assert_eq!(created.status_changed_at, start_time());
    assert_eq!(created.version, 1);
    assert_eq!(created.lease, None);
    assert_eq!(created.refresh_intent_started_at, None);
    assert_eq!(open(&ring, &created, SealedField::AccessToken), "acc-1");
    assert_eq!(open(&ring, &created, SealedField::RefreshToken), "ref-1");

    // Read-after-write on a second handle.
    let other = backend
        .open(clock.clone() as Arc<dyn calconnect::Clock>)
        .await;
    assert_eq!(other.get_connection(created.id).await.unwrap(), created);
    assert_eq!(
        store.find_by_identity(&new.identity).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.find_by_identity(&user("client-a", 8)).await.unwrap(),
        None
    );

    // No refresh token, no expiry, odd scopes: still round-trips.
    clock.advance(Duration::seconds(1));
    let mut bare = new_connection(
        &ring,
        user("client-a", 9),
        "u1",
        "acc-2",
        "x",
        start_time(),
        Duration::ZERO,
    );
    bare.refresh_token = None;
    bare.access_expires_at = None;
    bare.refresh_expires_at_estimate = None;
    bare.scopes = vec![];
    let bare_c = store
        .upsert_connection(bare.clone())
        .await
        .unwrap()
        .connection()
        .clone();
    assert_eq!(bare_c.refresh_token, None);
    assert_eq!(bare_c.access_expires_at, None);
    assert!(bare_c.scopes.is_empty());
    assert_eq!(store.get_connection(bare.id).await.unwrap(), bare_c);

    let mut ids = vec![created.id, bare_c.id];
    for i in 0..5 {
        let n = new_connection(
            &ring,
            user("client-b", i),
            "u2",
            "a",
            "r",
            start_time(),
            Duration::minutes(30),
        );
        ids.push(store.upsert_connection(n).await.unwrap().connection().id);
    }
    ids.sort();
    assert_eq!(store.count_connections().await.unwrap(), 7);
    let u1 = store.list_for_end_user(&end_user("u1")).await.unwrap();
    assert_eq!(
        u1.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![created.id, bare_c.id]
    );
    assert!(
        store
            .list_for_end_user(&end_user("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_connections(after, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(
        paged, ids,
        "paging returns every connection once, in id order"
    );

    let events = store.events_for_connection(created.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Created);
    assert_eq!(events[0].to_status, Some(ConnectionStatus::Active));
    assert_eq!(events[0].end_user, end_user("u1"));
}

/// One connection per (client, user or team): a second authorization updates the tokens of the
/// existing connection and says so; a different id is refused; team and user ids, and clients,
/// are distinct identities.
pub async fn identity_uniqueness(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let first = new_connection(
        &ring,
        user("client-a", 42),
        "u1",
        "acc-1",
        "ref-1",
        start_time(),
        Duration::minutes(30),
    );
    let c1 = store
        .upsert_connection(first.clone())
        .await
        .unwrap()
        .connection()
        .clone();
    store
        .set_status(
            c1.id,
            StatusChange {
                status: ConnectionStatus::NeedsReauth,
                reason: "invalid_grant".into(),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    store
        .acquire_lease(c1.id, &LeaseOwner::new("keeper"), Duration::minutes(1))
        .await
        .unwrap();

    // A rival id for the same identity is refused.
    let rival = new_connection(
        &ring,
        user("client-a", 42),
        "u2",
        "acc-x",
        "ref-x",
        start_time(),
        Duration::minutes(30),
    );
    match store.upsert_connection(rival).await {
        Err(StoreError::IdentityConflict { existing }) => assert_eq!(existing, c1.id),
        other => panic!("expected IdentityConflict, got {other:?}"),
    }

    // Same id (tokens sealed for it): tokens replaced, back to active, lease cleared.
    clock.advance(Duration::minutes(5));
    let mut again = first.clone();
    again.end_user = end_user("u2");
    again.access_token = seal(&ring, c1.id, SealedField::AccessToken, "acc-2");
    again.refresh_token = Some(seal(&ring, c1.id, SealedField::RefreshToken, "ref-2"));
    match store.upsert_connection(again).await.unwrap() {
        UpsertOutcome::Updated {
            connection,
            previous_end_user,
            previous_status,
        } => {
            assert_eq!(previous_end_user, end_user("u1"));
            assert_eq!(previous_status, ConnectionStatus::NeedsReauth);
            assert_eq!(connection.id, c1.id);
            assert_eq!(connection.end_user, end_user("u2"));
            assert_eq!(connection.status, ConnectionStatus::Active);
            assert_eq!(connection.lease, None);
            assert_eq!(connection.version, c1.version + 2);
            assert_eq!(
                connection.last_refreshed_at,
                start_time() + Duration::minutes(5)
            );
            assert_eq!(connection.created_at, start_time());
            assert_eq!(open(&ring, &connection, SealedField::AccessToken), "acc-2");
            assert_eq!(open(&ring, &connection, SealedField::RefreshToken), "ref-2");
        }
        other => panic!("expected Updated, got {other:?}"),
    }
    let kinds: Vec<_> = store
        .events_for_connection(c1.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Created,
            EventKind::StatusChanged,
            EventKind::Reauthorized
        ]
    );

    // Distinct identities.
    let team = CalIdentity {
        client_id: "client-a".into(),
        owner: CalOwner::Team(42),
    };
    for identity in [team, user("client-b", 42)] {
        let n = new_connection(
            &ring,
            identity.clone(),
            "u1",
            "a",
            "r",
            start_time(),
            Duration::minutes(30),
        );
        assert!(matches!(
            store.upsert_connection(n).await.unwrap(),
            UpsertOutcome::Created(_)
        ));
        assert_eq!(
            store
                .find_by_identity(&identity)
                .await
                .unwrap()
                .unwrap()
                .identity,
            identity
        );
    }
    assert_eq!(store.count_connections().await.unwrap(), 3);

    // save_connection seals for the existing id by itself.
    let saved = save_connection(
        store.as_ref(),
        &ring,
        &mut OsRng,
        TokensToSave {
            end_user: end_user("u3"),
            identity: user("client-a", 42),
            scopes: vec![],
            access_token: SecretString::from("acc-3"),
            refresh_token: Some(SecretString::from("ref-3")),
            access_expires_at: None,
            refresh_expires_at_estimate: None,
            profile: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(saved.connection().id, c1.id);
    assert_eq!(
        open(&ring, saved.connection(), SealedField::RefreshToken),
        "ref-3"
    );
}

/// Concurrent callbacks for the same Cal.com identity (on separate handles) end with one
/// connection whose tokens open.
pub async fn concurrent_saves_of_one_identity_make_one_connection(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let ring = Arc::new(keyring("k1"));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = backend.open(dyn_clock.clone()).await;
        let ring = ring.clone();
        tasks.push(tokio::spawn(async move {
            save_connection(
                store.as_ref(),
                &ring,
                &mut OsRng,
                TokensToSave {
                    end_user: end_user("u1"),
                    identity: user("client-a", 1),
                    scopes: vec![],
                    access_token: SecretString::from(format!("acc-{i}")),
                    refresh_token: Some(SecretString::from(format!("ref-{i}"))),
                    access_expires_at: None,
                    refresh_expires_at_estimate: None,
                    profile: None,
                },
            )
            .await
        }));
    }
    let mut created = 0;
    for t in futures::future::join_all(tasks).await {
        if let UpsertOutcome::Created(_) = t.unwrap().unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let store = backend.open(dyn_clock).await;
    assert_eq!(store.count_connections().await.unwrap(), 1);
    let c = store
        .find_by_identity(&user("client-a", 1))
        .await
        .unwrap()
        .unwrap();
    assert!(open(&ring, &c, SealedField::AccessToken).starts_with("acc-"));
}

/// Deleting records a `Deleted` event; events outlive the connection.
pub async fn delete_keeps_events(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let n = new_connection(
        &ring,
        user("c", 1),
        "u1",
        "a",
        "r",
        start_time(),
        Duration::minutes(30),
    );
    let c = store
        .upsert_connection(n)
        .await
        .unwrap()
        .connection()
        .clone();
    store
        .delete_connection(c.id, "user disconnected")
        .await
        .unwrap();
    assert!(matches!(
        store.get_connection(c.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_connection(c.id, "again").await,
        Err(StoreError::NotFound { .. })
    ));
    let events = store.events_for_connection(c.id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, EventKind::Deleted);
    assert_eq!(events[1].from_status, Some(ConnectionStatus::Active));
    assert_eq!(events[1].to_status, None);
    assert_eq!(events[1].reason, "user disconnected");
    assert_eq!(store.count_connections().await.unwrap(), 0);
}

/// Counting by status: every status present (zeros included), following status changes and
/// deletions, and adding up to the number of connections.
pub async fn counts_by_status(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let counts = store.count_by_status().await.unwrap();
    assert_eq!(counts, StatusCounts::default());
    assert_eq!(
        counts.iter().collect::<Vec<_>>(),
        [
            (ConnectionStatus::Active, 0),
            (ConnectionStatus::NeedsReauth, 0),
            (ConnectionStatus::RefreshLost, 0)
        ]
    );
    let mut ids = Vec::new();
    for owner in 1..=5 {
        let new = new_connection(
            &ring,
            user("counts", owner),
            "u1",
            "a",
            "r",
            start_time(),
            Duration::minutes(30),
        );
        ids.push(store.upsert_connection(new).await.unwrap().connection().id);
    }
    let change = |status| StatusChange {
        status,
        reason: "test".to_owned(),
        expected_version: None,
    };
    for (id, status) in [
        (ids[0], ConnectionStatus::NeedsReauth),
        (ids[1], ConnectionStatus::NeedsReauth),
        (ids[2], ConnectionStatus::RefreshLost),
    ] {
        store.set_status(id, change(status)).await.unwrap();
    }
    let counts = store.count_by_status().await.unwrap();
    assert_eq!(counts.get(ConnectionStatus::Active), 2);
    assert_eq!(counts.get(ConnectionStatus::NeedsReauth), 2);
    assert_eq!(counts.get(ConnectionStatus::RefreshLost), 1);
    assert_eq!(counts.total(), store.count_connections().await.unwrap());

    store.delete_connection(ids[2], "test").await.unwrap();
    store
        .set_status(ids[0], change(ConnectionStatus::Active))
        .await
        .unwrap();
    let counts = store.count_by_status().await.unwrap();
    assert_eq!(
        counts.iter().collect::<Vec<_>>(),
        [
            (ConnectionStatus::Active, 3),
            (ConnectionStatus::NeedsReauth, 1),
            (ConnectionStatus::RefreshLost, 0)
        ]
    );
}
