//! The JSON API: authentication, errors, connections, health.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn api_keys_are_required_and_revocable() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/connections?end_user_id=u");
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic abc"),
        Some("Bearer cck_wrong"),
    ] {
        let mut req = app.http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let (status, _) = app.get("/api/v1/connections?end_user_id=u").await;
    assert_eq!(status, StatusCode::OK);
    let keys = calconnect_broker::api_keys::list(app.broker.db())
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(app.api_key.starts_with(&keys[0].prefix));
    assert!(
        calconnect_broker::api_keys::revoke(app.broker.db(), &keys[0].id, 1)
            .await
            .unwrap()
    );
    let (status, body) = app.get("/api/v1/connections?end_user_id=u").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn bad_inputs_are_json_errors() {
    let app = spawn_app().await;
    let cases = [
        json!({}),
        json!({"end_user_id": ""}),
        json!({"end_user_id": "a\u{0}b"}),
        json!({"end_user_id": "u", "scopes": ["BAD SCOPE"]}),
        json!({"end_user_id": "u", "return_to": "javascript:alert(1)"}),
        json!({"end_user_id": "u", "return_to": "/relative"}),
        json!({"end_user_id": "u", "unknown": 1}),
        json!({"end_user_id": 5}),
    ];
    for body in cases {
        let (status, err) = app.post("/api/v1/connect-sessions", body.clone()).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {status}"
        );
        assert!(err["error"]["code"].is_string(), "{err}");
    }
    let r = app
        .http
        .post(app.url("/api/v1/connect-sessions"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, err) = json_of(r).await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "invalid_request");
    let r = app
        .http
        .post(app.url("/api/v1/connect-sessions"))
        .bearer_auth(&app.api_key)
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, err) = json_of(r).await;
    assert_error(
        status,
        &err,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let big = "x".repeat(calconnect_broker::MAX_BODY_BYTES + 10);
    let (status, err) = app
        .post("/api/v1/connect-sessions", json!({"end_user_id": big}))
        .await;
    assert_error(
        status,
        &err,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    let (status, err) = app.get("/api/v1/connections/not-a-uuid").await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "not_found");
    let (status, err) = app
        .get("/api/v1/connections/5f0c6a3e-8d1e-4c4e-9a55-0d6f0e4b1a11")
        .await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "not_found");
    for bad in [
        "status=broken",
        "limit=0",
        "limit=201",
        "limit=-1",
        "cursor=not-a-cursor",
        "end_user_id=",
    ] {
        let (status, err) = app.get(&format!("/api/v1/connections?{bad}")).await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let (status, err) = app.get("/api/v1/nothing-here").await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "not_found");
    let (status, err) = app.get("/nothing-here").await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn delete_is_local_and_says_so() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let (status, body) = app.delete(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], true);
    assert_eq!(body["revoked_at_provider"], false);
    assert!(
        body["note"]
            .as_str()
            .unwrap()
            .contains("no revocation endpoint")
    );
    let (status, _) = app.get(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_readiness_and_security_headers() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let (status, body) = json_of(r).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = json_of(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["migrations"], true);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("calconnect_connections{status=\"active\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn openapi_document_lists_the_api() {
    let app = spawn_app().await;
    let (status, doc) = json_of(
        app.http
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/connect-sessions",
        "/api/v1/connections",
        "/api/v1/connections/{id}",
        "/api/v1/connections/{id}/access-token",
        "/api/v1/connections/{id}/proxy/{path}",
        "/api/v1/webhook-deliveries",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    // Fit for code generators: every operation has an id of its own, and a server is named.
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str();
            assert!(id.is_some(), "{method} {path} has no operationId");
            ids.push(id.unwrap().to_owned());
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds repeat: {ids:?}");
    assert!(doc["servers"][0]["url"].is_string(), "no servers entry");
    std::fs::write(
        std::env::temp_dir().join("calconnect-openapi.json"),
        doc.to_string(),
    )
    .unwrap();
}

/// A key's last use is recorded when the broker accepts it (`calconnect api-keys list`).
#[tokio::test]
async fn an_accepted_api_key_records_its_last_use() {
    let app = spawn_app().await;
    let before = calconnect_broker::api_keys::list(app.broker.db())
        .await
        .unwrap();
    assert!(
        before.iter().all(|k| k.last_used_at_ms.is_none()),
        "{before:?}"
    );
    let (status, _) = app.get("/api/v1/connections?end_user_id=nobody").await;
    assert_eq!(status, StatusCode::OK);
    let after = calconnect_broker::api_keys::list(app.broker.db())
        .await
        .unwrap();
    assert!(
        after.iter().any(|k| k.last_used_at_ms.is_some()),
        "{after:?}"
    );
}
