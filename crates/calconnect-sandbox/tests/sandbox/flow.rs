//! OAuth test helpers: sign in over HTTP, walk the consent page (through `SandboxBrowser`),
//! exchange codes, PKCE pairs.
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calconnect_sandbox::browser::{Decision, SandboxBrowser};
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, Sandbox,
};
use reqwest::cookie::Jar;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::helpers::client;

pub const ALICE: i64 = 1;
pub const BOB: i64 = 2;
pub const DEV: i64 = 3;

/// Secret of a seeded non-demo client (its plaintext is hex(sha256(client_id))).
pub fn seeded_secret(client_id: &str) -> String {
    hex::encode(Sha256::digest(client_id.as_bytes()))
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Signs in as `user_id` and returns the `Cookie` header value.
pub async fn login(sb: &Sandbox, user_id: i64) -> String {
    let resp = client()
        .post(sb.base_url().join("/auth/login").unwrap())
        .form(&[
            ("user_id", user_id.to_string()),
            ("callbackUrl", "/_sandbox/".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

/// `GET /auth/oauth2/authorize?<params>` with the cookie.
pub async fn authorize(sb: &Sandbox, cookie: Option<&str>, params: &[(&str, &str)]) -> Response {
    let mut url = sb.authorize_url();
    url.query_pairs_mut().extend_pairs(params);
    let mut req = client().get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

pub fn location(resp: &Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_owned()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The value of a hidden input in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Walks the consent page through [`SandboxBrowser`] as the browser signed in with `cookie`:
/// opens the authorize URL with `params` (the consent page must show), answers `action`
/// (`allow`/`deny`) for `account`, and returns the redirect's `Location` (the browser checks
/// that the answer is a 303 See Other).
pub async fn consent(
    sb: &Sandbox,
    cookie: &str,
    params: &[(&str, &str)],
    action: &str,
    account: Option<&str>,
) -> String {
    let jar = Arc::new(Jar::default());
    jar.add_cookie_str(cookie, sb.base_url());
    let person = SandboxBrowser::with_cookie_jar(sb.base_url(), jar).unwrap();
    let mut url = sb.authorize_url();
    url.query_pairs_mut().extend_pairs(params);
    let decision: Decision = action.parse().unwrap();
    person
        .consent(url.as_str(), decision, account)
        .await
        .unwrap_or_else(|e| panic!("consent page expected: {e}"))
}

/// Walks sign-in and consent ("Allow") and returns the code from the redirect.
pub async fn code_for(sb: &Sandbox, user_id: i64, params: &[(&str, &str)]) -> String {
    let cookie = login(sb, user_id).await;
    let loc = consent(sb, &cookie, params, "allow", None).await;
    let q = query_of(&loc);
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {loc:?}"))
}

/// A code for alice at the confidential demo client with the given scope and no PKCE.
pub async fn demo_code(sb: &Sandbox, user_id: i64) -> String {
    code_for(
        sb,
        user_id,
        &[
            ("client_id", CONFIDENTIAL_CLIENT_ID),
            ("redirect_uri", DEFAULT_REDIRECT_URI),
            ("scope", "PROFILE_READ,SCHEDULE_READ"),
            ("state", "st"),
        ],
    )
    .await
}

/// A successful confidential exchange at the demo client: the token response.
pub async fn demo_tokens(sb: &Sandbox, user_id: i64) -> Value {
    let code = demo_code(sb, user_id).await;
    let (status, body) = token_json(
        sb,
        serde_json::json!({"client_id": CONFIDENTIAL_CLIENT_ID, "client_secret": CONFIDENTIAL_CLIENT_SECRET,
            "grant_type": "authorization_code", "code": code, "redirect_uri": DEFAULT_REDIRECT_URI}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// POSTs a JSON body to the v2 token endpoint: (status, body text).
pub async fn token_json(sb: &Sandbox, body: Value) -> (StatusCode, String) {
    let resp = client()
        .post(sb.token_url())
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// POSTs a form to the v2 token endpoint.
pub async fn token_form(sb: &Sandbox, form: &[(&str, &str)]) -> (StatusCode, String) {
    let resp = client()
        .post(sb.token_url())
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// A v2 refresh at the demo client.
pub async fn demo_refresh(sb: &Sandbox, refresh_token: &str) -> (StatusCode, String) {
    token_json(
        sb,
        serde_json::json!({"client_id": CONFIDENTIAL_CLIENT_ID, "client_secret": CONFIDENTIAL_CLIENT_SECRET,
            "grant_type": "refresh_token", "refresh_token": refresh_token}),
    )
    .await
}

/// The claims of a JWT (no verification).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `{"error":…,"error_description":…}` exactly as Cal.com's v2 endpoint writes it.
pub fn v2_err(error: &str, description: &str) -> String {
    serde_json::json!({"error": error, "error_description": description}).to_string()
}
