//! The refresh_token grant of `POST /v2/auth/oauth2/token` (`docs/calcom.md` §3.4 refresh steps,
//! §3.6): rotation, revocation, expiry via the clock, owner bypass, team tokens, legacy tokens.

use crate::flow::*;
use crate::helpers::start;
use calconnect_sandbox::jwt::{self, Claims};
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, Owner, Sandbox,
    seed::ClientStatus,
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

async fn assert_err(sb: &Sandbox, body: Value, status: StatusCode, error: &str, description: &str) {
    let (s, text) = token_json(sb, body.clone()).await;
    assert_eq!(
        (s, text.as_str()),
        (status, v2_err(error, description).as_str()),
        "{body}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_rotated_token_is_revoked() {
    let start_at = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let sb = Sandbox::builder()
        .frozen_clock(start_at)
        .start()
        .await
        .unwrap();
    let first = demo_tokens(&sb, ALICE).await;
    let old = first["refresh_token"].as_str().unwrap();
    sb.advance_clock(Duration::seconds(5));
    let (s, body) = demo_refresh(&sb, old).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let second: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(second["scope"], "PROFILE_READ SCHEDULE_READ");
    assert_eq!(second["expires_in"], 1800);
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert!(claims(new).get("codeChallenge").is_none());
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 1);
    // lastRefreshedAt is updated.
    assert_eq!(
        sb.authorization(ALICE, CID).unwrap().last_refreshed_at,
        Some(start_at + Duration::seconds(5))
    );
    let (s, t) = demo_refresh(&sb, old).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_grant", "refresh_token_revoked").as_str()
        )
    );
    assert_eq!(demo_refresh(&sb, new).await.0, StatusCode::OK);
}

#[tokio::test]
async fn rotation_deletes_every_row_of_the_pair() {
    let sb = start().await;
    let a = demo_tokens(&sb, ALICE).await;
    let b = demo_tokens(&sb, ALICE).await;
    let bob = demo_tokens(&sb, BOB).await;
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 2);
    assert_eq!(
        demo_refresh(&sb, a["refresh_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 1);
    assert_err(&sb,
        json!({"client_id":CID,"client_secret":SECRET,"grant_type":"refresh_token","refresh_token":b["refresh_token"]}),
        StatusCode::BAD_REQUEST, "invalid_grant", "refresh_token_revoked").await;
    // Other users are untouched.
    assert_eq!(
        demo_refresh(&sb, bob["refresh_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_errors() {
    let sb = start().await;
    let t = demo_tokens(&sb, ALICE).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let body = |client: &str, secret: &str, token: &str| json!({"client_id":client,"client_secret":secret,"grant_type":"refresh_token","refresh_token":token});
    assert_err(
        &sb,
        body("nope", SECRET, rt),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client_not_found",
    )
    .await;
    assert_err(
        &sb,
        body(CID, "wrong", rt),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "invalid_client_credentials",
    )
    .await;
    assert_err(
        &sb,
        body(CID, SECRET, "not-a-jwt"),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "invalid_refresh_token",
    )
    .await;
    // An access token is not a refresh token.
    assert_err(
        &sb,
        body(CID, SECRET, t["access_token"].as_str().unwrap()),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "invalid_refresh_token",
    )
    .await;
    // A token of another client.
    assert_err(
        &sb,
        body("trusted-client", &seeded_secret("trusted-client"), rt),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "client_id_mismatch",
    )
    .await;
    // Status.
    sb.set_client_status(CID, ClientStatus::Rejected).unwrap();
    assert_err(
        &sb,
        body(CID, SECRET, rt),
        StatusCode::UNAUTHORIZED,
        "unauthorized_client",
        "client_rejected",
    )
    .await;
    sb.set_client_status(CID, ClientStatus::Pending).unwrap();
    assert_err(
        &sb,
        body(CID, SECRET, rt),
        StatusCode::UNAUTHORIZED,
        "unauthorized_client",
        "client_not_approved",
    )
    .await;
    sb.set_client_status(CID, ClientStatus::Approved).unwrap();
    assert_eq!(demo_refresh(&sb, rt).await.0, StatusCode::OK);
}

/// §3.4 refresh steps 1–2 (`OAuthService.refreshAccessToken`): the client and its secret are
/// checked before the refresh token is even decoded.
#[tokio::test]
async fn refresh_checks_the_client_before_the_token() {
    let sb = start().await;
    let body = |client: &str, secret: &str| json!({"client_id":client,"client_secret":secret,"grant_type":"refresh_token","refresh_token":"dummy"});
    assert_err(
        &sb,
        body("no-such-client", SECRET),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client_not_found",
    )
    .await;
    assert_err(
        &sb,
        body(CID, "wrong-secret"),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "invalid_client_credentials",
    )
    .await;
    assert_err(
        &sb,
        body(CID, ""),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "invalid_client_credentials",
    )
    .await;
    assert_err(
        &sb,
        body(CID, SECRET),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "invalid_refresh_token",
    )
    .await;
    // A public client has no secret to check: straight to the token.
    assert_err(
        &sb,
        json!({"client_id":calconnect_sandbox::PUBLIC_CLIENT_ID,"grant_type":"refresh_token","refresh_token":"dummy"}),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "invalid_refresh_token",
    )
    .await;
    // The legacy refresh endpoint shares the order.
    let legacy = |client_id: &'static str, secret: &'static str| {
        client()
            .post(sb.legacy_refresh_url())
            .form(&[
                ("client_id", client_id),
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", "dummy"),
            ])
            .send()
    };
    for (client_id, secret, status, error) in [
        (
            "no-such-client",
            SECRET,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            CID,
            "wrong-secret",
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (CID, SECRET, StatusCode::BAD_REQUEST, "invalid_grant"),
    ] {
        let resp = legacy(client_id, secret).await.unwrap();
        assert_eq!(resp.status(), status);
        assert_eq!(
            resp.text().await.unwrap(),
            format!(r#"{{"error":"{error}"}}"#)
        );
    }
}

#[tokio::test]
async fn refresh_token_expires_after_30_days_of_idleness() {
    let sb = start().await;
    let t = demo_tokens(&sb, ALICE).await;
    // A refresh at day 29 slides the window.
    sb.advance_clock(Duration::days(29));
    let (s, body) = demo_refresh(&sb, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let t2: Value = serde_json::from_str(&body).unwrap();
    let rt2 = t2["refresh_token"].as_str().unwrap();
    sb.advance_clock(Duration::days(30));
    let (s, text) = demo_refresh(&sb, rt2).await;
    assert_eq!(
        (s, text.as_str()),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_grant", "invalid_refresh_token").as_str()
        )
    );
}

#[tokio::test]
async fn owner_bypass_on_refresh() {
    let sb = start().await;
    let code = code_for(
        &sb,
        ALICE,
        &[
            ("client_id", "pending-client"),
            ("redirect_uri", R),
            ("scope", "PROFILE_READ"),
        ],
    )
    .await;
    let secret = seeded_secret("pending-client");
    let (s, body) = token_json(&sb, json!({"client_id":"pending-client","client_secret":secret,"grant_type":"authorization_code","code":code,"redirect_uri":R})).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    let (s, body) = token_json(&sb, json!({"client_id":"pending-client","client_secret":secret,"grant_type":"refresh_token","refresh_token":v["refresh_token"]})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn team_tokens_rotate_per_team() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let p = [
        ("client_id", CID),
        ("redirect_uri", R),
        ("scope", "TEAM_PROFILE_READ"),
    ];
    let loc = consent(&sb, &alice, &p, "allow", Some("team/acme")).await;
    let code = query_of(&loc)["code"].clone();
    let v: Value = serde_json::from_str(&token_json(&sb, exchange(&code)).await.1).unwrap();
    assert_eq!(sb.refresh_token_rows(CID, Owner::Team(10)), 1);
    let (s, body) = demo_refresh(&sb, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v2: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(claims(v2["access_token"].as_str().unwrap())["teamId"], 10);
    assert_eq!(sb.refresh_token_rows(CID, Owner::Team(10)), 1);
}

#[tokio::test]
async fn legacy_refresh_tokens_without_a_secret_are_accepted_and_upgraded() {
    let key = b"sandbox-test-key".to_vec();
    let sb = Sandbox::builder()
        .signing_key(key.clone())
        .start()
        .await
        .unwrap();
    let now = sb.now().unix_timestamp();
    let legacy = jwt::sign(
        &Claims {
            user_id: Some(ALICE),
            team_id: None,
            scope: vec!["READ_BOOKING".into()],
            token_type: "Refresh Token".into(),
            client_id: CID.into(),
            secret: None,
            code_challenge: None,
            code_challenge_method: None,
            iat: now,
            exp: now + 3600,
        },
        &key,
    );
    let (s, body) = demo_refresh(&sb, &legacy).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(claims(v["refresh_token"].as_str().unwrap())["secret"].is_string());
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 1);
    // OAuthService (e0ef2d8d) only checks tokens that carry a secret, so a legacy token keeps
    // working until its exp — and each use rotates, killing the upgraded token.
    let upgraded = v["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(demo_refresh(&sb, &legacy).await.0, StatusCode::OK);
    assert_eq!(
        demo_refresh(&sb, &upgraded).await.1,
        v2_err("invalid_grant", "refresh_token_revoked")
    );
    // A token signed with another key is not.
    let forged = jwt::sign(&jwt::verify(&legacy, &key, now).unwrap(), b"other-key");
    assert_err(&sb, json!({"client_id":CID,"client_secret":SECRET,"grant_type":"refresh_token","refresh_token":forged}),
        StatusCode::BAD_REQUEST, "invalid_grant", "invalid_refresh_token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_of_one_token_race_like_cal_com() {
    // §3.4: concurrent refreshes can all pass the revocation check; every rotation deletes the
    // others' rows, so exactly one live row remains. No deadlock, every call answered. (201
    // token calls from one address in a minute: above Cal.com's 120 per IP.)
    let sb = Sandbox::builder()
        .ip_rate_limit(1_000)
        .start()
        .await
        .unwrap();
    let t = demo_tokens(&sb, ALICE).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let http = client();
    let calls = (0..200).map(|_| {
        let (http, url) = (http.clone(), sb.token_url());
        let body = json!({"client_id":CID,"client_secret":SECRET,"grant_type":"refresh_token","refresh_token":rt});
        async move { http.post(url).json(&body).send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(calls).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count() as u64;
    let revoked = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count() as u64;
    assert!(ok >= 1);
    assert_eq!(ok + revoked, 200);
    assert_eq!(sb.token_calls("refresh_token", "ok"), ok);
    assert_eq!(
        sb.token_calls("refresh_token", "invalid_grant:refresh_token_revoked"),
        revoked
    );
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 1);
}
