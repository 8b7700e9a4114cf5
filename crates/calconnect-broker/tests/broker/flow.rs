//! The browser flow: connect link → Cal.com consent → callback, and every way it can go wrong.

use crate::helpers::*;
use calconnect::{Clock, MockClock};
use reqwest::StatusCode;
use std::sync::Arc;

#[tokio::test]
async fn whole_flow_creates_a_connection_and_redirects_to_return_to() {
    let app = spawn_app().await;
    let r = app
        .connect("user-1", Some("https://app.example/done?x=1"), ALICE)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let to = location(&r);
    assert!(to.starts_with("https://app.example/done?x=1&"), "{to}");
    let q = query_of(&to);
    assert_eq!(q["outcome"], "created");
    let id = &q["connection_id"];

    let (status, c) = app.get(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["end_user_id"], "user-1");
    assert_eq!(c["status"], "active");
    assert_eq!(c["cal_identity"]["kind"], "user");
    assert_eq!(c["cal_identity"]["id"], ALICE);
    assert!(c["access_token_expires_at"].is_string());
    let text = c.to_string();
    assert!(!text.contains("eyJ"), "no token in the view: {text}");

    let (status, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["connections"].as_array().unwrap().len(), 1);
    let (_, none) = app
        .get("/api/v1/connections?end_user_id=someone-else")
        .await;
    assert_eq!(none["connections"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn without_return_to_a_page_is_shown() {
    let app = spawn_app().await;
    let r = app.connect("user-1", None, ALICE).await;
    assert_eq!(outcome(r).await, (StatusCode::OK, "created".into()));
}

#[tokio::test]
async fn reconnecting_the_same_cal_user_updates_the_same_connection() {
    let app = spawn_app().await;
    let first = app.connected("user-1", ALICE).await;
    let r = app
        .connect("user-1", Some("https://app.example/done"), ALICE)
        .await;
    let q = query_of(&location(&r));
    assert_eq!(q["outcome"], "updated");
    assert_eq!(q["connection_id"], first);
    let other = app.connected("user-2", BOB).await;
    assert_ne!(other, first);
}

#[tokio::test]
async fn deny_creates_nothing() {
    let app = spawn_app().await;
    let url = app
        .session("user-1", Some("https://app.example/done"))
        .await;
    let b = browser();
    let callback = app.consent(&b, &url, ALICE, "deny").await;
    let r = b.get(&callback).send().await.unwrap();
    let q = query_of(&location(&r));
    assert_eq!(q["outcome"], "access_denied");
    assert!(!q.contains_key("connection_id"));
    // Without return_to: a page.
    let url = app.session("user-1", None).await;
    let b = browser();
    let callback = app.consent(&b, &url, ALICE, "deny").await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(
        outcome(r).await,
        (StatusCode::FORBIDDEN, "access_denied".into())
    );
    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn missing_cookie_reused_and_forged_state_show_a_page_and_create_nothing() {
    let app = spawn_app().await;
    let url = app.session("user-1", None).await;
    let b = browser();
    let callback = app.consent(&b, &url, ALICE, "allow").await;

    // Another browser (no binding cookie): refused, and the pending authorization survives.
    let r = no_redirects().get(&callback).send().await.unwrap();
    assert_eq!(
        outcome(r).await,
        (StatusCode::BAD_REQUEST, "missing_cookie".into())
    );
    // A forged cookie of the right name: refused too.
    let cookie_name = {
        let to_cal = browser().get(&url).send().await.unwrap();
        let set = to_cal.headers()["set-cookie"].to_str().unwrap().to_owned();
        set.split('=').next().unwrap().to_owned()
    };
    assert!(cookie_name.starts_with("calconnect_flow_"));

    // The right browser finishes.
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(outcome(r).await, (StatusCode::OK, "created".into()));
    // Replayed callback: the pending authorization is gone (and the cookie cleared).
    let r = b.get(&callback).send().await.unwrap();
    let (status, word) = outcome(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        word == "missing_cookie" || word == "unknown_state",
        "{word}"
    );

    // Forged state.
    let r = b
        .get(app.url("/oauth/callback?code=abc&state=forged-state"))
        .send()
        .await
        .unwrap();
    let (status, _) = outcome(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // No state at all, repeated parameters, nothing.
    for q in [
        "?code=abc",
        "?code=a&code=b&state=s",
        "",
        "?error=access_denied",
    ] {
        let r = b
            .get(app.url(&format!("/oauth/callback{q}")))
            .send()
            .await
            .unwrap();
        let (status, _) = outcome(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
    }
    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn stolen_state_with_a_forged_cookie_does_not_burn_the_real_flow() {
    let app = spawn_app().await;
    let url = app.session("user-1", None).await;
    let b = browser();
    let callback = app.consent(&b, &url, ALICE, "allow").await;
    let state = query_of(&callback)["state"].clone();
    // The attacker knows the state but not the binding; guesses the cookie name from nothing.
    // The cookie name is derived from the state's digest (calconnect::store::StateKey).
    let digest =
        calconnect::store::StateKey::of(&secrecy::SecretString::from(state.clone())).to_hex();
    let forged = format!("calconnect_flow_{}=forged-binding", &digest[..16]);
    let r = no_redirects()
        .get(&callback)
        .header("cookie", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(
        outcome(r).await,
        (StatusCode::BAD_REQUEST, "unknown_state".into())
    );
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(outcome(r).await, (StatusCode::OK, "created".into()));
}

#[tokio::test]
async fn expired_links_and_flows_are_refused() {
    let clock = Arc::new(MockClock::new(calconnect::SystemClock.now()));
    let app = spawn_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    // A flow older than 10 minutes.
    let url = app.session("user-1", None).await;
    let b = browser();
    let callback = app.consent(&b, &url, ALICE, "allow").await;
    clock.advance(time::Duration::minutes(11));
    let r = b.get(&callback).send().await.unwrap();
    let (status, word) = outcome(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(word, "expired");
    // A connect link older than its 30 minutes.
    let url = app.session("user-1", None).await;
    clock.advance(time::Duration::minutes(31));
    let r = browser().get(&url).send().await.unwrap();
    assert_eq!(outcome(r).await, (StatusCode::GONE, "expired_link".into()));
    // An unknown link.
    let r = browser()
        .get(app.url("/connect/not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        outcome(r).await,
        (StatusCode::NOT_FOUND, "unknown_link".into())
    );
    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_team_cal_com_refused_is_reported_as_such_not_as_an_unapproved_client() {
    // Cal.com's web authorize page: a user who is not OWNER/ADMIN of the chosen team comes back
    // with `error=unauthorized_client` and this prose (docs/calcom.md, authorize errors).
    let app = spawn_app().await;
    let url = app
        .session("user-1", Some("https://app.example/done"))
        .await;
    let b = browser();
    let to_cal = b.get(&url).send().await.unwrap();
    let state = query_of(&location(&to_cal))["state"].clone();
    let r = b
        .get(app.url(&format!(
            "/oauth/callback?error=unauthorized_client&error_description=Team%20not%20found%20or%20user%20is%20not%20an%20admin%2Fowner&state={state}"
        )))
        .send()
        .await
        .unwrap();
    let q = query_of(&location(&r));
    assert_eq!(q["outcome"], "error");
    assert_eq!(q["error"], "team_not_allowed");
    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 0);
}
