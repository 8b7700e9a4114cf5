use crate::TestBackend;
use crate::fixtures::*;
use calconnect::crypto::{Keyring, SealContext, SealedField, SealingKey};
use calconnect::store::*;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::Duration;

/// Operations on ids that do not exist fail with `NotFound`.
pub async fn missing_records(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let id = ConnectionId::random(&mut OsRng);
    let owner = LeaseOwner::new("o");
    let nf = |r: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(r, Err(StoreError::NotFound { .. })),
            "{what}: {r:?}"
        );
    };
    nf(store.get_connection(id).await.map(drop), "get");
    nf(
        store
            .acquire_lease(id, &owner, Duration::minutes(1))
            .await
            .map(drop),
        "acquire",
    );
    nf(
        store
            .renew_lease(id, &owner, Duration::minutes(1))
            .await
            .map(drop),
        "renew",
    );
    nf(store.release_lease(id, &owner).await.map(drop), "release");
    nf(store.record_refresh_intent(id, &owner, 1).await, "intent");
    let fake = Connection {
        id,
        ..new_connection_record(&ring)
    };
    nf(
        store
            .write_tokens(id, token_write(&ring, &fake, "a", "r"))
            .await
            .map(drop),
        "write",
    );
    nf(
        store
            .reseal_tokens(id, 1, fake.access_token.clone(), None)
            .await,
        "reseal",
    );
    let change = StatusChange {
        status: ConnectionStatus::NeedsReauth,
        reason: "r".into(),
        expected_version: None,
    };
    nf(store.set_status(id, change).await.map(drop), "status");
    nf(store.delete_connection(id, "r").await, "delete");
    assert!(store.events_for_connection(id).await.unwrap().is_empty());
    assert!(
        !store
            .reseal_pending(
                PendingId::random(&mut OsRng),
                &fake.access_token,
                fake.access_token.clone()
            )
            .await
            .unwrap()
    );
}

fn new_connection_record(ring: &Keyring) -> Connection {
    let n = new_connection(
        ring,
        user("x", 1),
        "u",
        "a",
        "r",
        start_time(),
        Duration::minutes(1),
    );
    Connection {
        id: n.id,
        end_user: n.end_user,
        identity: n.identity,
        scopes: n.scopes,
        status: ConnectionStatus::Active,
        status_reason: String::new(),
        status_changed_at: start_time(),
        access_token: n.access_token,
        refresh_token: n.refresh_token,
        access_expires_at: n.access_expires_at,
        last_refreshed_at: start_time(),
        refresh_expires_at_estimate: None,
        version: 1,
        lease: None,
        refresh_intent_started_at: None,
        profile: None,
        profile_check_at: start_time(),
        created_at: start_time(),
        updated_at: start_time(),
    }
}

/// Opening runs migrations: from several handles at once on a fresh database, then twice more
/// in a row; all succeed and see the same data.
pub async fn migrations_run_twice_and_concurrently(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let ring = keyring("k1");
    let handles = futures::future::join_all((0..4).map(|_| backend.open(dyn_clock.clone()))).await;
    let n = new_connection(
        &ring,
        user("m", 1),
        "u",
        "a",
        "r",
        start_time(),
        Duration::minutes(1),
    );
    let c = handles[0]
        .upsert_connection(n)
        .await
        .unwrap()
        .connection()
        .clone();
    for h in &handles {
        assert_eq!(h.get_connection(c.id).await.unwrap(), c);
    }
    let again = backend.open(dyn_clock.clone()).await;
    let and_again = backend.open(dyn_clock).await;
    assert_eq!(again.get_connection(c.id).await.unwrap(), c);
    assert_eq!(and_again.get_connection(c.id).await.unwrap(), c);
}

/// Latest (version, access, refresh) written per connection.
type Latest = HashMap<ConnectionId, (i64, String, String)>;

fn copy_key(key: &SealingKey) -> SealingKey {
    SealingKey::parse(key.to_text().expose_secret()).unwrap()
}

/// Rotate keys while writers refresh tokens and readers open them; then drop the old key and
/// read everything: nothing lost, every token the latest written.
pub async fn key_rotation_with_concurrent_writes(backend: &dyn TestBackend) {
    let (_clock, dyn_clock) = mock_clock();
    let old = key("old");
    let new = key("new");
    let old_ring = Keyring::new(vec![copy_key(&old)]).unwrap();
    let both = Arc::new(Keyring::new(vec![copy_key(&new), copy_key(&old)]).unwrap());
    let only_new = Keyring::new(vec![new]).unwrap();

    let store = backend.open(dyn_clock.clone()).await;
    // Latest (version, access, refresh) per connection.
    let latest: Arc<Mutex<Latest>> = Arc::default();
    let mut ids = Vec::new();
    for i in 0..40 {
        let (a, r) = (format!("acc-{i}"), format!("ref-{i}"));
        let n = new_connection(
            &old_ring,
            user("rot", i),
            "u",
            &a,
            &r,
            start_time(),
            Duration::minutes(30),
        );
        let c = store
            .upsert_connection(n)
            .await
            .unwrap()
            .connection()
            .clone();
        latest.lock().unwrap().insert(c.id, (c.version, a, r));
        ids.push(c.id);
    }
    let mut pendings = Vec::new();
    for i in 0..5 {
        let state = format!("rot-state-{i}");
        store
            .insert_pending(super::pending::pending(
                &old_ring,
                &state,
                "c",
                &format!("ver-{i}"),
                start_time() + Duration::minutes(10),
            ))
            .await
            .unwrap();
        pendings.push(state);
    }

    let mut workers = Vec::new();
    for w in 0..3 {
        let handle = backend.open(dyn_clock.clone()).await;
        let (ring, latest, ids) = (both.clone(), latest.clone(), ids.clone());
        workers.push(tokio::spawn(async move {
            for step in 0..30 {
                let id = ids[(w * 7 + step * 3) % ids.len()];
                let c = handle.get_connection(id).await.unwrap();
                // Readers always succeed during rotation.
                open(&ring, &c, SealedField::AccessToken);
                let (a, r) = (format!("acc-w{w}-{step}"), format!("ref-w{w}-{step}"));
                match handle
                    .write_tokens(id, token_write(&ring, &c, &a, &r))
                    .await
                {
                    Ok(written) => {
                        let mut latest = latest.lock().unwrap();
                        let entry = latest.get_mut(&id).unwrap();
                        if written.version > entry.0 {
                            *entry = (written.version, a, r);
                        }
                    }
                    Err(StoreError::VersionMismatch { .. }) => {}
                    Err(e) => panic!("writer: {e}"),
                }
            }
        }));
    }
    let rotator = {
        let handle = backend.open(dyn_clock.clone()).await;
        let ring = both.clone();
        tokio::spawn(async move {
            let mut reports = Vec::new();
            let done = rotate_keys(handle.as_ref(), &ring, &mut OsRng, 7, &mut |p| {
                reports.push(p.clone())
            })
            .await
            .unwrap();
            (done, reports)
        })
    };
    for w in futures::future::join_all(workers).await {
        w.unwrap();
    }
    let (done, reports) = rotator.await.unwrap();
    assert_eq!(done.connections_total, 40);
    assert_eq!(done.connections_scanned, 40);
    assert_eq!(done.pending_resealed, 5);
    assert!(reports.len() >= 40 / 7, "progress reported per batch");
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].connections_scanned <= w[1].connections_scanned)
    );

    // Old key gone: everything still opens and holds the latest values.
    let latest = latest.lock().unwrap().clone();
    for id in &ids {
        let c = store.get_connection(*id).await.unwrap();
        let (version, a, r) = &latest[id];
        assert_eq!(c.version, *version);
        assert_eq!(c.access_token.key_id().unwrap().as_str(), "new");
        assert_eq!(&open(&only_new, &c, SealedField::AccessToken), a);
        assert_eq!(&open(&only_new, &c, SealedField::RefreshToken), r);
    }
    for (i, state) in pendings.iter().enumerate() {
        let p = store
            .consume_pending(
                &StateKey::of(&SecretString::from(state.as_str())),
                &BrowserBinding::of(&SecretString::from("c")),
            )
            .await
            .unwrap();
        let v = only_new
            .open_string(
                &p.pkce_verifier,
                SealContext::pending_verifier(p.id.as_uuid()),
            )
            .unwrap();
        assert_eq!(v.expose_secret(), format!("ver-{i}"));
    }
    // Running it again finds nothing to do.
    let again = rotate_keys(store.as_ref(), &only_new, &mut OsRng, 100, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(again.connections_resealed, 0);
}
