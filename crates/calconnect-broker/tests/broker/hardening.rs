//! The broker's hardening over real sockets: what the proxy refuses to forward, how many
//! refreshes a burst of 401s causes, and empty scope lists.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

async fn proxy(app: &TestApp, id: &str, method: Method, rest: &str) -> reqwest::Response {
    app.http
        .request(
            method,
            app.url(&format!("/api/v1/connections/{id}/proxy/{rest}")),
        )
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_proxy_forwards_only_api_methods_and_plain_api_paths() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let api_calls = || app.sandbox.api_calls("/");
    let before = api_calls();

    // Methods Cal.com's API does not use: 405 with the allowed list, nothing forwarded.
    for m in ["TRACE", "PROPFIND", "OPTIONS", "HEAD"] {
        let r = proxy(&app, &id, Method::from_bytes(m.as_bytes()).unwrap(), "me").await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(
            r.headers()["allow"].to_str().unwrap(),
            "GET, POST, PUT, PATCH, DELETE",
            "{m}"
        );
    }
    // CONNECT never reaches a route at all.
    let r = proxy(&app, &id, Method::CONNECT, "me").await;
    assert!(r.status().is_client_error(), "{}", r.status());
    // Path tricks and Cal.com's own auth routes: 400, nothing forwarded.
    for bad in [
        "a%5Cb",
        "a%5cb",
        "..;/auth/oauth2/token",
        "me;x=1",
        "auth/oauth2/token",
        "v2/auth/oauth2/token",
        "Auth/oauth2/clients",
        "v2/v2/me",
    ] {
        let r = proxy(&app, &id, Method::GET, bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(api_calls(), before, "nothing reached Cal.com");

    // An optional leading `v2/` is the same route.
    let r = proxy(&app, &id, Method::GET, "v2/me").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = proxy(&app, &id, Method::GET, "me").await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_401s_for_one_token_makes_one_refresh() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/connections/{id}/access-token"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Cal.com's clock passes the token's expiry while the broker still thinks it fresh: every
    // call with it is answered 401.
    app.sandbox.advance_clock(time::Duration::minutes(31));
    let calls = (0..5).map(|_| proxy(&app, &id, Method::GET, "me"));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status(), StatusCode::OK);
    }
    for _ in 0..5 {
        assert_eq!(
            proxy(&app, &id, Method::GET, "me").await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.sandbox.token_calls("refresh_token", "ok"), 1);
}

#[tokio::test]
async fn an_empty_scope_list_is_refused() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/connect-sessions",
            serde_json::json!({"end_user_id": "u", "scopes": []}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scopes: empty"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let token = "metrics-token-0123456789";
    let app = spawn_with(Options {
        extra_toml: format!("[metrics]\ntoken = \"{token}\""),
        ..Options::default()
    })
    .await;
    let get = |auth: Option<&str>| {
        let mut r = app.http.get(app.url("/metrics"));
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some("metrics-token-wrong-00000"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = get(Some(token)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let text = ok.text().await.unwrap();
    assert!(
        text.contains("calconnect_connections{status=\"active\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_can_live_on_their_own_listener_and_count_without_a_scan() {
    let app = spawn_with(Options {
        extra_toml: "[metrics]\nlisten = \"127.0.0.1:0\"".into(),
        ..Options::default()
    })
    .await;
    app.connected("user-1", ALICE).await;
    app.connected("user-2", BOB).await;
    // Not on the public listener …
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // … but on its own.
    let at = app.broker.metrics_addr().unwrap();
    let text = app
        .http
        .get(format!("http://{at}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("calconnect_connections{status=\"active\"} 2"),
        "{text}"
    );
    assert!(text.contains("calconnect_connect_flows_total"), "{text}");
}
