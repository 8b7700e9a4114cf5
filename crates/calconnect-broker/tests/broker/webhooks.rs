//! Webhooks: received over real sockets, signatures verified (one `v1` per secret), retried
//! after the receiver fails, dropped once their endpoint is removed, and a slow receiver does not
//! hold up another.

use crate::helpers::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Receiver {
    got: Mutex<Vec<(HeaderMap, String)>>,
    fail_first: Mutex<u32>,
    /// How long the first request waits before it is answered.
    slow_first: Mutex<Option<Duration>>,
    /// When each request arrived, and when each was answered (the test's own clock).
    arrived: Mutex<Vec<Instant>>,
    answered: Mutex<Vec<Instant>>,
    notify: tokio::sync::Notify,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    r.arrived.lock().unwrap().push(Instant::now());
    let fail = {
        let mut n = r.fail_first.lock().unwrap();
        let fail = *n > 0;
        *n = n.saturating_sub(1);
        fail
    };
    let slow = r.slow_first.lock().unwrap().take();
    if let Some(wait) = slow {
        // The receiver is slow (this is what is tested, not a wait for readiness).
        tokio::time::sleep(wait).await;
    }
    r.got.lock().unwrap().push((headers, body));
    r.answered.lock().unwrap().push(Instant::now());
    r.notify.notify_waiters();
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

pub(crate) async fn receiver(fail_first: u32) -> (Arc<Receiver>, String) {
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
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<(HeaderMap, String)> {
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
pub(crate) async fn settled_log(app: &TestApp, id: &str) -> Vec<Value> {
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

pub(crate) fn verify(headers: &HeaderMap, body: &str) -> Value {
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

pub(crate) fn fast_worker() -> calconnect_broker::webhooks::WorkerConfig {
    calconnect_broker::webhooks::WorkerConfig {
        poll: Duration::from_millis(50),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Options for a broker that sends webhooks to `urls` (comma-separated) signed with `secrets`
/// (comma-separated).
pub(crate) fn hook_options(urls: &str, secrets: &str) -> Options {
    let mut env = calconnect_broker::config::Env::new();
    env.insert("CALCONNECT_WEBHOOK_URLS".into(), urls.into());
    env.insert("CALCONNECT_WEBHOOK_SECRET".into(), secrets.into());
    Options {
        env,
        webhook: Some(fast_worker()),
        ..Options::default()
    }
}

async fn app_with_hook(url: &str) -> TestApp {
    spawn_with(hook_options(url, WEBHOOK_SECRET)).await
}

/// Cal.com kills `id`'s grant; the next proxied call refreshes, learns it, and the connection
/// needs reauthorization.
pub(crate) async fn break_connection(app: &TestApp, id: &str) {
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
    break_connection(&app, &id).await;
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

/// The `v1` values of a signature header that match `secret`, and its `t`.
fn matching_v1(headers: &HeaderMap, body: &str, secret: &str) -> (i64, usize) {
    let sig = headers["calconnect-signature"].to_str().unwrap();
    let mut parts = sig.split(',');
    let t = parts.next().unwrap().strip_prefix("t=").unwrap();
    let matching = parts
        .map(|p| p.strip_prefix("v1=").unwrap())
        .filter(|v1| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{t}.{body}").as_bytes());
            mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
        })
        .count();
    (t.parse().unwrap(), matching)
}

#[tokio::test]
async fn every_secret_signs_so_a_receiver_needs_only_one() {
    const NEW: &str = "rotated-in-secret-0123456789abcdef";
    let (rx, url) = receiver(0).await;
    let app = spawn_with(hook_options(&url, &format!("{NEW}, {WEBHOOK_SECRET}"))).await;
    app.connected("user-1", ALICE).await;
    let got = rx.wait_for(1).await;
    let (headers, body) = &got[0];
    let sig = headers["calconnect-signature"].to_str().unwrap();
    assert_eq!(sig.matches(",v1=").count(), 2, "{sig}");
    // A receiver still on the old secret and one already on the new each find theirs.
    assert_eq!(matching_v1(headers, body, WEBHOOK_SECRET).1, 1);
    let (t, matching) = matching_v1(headers, body, NEW);
    assert_eq!(matching, 1);
    assert_eq!(
        matching_v1(headers, body, "some-other-secret-0123456789").1,
        0
    );
    let now = calconnect::Clock::now(&calconnect::SystemClock).unix_timestamp();
    assert!((now - t).abs() < 60, "t={t} now={now}");
    // The newest secret signs first.
    let first = sig.split(',').nth(1).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(NEW.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(
        first,
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    );
}

#[tokio::test]
async fn deliveries_to_a_removed_endpoint_are_dropped_not_sent() {
    // The first broker sends to an endpoint that keeps failing, so its delivery stays pending.
    let (removed, removed_url) = receiver(u32::MAX).await;
    let (kept, kept_url) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("broker.db").display());
    let key = key_text();
    let mut first = hook_options(&removed_url, WEBHOOK_SECRET);
    first.database_url = Some(database_url.clone());
    first.env.insert("CALCONNECT_KEYS".into(), key.clone());
    first.webhook = Some(calconnect_broker::webhooks::WorkerConfig {
        max_attempts: 1_000_000,
        ..fast_worker()
    });
    let app = spawn_with(first).await;
    let id = app.connected("user-1", ALICE).await;
    removed.wait_for(2).await;
    let (sandbox, _kept_dir) = app.shutdown().await;
    let tries = removed.got.lock().unwrap().len();

    // Restarted on the same database with another endpoint list.
    let mut second = hook_options(&kept_url, WEBHOOK_SECRET);
    second.database_url = Some(database_url);
    second.sandbox = Some(sandbox);
    second.env.insert("CALCONNECT_KEYS".into(), key);
    let app = spawn_with(second).await;
    let log = settled_log(&app, &id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["event_type"], "connection.created");
    assert_eq!(log[0]["status"], "dropped", "{log:?}");
    assert_eq!(
        log[0]["last_error"],
        "endpoint removed from the configuration"
    );
    assert_eq!(log[0]["endpoint"], removed_url.as_str());

    // New events go to the configured endpoint only.
    let (status, _) = app.delete(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let got = kept.wait_for(1).await;
    assert_eq!(verify(&got[0].0, &got[0].1)["type"], "connection.deleted");
    let log = settled_log(&app, &id).await;
    let deleted: Vec<&Value> = log
        .iter()
        .filter(|d| d["event_type"] == "connection.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{log:?}");
    assert_eq!(deleted[0]["endpoint"], kept_url.as_str());
    assert_eq!(deleted[0]["status"], "delivered");
    assert_eq!(
        removed.got.lock().unwrap().len(),
        tries,
        "nothing more reached the removed endpoint"
    );
    let _ = app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_hold_up_another() {
    const SLOW: Duration = Duration::from_secs(6);
    let (slow, slow_url) = receiver(0).await;
    *slow.slow_first.lock().unwrap() = Some(SLOW);
    let (fast, fast_url) = receiver(0).await;
    let app = spawn_with(hook_options(
        &format!("{slow_url},{fast_url}"),
        WEBHOOK_SECRET,
    ))
    .await;
    // Three events of one connection: each endpoint gets them in order, one after the other.
    let id = app.connected("user-1", ALICE).await;
    app.connected("user-1", ALICE).await;
    let (status, _) = app.delete(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let expected = [
        "connection.created",
        "connection.updated",
        "connection.deleted",
    ];
    let types = |got: &[(HeaderMap, String)]| -> Vec<String> {
        got.iter()
            .map(|(h, b)| verify(h, b)["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(types(&fast.wait_for(3).await), expected);
    assert_eq!(
        types(&slow.wait_for(3).await),
        expected,
        "in order there too"
    );
    // All three reached the fast receiver before the slow one answered its first.
    let fast_third = fast.arrived.lock().unwrap()[2];
    let slow_first_answer = slow.answered.lock().unwrap()[0];
    let slow_first_arrival = slow.arrived.lock().unwrap()[0];
    assert!(
        fast_third < slow_first_answer,
        "the fast receiver's third delivery came {:?} after the slow receiver's first arrived; \
         the slow one answered after {:?}",
        fast_third.duration_since(slow_first_arrival),
        slow_first_answer.duration_since(slow_first_arrival)
    );
    let log = settled_log(&app, &id).await;
    assert_eq!(log.len(), 6, "{log:?}");
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:?}");
}
