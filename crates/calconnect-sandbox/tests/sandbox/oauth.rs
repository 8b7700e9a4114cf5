//! OAuth tests: the authorize endpoint, sign-in and consent (`docs/calcom.md` §2, §10).
//! Token-endpoint tests are in `oauth_token.rs` and `oauth_legacy.rs`.

use crate::flow::*;
use crate::helpers::start;
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_PUBLIC_REDIRECT_URI,
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

async fn page_text(resp: reqwest::Response) -> (StatusCode, String) {
    assert!(
        resp.headers().get("location").is_none(),
        "must not redirect"
    );
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn not_signed_in_goes_to_login_with_the_original_query() {
    let sb = start().await;
    let resp = authorize(
        &sb,
        None,
        &[("client_id", "calconnect-demo"), ("scope", "A B")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        "/auth/login?callbackUrl=auth%2Foauth2%2Fauthorize%3Fclient_id%3Dcalconnect-demo%26scope%3DA%2BB"
    );
    // The login page lists the seeded users and carries the callback.
    let page = client()
        .get(sb.base_url().join(&location(&resp)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for who in ["Alice Anderson", "Bob Brown", "Dana Developer"] {
        assert!(html.contains(who), "{who}");
    }
    assert_eq!(
        hidden(&html, "callbackUrl"),
        "/auth/oauth2/authorize?client_id=calconnect-demo&scope=A+B"
    );
}

#[tokio::test]
async fn login_sets_a_session_cookie_and_returns_to_the_callback() {
    let sb = start().await;
    let resp = client()
        .post(sb.base_url().join("/auth/login").unwrap())
        .form(&[
            ("user_id", "1"),
            ("callbackUrl", "auth/oauth2/authorize?client_id=x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/auth/oauth2/authorize?client_id=x");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("calsandbox_session="), "{cookie}");
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Lax"),
        "{cookie}"
    );
}

#[tokio::test]
async fn login_never_redirects_off_the_sandbox() {
    let sb = start().await;
    for (cb, expected) in [
        ("https://evil.example/x", "/https://evil.example/x"),
        ("//evil.example/x", "/_sandbox/"),
        ("/\\evil.example", "/_sandbox/"),
        ("", "/_sandbox/"),
    ] {
        let resp = client()
            .post(sb.base_url().join("/auth/login").unwrap())
            .form(&[("user_id", "1"), ("callbackUrl", cb)])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&resp), expected, "{cb}");
    }
    let unknown = client()
        .post(sb.base_url().join("/auth/login").unwrap())
        .form(&[("user_id", "99")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn non_redirectable_errors_are_pages() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let bob = login(&sb, BOB).await;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            &alice,
            vec![
                ("client_id", "nope"),
                ("redirect_uri", R),
                ("scope", "PROFILE_READ"),
            ],
            "OAuth client with ID not found",
        ),
        (
            &alice,
            vec![
                ("client_id", CONFIDENTIAL_CLIENT_ID),
                ("redirect_uri", "http://127.0.0.1:8080/oauth/callback/"),
                ("scope", "PROFILE_READ"),
            ],
            "redirect_uri does not match any of the OAuth client&#39;s registered redirect URIs",
        ),
        (
            &alice,
            vec![
                ("client_id", CONFIDENTIAL_CLIENT_ID),
                ("scope", "PROFILE_READ"),
            ],
            "redirect_uri is required",
        ),
        (
            &bob,
            vec![
                ("client_id", "pending-client"),
                ("redirect_uri", R),
                ("scope", "PROFILE_READ"),
            ],
            "OAuth client is not approved",
        ),
        (
            &alice,
            vec![
                ("client_id", "rejected-client"),
                ("redirect_uri", R),
                ("scope", "PROFILE_READ"),
            ],
            "OAuth client has been rejected",
        ),
        (
            &alice,
            vec![
                ("client_id", CONFIDENTIAL_CLIENT_ID),
                ("redirect_uri", R),
                ("state", "s"),
            ],
            "scope parameter is required for this OAuth client",
        ),
        (
            &alice,
            vec![
                ("client_id", CONFIDENTIAL_CLIENT_ID),
                ("redirect_uri", R),
                ("scope", " , "),
            ],
            "scope parameter is required for this OAuth client",
        ),
    ];
    for (cookie, params, message) in cases {
        let (status, html) = page_text(authorize(&sb, Some(cookie), &params).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
        assert!(html.contains(message), "{message}: {html}");
    }
}

#[tokio::test]
async fn owner_may_use_a_pending_client() {
    let sb = start().await;
    // pending-client is owned by alice (user 1).
    let params = [
        ("client_id", "pending-client"),
        ("redirect_uri", R),
        ("scope", "PROFILE_READ"),
    ];
    let code = code_for(&sb, ALICE, &params).await;
    let (status, body) = token_json(
        &sb,
        json!({"client_id":"pending-client","client_secret":seeded_secret("pending-client"),
            "grant_type":"authorization_code","code":code,"redirect_uri":R}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn scope_errors_redirect_as_invalid_request() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let exceed = authorize(&sb, Some(&alice), &demo("PROFILE_READ,ORG_BOOKING_READ")).await;
    assert_eq!(exceed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&exceed),
        "http://127.0.0.1:8080/oauth/callback?error=invalid_request&error_description=Requested+scope+exceeds+the+client%27s+registered+scopes&state=xyz"
    );
    let unknown = authorize(&sb, Some(&alice), &demo("PROFILE_READ BOGUS")).await;
    assert_eq!(
        location(&unknown),
        "http://127.0.0.1:8080/oauth/callback?error=invalid_request&error_description=Requested+scope+is+not+a+recognized+scope&state=xyz"
    );
}

#[tokio::test]
async fn legacy_clients_skip_the_subset_check_but_not_unknown_names() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let base = [("client_id", "legacy-client"), ("redirect_uri", R)];
    // No scope at all: fine for a legacy client; the old static permission list is shown.
    let (status, html) = page_text(authorize(&sb, Some(&alice), &base).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("See your primary email address"), "{html}");
    // Any known scope is accepted (no subset check).
    let mut wide = base.to_vec();
    wide.push(("scope", "BOOKING_WRITE"));
    assert_eq!(
        authorize(&sb, Some(&alice), &wide).await.status(),
        StatusCode::OK
    );
    let mut bad = base.to_vec();
    bad.push(("scope", "NOT_A_SCOPE"));
    assert_eq!(
        location(&authorize(&sb, Some(&alice), &bad).await),
        "http://127.0.0.1:8080/oauth/callback?error=invalid_request&error_description=Requested+scope+is+not+a+recognized+scope"
    );
}

#[tokio::test]
async fn scope_parameter_splits_on_commas_and_spaces() {
    let sb = start().await;
    let code = code_for(&sb, ALICE, &demo("PROFILE_READ SCHEDULE_READ,BOOKING_READ")).await;
    let (_, body) = token_json(
        &sb,
        json!({"client_id":CONFIDENTIAL_CLIENT_ID,"client_secret":CONFIDENTIAL_CLIENT_SECRET,
            "grant_type":"authorization_code","code":code,"redirect_uri":R}),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["scope"], "PROFILE_READ SCHEDULE_READ BOOKING_READ");
}

#[tokio::test]
async fn pkce_rules_at_authorize() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let pr = DEFAULT_PUBLIC_REDIRECT_URI;
    let public = |extra: Vec<(&'static str, &'static str)>| {
        let mut p = vec![
            ("client_id", PUBLIC_CLIENT_ID),
            ("redirect_uri", pr),
            ("scope", "PROFILE_READ"),
            ("state", "s"),
        ];
        p.extend(extra);
        p
    };
    let r = authorize(&sb, Some(&alice), &public(vec![])).await;
    assert_eq!(
        location(&r),
        "http://127.0.0.1:8976/callback?error=invalid_request&error_description=code_challenge+required+for+public+clients&state=s"
    );
    let r = authorize(
        &sb,
        Some(&alice),
        &public(vec![
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ]),
    )
    .await;
    assert_eq!(
        location(&r),
        "http://127.0.0.1:8976/callback?error=invalid_request&error_description=code_challenge_method+must+be+S256&state=s"
    );
    // A confidential client sending a challenge must say S256 too (no method = invalid).
    let mut conf = demo("PROFILE_READ");
    conf.push(("code_challenge", "abc"));
    let r = authorize(&sb, Some(&alice), &conf).await;
    assert_eq!(
        location(&r),
        "http://127.0.0.1:8080/oauth/callback?error=invalid_request&error_description=code_challenge_method+must+be+S256&state=xyz"
    );
    // Without a challenge a confidential client is fine, unless PKCE is required for all.
    assert_eq!(
        authorize(&sb, Some(&alice), &demo("PROFILE_READ"))
            .await
            .status(),
        StatusCode::OK
    );
    sb.update_settings(|s| s.pkce_required_for_all = true);
    let r = authorize(&sb, Some(&alice), &demo("PROFILE_READ")).await;
    assert_eq!(
        location(&r),
        "http://127.0.0.1:8080/oauth/callback?error=invalid_request&error_description=code_challenge+required+%28PKCE+is+required+for+all+clients%29&state=xyz"
    );
}

#[tokio::test]
async fn consent_page_looks_like_cal_com() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let resp = authorize(
        &sb,
        Some(&alice),
        &demo("PROFILE_READ,BOOKING_READ,BOOKING_WRITE,TEAM_BOOKING_READ"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let html = resp.text().await.unwrap();
    for needle in [
        "Acme Planner would like access to your Cal.com account",
        "Signed in as <strong>Alice Anderson</strong>",
        "<h2>Your account</h2>",
        "<li>View your profile (name, email, time zone)</li>",
        "<li>View and change your bookings</li>",
        "<h2>Your teams</h2>",
        "<li>View your teams&#39; bookings</li>",
        ">Allow</button>",
        ">Go back</button>",
        "name=\"csrf_token\"",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(!html.contains("<script"), "no JavaScript");
}

#[tokio::test]
async fn consent_page_escapes_everything() {
    let sb = Sandbox::builder()
        .with_seed(|s| {
            let c = s.client_mut(CONFIDENTIAL_CLIENT_ID).unwrap();
            c.name = "<script>alert(1)</script>".into();
            c.logo_url = Some("\"><img src=x onerror=alert(1)>".into());
        })
        .start()
        .await
        .unwrap();
    let alice = login(&sb, ALICE).await;
    let mut p = demo("PROFILE_READ");
    p[4] = ("state", "\"><script>x</script>");
    let html = authorize(&sb, Some(&alice), &p).await.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; would like access"));
}

#[tokio::test]
async fn account_selector_offers_teams_the_user_administers() {
    let sb = start().await;
    let mut p = demo("PROFILE_READ");
    p.push(("show_account_selector", "true"));
    let alice = login(&sb, ALICE).await;
    let html = authorize(&sb, Some(&alice), &p).await.text().await.unwrap();
    assert!(
        html.contains("<option value=\"user\">Alice Anderson</option>"),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"team/acme\">Acme Inc.</option>"),
        "{html}"
    );
    // bob is a MEMBER of acme: read-only profiles are filtered out.
    let bob = login(&sb, BOB).await;
    let html = authorize(&sb, Some(&bob), &p).await.text().await.unwrap();
    assert!(!html.contains("team/acme"));
}

#[tokio::test]
async fn response_type_is_ignored_and_register_reaches_login() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let mut p = demo("PROFILE_READ");
    p[2] = ("response_type", "token");
    assert_eq!(
        authorize(&sb, Some(&alice), &p).await.status(),
        StatusCode::OK
    );
    let resp = authorize(&sb, None, &[("client_id", "x"), ("register", "false")]).await;
    assert_eq!(
        location(&resp),
        "/auth/login?callbackUrl=auth%2Foauth2%2Fauthorize%3Fclient_id%3Dx%26register%3Dfalse&register=false"
    );
}

#[tokio::test]
async fn switch_account_and_logout() {
    let sb = start().await;
    let alice = login(&sb, ALICE).await;
    let p = demo("PROFILE_READ");
    let html = authorize(&sb, Some(&alice), &p).await.text().await.unwrap();
    let marker = "<a href=\"";
    let start_at = html.find(marker).unwrap() + marker.len();
    let switch =
        html[start_at..start_at + html[start_at..].find('"').unwrap()].replace("&amp;", "&");
    assert!(
        switch.starts_with(
            "/auth/login?callbackUrl=auth%2Foauth2%2Fauthorize%3Fclient_id%3Dcalconnect-demo"
        ),
        "{switch}"
    );
    let resp = client()
        .post(sb.base_url().join("/auth/logout").unwrap())
        .header("cookie", &alice)
        .form(&[("callbackUrl", "/auth/oauth2/authorize?client_id=x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        "/auth/login?callbackUrl=%2Fauth%2Foauth2%2Fauthorize%3Fclient_id%3Dx"
    );
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie no longer signs anyone in.
    let resp = authorize(&sb, Some(&alice), &p).await;
    assert!(location(&resp).starts_with("/auth/login?"));
}

#[tokio::test]
async fn seeded_names_are_escaped_on_every_page() {
    const EVIL: &str = r#"Eve "Q" <script>alert('x')</script>"#;
    const ESCAPED: &str = "Eve &quot;Q&quot; &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;";
    let sb = Sandbox::builder()
        .with_seed(|s| {
            s.client_mut(CONFIDENTIAL_CLIENT_ID).unwrap().name = EVIL.into();
            s.users[0].name = EVIL.into();
            s.users[0].email = EVIL.into();
            s.teams[0].name = EVIL.into();
        })
        .start()
        .await
        .unwrap();
    let page = |url: url::Url| async move {
        let resp = client().get(url).send().await.unwrap();
        resp.text().await.unwrap()
    };
    let login_page = page(sb.base_url().join("/auth/login").unwrap()).await;
    let alice = login(&sb, ALICE).await;
    let consent_page = authorize(&sb, Some(&alice), &demo("PROFILE_READ"))
        .await
        .text()
        .await
        .unwrap();
    let mut p = demo("PROFILE_READ");
    p.push(("show_account_selector", "true"));
    let selector = authorize(&sb, Some(&alice), &p).await.text().await.unwrap();
    let controls = page(sb.control_url()).await;
    for (page, html) in [
        ("login", &login_page),
        ("consent", &consent_page),
        ("account selector", &selector),
        ("controls", &controls),
    ] {
        assert!(!html.contains("<script"), "{page}: {html}");
        assert!(!html.contains(r#""Q""#), "{page}: {html}");
        assert!(html.contains(ESCAPED), "{page}: {html}");
    }
    assert!(consent_page.contains(&format!("{ESCAPED} would like access")));
    assert!(selector.contains(&format!("<option value=\"team/acme\">{ESCAPED}</option>")));
}
