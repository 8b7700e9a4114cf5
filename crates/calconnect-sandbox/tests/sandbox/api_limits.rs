//! Rate limiting per access token (§6), request statistics and `X-Request-Id`.

use crate::api::{assert_envelope, get, sandbox, sandbox_with, token};
use calconnect_sandbox::Sandbox;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use time::Duration;

fn rate(a: &crate::api::Answer) -> (String, String, String) {
    let h = |n: &str| a.headers[n].to_str().unwrap().to_owned();
    (
        h("x-ratelimit-limit-default"),
        h("x-ratelimit-remaining-default"),
        h("x-ratelimit-reset-default"),
    )
}

fn r(l: &str, rem: &str, reset: &str) -> (String, String, String) {
    (l.to_owned(), rem.to_owned(), reset.to_owned())
}

#[tokio::test]
async fn default_limit_headers_decrease() {
    let sb = sandbox().await;
    let t = token(1, &[]);
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_eq!(rate(&a), r("120", "119", "60"));
    sb.advance_clock(Duration::seconds(15));
    let a = get(&sb, "/v2/schedules", Some(&t), None).await;
    assert_eq!(rate(&a), r("120", "118", "45"));
    // Every token has its own counter.
    let a = get(&sb, "/v2/me", Some(&token(2, &[])), None).await;
    assert_eq!(rate(&a), r("120", "119", "60"));
}

#[tokio::test]
async fn exceeding_the_limit_gives_429_until_the_block_ends() {
    let sb = sandbox_with(Sandbox::builder().rate_limit(3, Duration::seconds(60))).await;
    let t = token(1, &[]);
    for remaining in ["2", "1", "0"] {
        let a = get(&sb, "/v2/me", Some(&t), None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(rate(&a), r("3", remaining, "60"));
    }
    let a = get(&sb, "/v2/me?again=1", Some(&t), None).await;
    let msg = "Too many requests. Please try again later.";
    assert_envelope(&a, 429, "/v2/me?again=1", "ThrottlerException", json!(msg));
    assert_eq!(rate(&a), r("3", "0", "60"));
    assert!(a.headers.get("retry-after").is_none());
    // Still blocked half-way through the block, on every endpoint, even with a bad scope.
    sb.advance_clock(Duration::seconds(30));
    let a = get(&sb, "/v2/bookings", Some(&t), None).await;
    assert_envelope(&a, 429, "/v2/bookings", "ThrottlerException", json!(msg));
    assert_eq!(rate(&a), r("3", "0", "30"));
    // Another token is not affected.
    assert_eq!(
        get(&sb, "/v2/me", Some(&token(2, &[])), None).await.status,
        StatusCode::OK
    );
    // The block (60 s, from the 4th request) ends; a new window starts.
    sb.advance_clock(Duration::seconds(30));
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(rate(&a), r("3", "2", "60"));
    assert_eq!(sb.api_calls_with_status("/v2", 429), 2);
    assert_eq!(sb.api_calls_with_status("/v2/me", 200), 5);
}

#[tokio::test]
async fn counting_is_exact_under_concurrency() {
    let sb =
        Arc::new(sandbox_with(Sandbox::builder().rate_limit(300, Duration::seconds(60))).await);
    let t = Arc::new(token(1, &[]));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..400 {
        let (sb, t) = (sb.clone(), t.clone());
        set.spawn(async move { get(&sb, "/v2/me", Some(&t), None).await.status.as_u16() });
    }
    let mut ok = 0;
    let mut limited = 0;
    while let Some(s) = set.join_next().await {
        match s.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (300, 100));
    assert_eq!(sb.api_calls("/v2/me"), 400);
}

#[tokio::test]
async fn request_ids_are_unique_uuids_and_stats_are_served() {
    let sb = sandbox().await;
    let t = token(1, &["PROFILE_READ"]);
    let mut ids = HashSet::new();
    for path in ["/v2/me", "/v2/me", "/v2/nope"] {
        let a = get(&sb, path, Some(&t), None).await;
        let id = a.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        ids.insert(id);
    }
    get(&sb, "/v2/me", None, None).await;
    assert_eq!(ids.len(), 3);
    assert_eq!(sb.api_calls("/v2"), 4);
    assert_eq!(sb.api_calls_with_status("/v2/me", 401), 1);
    let url = format!("{}_sandbox/api/stats", sb.base_url());
    let stats: serde_json::Value = crate::helpers::client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        json!({"total":4,"byStatus":{"200":2,"401":1,"404":1},"calls":[
            {"path":"/v2/me","status":200,"count":2},
            {"path":"/v2/me","status":401,"count":1},
            {"path":"/v2/nope","status":404,"count":1}]})
    );
}

#[tokio::test]
async fn rate_limit_knobs_on_the_handle() {
    let sb = sandbox().await;
    sb.set_rate_limit(1, Duration::seconds(10));
    let t = token(1, &[]);
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_eq!(rate(&a), r("1", "0", "10"));
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_eq!(
        (a.status, rate(&a)),
        (StatusCode::TOO_MANY_REQUESTS, r("1", "0", "10"))
    );
    sb.reset_rate_limits();
    assert_eq!(
        get(&sb, "/v2/me", Some(&t), None).await.status,
        StatusCode::OK
    );
}

/// Thousands of requests from many concurrent clients are all answered and all counted.
#[tokio::test]
async fn two_thousand_requests_under_the_limit_are_all_answered() {
    let sb =
        Arc::new(sandbox_with(Sandbox::builder().rate_limit(5000, Duration::seconds(60))).await);
    let t = Arc::new(token(1, &[]));
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..50 {
        let (sb, t) = (sb.clone(), t.clone());
        set.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..40 {
                let path = if (worker + i) % 2 == 0 {
                    "/v2/me"
                } else {
                    "/v2/bookings"
                };
                statuses.push(get(&sb, path, Some(&t), None).await.status.as_u16());
            }
            statuses
        });
    }
    let mut all = Vec::new();
    while let Some(s) = set.join_next().await {
        all.extend(s.unwrap());
    }
    assert_eq!(all.len(), 2000);
    assert!(all.iter().all(|s| *s == 200));
    assert_eq!(sb.api_calls_with_status("/v2", 200), 2000);
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_eq!(a.headers["x-ratelimit-remaining-default"], "2999");
}

const THROTTLED: &str = "Too many requests. Please try again later.";
/// `T0` as `Date.prototype.toISOString()` writes it.
const T0_ISO: &str = "2026-12-01T08:00:00.000Z";

/// Cal.com's 429 byte for byte: `ThrottlerException` in the v2 envelope, `details` a string.
fn throttled_body(timestamp: &str, path: &str) -> String {
    format!(
        r#"{{"status":"error","timestamp":"{timestamp}","path":"{path}","error":{{"code":"ThrottlerException","message":"{THROTTLED}","details":"{THROTTLED}"}}}}"#
    )
}

struct Raw {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

fn h(raw: &Raw, name: &str) -> String {
    raw.headers[name].to_str().unwrap().to_owned()
}

/// The guard's own 429 at `T0`: headers as asserted, no `Retry-After`, no `Cache-Control`.
fn assert_throttled(raw: &Raw, path: &str, limit: &str, reset: &str) {
    assert_throttled_at(raw, T0_ISO, path, limit, reset);
}

fn assert_throttled_at(raw: &Raw, timestamp: &str, path: &str, limit: &str, reset: &str) {
    assert_eq!(raw.status, StatusCode::TOO_MANY_REQUESTS, "{}", raw.text);
    assert_eq!(raw.text, throttled_body(timestamp, path));
    assert_eq!(h(raw, "content-type"), "application/json; charset=utf-8");
    assert_eq!(h(raw, "x-ratelimit-limit-default"), limit);
    assert_eq!(h(raw, "x-ratelimit-remaining-default"), "0");
    assert_eq!(h(raw, "x-ratelimit-reset-default"), reset);
    assert!(uuid::Uuid::parse_str(&h(raw, "x-request-id")).is_ok());
    for absent in ["retry-after", "cache-control", "pragma"] {
        assert!(raw.headers.get(absent).is_none(), "{absent}");
    }
}

async fn send(req: reqwest::RequestBuilder) -> Raw {
    let resp = req.send().await.unwrap();
    Raw {
        status: resp.status(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

/// `POST /v2/auth/oauth2/token` with an empty JSON object (a pipe error after the guard).
async fn token_call(sb: &Sandbox, extra: Option<(&str, &str)>) -> Raw {
    let mut req = crate::helpers::client()
        .post(sb.token_url())
        .json(&json!({}));
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    send(req).await
}

async fn me(sb: &Sandbox, auth: Option<&str>) -> Raw {
    let mut req = crate::helpers::client().get(sb.api_url().join("/v2/me").unwrap());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    send(req).await
}

const CLIENT_ID_REQUIRED: &str =
    r#"{"error":"invalid_request","error_description":"client_id is required"}"#;

#[tokio::test]
async fn default_is_120_per_token_per_minute() {
    let sb = sandbox().await;
    let t = format!("Bearer {}", token(1, &["PROFILE_READ"]));
    for i in 0..120u32 {
        let a = me(&sb, Some(&t)).await;
        assert_eq!(a.status, StatusCode::OK, "request {i}");
        assert_eq!(
            h(&a, "x-ratelimit-remaining-default"),
            (119 - i).to_string()
        );
    }
    assert_throttled(&me(&sb, Some(&t)).await, "/v2/me", "120", "60");
    // Another token has its own counter; the client IP is not touched by bearer requests.
    let other = format!("Bearer {}", token(2, &["PROFILE_READ"]));
    assert_eq!(me(&sb, Some(&other)).await.status, StatusCode::OK);
    let a = token_call(&sb, None).await;
    assert_eq!(h(&a, "x-ratelimit-remaining-default"), "119");
    // The block (60 s) ends.
    sb.advance_clock(Duration::seconds(60));
    assert_eq!(me(&sb, Some(&t)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_token_endpoint_is_limited_per_ip_at_120() {
    let sb = sandbox().await;
    for i in 0..120u32 {
        let a = token_call(&sb, None).await;
        assert_eq!(
            (a.status, a.text.as_str()),
            (StatusCode::BAD_REQUEST, CLIENT_ID_REQUIRED),
            "call {i}"
        );
        // The guard's headers are on every answer it let through, next to the route's own.
        assert_eq!(h(&a, "x-ratelimit-limit-default"), "120");
        assert_eq!(
            h(&a, "x-ratelimit-remaining-default"),
            (119 - i).to_string()
        );
        assert_eq!(h(&a, "x-ratelimit-reset-default"), "60");
        assert_eq!(h(&a, "cache-control"), "no-store");
    }
    assert_throttled(
        &token_call(&sb, None).await,
        "/v2/auth/oauth2/token",
        "120",
        "60",
    );
    assert_eq!(sb.token_calls("unknown", "rate_limited"), 1);
    assert_eq!(
        sb.token_calls("unknown", "invalid_request:client_id_required"),
        120
    );
    // Bearer-less API calls are counted against the same IP: blocked before authentication.
    assert_throttled(&me(&sb, None).await, "/v2/me", "120", "60");
    // A bearer request is counted against its token instead.
    let t = format!("Bearer {}", token(1, &["PROFILE_READ"]));
    assert_eq!(me(&sb, Some(&t)).await.status, StatusCode::OK);
    // The legacy web endpoints (Next.js) have no throttler.
    let legacy = send(
        crate::helpers::client()
            .post(sb.legacy_token_url())
            .form(&[("client_id", "x")]),
    )
    .await;
    assert_eq!(
        (legacy.status, legacy.text.as_str()),
        (StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#)
    );
    assert!(legacy.headers.get("x-ratelimit-limit-default").is_none());
    // Half-way through the block the reset counts down; after it, a fresh window.
    sb.advance_clock(Duration::seconds(30));
    assert_throttled_at(
        &token_call(&sb, None).await,
        "2026-12-01T08:00:30.000Z",
        "/v2/auth/oauth2/token",
        "120",
        "30",
    );
    sb.advance_clock(Duration::seconds(30));
    let a = token_call(&sb, None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(h(&a, "x-ratelimit-remaining-default"), "119");
}

#[tokio::test]
async fn the_throttler_runs_before_authentication_and_the_scope_guard() {
    let sb = sandbox_with(
        Sandbox::builder()
            .rate_limit(1, Duration::seconds(60))
            .ip_rate_limit(1),
    )
    .await;
    // An invalid token: 401, then 429 (counted against that "token").
    assert_eq!(
        me(&sb, Some("Bearer not-a-jwt")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_throttled(
        &me(&sb, Some("Bearer not-a-jwt")).await,
        "/v2/me",
        "1",
        "60",
    );
    // No bearer: 401, then 429 (the IP).
    assert_eq!(me(&sb, None).await.status, StatusCode::UNAUTHORIZED);
    assert_throttled(&me(&sb, None).await, "/v2/me", "1", "60");
    // Missing scope: 403, then 429.
    let t = format!("Bearer {}", token(1, &["BOOKING_READ"]));
    assert_eq!(me(&sb, Some(&t)).await.status, StatusCode::FORBIDDEN);
    assert_throttled(&me(&sb, Some(&t)).await, "/v2/me", "1", "60");
    // Unknown routes run no guards: 404 without rate-limit headers, never 429.
    let a = send(crate::helpers::client().get(sb.api_url().join("/v2/nope").unwrap())).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.headers.get("x-ratelimit-limit-default").is_none());
}

#[tokio::test]
async fn a_platform_client_header_is_its_own_tracker() {
    let sb = sandbox_with(Sandbox::builder().ip_rate_limit(1)).await;
    let header = Some(("x-cal-client-id", "some-platform-client"));
    assert_eq!(
        token_call(&sb, header).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(token_call(&sb, None).await.status, StatusCode::BAD_REQUEST);
    assert_throttled(
        &token_call(&sb, header).await,
        "/v2/auth/oauth2/token",
        "1",
        "60",
    );
    assert_throttled(
        &token_call(&sb, None).await,
        "/v2/auth/oauth2/token",
        "1",
        "60",
    );
}

#[tokio::test]
async fn the_ip_limit_is_a_setting() {
    let sb = sandbox().await;
    let url = sb.control_url().join("settings").unwrap();
    let v: serde_json::Value = crate::helpers::client()
        .post(url)
        .json(&json!({"ip_rate_limit": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ip_rate_limit"], 2);
    assert_eq!(v["rate_limit"], 120);
    assert_eq!(sb.settings().ip_rate_limit, 2);
    let a = token_call(&sb, None).await;
    assert_eq!(h(&a, "x-ratelimit-limit-default"), "2");
    assert_eq!(token_call(&sb, None).await.status, StatusCode::BAD_REQUEST);
    assert_throttled(
        &token_call(&sb, None).await,
        "/v2/auth/oauth2/token",
        "2",
        "60",
    );
    // A changed limit is another counter (Cal.com keys them by tracker, limit and ttl).
    sb.set_ip_rate_limit(3);
    let a = token_call(&sb, None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(h(&a, "x-ratelimit-remaining-default"), "2");
}
