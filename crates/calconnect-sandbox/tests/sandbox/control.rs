//! The control surface under `/_sandbox/` and on the handle: faults, counters, settings, clock,
//! revocation, client status, issued codes and tokens.

use crate::flow::*;
use crate::helpers::start;
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, FaultKind, FaultSpec,
    FaultTarget, Owner, Sandbox,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

const CID: &str = CONFIDENTIAL_CLIENT_ID;
const SECRET: &str = CONFIDENTIAL_CLIENT_SECRET;
const R: &str = DEFAULT_REDIRECT_URI;

async fn control(
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client().request(method, sb.control_url().join(path).unwrap());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(sb: &Sandbox, path: &str, body: Value) -> (StatusCode, Value) {
    control(sb, reqwest::Method::POST, path, Some(body)).await
}

async fn get(sb: &Sandbox, path: &str) -> (StatusCode, Value) {
    control(sb, reqwest::Method::GET, path, None).await
}

fn refresh_body(rt: &str) -> Value {
    json!({"client_id":CID,"client_secret":SECRET,"grant_type":"refresh_token","refresh_token":rt})
}

async fn legacy_refresh(sb: &Sandbox, rt: &str) -> reqwest::Response {
    client()
        .post(sb.legacy_refresh_url())
        .form(&[
            ("client_id", CID),
            ("client_secret", SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn index_page_lists_controls() {
    let sb = start().await;
    let resp = client().get(sb.control_url()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("calconnect-demo") && html.contains("POST clock/advance"),
        "{html}"
    );
    // The settings show both limits at Cal.com's 120, and how to raise the per-IP one.
    assert!(
        html.contains("&quot;rate_limit&quot;:120,&quot;ip_rate_limit&quot;:120")
            && html.contains("ThrottlerException"),
        "{html}"
    );
}

#[tokio::test]
async fn server_error_fault_for_the_next_n_calls() {
    let sb = start().await;
    let t = demo_tokens(&sb, ALICE).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (s, _) = post(
        &sb,
        "faults",
        json!({"kind":"server_error","status":503,"count":2}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, text) = demo_refresh(&sb, rt).await;
    assert_eq!(
        (s, text),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            v2_err("server_error", "An unexpected error occurred")
        )
    );
    let resp = legacy_refresh(&sb, rt).await;
    assert_eq!(
        (resp.status(), resp.text().await.unwrap()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"server_error"}"#.to_owned()
        )
    );
    // Spent: the third call goes through (the refresh token was never rotated).
    assert_eq!(demo_refresh(&sb, rt).await.0, StatusCode::OK);
    assert_eq!(sb.token_calls("refresh_token", "fault:server_error"), 2);
    assert_eq!(sb.token_calls("refresh_token", "ok"), 1);
    // The legacy token endpoint's unexpected-error body; default status 500.
    sb.inject_fault(FaultKind::ServerError { status: 500 }, 1)
        .unwrap();
    let resp = client()
        .post(sb.legacy_token_url())
        .form(&[("client_id", CID)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status(), resp.text().await.unwrap()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"error_code_exchange"}"#.to_owned()
        )
    );
    // Bad parameters are refused.
    let (s, v) = post(&sb, "faults", json!({"kind":"server_error","status":404})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"],
        "invalid fault: server_error status must be 500..=599, got 404"
    );
}

/// The injected 429 of the v2 endpoint is the throttler guard's: the API v2 envelope with
/// `details` a bare string, rate-limit headers for the IP tracker, no `Retry-After`, no
/// `Cache-Control`.
#[tokio::test]
async fn rate_limited_fault() {
    let sb = Sandbox::builder()
        .frozen_clock(time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap())
        .start()
        .await
        .unwrap();
    sb.inject_fault(FaultKind::RateLimited, 1).unwrap();
    let resp = client()
        .post(format!("{}?via=test", sb.token_url()))
        .json(&refresh_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/json; charset=utf-8");
    assert_eq!(h["x-ratelimit-limit-default"], "120");
    assert_eq!(h["x-ratelimit-remaining-default"], "0");
    assert_eq!(h["x-ratelimit-reset-default"], "60");
    assert!(uuid::Uuid::parse_str(h["x-request-id"].to_str().unwrap()).is_ok());
    for absent in ["retry-after", "cache-control", "pragma"] {
        assert!(h.get(absent).is_none(), "{absent}");
    }
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"status":"error","timestamp":"2027-01-15T08:00:00.000Z","path":"/v2/auth/oauth2/token?via=test","error":{"code":"ThrottlerException","message":"Too many requests. Please try again later.","details":"Too many requests. Please try again later."}}"#
    );
    assert_eq!(sb.token_calls("refresh_token", "fault:rate_limited"), 1);
    // The fault stands for the guard: the call was not counted against the IP.
    let resp = client()
        .post(sb.token_url())
        .json(&refresh_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-ratelimit-remaining-default"], "119");
    // The legacy endpoints have no throttler at Cal.com: their injected 429 is the sandbox's own.
    sb.inject_fault(FaultKind::RateLimited, 1).unwrap();
    let resp = client()
        .post(sb.legacy_refresh_url())
        .form(&[("client_id", CID), ("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"too_many_requests"}"#
    );
}

#[tokio::test]
async fn drop_fault_closes_the_connection() {
    let sb = start().await;
    sb.inject_fault(FaultKind::Drop, 1).unwrap();
    let result = match client()
        .post(sb.token_url())
        .json(&refresh_body("x"))
        .send()
        .await
    {
        Ok(resp) => resp.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(result.is_err(), "the response must not complete");
    assert_eq!(sb.token_calls("refresh_token", "fault:dropped"), 1);
    // The next call is normal.
    let (s, _) = token_json(&sb, refresh_body("x")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn not_found_fault_hits_only_the_v2_endpoint() {
    let sb = start().await;
    sb.inject_fault(FaultKind::NotFound, 1).unwrap();
    // Legacy endpoints skip it (and do not consume it).
    let resp = legacy_refresh(&sb, "x").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = client()
        .post(sb.token_url())
        .json(&refresh_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["path"], "/v2/auth/oauth2/token");
    assert_eq!(
        v["error"],
        json!({"code":"NotFoundException","message":"Cannot POST /v2/auth/oauth2/token",
            "details":{"message":"Cannot POST /v2/auth/oauth2/token","error":"Not Found","statusCode":404}})
    );
    assert_eq!(sb.token_calls("refresh_token", "fault:not_found"), 1);
    assert!(sb.faults().is_empty());
}

#[tokio::test]
async fn delay_fault_answers_normally_afterwards() {
    let sb = start().await;
    sb.inject_fault(FaultKind::Delay { ms: 50 }, 1).unwrap();
    let (s, text) = token_json(&sb, refresh_body("x")).await;
    assert_eq!(
        (s, text),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_grant", "invalid_refresh_token")
        )
    );
    assert!(sb.faults().is_empty());
    assert_eq!(
        sb.token_calls("refresh_token", "invalid_grant:invalid_refresh_token"),
        1
    );
}

#[tokio::test]
async fn time_boxed_failure_and_targets() {
    let start_at = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let sb = Sandbox::builder()
        .frozen_clock(start_at)
        .start()
        .await
        .unwrap();
    sb.arm_fault(FaultSpec {
        kind: FaultKind::ServerError { status: 502 },
        target: FaultTarget::Legacy,
        count: None,
        for_seconds: Some(30),
    })
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            legacy_refresh(&sb, "x").await.status(),
            StatusCode::BAD_GATEWAY
        );
    }
    // v2 is not targeted.
    assert_eq!(
        token_json(&sb, refresh_body("x")).await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, clock) = post(&sb, "clock/advance", json!({"seconds": 30})).await;
    assert_eq!(clock["offset_seconds"], 30);
    assert_eq!(
        legacy_refresh(&sb, "x").await.status(),
        StatusCode::BAD_REQUEST
    );
    // Over HTTP, and cleared.
    post(
        &sb,
        "faults",
        json!({"kind":"rate_limited","for_seconds":60,"target":"v2"}),
    )
    .await;
    let (_, faults) = get(&sb, "faults").await;
    assert_eq!(faults[0]["kind"], "rate_limited");
    assert_eq!(faults[0]["target"], "v2");
    let (s, _) = control(&sb, reqwest::Method::DELETE, "faults", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        token_json(&sb, refresh_body("x")).await.0,
        StatusCode::BAD_REQUEST
    );
    // fail_for on the handle.
    sb.fail_for(FaultKind::Drop, Duration::seconds(10)).unwrap();
    let dropped = match client()
        .post(sb.token_url())
        .json(&refresh_body("x"))
        .send()
        .await
    {
        Ok(resp) => resp.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(dropped);
    sb.advance_clock(Duration::seconds(10));
    assert_eq!(
        token_json(&sb, refresh_body("x")).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn counters_by_grant_and_outcome_over_http() {
    let sb = start().await;
    let t = demo_tokens(&sb, ALICE).await;
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(demo_refresh(&sb, rt).await.0, StatusCode::OK);
    assert_eq!(demo_refresh(&sb, rt).await.0, StatusCode::BAD_REQUEST);
    token_json(&sb, json!({})).await;
    let (_, v) = get(
        &sb,
        "token-calls?grant=refresh_token&outcome=invalid_grant:refresh_token_revoked",
    )
    .await;
    assert_eq!(v, json!({"count": 1}));
    let (_, all) = get(&sb, "token-calls").await;
    assert_eq!(
        all,
        json!([
            {"endpoint":"v2","grant":"authorization_code","outcome":"ok","count":1},
            {"endpoint":"v2","grant":"refresh_token","outcome":"invalid_grant:refresh_token_revoked","count":1},
            {"endpoint":"v2","grant":"refresh_token","outcome":"ok","count":1},
            {"endpoint":"v2","grant":"unknown","outcome":"invalid_request:client_id_required","count":1},
        ])
    );
    assert_eq!(sb.token_calls("authorization_code", "ok"), 1);
    control(&sb, reqwest::Method::DELETE, "token-calls", None).await;
    assert!(sb.token_call_counts().is_empty());
}

#[tokio::test]
async fn settings_over_http() {
    let sb = start().await;
    let (_, v) = get(&sb, "settings").await;
    assert_eq!(
        v,
        json!({"access_token_ttl_seconds":1800,"refresh_token_ttl_seconds":2_592_000,"code_ttl_seconds":600,
            "rate_limit":120,"ip_rate_limit":120,"rate_window_seconds":60,"pkce_required_for_all":false,"bookings_expired_token_403":false})
    );
    let (s, v) = post(&sb, "settings", json!({"access_token_ttl_seconds":60,"refresh_token_ttl_seconds":31_536_000,"pkce_required_for_all":true})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["access_token_ttl_seconds"], 60);
    assert_eq!(sb.settings().refresh_token_ttl, Duration::days(365));
    // PKCE for all: a confidential client without a challenge is refused at authorize.
    let alice = login(&sb, ALICE).await;
    let resp = authorize(
        &sb,
        Some(&alice),
        &[
            ("client_id", CID),
            ("redirect_uri", R),
            ("scope", "PROFILE_READ"),
        ],
    )
    .await;
    assert!(
        location(&resp).contains("error=invalid_request"),
        "{}",
        location(&resp)
    );
    post(&sb, "settings", json!({"pkce_required_for_all":false})).await;
    let t = demo_tokens(&sb, ALICE).await;
    assert_eq!(t["expires_in"], 60);
    let rc = claims(t["refresh_token"].as_str().unwrap());
    assert_eq!(
        rc["exp"].as_i64().unwrap() - rc["iat"].as_i64().unwrap(),
        365 * 24 * 3600
    );
    // Unknown settings are refused.
    let (s, _) = post(&sb, "settings", json!({"nope": 1})).await;
    assert!(s.is_client_error());
}

#[tokio::test]
async fn revoke_status_clock_codes_and_tokens_over_http() {
    let sb = start().await;
    let t = demo_tokens(&sb, ALICE).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (_, v) = post(
        &sb,
        "grants/revoke",
        json!({"client_id":CID,"user_id":ALICE}),
    )
    .await;
    assert_eq!(v, json!({"revoked": 1}));
    let (s, text) = demo_refresh(&sb, rt).await;
    assert_eq!(
        (s, text),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_grant", "refresh_token_revoked")
        )
    );
    let (s, _) = post(&sb, "grants/revoke", json!({"client_id":CID})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let t = demo_tokens(&sb, ALICE).await;
    let (s, v) = post(
        &sb,
        &format!("clients/{CID}/status"),
        json!({"status":"REJECTED"}),
    )
    .await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, json!({"client_id":CID,"status":"REJECTED"}))
    );
    let (s, text) = demo_refresh(&sb, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (s, text),
        (
            StatusCode::UNAUTHORIZED,
            v2_err("unauthorized_client", "client_rejected")
        )
    );
    let (s, _) = post(&sb, "clients/nope/status", json!({"status":"APPROVED"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    post(
        &sb,
        &format!("clients/{CID}/status"),
        json!({"status":"APPROVED"}),
    )
    .await;

    // Issued codes: latest for (client, user); expiry via the HTTP clock.
    let code = demo_code(&sb, BOB).await;
    let (_, v) = get(&sb, &format!("codes/latest?client_id={CID}&user_id={BOB}")).await;
    assert_eq!(v, json!({"code": code}));
    let (s, _) = get(&sb, "codes/latest?client_id=legacy-client&user_id=2").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    post(&sb, "clock/advance", json!({"seconds": 601})).await;
    let (s, text) = token_json(&sb, json!({"client_id":CID,"client_secret":SECRET,"grant_type":"authorization_code","code":code,"redirect_uri":R})).await;
    assert_eq!(
        (s, text),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_grant", "code_invalid_or_expired")
        )
    );

    let (_, tokens) = get(&sb, &format!("tokens?client_id={CID}&user_id={ALICE}")).await;
    assert_eq!(tokens.as_array().unwrap().len(), 2);
    assert_eq!(tokens[1]["access_token"], t["access_token"]);
    assert_eq!(tokens[1]["grant"], "authorization_code");
    let (_, auths) = get(&sb, "authorizations").await;
    assert!(
        auths
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["user_id"] == ALICE && a["client_id"] == CID)
    );
    // Debug output never shows tokens.
    let debug = format!("{:?}", sb.issued_tokens());
    assert!(!debug.contains(t["access_token"].as_str().unwrap()));
    assert_eq!(sb.revoke_grant(CID, Owner::User(BOB)), 0);
}

#[tokio::test]
async fn encryption_key_missing_fault() {
    let sb = start().await;
    post(
        &sb,
        "faults",
        json!({"kind":"encryption_key_missing","count":2}),
    )
    .await;
    let (s, text) = token_json(&sb, refresh_body("x")).await;
    assert_eq!(
        (s, text),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            v2_err("server_error", "encryption_key_missing")
        )
    );
    let resp = legacy_refresh(&sb, "x").await;
    assert_eq!(
        (resp.status(), resp.text().await.unwrap()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"message":"CALENDSO_ENCRYPTION_KEY is not set"}"#.to_owned()
        )
    );
    assert_eq!(
        sb.token_calls("refresh_token", "server_error:encryption_key_missing"),
        2
    );
}
