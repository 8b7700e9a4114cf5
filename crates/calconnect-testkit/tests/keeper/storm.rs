//! Storms in one process: many callers, one refresh per connection, no `invalid_grant`.

use super::env;
use calconnect_testkit::keeper::{invalid_grants, refreshes, usable};
use futures::future::join_all;
use std::collections::HashSet;
use time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_callers_on_one_expired_connection_share_one_refresh() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    let (old, _) = env.parts.open_tokens(id).await;
    env.advance(Duration::minutes(31));

    let calls = (0..1000).map(|_| {
        let keeper = keeper.clone();
        tokio::spawn(async move { keeper.access_token(id).await })
    });
    let results = join_all(calls).await;
    let tokens: HashSet<String> = results
        .into_iter()
        .map(|r| r.unwrap().unwrap().access_token.expose_secret().to_owned())
        .collect();

    assert_eq!(
        refreshes(&env.sandbox),
        1,
        "{:?}",
        env.sandbox.token_call_counts()
    );
    assert_eq!(invalid_grants(&env.sandbox), 0);
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    let new = tokens.into_iter().next().unwrap();
    assert_ne!(new, old.expose_secret());
    let (stored, _) = env.parts.open_tokens(id).await;
    assert_eq!(
        stored.expose_secret(),
        new,
        "persisted before it was handed out"
    );
    assert!(usable(&env.url(), &stored).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_expired_connections_make_exactly_hundred_refreshes() {
    let env = env().await;
    let mut ids = Vec::new();
    for user in 1000..1100 {
        ids.push(env.connect(user).await);
    }
    let keeper = env.keeper();
    env.advance(Duration::minutes(31));

    let calls = (0..1000).map(|i| {
        let keeper = keeper.clone();
        let id = ids[i % ids.len()];
        tokio::spawn(async move { (id, keeper.access_token(id).await) })
    });
    let mut per_connection = std::collections::HashMap::<_, HashSet<String>>::new();
    for r in join_all(calls).await {
        let (id, token) = r.unwrap();
        per_connection
            .entry(id)
            .or_default()
            .insert(token.unwrap().access_token.expose_secret().to_owned());
    }
    assert_eq!(
        refreshes(&env.sandbox),
        100,
        "{:?}",
        env.sandbox.token_call_counts()
    );
    assert_eq!(invalid_grants(&env.sandbox), 0);
    assert_eq!(per_connection.len(), 100);
    assert!(per_connection.values().all(|t| t.len() == 1));
}

#[tokio::test]
async fn hot_path_serves_the_cache_without_store_or_network() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    let first = keeper.access_token(id).await.unwrap();
    // The store no longer has the connection: only the cache can answer.
    env.parts.store.delete_connection(id, "test").await.unwrap();
    let again = keeper.access_token(id).await.unwrap();
    assert_eq!(
        first.access_token.expose_secret(),
        again.access_token.expose_secret()
    );
    assert_eq!(refreshes(&env.sandbox), 0);
    // Within the margin (5 minutes before expiry) it goes to the store: gone.
    env.advance(Duration::minutes(26));
    let err = keeper.access_token(id).await.unwrap_err();
    assert!(
        matches!(err, calconnect::keeper::KeeperError::NotFound { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn refresh_happens_only_within_the_margin() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    env.advance(Duration::minutes(24));
    keeper.access_token(id).await.unwrap();
    assert_eq!(refreshes(&env.sandbox), 0, "6 minutes left: no refresh");
    env.advance(Duration::minutes(2));
    keeper.access_token(id).await.unwrap();
    assert_eq!(refreshes(&env.sandbox), 1, "4 minutes left: refresh");
    keeper.access_token(id).await.unwrap();
    assert_eq!(refreshes(&env.sandbox), 1);
}

#[tokio::test]
async fn rejected_token_refreshes_once_and_refresh_now_always() {
    let env = env().await;
    let id = env.connect(1).await;
    let keeper = env.keeper();
    let first = keeper.access_token(id).await.unwrap().access_token;
    env.advance(Duration::seconds(1));
    let second = keeper
        .refresh_rejected(id, &first)
        .await
        .unwrap()
        .access_token;
    assert!(!second.ct_eq(&first));
    // The same rejection again (a second client that held the old token): no new refresh.
    let third = keeper
        .refresh_rejected(id, &first)
        .await
        .unwrap()
        .access_token;
    assert!(third.ct_eq(&second));
    assert_eq!(refreshes(&env.sandbox), 1);
    env.advance(Duration::seconds(1));
    let forced = keeper.refresh_now(id).await.unwrap().access_token;
    assert!(!forced.ct_eq(&second));
    assert_eq!(refreshes(&env.sandbox), 2);
    assert_eq!(invalid_grants(&env.sandbox), 0);
}

#[tokio::test]
async fn token_source_refreshes_once_after_a_401() {
    use calconnect::crypto::{SealContext, SealedField};
    use calconnect::store::TokenWrite;
    let env = env().await;
    let id = env.connect(1).await;
    // A stored access token Cal.com does not accept, though its expiry looks fine.
    let c = env.parts.store.get_connection(id).await.unwrap();
    let bogus = env
        .parts
        .keyring
        .seal_secret(
            &mut rand::rngs::OsRng,
            SealContext::connection(id.as_uuid(), SealedField::AccessToken),
            &secrecy::SecretString::from("not-a-cal-com-token"),
        )
        .unwrap();
    env.parts
        .store
        .write_tokens(
            id,
            TokenWrite {
                expected_version: c.version,
                access_token: bogus,
                refresh_token: None,
                access_expires_at: c.access_expires_at,
                refresh_expires_at_estimate: None,
                scopes: None,
            },
        )
        .await
        .unwrap();
    let keeper = env.keeper();
    let api = calconnect::api::CalClient::for_profile(
        &calconnect_testkit::keeper::profile(&env.url()),
        calconnect_testkit::keeper::http(std::time::Duration::from_secs(10)),
        std::sync::Arc::new(keeper.token_source(id)),
    )
    .unwrap()
    .build();
    api.me().await.unwrap();
    api.me().await.unwrap();
    assert_eq!(
        refreshes(&env.sandbox),
        1,
        "one refresh, then the cached new token"
    );
    assert_eq!(invalid_grants(&env.sandbox), 0);
}
