//! Access tokens and the API v2 proxy.

use crate::helpers::*;
use reqwest::StatusCode;
use std::sync::Arc;

#[tokio::test]
async fn access_token_is_fresh_and_works_at_cal_com() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let r = app
        .authed(
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/access-token"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(body["expires_at"].is_string());
    let me = no_redirects()
        .get(app.sandbox.api_url().join("v2/me").unwrap())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let (status, err) = app
        .post(
            "/api/v1/connections/5f0c6a3e-8d1e-4c4e-9a55-0d6f0e4b1a11/access-token",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn proxy_forwards_me_and_schedules_with_allowlisted_headers() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let r = app
        .authed(
            reqwest::Method::GET,
            &format!("/api/v1/connections/{id}/proxy/me"),
        )
        .header("cookie", "secret=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()
            .keys()
            .any(|k| k.as_str().starts_with("x-ratelimit-")),
        "{:?}",
        r.headers()
    );
    let (_, me) = json_of(r).await;
    assert_eq!(me["data"]["id"], ALICE);
    let r = app
        .authed(
            reqwest::Method::GET,
            &format!("/api/v1/connections/{id}/proxy/schedules"),
        )
        .header("cal-api-version", "2024-06-11")
        .send()
        .await
        .unwrap();
    let (status, schedules) = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{schedules}");
    assert!(
        schedules["data"][0]["availability"][0]["days"].is_array(),
        "{schedules}"
    );
    // Without the header the proxy sends the route's documented version (2024-06-11 for
    // schedules: English day names), as `calconnect api` does; a header the app sends wins
    // (2024-04-15: the older `workingHours` shape). The path's slashes may come encoded.
    for (version, encoded, want_days) in [
        (None, "schedules%2Fdefault", true),
        (Some("2024-04-15"), "schedules/default", false),
    ] {
        let mut request = app.authed(
            reqwest::Method::GET,
            &format!("/api/v1/connections/{id}/proxy/{encoded}"),
        );
        if let Some(v) = version {
            request = request.header("cal-api-version", v);
        }
        let (status, schedule) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{schedule}");
        assert_eq!(
            schedule["data"]["availability"][0]["days"][0] == "Monday",
            want_days,
            "{version:?}: {schedule}"
        );
        assert_eq!(
            schedule["data"]["workingHours"].is_array(),
            !want_days,
            "{version:?}: {schedule}"
        );
    }
    // Path tricks are refused before anything is sent.
    let r = app
        .authed(
            reqwest::Method::GET,
            &format!("/api/v1/connections/{id}/proxy/me%2F..%2Fauth"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Without an API key: nothing is proxied.
    let r = app
        .http
        .get(app.url(&format!("/api/v1/connections/{id}/proxy/me")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn proxy_refreshes_once_on_401_and_retries() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let (_, first) = app
        .post(
            &format!("/api/v1/connections/{id}/access-token"),
            serde_json::json!({}),
        )
        .await;
    // Cal.com's clock moves past the token's expiry; the broker still thinks it fresh.
    app.sandbox.advance_clock(time::Duration::minutes(31));
    let r = app
        .authed(
            reqwest::Method::GET,
            &format!("/api/v1/connections/{id}/proxy/me"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.sandbox.token_calls("refresh_token", "ok"), 1);
    let (_, second) = app
        .post(
            &format!("/api/v1/connections/{id}/access-token"),
            serde_json::json!({}),
        )
        .await;
    assert_ne!(first["access_token"], second["access_token"]);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "calconnect_proxy_requests_total{status=\"2xx\"}",
        "calconnect_proxy_request_seconds_bucket",
        "calconnect_token_requests_total{outcome=\"ok\"}",
        "calconnect_connect_flows_total{outcome=\"created\"}",
        "calconnect_connections{status=\"active\"} 1",
        "calconnect_keeper_refreshes_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn rate_limits_pass_through() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Arc::new(
        calconnect_sandbox::Sandbox::builder()
            .rate_limit(2, time::Duration::minutes(1))
            .redirect_uri(
                calconnect_sandbox::ClientType::Confidential,
                format!("{base}/oauth/callback"),
            )
            .start()
            .await
            .unwrap(),
    );
    let app = spawn_with(Options {
        listener: Some(listener),
        sandbox: Some(sandbox),
        ..Options::default()
    })
    .await;
    let id = app.connected("user-1", ALICE).await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            app.authed(
                reqwest::Method::GET,
                &format!("/api/v1/connections/{id}/proxy/me"),
            )
            .send()
            .await
            .unwrap(),
        );
    }
    let r = last.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.headers().contains_key("x-ratelimit-remaining-default"),
        "{:?}",
        r.headers()
    );
    let (_, body) = json_of(r).await;
    assert_eq!(
        body["error"]["code"], "ThrottlerException",
        "Cal.com's envelope passes through: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_an_in_flight_refresh() {
    use calconnect::{Clock, MockClock};
    let clock = Arc::new(MockClock::new(calconnect::SystemClock.now()));
    let app = spawn_with(Options {
        clock: Some(clock.clone() as Arc<dyn Clock>),
        ..Options::default()
    })
    .await;
    let id = app.connected("user-1", ALICE).await;
    clock.advance(time::Duration::minutes(29));
    app.sandbox
        .inject_fault(calconnect_sandbox::FaultKind::Delay { ms: 400 }, 1)
        .unwrap();
    let url = app.url(&format!("/api/v1/connections/{id}/access-token"));
    let key = app.api_key.clone();
    let request = tokio::spawn(async move {
        json_of(
            no_redirects()
                .post(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap(),
        )
        .await
    });
    // The refresh has reached Cal.com once the one-shot delay fault is taken.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !app.sandbox.faults().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let sandbox = app.sandbox.clone();
    let _kept = app.shutdown().await;
    let (status, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sandbox.token_calls("refresh_token", "ok"), 1);
}

#[tokio::test]
async fn refresh_endpoint_refreshes_now_even_when_the_token_is_fresh() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let path = format!("/api/v1/connections/{id}/access-token");
    let (status, _) = app.post(&path, serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.sandbox.token_calls("refresh_token", "ok"),
        0,
        "fresh: no refresh"
    );

    let r = app
        .authed(
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/refresh"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.sandbox.token_calls("refresh_token", "ok"), 1);
    let me = no_redirects()
        .get(app.sandbox.api_url().join("v2/me").unwrap())
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    // After a revoked grant the refresh says the user must reconnect.
    app.sandbox.revoke_grant(
        calconnect_sandbox::CONFIDENTIAL_CLIENT_ID,
        calconnect_sandbox::state::Owner::User(ALICE),
    );
    let (status, body) = app
        .post(
            &format!("/api/v1/connections/{id}/refresh"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "connection_needs_reauth");
    let (status, _) = app
        .post(
            "/api/v1/connections/not-a-uuid/refresh",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "as for the other connection routes"
    );
}

#[tokio::test]
async fn proxy_refuses_request_bodies_over_its_limit() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let before = app.sandbox.api_calls("/");
    // A declared length over 10 MiB is refused before anything is sent (the proxy's own check;
    // streamed bodies are cut at the same limit).
    let r = app
        .authed(
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/proxy/schedules"),
        )
        .header("content-length", (10 * 1024 * 1024 + 1).to_string())
        .body(vec![b'x'; 10 * 1024 * 1024 + 1])
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert_eq!(
        app.sandbox.api_calls("/"),
        before,
        "nothing reached Cal.com"
    );
}

/// `POST …/refresh` of `id`, which the budget must refuse: 503 `budget_exhausted`; returns its
/// `Retry-After` in seconds.
async fn refused_by_the_budget(app: &TestApp, id: &str) -> u64 {
    let r = app
        .authed(
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/refresh"),
        )
        .send()
        .await
        .unwrap();
    let retry_after = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "budget_exhausted");
    retry_after
}

/// The token-endpoint budget (docs/scaling.md) is spent by two code exchanges: an on-demand
/// refresh is refused at once with 503 `budget_exhausted` and a `Retry-After`, nothing is sent
/// to Cal.com, and the connection stays active; a third person connecting is told Cal.com is
/// busy.
#[tokio::test]
async fn a_spent_budget_answers_503_with_retry_after() {
    let app = spawn_with(Options {
        extra_toml:
            "[budget]\nper_minute = 1\nburst = 2\nexchange_reserve = 1\nmax_wait_secs = 0\n".into(),
        ..Options::default()
    })
    .await;
    let alice = app.connected("user-1", ALICE).await;
    app.connected("user-2", BOB).await;
    let refreshes = || app.sandbox.token_calls("refresh_token", "ok");
    let before = refreshes();
    let retry_after = refused_by_the_budget(&app, &alice).await;
    assert!((60..=120).contains(&retry_after), "{retry_after}");
    assert_eq!(refreshes(), before, "nothing sent past the budget");
    let (_, connection) = app.get(&format!("/api/v1/connections/{alice}")).await;
    assert_eq!(connection["status"], "active");
    // A code exchange finds no permit either: a page that says so, and no token request.
    let codes = || app.sandbox.token_calls("authorization_code", "ok");
    let before = codes();
    let r = app.connect("user-3", None, BOB).await;
    assert_eq!(
        outcome(r).await,
        (StatusCode::SERVICE_UNAVAILABLE, "busy".into())
    );
    assert_eq!(codes(), before);
}

/// A 429 from Cal.com's token endpoint during a code exchange pauses the shared budget: the
/// person sees the exchange fail, and the next refresh is refused at once with
/// `budget_exhausted` and a `Retry-After` covering Cal.com's block, without a request.
#[tokio::test]
async fn a_429_on_a_code_exchange_pauses_the_budget() {
    let app = spawn_app().await;
    let alice = app.connected("user-1", ALICE).await;
    app.sandbox
        .inject_fault(calconnect_sandbox::FaultKind::RateLimited, 1)
        .unwrap();
    let r = app.connect("user-2", None, BOB).await;
    assert_eq!(
        outcome(r).await,
        (StatusCode::BAD_GATEWAY, "exchange_failed".into())
    );
    let calls = || {
        app.sandbox
            .token_call_counts()
            .iter()
            .map(|c| c.count)
            .sum::<u64>()
    };
    let before = calls();
    let retry_after = refused_by_the_budget(&app, &alice).await;
    assert!((50..=61).contains(&retry_after), "{retry_after}");
    assert_eq!(calls(), before, "nothing sent during the pause");
}

/// What a forward proxy on 127.0.0.1 saw: each request's target and `Proxy-Authorization`.
type Seen = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A tiny HTTP forward proxy: takes absolute-form requests, records them, forwards them with a
/// client of its own and answers what the target answered.
async fn forward_proxy() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let auth = parts
                .headers
                .get("proxy-authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            log.lock().unwrap().push((parts.uri.to_string(), auth));
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let mut out = no_redirects()
                .request(parts.method, parts.uri.to_string())
                .body(body);
            for (name, value) in &parts.headers {
                if !["host", "proxy-authorization", "connection"].contains(&name.as_str()) {
                    out = out.header(name, value);
                }
            }
            let r = out.send().await.unwrap();
            let mut answer = axum::response::Response::builder().status(r.status());
            for (name, value) in r.headers() {
                if !["connection", "transfer-encoding", "content-length"].contains(&name.as_str()) {
                    answer = answer.header(name, value);
                }
            }
            answer
                .body(axum::body::Body::from(r.bytes().await.unwrap()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://proxyuser:proxy-pw@{}",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn proxied_me(app: &TestApp, id: &str) {
    let r = app
        .authed(
            reqwest::Method::GET,
            &format!("/api/v1/connections/{id}/proxy/me"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, me) = json_of(r).await;
    assert_eq!(me["data"]["id"], ALICE);
}

#[tokio::test]
async fn proxy_goes_through_http_proxy_unless_no_proxy_names_the_host() {
    let (proxy_url, seen) = forward_proxy().await;
    let env = |no_proxy: Option<&str>| {
        let mut env = calconnect_broker::config::Env::new();
        env.insert("HTTP_PROXY".into(), proxy_url.clone());
        if let Some(no) = no_proxy {
            env.insert("NO_PROXY".into(), no.into());
        }
        env
    };
    let app = spawn_with(Options {
        env: env(None),
        ..Options::default()
    })
    .await;
    let id = app.connected("user-1", ALICE).await;
    proxied_me(&app, &id).await;
    let me_url = app.sandbox.api_url().join("v2/me").unwrap().to_string();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, me_url, "absolute form, to the upstream");
        // proxyuser:proxy-pw
        assert_eq!(seen[0].1.as_deref(), Some("Basic cHJveHl1c2VyOnByb3h5LXB3"));
    }
    let app = spawn_with(Options {
        env: env(Some("example.com, 127.0.0.1")),
        ..Options::default()
    })
    .await;
    let id = app.connected("user-1", ALICE).await;
    proxied_me(&app, &id).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "NO_PROXY: straight to the upstream"
    );
}
