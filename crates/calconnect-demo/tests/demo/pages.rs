use crate::helpers::*;
use calconnect_sandbox::browser::SandboxBrowser;
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused() {
    let app = start().await;
    let b = browser_no_redirects();
    let r = b
        .post(app.url("/signin"))
        .form(&[("name", "dora")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    for token in ["", "00", &"a".repeat(64)] {
        let r = page(
            b.post(app.url("/connect"))
                .form(&[("csrf", token)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.html.contains("data-outcome=\"csrf\""));
    }
    // Another user's token does not work either.
    let other = browser_no_redirects();
    other
        .post(app.url("/signin"))
        .form(&[("name", "eve")])
        .send()
        .await
        .unwrap();
    let eve_home = page(other.get(app.url("/")).send().await.unwrap()).await;
    let r = b
        .post(app.url("/connect"))
        .form(&[("csrf", csrf(&eve_home.html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Signed out: nothing happens.
    let anon = browser_no_redirects();
    let r = anon
        .post(app.url("/connect"))
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.demo.shutdown().await;
}

#[tokio::test]
async fn pages_escape_and_errors_are_friendly() {
    let app = start().await;
    let b = browser();
    let r = page(
        b.post(app.url("/signin"))
            .form(&[("name", "<script>x</script>")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.html.contains("<script>x"));
    let r = page(b.get(app.url("/nope?<b>")).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.html.contains("What to do:"));
    // A connection that is not yours (or does not exist).
    sign_in(&app, &b, "fay").await;
    let r = page(b.get(app.url("/connections/%3Cb%3E")).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.html.contains("data-outcome=\"unknown_connection\""));
    // The flow's return with an error.
    let r = page(
        b.get(app.url("/connected?outcome=error&error=<i>"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(r.html.contains("data-outcome=\"connect_failed\""));
    assert!(!r.html.contains("<i>"));
    let r = b.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    app.demo.shutdown().await;
}

#[tokio::test]
async fn broker_error_pages_explain_expired_and_forged_links() {
    let app = start().await;
    let b = browser();
    let r = page(
        b.get(format!("{}/connect/not-a-real-link", app.demo.broker_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.html.contains("start again"), "{}", r.html);
    let r = page(
        b.get(format!(
            "{}/oauth/callback?code=x&state=forged",
            app.demo.broker_url()
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.html.contains("start connecting again"), "{}", r.html);
    app.demo.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_needs_the_admin_password() {
    let app = start().await;
    let b = browser();
    sign_in(&app, &b, "gus").await;
    connect(&app, &b, 1, "allow").await;
    let anon = browser();
    let r = anon.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let r = anon
        .get(app.url("/admin"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let pw = app.demo.admin_password().expose_secret().to_owned();
    let r = page(
        anon.get(app.url("/admin"))
            .basic_auth("admin", Some(&pw))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.html.contains("data-testid=\"admin-connection\""));
    assert!(r.html.contains(">gus<"));
    assert!(r.html.contains("created"), "events");
    let r = page(
        anon.get(app.url("/admin?status=needs_reauth"))
            .basic_auth("admin", Some(&pw))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(!r.html.contains("data-testid=\"admin-connection\""));
    app.demo.shutdown().await;
}

/// End-user ids come from any app using the broker (1 to 255 characters): the operator's
/// dashboard shows them, and its filter reflects what was typed, escaped.
#[tokio::test]
async fn the_dashboard_escapes_end_users_and_filters() {
    const EVIL: &str = r#"<script>alert("x")</script>'"#;
    const SAFE: &str = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'";
    let app = start().await;
    let api_key = std::fs::read_to_string(app.dir.path().join("app-api-key")).unwrap();
    let b = browser();
    let created = b
        .post(format!("{}/api/v1/connect-sessions", app.demo.broker_url()))
        .bearer_auth(api_key.trim())
        .json(&serde_json::json!({"end_user_id": EVIL, "return_to": app.url("/connected")}))
        .send()
        .await
        .unwrap();
    let session: serde_json::Value = created.json().await.unwrap();
    let to_cal = b
        .manual
        .get(session["connect_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let person = SandboxBrowser::new(app.demo.sandbox().base_url()).unwrap();
    let callback = person
        .sign_in_and_allow(1, &location(&to_cal))
        .await
        .unwrap();
    b.manual.get(callback).send().await.unwrap();
    let pw = app.demo.admin_password().expose_secret().to_owned();
    let admin = |path: String| {
        let req = b.get(app.url(&path)).basic_auth("admin", Some(&pw));
        async move { page(req.send().await.unwrap()).await }
    };
    let filter: String = url::form_urlencoded::byte_serialize(EVIL.as_bytes()).collect();
    let all = admin("/admin".to_owned()).await;
    let filtered = admin(format!("/admin?user={filter}")).await;
    for r in [&all, &filtered] {
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.html.contains("data-testid=\"admin-connection\""));
        assert!(!r.html.contains("<script>alert"), "{}", r.html);
        assert!(r.html.contains(&format!("<td>{SAFE}</td>")), "{}", r.html);
    }
    assert!(
        filtered
            .html
            .contains(&format!("name=\"user\" value=\"{SAFE}\"")),
        "{}",
        filtered.html
    );
    app.demo.shutdown().await;
}
