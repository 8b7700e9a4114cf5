use crate::TestBackend;
use crate::fixtures::*;
use calconnect::Clock as _;
use calconnect::crypto::SealedField;
use calconnect::store::*;
use std::collections::HashSet;
use std::sync::Arc;
use time::Duration;

fn profile(name: &str, at: time::OffsetDateTime) -> AccountProfile {
    AccountProfile {
        name: Some(name.to_owned()),
        email: Some(format!("{}@example.com", name.to_lowercase())),
        username: Some(name.to_lowercase()),
        fetched_at: at,
    }
}

/// A profile given at connect time is kept and read back, with its next check a day later; a
/// reauthorization without one keeps it and makes the check due; `write_profile` replaces it or
/// only moves the check, without bumping the version or recording an event; a connection in
/// trouble keeps its profile.
pub async fn profiles_are_kept_with_connections(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock.clone()).await;
    let ring = keyring("k1");
    let mut new = new_connection(
        &ring,
        user("client-a", 7),
        "u1",
        "acc",
        "ref",
        start_time(),
        Duration::minutes(30),
    );
    new.profile = Some(profile("Alice", start_time()));
    let created = store
        .upsert_connection(new.clone())
        .await
        .unwrap()
        .connection()
        .clone();
    assert_eq!(created.profile, new.profile);
    assert_eq!(created.profile_check_at, start_time() + PROFILE_MAX_AGE);
    let other = backend.open(dyn_clock.clone()).await;
    assert_eq!(other.get_connection(created.id).await.unwrap(), created);

    // Without a profile, a connection's first check is due at once.
    let bare = new_connection(
        &ring,
        user("client-a", 8),
        "u1",
        "acc",
        "ref",
        start_time(),
        Duration::minutes(30),
    );
    let bare = store
        .upsert_connection(bare)
        .await
        .unwrap()
        .connection()
        .clone();
    assert_eq!(bare.profile, None);
    assert_eq!(bare.profile_check_at, start_time());

    // Authorized again without a profile: the stored one stays, the check is due now.
    clock.advance(Duration::minutes(5));
    let mut again = new.clone();
    again.profile = None;
    again.access_token = seal(&ring, created.id, SealedField::AccessToken, "acc-2");
    let updated = store
        .upsert_connection(again.clone())
        .await
        .unwrap()
        .connection()
        .clone();
    assert_eq!(updated.profile, new.profile);
    assert_eq!(updated.profile_check_at, clock.now());

    // With a new profile: replaced.
    again.profile = Some(profile("Alicia", clock.now()));
    let renamed = store
        .upsert_connection(again.clone())
        .await
        .unwrap()
        .connection()
        .clone();
    assert_eq!(renamed.profile, again.profile);
    assert_eq!(renamed.profile_check_at, clock.now() + PROFILE_MAX_AGE);

    // write_profile: no version bump, no event.
    let events_before = store.events_for_connection(created.id).await.unwrap().len();
    clock.advance(Duration::hours(1));
    let fresh = AccountProfile {
        name: None,
        email: None,
        username: Some("al".into()),
        fetched_at: clock.now(),
    };
    store
        .write_profile(
            created.id,
            ProfileWrite {
                profile: Some(fresh.clone()),
                next_check_at: clock.now() + Duration::days(1),
            },
        )
        .await
        .unwrap();
    let read = other.get_connection(created.id).await.unwrap();
    assert_eq!(read.profile, Some(fresh.clone()));
    assert_eq!(read.profile_check_at, clock.now() + Duration::days(1));
    assert_eq!(read.version, renamed.version);
    assert_eq!(read.access_token, renamed.access_token);
    assert_eq!(
        store.events_for_connection(created.id).await.unwrap().len(),
        events_before
    );

    // A failed check only moves the next one.
    store
        .write_profile(
            created.id,
            ProfileWrite {
                profile: None,
                next_check_at: clock.now() + Duration::hours(1),
            },
        )
        .await
        .unwrap();
    let read = store.get_connection(created.id).await.unwrap();
    assert_eq!(read.profile, Some(fresh.clone()));
    assert_eq!(read.profile_check_at, clock.now() + Duration::hours(1));

    // In trouble, the profile stays.
    let broken = store
        .set_status(
            created.id,
            StatusChange {
                status: ConnectionStatus::NeedsReauth,
                reason: "invalid_grant".into(),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(broken.profile, Some(fresh));

    let gone = ConnectionId::random(&mut rand::rngs::OsRng);
    let missing = store
        .write_profile(
            gone,
            ProfileWrite {
                profile: None,
                next_check_at: clock.now(),
            },
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

/// Profile checks go to active connections that are due and whose access token is still valid,
/// each to one claimer only, and come back when the claim runs out without a report.
pub async fn profile_checks_are_claimed_once(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let mut due = HashSet::new();
    for i in 0..6 {
        let n = new_connection(
            &ring,
            user("client-a", i),
            "u1",
            "a",
            "r",
            start_time(),
            Duration::minutes(30),
        );
        due.insert(store.upsert_connection(n).await.unwrap().connection().id);
    }
    // Not due: a fresh profile; an access token about to expire; a connection in trouble.
    let mut fresh = new_connection(
        &ring,
        user("client-a", 100),
        "u1",
        "a",
        "r",
        start_time(),
        Duration::minutes(30),
    );
    fresh.profile = Some(profile("Fresh", start_time()));
    store.upsert_connection(fresh).await.unwrap();
    let expiring = new_connection(
        &ring,
        user("client-a", 101),
        "u1",
        "a",
        "r",
        start_time(),
        Duration::minutes(2),
    );
    store.upsert_connection(expiring).await.unwrap();
    let broken = new_connection(
        &ring,
        user("client-a", 102),
        "u1",
        "a",
        "r",
        start_time(),
        Duration::minutes(30),
    );
    let broken = store
        .upsert_connection(broken)
        .await
        .unwrap()
        .connection()
        .id;
    store
        .set_status(
            broken,
            StatusChange {
                status: ConnectionStatus::RefreshLost,
                reason: "lost".into(),
                expected_version: None,
            },
        )
        .await
        .unwrap();

    clock.advance(Duration::seconds(1));
    let query = |limit| ProfileCheckQuery {
        due_by: clock.now(),
        access_valid_after: clock.now() + Duration::minutes(10),
        limit,
        claim_until: clock.now() + Duration::minutes(15),
    };
    let first = store.claim_profile_checks(query(4)).await.unwrap();
    assert_eq!(first.len(), 4);
    for c in &first {
        assert_eq!(c.profile_check_at, clock.now() + Duration::minutes(15));
    }
    // Concurrent claimers of the rest never get the same rows.
    let other = backend
        .open(clock.clone() as Arc<dyn calconnect::Clock>)
        .await;
    let (a, b) = tokio::join!(
        store.claim_profile_checks(query(10)),
        other.claim_profile_checks(query(10))
    );
    let mut claimed: Vec<ConnectionId> = first.iter().map(|c| c.id).collect();
    claimed.extend(a.unwrap().iter().map(|c| c.id));
    claimed.extend(b.unwrap().iter().map(|c| c.id));
    assert_eq!(claimed.len(), 6, "each due connection claimed exactly once");
    assert_eq!(claimed.iter().copied().collect::<HashSet<_>>(), due);
    assert!(
        store
            .claim_profile_checks(query(10))
            .await
            .unwrap()
            .is_empty()
    );

    // A claim that never reported back runs out; the connection is due again.
    clock.advance(Duration::minutes(15));
    let again = store
        .claim_profile_checks(ProfileCheckQuery {
            access_valid_after: clock.now(),
            ..query(10)
        })
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|c| c.id).collect::<HashSet<_>>(),
        due,
        "the expiring one has expired by now; the fresh one is not due"
    );
}

/// Listing pages through connections in creation order (ties by id), with filters by status and
/// end user, each connection once; counts per end user.
pub async fn listing_pages_with_filters(backend: &dyn TestBackend) {
    let (clock, dyn_clock) = mock_clock();
    let store = backend.open(dyn_clock).await;
    let ring = keyring("k1");
    let mut all = Vec::new();
    for i in 0..9 {
        // Three connections per instant: the id breaks ties.
        if i % 3 == 0 {
            clock.advance(Duration::seconds(1));
        }
        let user_name = if i % 2 == 0 { "even" } else { "odd" };
        let n = new_connection(
            &ring,
            user("client-a", i),
            user_name,
            "a",
            "r",
            start_time(),
            Duration::minutes(30),
        );
        let mut c = store
            .upsert_connection(n)
            .await
            .unwrap()
            .connection()
            .clone();
        if i % 3 == 1 {
            c = store
                .set_status(
                    c.id,
                    StatusChange {
                        status: ConnectionStatus::NeedsReauth,
                        reason: "invalid_grant".into(),
                        expected_version: None,
                    },
                )
                .await
                .unwrap();
        }
        all.push(c);
    }
    all.sort_by_key(|c| (c.created_at, c.id));
    let statuses = [
        None,
        Some(ConnectionStatus::Active),
        Some(ConnectionStatus::NeedsReauth),
        Some(ConnectionStatus::RefreshLost),
    ];
    for status in statuses {
        for end_user_filter in [None, Some("even"), Some("odd"), Some("nobody")] {
            let expected: Vec<ConnectionId> = all
                .iter()
                .filter(|c| status.is_none_or(|s| c.status == s))
                .filter(|c| end_user_filter.is_none_or(|u| c.end_user.as_str() == u))
                .map(|c| c.id)
                .collect();
            let mut paged = Vec::new();
            let mut q = ConnectionQuery {
                status,
                end_user: end_user_filter.map(end_user),
                after: None,
                limit: 2,
            };
            loop {
                let page = store.query_connections(&q).await.unwrap();
                assert!(page.len() <= 2);
                let Some(last) = page.last() else { break };
                q.after = Some(ListCursor {
                    created_at: last.created_at,
                    id: last.id,
                });
                paged.extend(page.iter().map(|c| c.id));
            }
            assert_eq!(
                paged, expected,
                "status {status:?}, end user {end_user_filter:?}"
            );
        }
    }
    let first = store
        .query_connections(&ConnectionQuery::first(100))
        .await
        .unwrap();
    assert_eq!(first, all, "whole records, in order");

    let even = store.count_by_status_for(&end_user("even")).await.unwrap();
    assert_eq!(even.total(), 5);
    assert_eq!(
        even.get(ConnectionStatus::NeedsReauth),
        all.iter()
            .filter(|c| c.end_user.as_str() == "even" && c.status == ConnectionStatus::NeedsReauth)
            .count() as u64
    );
    let odd = store.count_by_status_for(&end_user("odd")).await.unwrap();
    assert_eq!(odd.total(), 4);
    assert_eq!(
        odd.get(ConnectionStatus::Active),
        all.iter()
            .filter(|c| c.end_user.as_str() == "odd" && c.status == ConnectionStatus::Active)
            .count() as u64
    );
    assert_eq!(
        store
            .count_by_status_for(&end_user("nobody"))
            .await
            .unwrap()
            .total(),
        0
    );
}
