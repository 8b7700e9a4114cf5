//! `POST /v2/auth/oauth2/token` (`docs/calcom.md` §3.2–§3.6): every row of the §3.5 table, the
//! check order of §3.4, success shape and headers, rotation, expiry via the clock.

use crate::flow::*;
use crate::helpers::start;
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, DEFAULT_PUBLIC_REDIRECT_URI,
    DEFAULT_REDIRECT_URI, Owner, PUBLIC_CLIENT_ID, Sandbox, seed::ClientStatus,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

const R: &str = DEFAULT_REDIRECT_URI;
const CID: &str = CONFIDENTIAL_CLIENT_ID;
const SECRET: &str = CONFIDENTIAL_CLIENT_SECRET;

fn exchange(code: &str) -> Value {
    json!({"client_id":CID,"client_secret":SECRET,"grant_type":"authorization_code","code":code,"redirect_uri":R})
}

fn with(mut v: Value, k: &str, val: Value) -> Value {
    v[k] = val;
    v
}

fn without(mut v: Value, k: &str) -> Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

async fn assert_err(sb: &Sandbox, body: Value, status: StatusCode, error: &str, description: &str) {
    let (s, text) = token_json(sb, body.clone()).await;
    assert_eq!(
        (s, text.as_str()),
        (status, v2_err(error, description).as_str()),
        "{body}"
    );
}

#[tokio::test]
async fn success_body_and_headers() {
    let sb = start().await;
    let code = demo_code(&sb, ALICE).await;
    let resp = client()
        .post(sb.token_url())
        .json(&exchange(&code))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let (a, r) = (
        v["access_token"].as_str().unwrap(),
        v["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(
        text,
        format!(
            r#"{{"access_token":"{a}","token_type":"bearer","refresh_token":"{r}","expires_in":1800,"scope":"PROFILE_READ SCHEDULE_READ"}}"#
        )
    );
    let ac = claims(a);
    assert_eq!(ac["userId"], ALICE);
    assert_eq!(ac["teamId"], Value::Null);
    assert_eq!(ac["scope"], json!(["PROFILE_READ", "SCHEDULE_READ"]));
    assert_eq!(ac["token_type"], "Access Token");
    assert_eq!(ac["clientId"], CID);
    assert_eq!(
        ac["exp"].as_i64().unwrap() - ac["iat"].as_i64().unwrap(),
        1800
    );
    assert!(ac.get("secret").is_none());
    let rc = claims(r);
    assert_eq!(rc["token_type"], "Refresh Token");
    assert_eq!(
        rc["exp"].as_i64().unwrap() - rc["iat"].as_i64().unwrap(),
        30 * 24 * 3600
    );
    assert_eq!(rc["secret"].as_str().unwrap().len(), 43);
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 1);
}

#[tokio::test]
async fn form_bodies_work_like_json() {
    let sb = start().await;
    let code = demo_code(&sb, ALICE).await;
    let (s, body) = token_form(
        &sb,
        &[
            ("client_id", CID),
            ("client_secret", SECRET),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", R),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn input_pipe_errors() {
    let sb = start().await;
    let bad = StatusCode::BAD_REQUEST;
    let (s, t) = token_json(&sb, Value::Null).await;
    assert_eq!(
        (s, t.as_str()),
        (bad, v2_err("invalid_request", "Body is required").as_str())
    );
    let (s, t) = token_json(&sb, json!("text")).await;
    assert_eq!(
        (s, t.as_str()),
        (
            bad,
            v2_err("invalid_request", "Body should be an object").as_str()
        )
    );
    assert_err(
        &sb,
        json!({}),
        bad,
        "invalid_request",
        "client_id is required",
    )
    .await;
    assert_err(
        &sb,
        json!({"client_id": 5}),
        bad,
        "invalid_request",
        "client_id is required",
    )
    .await;
    assert_err(
        &sb,
        json!({"client_id":CID,"grant_type":"client_credentials"}),
        bad,
        "invalid_request",
        "grant_type must be 'authorization_code' or 'refresh_token'",
    )
    .await;
    assert_err(
        &sb,
        json!({"client_id":CID}),
        bad,
        "invalid_request",
        "grant_type must be 'authorization_code' or 'refresh_token'",
    )
    .await;
    // Whitelist: any extra field is rejected, e.g. scope on refresh.
    assert_err(&sb, json!({"client_id":CID,"client_secret":SECRET,"grant_type":"refresh_token","refresh_token":"x","scope":"A"}),
        bad, "invalid_request", "scope property is wrong,property scope should not exist ").await;
    assert_err(
        &sb,
        with(exchange("c"), "state", json!("s")),
        bad,
        "invalid_request",
        "state property is wrong,property state should not exist ",
    )
    .await;
    assert_err(
        &sb,
        without(exchange("c"), "code"),
        bad,
        "invalid_request",
        "code property is wrong,code must be a string ",
    )
    .await;
    // No client_secret key: the public schema applies, which requires code_verifier.
    assert_err(
        &sb,
        without(exchange("c"), "client_secret"),
        bad,
        "invalid_request",
        "code_verifier property is wrong,code_verifier must be a string ",
    )
    .await;
    // redirect_uri on refresh is not allowed either; two errors are joined with ", ".
    assert_err(&sb, json!({"client_id":CID,"grant_type":"refresh_token","redirect_uri":R,"refresh_token":7}), bad, "invalid_request",
        "redirect_uri property is wrong,property redirect_uri should not exist , refresh_token property is wrong,refresh_token must be a string ").await;
    // Form bodies: no Content-Type means an empty body.
    let resp = client()
        .post(sb.token_url())
        .body("client_id=x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        v2_err("invalid_request", "client_id is required")
    );
}

#[tokio::test]
async fn authorization_code_errors_in_order() {
    let sb = start().await;
    let code = demo_code(&sb, ALICE).await;
    let unauth = StatusCode::UNAUTHORIZED;
    let bad = StatusCode::BAD_REQUEST;
    // 1. client lookup first (even with a bad redirect_uri)
    assert_err(
        &sb,
        with(
            with(exchange(&code), "client_id", json!("nope")),
            "redirect_uri",
            json!("http://x/"),
        ),
        unauth,
        "invalid_client",
        "client_not_found",
    )
    .await;
    // 2. redirect_uri before the secret
    assert_err(
        &sb,
        with(
            with(exchange(&code), "redirect_uri", json!("http://x/")),
            "client_secret",
            json!("wrong"),
        ),
        bad,
        "invalid_grant",
        "redirect_uri_mismatch",
    )
    .await;
    // 3. the secret before the code
    assert_err(
        &sb,
        with(
            with(exchange("bogus"), "client_secret", json!("wrong")),
            "code",
            json!("bogus"),
        ),
        unauth,
        "invalid_client",
        "invalid_client_credentials",
    )
    .await;
    assert_err(
        &sb,
        with(exchange(&code), "client_secret", json!("")),
        unauth,
        "invalid_client",
        "invalid_client_credentials",
    )
    .await;
    // None of the failures above burned the code (they fail before step 4).
    let (s, _) = token_json(&sb, exchange(&code)).await;
    assert_eq!(s, StatusCode::OK);
    // 5. single use
    assert_err(
        &sb,
        exchange(&code),
        bad,
        "invalid_grant",
        "code_invalid_or_expired",
    )
    .await;
    assert_err(
        &sb,
        exchange("never-issued"),
        bad,
        "invalid_grant",
        "code_invalid_or_expired",
    )
    .await;
}

#[tokio::test]
async fn code_of_another_client_is_invalid() {
    let sb = start().await;
    let code = demo_code(&sb, ALICE).await;
    assert_err(&sb,
        json!({"client_id":"trusted-client","client_secret":seeded_secret("trusted-client"),"grant_type":"authorization_code","code":code,"redirect_uri":R}),
        StatusCode::BAD_REQUEST, "invalid_grant", "code_invalid_or_expired").await;
    // ... and it was not burned for its own client.
    assert_eq!(token_json(&sb, exchange(&code)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn any_registered_redirect_uri_is_accepted_at_exchange() {
    let other = "http://localhost:9000/other";
    let sb = Sandbox::builder()
        .redirect_uri(ClientType::Confidential, other)
        .start()
        .await
        .unwrap();
    let code = demo_code(&sb, ALICE).await; // authorized with R
    let (s, body) = token_json(&sb, with(exchange(&code), "redirect_uri", json!(other))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn either_of_two_active_secrets_works() {
    let second = "b".repeat(64);
    let s2 = second.clone();
    let sb = Sandbox::builder()
        .with_seed(move |s| s.client_mut(CID).unwrap().secrets.push(s2))
        .start()
        .await
        .unwrap();
    for secret in [SECRET, second.as_str()] {
        let code = demo_code(&sb, ALICE).await;
        let (s, body) =
            token_json(&sb, with(exchange(&code), "client_secret", json!(secret))).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn code_expires_after_ten_minutes() {
    let sb = start().await;
    let fresh = demo_code(&sb, ALICE).await;
    let stale = demo_code(&sb, BOB).await;
    sb.advance_clock(Duration::minutes(9));
    assert_eq!(token_json(&sb, exchange(&fresh)).await.0, StatusCode::OK);
    sb.advance_clock(Duration::minutes(1));
    assert_err(
        &sb,
        exchange(&stale),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "code_invalid_or_expired",
    )
    .await;
}

async fn pkce_code(sb: &Sandbox, client_id: &str, redirect: &str, challenge: &str) -> String {
    code_for(
        sb,
        ALICE,
        &[
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "PROFILE_READ"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await
}

/// The pipe's text for a `code_verifier` sent with a `client_secret` (the confidential input
/// declares exactly five fields; `forbidNonWhitelisted`).
const VERIFIER_FORBIDDEN: &str =
    "code_verifier property is wrong,property code_verifier should not exist ";

#[tokio::test]
async fn confidential_clients_may_not_send_a_code_verifier() {
    let sb = start().await;
    let (verifier, _) = pkce();
    // Without a challenge at authorize: the verifier alone is refused by the pipe, before the
    // service runs, so the code survives and the plain exchange then works.
    let code = demo_code(&sb, ALICE).await;
    let (s, t) = token_json(&sb, with(exchange(&code), "code_verifier", json!(verifier))).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request","error_description":"code_verifier property is wrong,property code_verifier should not exist "}"#
        )
    );
    let (s, body) = token_json(&sb, exchange(&code)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Form bodies are validated the same way (every value is a string).
    let code = demo_code(&sb, ALICE).await;
    let (s, t) = token_form(
        &sb,
        &[
            ("client_id", CID),
            ("client_secret", SECRET),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", R),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_request", VERIFIER_FORBIDDEN).as_str()
        )
    );
    // `client_secret: null`: the key exists, so the confidential input applies, and null is not
    // a string (class-validator's IsString text, formatted by the pipe).
    assert_err(
        &sb,
        with(exchange(&code), "client_secret", Value::Null),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "client_secret property is wrong,client_secret must be a string ",
    )
    .await;
    assert_err(
        &sb,
        json!({"client_id":CID,"client_secret":null,"grant_type":"refresh_token","refresh_token":"x"}),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "client_secret property is wrong,client_secret must be a string ",
    )
    .await;
    // Unknown properties come first, then the declared ones in declaration order.
    assert_err(
        &sb,
        with(
            with(exchange(&code), "client_secret", Value::Null),
            "code_verifier",
            json!(verifier),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "code_verifier property is wrong,property code_verifier should not exist , client_secret property is wrong,client_secret must be a string ",
    )
    .await;
    // None of those touched the code.
    assert_eq!(token_json(&sb, exchange(&code)).await.0, StatusCode::OK);
    // A JSON array is an object to JavaScript: it fails at client_id.
    let (s, t) = token_json(&sb, json!([exchange(&code)])).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_request", "client_id is required").as_str()
        )
    );
}

#[tokio::test]
async fn pkce_for_all_mode_takes_the_branch_inputs() {
    // The unmerged branch (`exchange.input.ts@0f1f5341`): confidential clients send a verifier,
    // the secret is optional in the input (the service still checks it).
    let sb = start().await;
    sb.update_settings(|s| s.pkce_required_for_all = true);
    let (verifier, challenge) = pkce();
    let code = pkce_code(&sb, CID, R, &challenge).await;
    let (s, body) = token_json(&sb, with(exchange(&code), "code_verifier", json!(verifier))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let code = pkce_code(&sb, CID, R, &challenge).await;
    assert_err(
        &sb,
        with(
            with(exchange(&code), "code_verifier", json!(verifier)),
            "client_secret",
            Value::Null,
        ),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "invalid_client_credentials",
    )
    .await;
}

#[tokio::test]
async fn a_confidential_code_with_a_challenge_cannot_be_exchanged_at_v2() {
    let sb = start().await;
    let (verifier, challenge) = pkce();
    let code = pkce_code(&sb, CID, R, &challenge).await;
    // With the verifier: the pipe refuses it; the service never runs, the code survives.
    assert_err(
        &sb,
        with(exchange(&code), "code_verifier", json!(verifier)),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        VERIFIER_FORBIDDEN,
    )
    .await;
    // Without it: the service burns the code (step 4), then demands the verifier (step 7).
    assert_err(
        &sb,
        exchange(&code),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "pkce_missing_parameters_or_invalid_method",
    )
    .await;
    assert_err(
        &sb,
        exchange(&code),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "code_invalid_or_expired",
    )
    .await;
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 0);
}

#[tokio::test]
async fn pkce_failures_burn_the_code() {
    let sb = start().await;
    let (verifier, challenge) = pkce();
    // Public client, wrong verifier: the code is gone afterwards.
    let code = pkce_code(
        &sb,
        PUBLIC_CLIENT_ID,
        DEFAULT_PUBLIC_REDIRECT_URI,
        &challenge,
    )
    .await;
    let public = |code: &str, verifier: &str| json!({"client_id":PUBLIC_CLIENT_ID,"grant_type":"authorization_code","code":code,"redirect_uri":DEFAULT_PUBLIC_REDIRECT_URI,"code_verifier":verifier});
    assert_err(
        &sb,
        public(&code, "wrong-verifier"),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "pkce_verification_failed",
    )
    .await;
    assert_err(
        &sb,
        public(&code, &verifier),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "code_invalid_or_expired",
    )
    .await;
    // Public client: an empty verifier passes the pipe but not PKCE.
    let code = pkce_code(
        &sb,
        PUBLIC_CLIENT_ID,
        DEFAULT_PUBLIC_REDIRECT_URI,
        &challenge,
    )
    .await;
    assert_err(&sb,
        json!({"client_id":PUBLIC_CLIENT_ID,"grant_type":"authorization_code","code":code,"redirect_uri":DEFAULT_PUBLIC_REDIRECT_URI,"code_verifier":""}),
        StatusCode::BAD_REQUEST, "invalid_request", "pkce_missing_parameters_or_invalid_method").await;
    // Verifier length and charset are not checked: any verifier whose hash matches is fine.
    let short = "x";
    let short_challenge = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(short))
    };
    let code = pkce_code(
        &sb,
        PUBLIC_CLIENT_ID,
        DEFAULT_PUBLIC_REDIRECT_URI,
        &short_challenge,
    )
    .await;
    let (s, body) = token_json(&sb,
        json!({"client_id":PUBLIC_CLIENT_ID,"grant_type":"authorization_code","code":code,"redirect_uri":DEFAULT_PUBLIC_REDIRECT_URI,"code_verifier":short})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn status_is_checked_for_the_codes_user() {
    let sb = start().await;
    // Approved client: bob gets a code; then the client goes back to PENDING.
    let code = demo_code(&sb, BOB).await;
    sb.set_client_status(CID, ClientStatus::Pending).unwrap();
    assert_err(
        &sb,
        exchange(&code),
        StatusCode::UNAUTHORIZED,
        "unauthorized_client",
        "client_not_approved",
    )
    .await;
    // The owner (dev) still may.
    let code = demo_code(&sb, DEV).await;
    assert_eq!(token_json(&sb, exchange(&code)).await.0, StatusCode::OK);
    sb.set_client_status(CID, ClientStatus::Rejected).unwrap();
    sb.set_client_status(CID, ClientStatus::Approved).unwrap();
    let code = demo_code(&sb, ALICE).await;
    sb.set_client_status(CID, ClientStatus::Rejected).unwrap();
    assert_err(
        &sb,
        exchange(&code),
        StatusCode::UNAUTHORIZED,
        "unauthorized_client",
        "client_rejected",
    )
    .await;
}

#[tokio::test]
async fn team_codes_of_a_pending_client_are_not_approved() {
    // alice owns pending-client, but a team code has no user, so the owner bypass does not apply.
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let p = [
        ("client_id", "pending-client"),
        ("redirect_uri", R),
        ("scope", "PROFILE_READ"),
    ];
    let loc = consent(&sb, &alice, &p, "allow", Some("team/acme")).await;
    let code = query_of(&loc)["code"].clone();
    assert_err(&sb,
        json!({"client_id":"pending-client","client_secret":seeded_secret("pending-client"),"grant_type":"authorization_code","code":code,"redirect_uri":R}),
        StatusCode::UNAUTHORIZED, "unauthorized_client", "client_not_approved").await;
}
