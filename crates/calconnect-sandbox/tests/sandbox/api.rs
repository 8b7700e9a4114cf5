//! API v2 tests: authentication, the error envelope, `/v2/me` and the scope guard. Helpers here
//! are shared by the other `api_*` modules. Tokens are minted with the sandbox's own signing key
//! (set through the builder); the clock is frozen so expiry is moved by `advance_clock`.

use calconnect_sandbox::Sandbox;
use calconnect_sandbox::jwt::{ACCESS_TOKEN_TYPE, Claims, REFRESH_TOKEN_TYPE, sign};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const KEY: &[u8] = b"calconnect-sandbox-api-test-key";
/// 2026-12-01T08:00:00Z, a Tuesday, before the seeded 2026-12-24 date override.
pub const T0: i64 = 1_796_112_000;

pub async fn sandbox() -> Sandbox {
    sandbox_with(Sandbox::builder()).await
}

pub async fn sandbox_with(b: calconnect_sandbox::SandboxBuilder) -> Sandbox {
    b.signing_key(KEY)
        .frozen_clock(OffsetDateTime::from_unix_timestamp(T0).unwrap())
        .start()
        .await
        .expect("sandbox starts")
}

pub fn claims(user: Option<i64>, team: Option<i64>, scopes: &[&str]) -> Claims {
    Claims {
        user_id: user,
        team_id: team,
        scope: scopes.iter().map(|s| (*s).to_owned()).collect(),
        token_type: ACCESS_TOKEN_TYPE.to_owned(),
        client_id: "calconnect-demo".to_owned(),
        secret: None,
        code_challenge: None,
        code_challenge_method: None,
        iat: T0,
        exp: T0 + 1800,
    }
}

/// A 30-minute access token for `user` with `scopes`.
pub fn token(user: i64, scopes: &[&str]) -> String {
    sign(&claims(Some(user), None, scopes), KEY)
}

/// An access token that outlives the tests' clock moves (60 days).
pub fn long_token(user: i64, scopes: &[&str]) -> String {
    let mut c = claims(Some(user), None, scopes);
    c.exp = T0 + 60 * 24 * 3600;
    sign(&c, KEY)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub async fn call(
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    version: Option<&str>,
) -> Answer {
    let url = format!("{}{}", sb.base_url().as_str().trim_end_matches('/'), path);
    let mut rb = crate::helpers::client().request(method, url);
    if let Some(a) = auth {
        rb = rb.header("Authorization", a);
    }
    if let Some(v) = version {
        rb = rb.header("cal-api-version", v);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET path` with a bearer token (if any) and a `cal-api-version` (if any).
pub async fn get(sb: &Sandbox, path: &str, token: Option<&str>, version: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    call(sb, reqwest::Method::GET, path, auth.as_deref(), version).await
}

/// Asserts `X-Request-Id` is a UUID.
pub fn assert_request_id(a: &Answer) {
    let id = a.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "x-request-id {id}");
}

/// Asserts the v2 error envelope exactly, the timestamp only for shape (ISO with milliseconds).
pub fn assert_envelope(a: &Answer, status: u16, path: &str, code: &str, details: Value) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_request_id(a);
    let ts = a.body["timestamp"].as_str().expect("timestamp");
    assert!(OffsetDateTime::parse(ts, &Rfc3339).is_ok() && ts.ends_with('Z') && ts.len() == 24);
    let message = match &details {
        Value::String(s) => s.clone(),
        d => d["message"]
            .as_str()
            .unwrap_or("Bad Request Exception")
            .to_owned(),
    };
    let mut body = a.body.clone();
    body["timestamp"] = json!("<ts>");
    assert_eq!(
        body,
        json!({"status":"error","timestamp":"<ts>","path":path,
            "error":{"code":code,"message":message,"details":details}})
    );
}

pub fn details(message: &str, error: &str, status: u16) -> Value {
    json!({"message": message, "error": error, "statusCode": status})
}

const INVALID: &str = "Invalid Access Token.";
const NO_AUTH: &str = "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers";

fn alice_me() -> Value {
    json!({"status":"success","data":{"id":1,"username":"alice","email":"alice@example.com",
        "name":"Alice Anderson","avatarUrl":null,"bio":"Runs the Acme team.","timeFormat":24,
        "defaultScheduleId":101,"weekStart":"Monday","timeZone":"Europe/London","locale":"en",
        "organizationId":null}})
}

#[tokio::test]
async fn me_with_user_token() {
    let sb = sandbox().await;
    let a = get(&sb, "/v2/me", Some(&token(1, &["PROFILE_READ"])), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_request_id(&a);
    assert_eq!(a.body, alice_me());
    let bob = get(&sb, "/v2/me", Some(&token(2, &[])), Some("2024-08-13")).await;
    assert_eq!(
        bob.body,
        json!({"status":"success","data":{"id":2,"username":"bob","email":"bob@example.com",
            "name":"Bob Brown","avatarUrl":null,"bio":null,"timeFormat":12,
            "defaultScheduleId":201,"weekStart":"Sunday","timeZone":"America/New_York",
            "locale":"en","organizationId":null}})
    );
}

#[tokio::test]
async fn me_with_team_token_acts_as_team_owner() {
    let sb = sandbox().await;
    let t = sign(
        &claims(None, Some(10), &["TEAM_PROFILE_READ", "PROFILE_READ"]),
        KEY,
    );
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_eq!(a.body, alice_me());
    // A team that does not exist has no owner.
    let t = sign(&claims(None, Some(99), &[]), KEY);
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    let msg = "ApiAuthStrategy - third-party token - No owner found for the associated team.";
    assert_envelope(
        &a,
        401,
        "/v2/me",
        "UnauthorizedException",
        details(msg, "Unauthorized", 401),
    );
}

#[tokio::test]
async fn every_unauthenticated_case_is_a_401_envelope() {
    let sb = sandbox().await;
    let unauthorized = |m: &str| details(m, "Unauthorized", 401);
    // Missing header.
    let a = get(&sb, "/v2/me", None, None).await;
    assert_envelope(
        &a,
        401,
        "/v2/me",
        "UnauthorizedException",
        unauthorized(NO_AUTH),
    );
    // Without a bearer the throttler counts the request against the client IP.
    assert_eq!(a.headers["x-ratelimit-limit-default"], "120");
    assert_eq!(a.headers["x-ratelimit-remaining-default"], "119");
    assert!(a.headers.get("www-authenticate").is_none());
    // "Bearer " arrives as "Bearer" (trailing whitespace is not part of a header value), which
    // Cal.com's `replace("Bearer ", "")` leaves as the token "Bearer".
    let a = call(&sb, reqwest::Method::GET, "/v2/me", Some("Bearer "), None).await;
    assert_envelope(
        &a,
        401,
        "/v2/me",
        "UnauthorizedException",
        unauthorized(INVALID),
    );
    // Malformed: not a JWT, and another auth scheme.
    let a = get(&sb, "/v2/me", Some("not-a-jwt"), None).await;
    assert_envelope(
        &a,
        401,
        "/v2/me",
        "UnauthorizedException",
        unauthorized(INVALID),
    );
    assert_eq!(a.headers["x-ratelimit-remaining-default"], "119");
    let basic = call(
        &sb,
        reqwest::Method::GET,
        "/v2/me",
        Some("Basic YTpi"),
        None,
    )
    .await;
    assert_envelope(
        &basic,
        401,
        "/v2/me",
        "UnauthorizedException",
        unauthorized(INVALID),
    );
    // Signed with another key.
    let forged = sign(&claims(Some(1), None, &[]), b"another key");
    let a = get(&sb, "/v2/me?x=1", Some(&forged), None).await;
    assert_envelope(
        &a,
        401,
        "/v2/me?x=1",
        "UnauthorizedException",
        unauthorized(INVALID),
    );
    // A refresh token used as an access token.
    let mut c = claims(Some(1), None, &[]);
    c.token_type = REFRESH_TOKEN_TYPE.to_owned();
    c.secret = Some("s3cret".to_owned());
    let a = get(&sb, "/v2/me", Some(&sign(&c, KEY)), None).await;
    assert_envelope(
        &a,
        401,
        "/v2/me",
        "UnauthorizedException",
        unauthorized(INVALID),
    );
    // A user that does not exist.
    let a = get(&sb, "/v2/me", Some(&token(42, &[])), None).await;
    let msg =
        "ApiAuthStrategy - third-party token - No user or team owner associated with the token.";
    assert_envelope(
        &a,
        401,
        "/v2/me",
        "UnauthorizedException",
        unauthorized(msg),
    );
}

#[tokio::test]
async fn expired_token_is_a_401_once_the_clock_passes_exp() {
    let sb = sandbox().await;
    let t = token(1, &["PROFILE_READ"]);
    sb.advance_clock(time::Duration::seconds(1799));
    assert_eq!(
        get(&sb, "/v2/me", Some(&t), None).await.status,
        StatusCode::OK
    );
    sb.advance_clock(time::Duration::seconds(1));
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_envelope(
        &a,
        401,
        "/v2/me",
        "UnauthorizedException",
        details(INVALID, "Unauthorized", 401),
    );
    // The token itself never appears in the answer.
    assert!(!a.body.to_string().contains(&t));
}

#[tokio::test]
async fn scope_guard() {
    let sb = sandbox().await;
    let forbidden = |m: &str| details(m, "Forbidden", 403);
    let a = get(
        &sb,
        "/v2/me",
        Some(&token(1, &["BOOKING_READ", "SCHEDULE_READ"])),
        None,
    )
    .await;
    let msg = "insufficient_scope: token does not have the required scopes. Required: PROFILE_READ. Token has: BOOKING_READ, SCHEDULE_READ";
    assert_envelope(&a, 403, "/v2/me", "ForbiddenException", forbidden(msg));
    // Rate-limit headers are set before the guards run.
    assert_eq!(a.headers["x-ratelimit-limit-default"], "120");
    // Empty and legacy-only scopes are unrestricted; unknown scopes alongside legacy ones too.
    for scopes in [
        &[][..],
        &["READ_BOOKING", "READ_PROFILE"],
        &["READ_PROFILE", "FOO"],
    ] {
        let a = get(&sb, "/v2/me", Some(&token(1, scopes)), None).await;
        assert_eq!(a.status, StatusCode::OK, "{scopes:?}");
    }
    // One known scope makes the token restricted, legacy scopes are listed as held.
    let a = get(
        &sb,
        "/v2/schedules",
        Some(&token(1, &["READ_BOOKING", "PROFILE_READ"])),
        None,
    )
    .await;
    let msg = "insufficient_scope: token does not have the required scopes. Required: SCHEDULE_READ. Token has: READ_BOOKING, PROFILE_READ";
    assert_envelope(
        &a,
        403,
        "/v2/schedules",
        "ForbiddenException",
        forbidden(msg),
    );
    // ORG_* does not stand in for a user scope (it implies TEAM_* only; see guard unit tests).
    let a = get(
        &sb,
        "/v2/event-types",
        Some(&token(1, &["ORG_EVENT_TYPE_READ"])),
        None,
    )
    .await;
    let msg = "insufficient_scope: token does not have the required scopes. Required: EVENT_TYPE_READ. Token has: ORG_EVENT_TYPE_READ";
    assert_envelope(
        &a,
        403,
        "/v2/event-types",
        "ForbiddenException",
        forbidden(msg),
    );
    let a = get(
        &sb,
        "/v2/bookings",
        Some(&token(1, &["PROFILE_READ"])),
        None,
    )
    .await;
    let msg = "insufficient_scope: token does not have the required scopes. Required: BOOKING_READ. Token has: PROFILE_READ";
    assert_envelope(
        &a,
        403,
        "/v2/bookings",
        "ForbiddenException",
        forbidden(msg),
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_nest_404s() {
    let sb = sandbox().await;
    let t = token(1, &[]);
    let a = get(&sb, "/v2/foo?x=1", Some(&t), None).await;
    let nf = |m: &str| details(m, "Not Found", 404);
    assert_envelope(
        &a,
        404,
        "/v2/foo?x=1",
        "NotFoundException",
        nf("Cannot GET /v2/foo?x=1"),
    );
    assert!(a.headers.get("x-ratelimit-limit-default").is_none());
    let a = call(&sb, reqwest::Method::POST, "/v2/me", Some("Bearer x"), None).await;
    assert_envelope(
        &a,
        404,
        "/v2/me",
        "NotFoundException",
        nf("Cannot POST /v2/me"),
    );
    let a = get(&sb, "/v2", None, None).await;
    assert_envelope(&a, 404, "/v2", "NotFoundException", nf("Cannot GET /v2"));
}
