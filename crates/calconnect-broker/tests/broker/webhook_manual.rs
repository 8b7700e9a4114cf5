//! Deliveries a person asks for: `POST /api/v1/webhooks/test` (sent now, the receivers' answers
//! returned) and `POST /api/v1/webhook-deliveries/{id}/redeliver` (the same event queued again).

use crate::helpers::*;
use crate::webhooks::{fast_worker, hook_options, receiver, settled_log, verify};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_test_event_is_signed_sent_now_and_its_answer_reported() {
    let (ok, ok_url) = receiver(0).await;
    let (failing, failing_url) = receiver(1).await;
    let app = spawn_with(hook_options(
        &format!("{ok_url},{failing_url}"),
        WEBHOOK_SECRET,
    ))
    .await;
    let (status, report) = app.post("/api/v1/webhooks/test", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let event_id = report["event_id"].as_str().unwrap();
    assert!(event_id.starts_with("evt_test_"), "{event_id}");
    assert_eq!(
        report["results"],
        json!([
            {"endpoint": ok_url, "delivered": true, "status_code": 204, "error": null},
            {"endpoint": failing_url, "delivered": false, "status_code": 500,
             "error": "receiver answered 500"},
        ])
    );
    for rx in [&ok, &failing] {
        let got = rx.wait_for(1).await;
        let (headers, body) = &got[0];
        let event = verify(headers, body);
        assert_eq!(event["type"], "webhook.test");
        assert_eq!(event["id"], event_id);
        assert_eq!(headers["calconnect-event-id"], event_id);
        assert_eq!(headers["calconnect-event-type"], "webhook.test");
    }
    // Not an event of the log, and not retried.
    let (_, log) = app.get("/api/v1/webhook-deliveries").await;
    assert_eq!(log["deliveries"], json!([]));
}

#[tokio::test]
async fn a_test_without_endpoints_says_what_to_configure() {
    let app = spawn_app().await;
    let (status, body) = app.post("/api/v1/webhooks/test", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "webhooks_not_configured");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CALCONNECT_WEBHOOK_URLS"),
        "{body}"
    );
}

#[tokio::test]
async fn a_delivered_event_is_sent_again_as_a_new_delivery() {
    let (rx, url) = receiver(0).await;
    let app = spawn_with(hook_options(&url, WEBHOOK_SECRET)).await;
    let id = app.connected("user-1", ALICE).await;
    let first = rx.wait_for(1).await;
    let log = settled_log(&app, &id).await;
    assert_eq!(log.len(), 1);
    let original = &log[0];
    assert_eq!(original["status"], "delivered");

    let (status, queued) = app
        .post(
            &format!("/api/v1/webhook-deliveries/{}/redeliver", original["id"]),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_ne!(queued["id"], original["id"]);
    for field in ["event_id", "event_type", "connection_id", "endpoint"] {
        assert_eq!(queued[field], original[field], "{field}");
    }
    assert_eq!(queued["attempts"], 0);

    let got = rx.wait_for(2).await;
    let (headers, body) = &got[1];
    let again = verify(headers, body);
    assert_eq!(again, verify(&first[0].0, &first[0].1), "the same event");
    assert_eq!(
        headers["calconnect-event-id"],
        original["event_id"].as_str().unwrap()
    );
    let log = settled_log(&app, &id).await;
    let rows: Vec<(&Value, &str)> = log
        .iter()
        .map(|d| (&d["id"], d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [(&queued["id"], "delivered"), (&original["id"], "delivered")]
    );
}

#[tokio::test]
async fn only_a_settled_delivery_of_a_known_id_is_sent_again() {
    let (_rx, url) = receiver(u32::MAX).await;
    let mut options = hook_options(&url, WEBHOOK_SECRET);
    // The first attempt fails and the retry is an hour away: the delivery stays pending.
    options.webhook = Some(calconnect_broker::webhooks::WorkerConfig {
        backoff_base: Duration::from_secs(3600),
        ..fast_worker()
    });
    let app = spawn_with(options).await;
    let id = app.connected("user-1", ALICE).await;
    let pending = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (_, log) = app
                .get(&format!("/api/v1/webhook-deliveries?connection_id={id}"))
                .await;
            if let Some(d) = log["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["attempts"] == 1)
            {
                return d.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first attempt is recorded");
    assert_eq!(pending["status"], "pending");
    let (status, body) = app
        .post(
            &format!("/api/v1/webhook-deliveries/{}/redeliver", pending["id"]),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "delivery_pending");

    for unknown in ["999999", "not-a-number"] {
        let (status, body) = app
            .post(
                &format!("/api/v1/webhook-deliveries/{unknown}/redeliver"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let r = app
        .http
        .post(app.url("/api/v1/webhook-deliveries/1/redeliver"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
