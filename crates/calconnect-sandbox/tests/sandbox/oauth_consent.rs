//! Consent decisions (`docs/calcom.md` §2): Allow, Go back, teams, trusted clients, CSRF, and
//! full authorization-code flows for confidential and public clients.

use crate::flow::*;
use crate::helpers::start;
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, DEFAULT_PUBLIC_REDIRECT_URI,
    DEFAULT_REDIRECT_URI, PUBLIC_CLIENT_ID, Sandbox,
};
use reqwest::StatusCode;
use serde_json::json;

const R: &str = DEFAULT_REDIRECT_URI;

fn demo(scope: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("client_id", CONFIDENTIAL_CLIENT_ID),
        ("redirect_uri", R),
        ("response_type", "code"),
        ("scope", scope),
        ("state", "xyz"),
    ]
}

#[tokio::test]
async fn allow_redirects_with_code_and_state() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let loc = consent(&sb, &alice, &demo("PROFILE_READ"), "allow", None).await;
    let code = sb.latest_code(CONFIDENTIAL_CLIENT_ID, ALICE).unwrap();
    assert_eq!(
        loc,
        format!("http://127.0.0.1:8080/oauth/callback?code={code}&state=xyz")
    );
    // 40 random bytes, base64url without padding.
    assert_eq!(code.len(), 54);
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    // The consent is recorded.
    let auth = sb.authorization(ALICE, CONFIDENTIAL_CLIENT_ID).unwrap();
    assert_eq!(auth.scopes, vec!["PROFILE_READ"]);
    assert!(auth.last_refreshed_at.is_none());
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_no_description() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let loc = consent(&sb, &alice, &demo("PROFILE_READ"), "deny", None).await;
    assert_eq!(
        loc,
        "http://127.0.0.1:8080/oauth/callback?error=access_denied&state=xyz"
    );
    let mut no_state = demo("PROFILE_READ");
    no_state.pop();
    let loc = consent(&sb, &alice, &no_state, "deny", None).await;
    assert_eq!(
        loc,
        "http://127.0.0.1:8080/oauth/callback?error=access_denied"
    );
}

#[tokio::test]
async fn an_existing_query_on_the_redirect_uri_is_kept() {
    let with_query = "http://127.0.0.1:8080/cb?tenant=acme";
    let sb = Sandbox::builder()
        .redirect_uri(ClientType::Confidential, with_query)
        .start()
        .await
        .unwrap();
    let alice = login(&sb, ALICE).await;
    let p = [
        ("client_id", CONFIDENTIAL_CLIENT_ID),
        ("redirect_uri", with_query),
        ("scope", "PROFILE_READ"),
        ("state", "a b&c"),
    ];
    let loc = consent(&sb, &alice, &p, "allow", None).await;
    let code = sb.latest_code(CONFIDENTIAL_CLIENT_ID, ALICE).unwrap();
    assert_eq!(
        loc,
        format!("http://127.0.0.1:8080/cb?tenant=acme&code={code}&state=a+b%26c")
    );
    let loc = consent(&sb, &alice, &p, "deny", None).await;
    assert_eq!(
        loc,
        "http://127.0.0.1:8080/cb?tenant=acme&error=access_denied&state=a+b%26c"
    );
    let mut bad = p.to_vec();
    bad[2] = ("scope", "ORG_PROFILE_READ");
    let resp = authorize(&sb, Some(&alice), &bad).await;
    assert_eq!(
        location(&resp),
        "http://127.0.0.1:8080/cb?tenant=acme&error=invalid_request&error_description=Requested+scope+exceeds+the+client%27s+registered+scopes&state=a+b%26c"
    );
}

#[tokio::test]
async fn trusted_clients_skip_consent() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let p = [
        ("client_id", "trusted-client"),
        ("redirect_uri", R),
        ("scope", "PROFILE_READ"),
        ("state", "t"),
    ];
    let resp = authorize(&sb, Some(&alice), &p).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let code = sb.latest_code("trusted-client", ALICE).unwrap();
    assert_eq!(location(&resp), format!("{R}?code={code}&state=t"));
}

#[tokio::test]
async fn team_selection_needs_owner_or_admin() {
    let sb = start().await;
    let p = demo("TEAM_BOOKING_READ");
    let alice = login(&sb, ALICE).await;
    let loc = consent(&sb, &alice, &p, "allow", Some("team/acme")).await;
    let code = query_of(&loc)["code"].clone();
    let (status, body) = token_json(
        &sb,
        json!({"client_id":CONFIDENTIAL_CLIENT_ID,"client_secret":CONFIDENTIAL_CLIENT_SECRET,
            "grant_type":"authorization_code","code":code,"redirect_uri":R}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["teamId"], 10);
    assert_eq!(c["userId"], serde_json::Value::Null);
    // bob is only a MEMBER of acme: the web page's tRPC UNAUTHORIZED, mapped to
    // unauthorized_client with the handler's prose (generateAuthCode.handler.ts,
    // authorize-view.tsx).
    let bob = login(&sb, BOB).await;
    let loc = consent(&sb, &bob, &p, "allow", Some("team/acme")).await;
    assert_eq!(
        loc,
        "http://127.0.0.1:8080/oauth/callback?error=unauthorized_client&error_description=Team+not+found+or+user+is+not+an+admin%2Fowner&state=xyz"
    );
    let loc = consent(&sb, &alice, &p, "allow", Some("team/nope")).await;
    assert!(loc.contains("error=unauthorized_client"));
}

#[tokio::test]
async fn consent_form_needs_the_session_and_its_csrf_token() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let p = demo("PROFILE_READ");
    let mut form: Vec<(&str, &str)> = p.clone();
    form.push(("action", "allow"));
    form.push(("csrf_token", "forged"));
    let resp = client()
        .post(sb.authorize_url())
        .header("cookie", &alice)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(sb.latest_code(CONFIDENTIAL_CLIENT_ID, ALICE).is_none());
    // Another session's token does not work either.
    let bob = login(&sb, BOB).await;
    let html = authorize(&sb, Some(&bob), &p).await.text().await.unwrap();
    form.pop();
    let bobs = hidden(&html, "csrf_token");
    form.push(("csrf_token", &bobs));
    let resp = client()
        .post(sb.authorize_url())
        .header("cookie", &alice)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // No session: back to sign-in.
    let resp = client()
        .post(sb.authorize_url())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(location(&resp).starts_with(
        "/auth/login?callbackUrl=auth%2Foauth2%2Fauthorize%3Fclient_id%3Dcalconnect-demo"
    ));
}

/// A confidential client keeps PKCE only by exchanging at the legacy web endpoint: the v2
/// endpoint forbids its `code_verifier` (see `oauth_token`), the legacy route hands it to the
/// service. The tokens then refresh at v2 like any others.
#[tokio::test]
async fn full_flow_confidential_with_pkce_via_the_legacy_endpoint() {
    let sb = start().await;
    let (verifier, challenge) = pkce();
    let mut p = demo("PROFILE_READ,SCHEDULE_READ");
    p.push(("code_challenge", &challenge));
    p.push(("code_challenge_method", "S256"));
    let code = code_for(&sb, ALICE, &p).await;
    let resp = client()
        .post(sb.legacy_token_url())
        .form(&[
            ("client_id", CONFIDENTIAL_CLIENT_ID),
            ("client_secret", CONFIDENTIAL_CLIENT_SECRET),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", R),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let refresh = claims(v["refresh_token"].as_str().unwrap());
    assert_eq!(refresh["codeChallenge"], challenge.as_str());
    assert_eq!(refresh["codeChallengeMethod"], "S256");
    let (status, _) = demo_refresh(&sb, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn full_flow_public_client() {
    let sb = start().await;
    let (verifier, challenge) = pkce();
    let p = [
        ("client_id", PUBLIC_CLIENT_ID),
        ("redirect_uri", DEFAULT_PUBLIC_REDIRECT_URI),
        ("scope", "PROFILE_READ"),
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = code_for(&sb, BOB, &p).await;
    let (status, body) = token_form(
        &sb,
        &[
            ("client_id", PUBLIC_CLIENT_ID),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", DEFAULT_PUBLIC_REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(claims(v["access_token"].as_str().unwrap())["userId"], BOB);
    // Refresh needs only client_id + refresh_token.
    let (status, body) = token_form(
        &sb,
        &[
            ("client_id", PUBLIC_CLIENT_ID),
            ("grant_type", "refresh_token"),
            ("refresh_token", v["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_scripted_browser_shows_answers_and_never_follows() {
    use calconnect_sandbox::browser::{BrowserError, Decision, Opened, SandboxBrowser};
    let sb = start().await;
    let url = |params: &[(&str, &str)]| {
        let mut u = sb.authorize_url();
        u.query_pairs_mut().extend_pairs(params);
        u.to_string()
    };
    let demo_url = url(&demo("PROFILE_READ"));
    let person = SandboxBrowser::new(sb.base_url()).unwrap();
    // Signed out: the redirect to the sign-in, not followed.
    match person.open(&demo_url).await.unwrap() {
        Opened::Redirect(l) => assert!(l.starts_with("/auth/login?callbackUrl="), "{l}"),
        Opened::Consent(_) => panic!("signed out"),
    }
    person.sign_in(ALICE).await.unwrap();
    let Opened::Consent(form) = person.open(&demo_url).await.unwrap() else {
        panic!("consent page expected");
    };
    assert_eq!(form.field("state"), Some("xyz"));
    assert_eq!(form.field("account"), Some("user"));
    assert_eq!(form.field("csrf_token").map(str::len), Some(64));
    let denied = person.submit(form, Decision::Deny, None).await.unwrap();
    assert_eq!(denied, format!("{R}?error=access_denied&state=xyz"));
    // A trusted client skips the page: `authorize` takes the redirect, `consent` refuses it.
    let trusted = url(&[
        ("client_id", "trusted-client"),
        ("redirect_uri", R),
        ("scope", "PROFILE_READ"),
    ]);
    assert!(matches!(
        person.consent(&trusted, Decision::Allow, None).await,
        Err(BrowserError::NoConsentPage)
    ));
    let code = sb.latest_code("trusted-client", ALICE).unwrap();
    let second = person
        .authorize(&trusted, Decision::Allow, None)
        .await
        .unwrap();
    assert!(second.starts_with(&format!("{R}?code=")) && !second.contains(&code));
}
