//! Webhooks: received over real sockets, signatures verified, retried after the receiver fails.

use crate::helpers::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(HeaderMap, String)>>,
    fail_first: Mutex<u32>,
    notify: tokio::sync::Notify,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let fail = {
        let mut n = r.fail_first.lock().unwrap();
        let fail = *n > 0;
        *n = n.saturating_sub(1);
        fail
    };
    r.got.lock().unwrap().push((headers, body));
    r.notify.notify_waiters();
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn receiver(fail_first: u32) -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    *r.fail_first.lock().unwrap() = fail_first;
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (r, url)
}

impl Receiver {
    /// Waits until `n` requests arrived (bounded: the test fails rather than hangs).
    async fn wait_for(&self, n: usize) -> Vec<(HeaderMap, String)> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = self.notify.notified();
                if self.got.lock().unwrap().len() >= n {
                    return self.got.lock().unwrap().clone();
                }
                notified.await;
            }
        })
        .await
        .expect("webhooks did not arrive")
    }
}

/// The delivery log of `id` once no delivery is pending any more (the receiver answers before
/// the broker records the answer).
async fn settled_log(app: &TestApp, id: &str) -> Vec<Value> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (_, log) = app
                .get(&format!("/api/v1/webhook-deliveries?connection_id={id}"))
                .await;
            let log = log["deliveries"].as_array().unwrap().clone();
            if log.iter().all(|d| d["status"] != "pending") {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("deliveries settle")
}

fn verify(headers: &HeaderMap, body: &str) -> Value {
    let sig = headers["calconnect-signature"].to_str().unwrap();
    let (t, v1) = sig.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("signature verifies");
    serde_json::from_str(body).unwrap()
}

fn fast_worker() -> calconnect_broker::webhooks::WorkerConfig {
    calconnect_broker::webhooks::WorkerConfig {
        poll: Duration::from_millis(50),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..Default::default()
    }
}

async fn app_with_hook(url: &str) -> TestApp {
    let mut env = calconnect_broker::config::Env::new();
    env.insert("CALCONNECT_WEBHOOK_URLS".into(), url.into());
    env.insert("CALCONNECT_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into());
    spawn_with(Options {
        env,
        webhook: Some(fast_worker()),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn lifecycle_events_arrive_signed_and_in_order() {
    let (rx, url) = receiver(0).await;
    let app = app_with_hook(&url).await;
    let id = app.connected("user-1", ALICE).await;
    app.connected("user-1", ALICE).await;
    let (status, _) = app.delete(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let got = rx.wait_for(3).await;
    let events: Vec<Value> = got.iter().map(|(h, b)| verify(h, b)).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "connection.created",
            "connection.updated",
            "connection.deleted"
        ]
    );
    for e in &events {
        assert_eq!(e["data"]["connection_id"], id.as_str());
        assert_eq!(e["data"]["end_user_id"], "user-1");
    }
    assert_eq!(got[0].0["calconnect-event-type"], "connection.created");
    let log = settled_log(&app, &id).await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:?}");
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_later_events_wait() {
    let (rx, url) = receiver(2).await;
    let app = app_with_hook(&url).await;
    let id = app.connected("user-1", ALICE).await;
    app.connected("user-1", ALICE).await;
    let got = rx.wait_for(4).await;
    let types: Vec<String> = got
        .iter()
        .map(|(h, b)| verify(h, b)["type"].as_str().unwrap().to_owned())
        .collect();
    // Two failures of the first event, then it, then the second: never out of order.
    assert_eq!(
        types,
        [
            "connection.created",
            "connection.created",
            "connection.created",
            "connection.updated"
        ]
    );
    let log = settled_log(&app, &id).await;
    let created = log
        .iter()
        .find(|d| d["event_type"] == "connection.created")
        .unwrap()
        .clone();
    assert_eq!(created["attempts"], 3);
    assert_eq!(created["status"], "delivered");
    assert_eq!(created["last_status_code"], 204);
}

#[tokio::test]
async fn needs_reauth_carries_a_reconnect_link() {
    let (rx, url) = receiver(0).await;
    let app = app_with_hook(&url).await;
    let id = app.connected("user-1", ALICE).await;
    // Cal.com kills the grant; the next refresh learns it.
    app.sandbox.revoke_grant(
        calconnect_sandbox::CONFIDENTIAL_CLIENT_ID,
        calconnect_sandbox::Owner::User(ALICE),
    );
    app.sandbox.advance_clock(time::Duration::minutes(31));
    let r = app
        .http
        .get(app.url(&format!("/api/v1/connections/{id}/proxy/me")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "connection_needs_reauth");
    let got = rx.wait_for(2).await;
    let e = verify(&got[1].0, &got[1].1);
    assert_eq!(e["type"], "connection.needs_reauth");
    let link = e["data"]["reconnect_url"].as_str().unwrap();
    assert!(link.starts_with(&app.url("/connect/")), "{link}");
    // The link works: reconnecting recovers the same connection.
    let b = browser();
    let callback = app.consent(&b, link, ALICE, "allow").await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(outcome(r).await.1, "updated");
    let got = rx.wait_for(3).await;
    assert_eq!(verify(&got[2].0, &got[2].1)["type"], "connection.recovered");
}
