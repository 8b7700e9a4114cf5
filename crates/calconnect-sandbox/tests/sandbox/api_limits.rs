//! Rate limiting per access token (§5.3), request statistics and `X-Request-Id`.

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
    assert_eq!(rate(&a), r("500", "499", "60"));
    sb.advance_clock(Duration::seconds(15));
    let a = get(&sb, "/v2/schedules", Some(&t), None).await;
    assert_eq!(rate(&a), r("500", "498", "45"));
    // Every token has its own counter.
    let a = get(&sb, "/v2/me", Some(&token(2, &[])), None).await;
    assert_eq!(rate(&a), r("500", "499", "60"));
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
