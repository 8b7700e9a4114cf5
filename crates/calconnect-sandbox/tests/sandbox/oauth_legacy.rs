//! The legacy web endpoints `POST /api/auth/oauth/token` and `/api/auth/oauth/refreshToken`
//! (`docs/calcom.md` §3.1, §3.2 end, §3.5 "Legacy web errors"): form only, `{error}` only.

use crate::flow::*;
use crate::helpers::start;
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, Owner, Sandbox,
    seed::ClientStatus,
};
use reqwest::StatusCode;
use serde_json::Value;

const R: &str = DEFAULT_REDIRECT_URI;
const CID: &str = CONFIDENTIAL_CLIENT_ID;
const SECRET: &str = CONFIDENTIAL_CLIENT_SECRET;

async fn post(url: url::Url, form: &[(&str, &str)], bearer: Option<&str>) -> (StatusCode, String) {
    let mut req = client().post(url).form(form);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn legacy_token(sb: &Sandbox, form: &[(&str, &str)]) -> (StatusCode, String) {
    post(sb.legacy_token_url(), form, None).await
}

async fn legacy_refresh(
    sb: &Sandbox,
    form: &[(&str, &str)],
    bearer: Option<&str>,
) -> (StatusCode, String) {
    post(sb.legacy_refresh_url(), form, bearer).await
}

fn err(e: &str) -> String {
    format!(r#"{{"error":"{e}"}}"#)
}

async fn legacy_pair(sb: &Sandbox) -> Value {
    let code = demo_code(sb, ALICE).await;
    let (s, body) = legacy_token(
        sb,
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
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn token_success_has_no_scope() {
    let sb = start().await;
    let code = demo_code(&sb, ALICE).await;
    let resp = client()
        .post(sb.legacy_token_url())
        .form(&[
            ("client_id", CID),
            ("client_secret", SECRET),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", R),
            ("scope", "ignored"),
            ("extra", "ignored"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let (a, r) = (
        v["access_token"].as_str().unwrap(),
        v["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(
        text,
        format!(
            r#"{{"access_token":"{a}","token_type":"bearer","refresh_token":"{r}","expires_in":1800}}"#
        )
    );
    assert_eq!(
        claims(a)["scope"],
        serde_json::json!(["PROFILE_READ", "SCHEDULE_READ"])
    );
}

#[tokio::test]
async fn token_errors_are_error_only() {
    let sb = start().await;
    let code = demo_code(&sb, ALICE).await;
    let full = [
        ("client_id", CID),
        ("client_secret", SECRET),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", R),
    ];
    let bad = StatusCode::BAD_REQUEST;
    for missing in ["client_id", "code", "redirect_uri", "grant_type"] {
        let f: Vec<_> = full
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_eq!(
            legacy_token(&sb, &f).await,
            (bad, err("invalid_request")),
            "{missing}"
        );
    }
    let mut wrong_grant = full.to_vec();
    wrong_grant[2] = ("grant_type", "refresh_token");
    assert_eq!(
        legacy_token(&sb, &wrong_grant).await,
        (bad, err("invalid_request"))
    );
    let mut f = full.to_vec();
    f[0] = ("client_id", "nope");
    assert_eq!(
        legacy_token(&sb, &f).await,
        (StatusCode::UNAUTHORIZED, err("invalid_client"))
    );
    let mut f = full.to_vec();
    f[1] = ("client_secret", "wrong");
    assert_eq!(
        legacy_token(&sb, &f).await,
        (StatusCode::UNAUTHORIZED, err("invalid_client"))
    );
    let mut f = full.to_vec();
    f[4] = ("redirect_uri", "http://elsewhere/");
    assert_eq!(legacy_token(&sb, &f).await, (bad, err("invalid_grant")));
    sb.set_client_status(CID, ClientStatus::Rejected).unwrap();
    assert_eq!(
        legacy_token(&sb, &full).await,
        (StatusCode::UNAUTHORIZED, err("unauthorized_client"))
    );
    sb.set_client_status(CID, ClientStatus::Approved).unwrap();
    // The rejected attempt burned the code (status is checked after the code lookup).
    assert_eq!(legacy_token(&sb, &full).await, (bad, err("invalid_grant")));
}

/// The legacy route hands `code_verifier` to the shared service
/// (`apps/web/app/api/auth/oauth/token/route.ts@503bbcce`), which checks PKCE for a confidential
/// client whose code carries a challenge: the way to keep PKCE for a confidential client.
#[tokio::test]
async fn token_verifies_pkce_for_a_confidential_client() {
    let sb = start().await;
    let (verifier, challenge) = pkce();
    let params = [
        ("client_id", CID),
        ("redirect_uri", R),
        ("scope", "PROFILE_READ"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = || code_for(&sb, ALICE, &params);
    let form = |code: &str, verifier: Option<&str>| {
        let mut f = vec![
            ("client_id", CID.to_owned()),
            ("client_secret", SECRET.to_owned()),
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", R.to_owned()),
        ];
        if let Some(v) = verifier {
            f.push(("code_verifier", v.to_owned()));
        }
        f
    };
    let send = |f: Vec<(&'static str, String)>| {
        let url = sb.legacy_token_url();
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(url, &f, None).await
        }
    };
    // Secret and verifier: tokens.
    let c = code().await;
    let (s, body) = send(form(&c, Some(&verifier))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        claims(v["refresh_token"].as_str().unwrap())["codeChallenge"],
        challenge.as_str()
    );
    // Wrong verifier: invalid_grant, and the code is burned.
    let c = code().await;
    assert_eq!(
        send(form(&c, Some("wrong"))).await,
        (StatusCode::BAD_REQUEST, err("invalid_grant"))
    );
    assert_eq!(
        send(form(&c, Some(&verifier))).await,
        (StatusCode::BAD_REQUEST, err("invalid_grant"))
    );
    // No verifier: invalid_request (pkce_missing_parameters_or_invalid_method).
    let c = code().await;
    assert_eq!(
        send(form(&c, None)).await,
        (StatusCode::BAD_REQUEST, err("invalid_request"))
    );
    // The secret is still checked.
    let c = code().await;
    let mut f = form(&c, Some(&verifier));
    f[1].1 = "wrong".to_owned();
    assert_eq!(
        send(f).await,
        (StatusCode::UNAUTHORIZED, err("invalid_client"))
    );
    // Without a challenge at authorize, a verifier is ignored (nothing to check it against).
    let c = demo_code(&sb, ALICE).await;
    let (s, body) = send(form(&c, Some(&verifier))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn token_reads_the_body_as_a_form_whatever_the_content_type() {
    let sb = start().await;
    let code = demo_code(&sb, ALICE).await;
    let json = serde_json::json!({"client_id":CID,"client_secret":SECRET,"grant_type":"authorization_code","code":code,"redirect_uri":R});
    let resp = client()
        .post(sb.legacy_token_url())
        .json(&json)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status(), resp.text().await.unwrap()),
        (StatusCode::BAD_REQUEST, err("invalid_request"))
    );
    let body = format!(
        "client_id={CID}&client_secret={SECRET}&grant_type=authorization_code&code={code}&redirect_uri={}",
        form_urlencoded::byte_serialize(R.as_bytes()).collect::<String>()
    );
    let resp = client()
        .post(sb.legacy_token_url())
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_from_body_or_bearer_body_wins() {
    let sb = start().await;
    let t = legacy_pair(&sb).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let base = [
        ("client_id", CID),
        ("client_secret", SECRET),
        ("grant_type", "refresh_token"),
    ];
    // From the header.
    let (s, body) = legacy_refresh(&sb, &base, Some(&rt)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let t2: Value = serde_json::from_str(&body).unwrap();
    let text_keys: Vec<_> = t2.as_object().unwrap().keys().cloned().collect();
    assert_eq!(text_keys.len(), 4, "no scope: {body}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    // The body wins over the header.
    let mut f = base.to_vec();
    f.push(("refresh_token", &rt2));
    let (s, body) = legacy_refresh(&sb, &f, Some("garbage")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let t3: Value = serde_json::from_str(&body).unwrap();
    let mut f = base.to_vec();
    f.push(("refresh_token", "garbage"));
    assert_eq!(
        legacy_refresh(&sb, &f, Some(t3["refresh_token"].as_str().unwrap())).await,
        (StatusCode::BAD_REQUEST, err("invalid_grant"))
    );
    // Rotation is shared with v2: the rotated-out token is revoked there too.
    let (s, text) = demo_refresh(&sb, &rt).await;
    assert_eq!(
        (s, text),
        (
            StatusCode::BAD_REQUEST,
            v2_err("invalid_grant", "refresh_token_revoked")
        )
    );
    assert_eq!(sb.refresh_token_rows(CID, Owner::User(ALICE)), 1);
}

#[tokio::test]
async fn refresh_errors_are_error_only() {
    let sb = start().await;
    let t = legacy_pair(&sb).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let bad = StatusCode::BAD_REQUEST;
    assert_eq!(
        legacy_refresh(
            &sb,
            &[
                ("client_secret", SECRET),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt)
            ],
            None
        )
        .await,
        (bad, err("invalid_request"))
    );
    assert_eq!(
        legacy_refresh(
            &sb,
            &[
                ("client_id", CID),
                ("client_secret", SECRET),
                ("refresh_token", rt)
            ],
            None
        )
        .await,
        (bad, err("invalid_request"))
    );
    assert_eq!(
        legacy_refresh(
            &sb,
            &[
                ("client_id", CID),
                ("client_secret", "x"),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt)
            ],
            None
        )
        .await,
        (StatusCode::UNAUTHORIZED, err("invalid_client"))
    );
    // No token anywhere: an invalid refresh token.
    assert_eq!(
        legacy_refresh(
            &sb,
            &[
                ("client_id", CID),
                ("client_secret", SECRET),
                ("grant_type", "refresh_token")
            ],
            None
        )
        .await,
        (bad, err("invalid_grant"))
    );
    sb.revoke_grant(CID, Owner::User(ALICE));
    assert_eq!(
        legacy_refresh(
            &sb,
            &[
                ("client_id", CID),
                ("client_secret", SECRET),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt)
            ],
            None
        )
        .await,
        (bad, err("invalid_grant"))
    );
    assert_eq!(
        sb.token_calls("refresh_token", "invalid_grant:refresh_token_revoked"),
        1
    );
}
