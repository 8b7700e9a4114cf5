//! Two broker instances (separate pools, keepers and lease owners, as two processes would have)
//! on one PostgreSQL database: a flow started on one finishes on the other; a refresh storm
//! through both makes one refresh per connection.

use crate::helpers::*;
use calconnect::{Clock, MockClock};
use calconnect_testkit::postgres::TestDatabase;
use reqwest::StatusCode;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_flows_and_refresh_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let clock = Arc::new(MockClock::new(calconnect::SystemClock.now()));
    // Instance A's address is the public one (the load balancer's, for the redirect URI).
    let a_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = format!("http://{}", a_listener.local_addr().unwrap());
    let sandbox = Arc::new(
        calconnect_sandbox::Sandbox::builder()
            .redirect_uri(
                calconnect_sandbox::ClientType::Confidential,
                format!("{public}/oauth/callback"),
            )
            .start()
            .await
            .unwrap(),
    );
    let key = key_text();
    let instance = |listener: Option<std::net::TcpListener>, name: &str| {
        let mut env = calconnect_broker::config::Env::new();
        env.insert("CALCONNECT_KEYS".into(), key.clone());
        Options {
            clock: Some(clock.clone() as Arc<dyn Clock>),
            env,
            database_url: Some(db.url().to_owned()),
            sandbox: Some(sandbox.clone()),
            listener,
            public_base_url: Some(public.clone()),
            instance_name: Some(name.to_owned()),
            ..Options::default()
        }
    };
    let a = spawn_with(instance(Some(a_listener), "instance-a")).await;
    let b = spawn_with(instance(None, "instance-b")).await;

    // Started on A (API key of A's database works on B: one database).
    let connect_url = a.session("user-1", Some("https://app.example/done")).await;
    let browser = browser();
    let callback = a.consent(&browser, &connect_url, ALICE, "allow").await;
    // The load balancer sends the callback to B.
    let to_b = callback.replacen(&public, &b.base, 1);
    let r = browser.get(&to_b).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let q = query_of(&location(&r));
    assert_eq!(q["outcome"], "created");
    let alice = q["connection_id"].clone();
    let bob = b.connected("user-2", BOB).await;
    let (status, c) = a.get(&format!("/api/v1/connections/{alice}")).await;
    assert_eq!(
        (status, c["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );

    // 29 minutes later both tokens are inside the keepers' 5-minute margin: a storm of
    // access-token requests through both instances.
    clock.advance(time::Duration::minutes(29));
    sandbox.reset_token_calls();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (base, id) = match i % 4 {
            0 => (a.base.clone(), alice.clone()),
            1 => (b.base.clone(), alice.clone()),
            2 => (a.base.clone(), bob.clone()),
            _ => (b.base.clone(), bob.clone()),
        };
        let key = if i % 2 == 0 {
            a.api_key.clone()
        } else {
            b.api_key.clone()
        };
        tasks.push(tokio::spawn(async move {
            let r = no_redirects()
                .post(format!("{base}/api/v1/connections/{id}/access-token"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let (status, body) = json_of(r).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            (id, body["access_token"].as_str().unwrap().to_owned())
        }));
    }
    let mut tokens = std::collections::HashMap::<String, std::collections::HashSet<String>>::new();
    for t in tasks {
        let (id, token) = t.await.unwrap();
        tokens.entry(id).or_default().insert(token);
    }
    assert_eq!(
        sandbox.token_calls("refresh_token", "ok"),
        2,
        "one refresh per connection"
    );
    assert_eq!(
        sandbox.token_calls("refresh_token", "invalid_grant:refresh_token_revoked"),
        0
    );
    for (id, set) in &tokens {
        assert_eq!(set.len(), 1, "every caller got the refreshed token of {id}");
    }
}

/// One truth across instances: a disconnect and an API key revocation made on one instance take
/// effect on the other within a second, although the other had the token and the key cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disconnect_and_a_key_revocation_reach_the_other_instance_within_a_second() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let a_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = format!("http://{}", a_listener.local_addr().unwrap());
    let sandbox = Arc::new(
        calconnect_sandbox::Sandbox::builder()
            .redirect_uri(
                calconnect_sandbox::ClientType::Confidential,
                format!("{public}/oauth/callback"),
            )
            .start()
            .await
            .unwrap(),
    );
    let key = key_text();
    let instance = |listener: Option<std::net::TcpListener>, name: &str| {
        let mut env = calconnect_broker::config::Env::new();
        env.insert("CALCONNECT_KEYS".into(), key.clone());
        Options {
            env,
            database_url: Some(db.url().to_owned()),
            sandbox: Some(sandbox.clone()),
            listener,
            public_base_url: Some(public.clone()),
            instance_name: Some(name.to_owned()),
            // The default: a verified key is trusted for a second.
            api_key_cache_ttl: Some(calconnect_broker::api_keys::KeyCache::TTL),
            ..Options::default()
        }
    };
    let a = spawn_with(instance(Some(a_listener), "instance-a")).await;
    let b = spawn_with(instance(None, "instance-b")).await;
    let id = a.connected("user-1", ALICE).await;
    // B hands out the token and proxies with it: both cached now.
    let (status, _) = b
        .post(
            &format!("/api/v1/connections/{id}/access-token"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let proxy = |app: &TestApp| {
        app.http
            .get(app.url(&format!("/api/v1/connections/{id}/proxy/me")))
            .bearer_auth(&app.api_key)
            .send()
    };
    assert_eq!(proxy(&b).await.unwrap().status(), StatusCode::OK);

    // Disconnected on A.
    let (status, _) = a.delete(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let deleted = std::time::Instant::now();
    let (status, _) = b.get(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    loop {
        let status = proxy(&b).await.unwrap().status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            deleted.elapsed() < std::time::Duration::from_secs(1),
            "B still proxies for a deleted connection after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _) = b
        .post(
            &format!("/api/v1/connections/{id}/access-token"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // B's API key (from B's own `api_keys::create`, cached by B) is revoked through A.
    let (status, _) = b.get("/api/v1/connections?end_user_id=x").await;
    assert_eq!(status, StatusCode::OK);
    let keys = calconnect_broker::api_keys::list(a.broker.db())
        .await
        .unwrap();
    let now = calconnect::SystemClock.now().unix_timestamp() * 1000;
    for k in &keys {
        calconnect_broker::api_keys::revoke(a.broker.db(), &k.id, now)
            .await
            .unwrap();
    }
    let revoked = std::time::Instant::now();
    loop {
        let (status, _) = b.get("/api/v1/connections?end_user_id=x").await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            revoked.elapsed() < std::time::Duration::from_millis(1500),
            "B still accepts a revoked key after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
