//! Account linking over real sockets: a captured connect link cannot hijack a connection, links
//! are single use, opening one many times is bounded, and the app can redeem who finished.

use crate::helpers::*;
use reqwest::StatusCode;

const DONE: &str = "https://app.example/done";

/// Opens `url` in a fresh browser, consents as `cal_user`, follows the callback.
async fn finish_as(app: &TestApp, url: &str, cal_user: i64) -> reqwest::Response {
    let b = browser();
    let callback = app.consent(&b, url, cal_user, "allow").await;
    b.get(callback).send().await.unwrap()
}

#[tokio::test]
async fn a_captured_link_cannot_move_the_victims_connection() {
    let app = spawn_app().await;
    // The victim (app user "victim") connected their Cal.com account (Alice) earlier.
    let victims = app.connected("victim", ALICE).await;
    // The attacker asks for a link for themself and sends it to the victim, who opens it in
    // their own browser (another cookie jar), signs in at Cal.com and presses Allow.
    let captured = app.session("attacker", Some(DONE)).await;
    let r = finish_as(&app, &captured, ALICE).await;
    let q = query_of(&location(&r));
    assert_eq!(q["outcome"], "error");
    assert_eq!(q["error"], "conflict");
    assert!(!q.contains_key("connection_id"));
    // The victim's connection is untouched: same id, same end user.
    let (_, c) = app.get(&format!("/api/v1/connections/{victims}")).await;
    assert_eq!(c["end_user_id"], "victim");
    assert_eq!(c["status"], "active");
    let (_, mine) = app.get("/api/v1/connections?end_user_id=attacker").await;
    assert_eq!(mine["connections"].as_array().unwrap().len(), 0);
    // The attacker's link is used up: it cannot complete later.
    let r = browser().get(&captured).send().await.unwrap();
    assert_eq!(outcome(r).await, (StatusCode::GONE, "link_used".into()));
    // The app hears of it (a connection.conflict webhook is queued only with endpoints; here
    // the redeemed result says the same).
    let (status, result) = app
        .get(&format!(
            "/api/v1/connect-sessions/{}?result={}",
            q["session_id"], q["result"]
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["end_user_id"], "attacker");
    assert_eq!(result["outcome"], "error");
    assert_eq!(result["error"], "conflict");
}

#[tokio::test]
async fn a_link_works_once_and_opening_it_again_is_bounded() {
    let app = spawn_app().await;
    let url = app.session("user-1", Some(DONE)).await;
    let r = finish_as(&app, &url, ALICE).await;
    assert_eq!(query_of(&location(&r))["outcome"], "created");
    // Used again (another person, another Cal.com account): refused, nothing created.
    let r = browser().get(&url).send().await.unwrap();
    assert_eq!(outcome(r).await, (StatusCode::GONE, "link_used".into()));
    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 1);

    // A fresh link opened over and over starts a bounded number of flows.
    let url = app.session("user-2", Some(DONE)).await;
    let mut started = 0;
    for _ in 0..15 {
        let r = browser().get(&url).send().await.unwrap();
        if r.status() == StatusCode::SEE_OTHER {
            started += 1;
        } else {
            assert_eq!(outcome(r).await, (StatusCode::GONE, "link_used".into()));
        }
    }
    assert_eq!(started, 10);
}

#[tokio::test]
async fn two_flows_of_one_link_connect_once() {
    let app = spawn_app().await;
    let url = app.session("user-1", Some(DONE)).await;
    // Two tabs open the link; both reach Cal.com; the first to come back wins.
    let (a, b) = (browser(), browser());
    let cb_a = app.consent(&a, &url, ALICE, "allow").await;
    let cb_b = app.consent(&b, &url, BOB, "allow").await;
    let r = a.get(cb_a).send().await.unwrap();
    assert_eq!(query_of(&location(&r))["outcome"], "created");
    let r = b.get(cb_b).send().await.unwrap();
    assert_eq!(outcome(r).await, (StatusCode::GONE, "link_used".into()));
    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_app_redeems_the_result_once() {
    let app = spawn_app().await;
    let url = app.session("user-1", Some(DONE)).await;
    let r = finish_as(&app, &url, ALICE).await;
    let q = query_of(&location(&r));
    let path = |result: &str| {
        format!(
            "/api/v1/connect-sessions/{}?result={result}",
            q["session_id"]
        )
    };
    let (status, _) = app.get(&path("forged-result")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, result) = app.get(&path(&q["result"])).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["end_user_id"], "user-1");
    assert_eq!(result["outcome"], "created");
    assert_eq!(result["connection_id"], q["connection_id"].as_str());
    let (status, _) = app.get(&path(&q["result"])).await;
    assert_eq!(status, StatusCode::GONE);
    // Without an API key: 401.
    let r = app
        .http
        .get(app.url(&path(&q["result"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn with_reassignment_allowed_the_move_is_visible() {
    let app = spawn_with(Options {
        extra_toml: String::new(),
        env: [(
            "CALCONNECT_ALLOW_REASSIGNMENT".to_owned(),
            "true".to_owned(),
        )]
        .into_iter()
        .collect(),
        ..Options::default()
    })
    .await;
    let first = app.connected("user-1", ALICE).await;
    let url = app.session("user-2", Some(DONE)).await;
    let r = finish_as(&app, &url, ALICE).await;
    let q = query_of(&location(&r));
    assert_eq!(q["outcome"], "updated");
    assert_eq!(q["connection_id"], first);
    let (_, c) = app.get(&format!("/api/v1/connections/{first}")).await;
    assert_eq!(c["end_user_id"], "user-2");
}
