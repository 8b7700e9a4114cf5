//! The connections API shows who holds each Cal.com account (`cal_profile`, from `/v2/me`),
//! keeps showing it while the connection is in trouble, refreshes it now and then without ever
//! touching the connection's status, and lists every connection a page at a time with filters.

use crate::helpers::*;
use crate::webhooks::{break_connection, hook_options, receiver, verify};
use calconnect::Clock as _;
use calconnect::store::{AccountProfile, ConnectionId, ProfileWrite};
use calconnect_broker::profiles::check_due_profiles;
use reqwest::StatusCode;
use serde_json::Value;

fn connection_id(id: &str) -> ConnectionId {
    ConnectionId::from_uuid(uuid::Uuid::parse_str(id).unwrap())
}

fn assert_alice(view: &Value) {
    let p = &view["cal_profile"];
    assert_eq!(p["name"], "Alice Anderson", "{view}");
    assert_eq!(p["email"], "alice@example.com", "{view}");
    assert_eq!(p["username"], "alice", "{view}");
    assert!(p["fetched_at"].is_string(), "{view}");
}

/// The profile is asked for while connecting; it stays when the connection breaks.
#[tokio::test]
async fn connections_show_the_person_and_keep_them_in_trouble() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let (status, view) = app.get(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_alice(&view);
    assert_eq!(view["cal_identity"]["id"], ALICE);

    break_connection(&app, &id).await;
    let (_, view) = app.get(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(view["status"], "needs_reauth");
    assert_alice(&view);
    let (_, list) = app.get("/api/v1/connections?status=needs_reauth").await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 1, "{list}");
    assert_alice(&list["connections"][0]);
}

/// A due profile is asked for again with the stored access token and kept; a failed question
/// (here: Cal.com no longer accepts the token) keeps the old profile and the status, and only
/// moves the next check.
#[tokio::test]
async fn profiles_are_refreshed_now_and_then_and_failures_change_nothing() {
    let app = spawn_app().await;
    let id = app.connected("user-1", ALICE).await;
    let cid = connection_id(&id);
    let store = app.broker.state().store().clone();
    let stale = |name: &str| ProfileWrite {
        profile: Some(AccountProfile {
            name: Some(name.to_owned()),
            email: None,
            username: Some("old".to_owned()),
            fetched_at: time::OffsetDateTime::UNIX_EPOCH,
        }),
        next_check_at: time::OffsetDateTime::UNIX_EPOCH,
    };

    // Not due: nothing is asked.
    let report = check_due_profiles(app.broker.state()).await.unwrap();
    assert_eq!(report.checked, 0);

    store.write_profile(cid, stale("Old Name")).await.unwrap();
    let version = store.get_connection(cid).await.unwrap().version;
    let report = check_due_profiles(app.broker.state()).await.unwrap();
    assert_eq!((report.checked, report.updated), (1, 1));
    let (_, view) = app.get(&format!("/api/v1/connections/{id}")).await;
    assert_alice(&view);
    let after = store.get_connection(cid).await.unwrap();
    assert_eq!(
        after.version, version,
        "a profile write is not a token write"
    );
    assert!(after.profile_check_at > calconnect::SystemClock.now() + time::Duration::hours(23));

    // Cal.com stops accepting the access token: the check fails, nothing else changes.
    store.write_profile(cid, stale("Old Name")).await.unwrap();
    app.sandbox.advance_clock(time::Duration::minutes(31));
    let refreshes = app.sandbox.token_calls("refresh_token", "ok");
    let report = check_due_profiles(app.broker.state()).await.unwrap();
    assert_eq!((report.checked, report.updated), (1, 0));
    let c = store.get_connection(cid).await.unwrap();
    assert_eq!(c.status, calconnect::store::ConnectionStatus::Active);
    assert_eq!(c.profile.unwrap().name.as_deref(), Some("Old Name"));
    assert!(c.profile_check_at > calconnect::SystemClock.now() + time::Duration::minutes(50));
    assert_eq!(
        app.sandbox.token_calls("refresh_token", "ok"),
        refreshes,
        "a profile check never refreshes"
    );
    assert!(
        store.events_for_connection(cid).await.unwrap().len() == 1,
        "no status event"
    );
}

/// Without `end_user_id` the list holds every connection, oldest first, a page at a time, with
/// filters by status and end user.
#[tokio::test]
async fn every_connection_is_listed_page_by_page_with_filters() {
    let app = spawn_app().await;
    let a = app.connected("user-1", ALICE).await;
    let b = app.connected("user-2", BOB).await;
    let c = app.connected("user-1", 3).await;

    let (status, all) = app.get("/api/v1/connections").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let ids = |v: &Value| -> Vec<String> {
        v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&all), [a.as_str(), b.as_str(), c.as_str()]);
    assert!(all["next_cursor"].is_null());

    let (_, first) = app.get("/api/v1/connections?limit=2").await;
    assert_eq!(ids(&first), [a.as_str(), b.as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = app
        .get(&format!("/api/v1/connections?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(ids(&second), [c.as_str()]);
    assert!(second["next_cursor"].is_null());

    let (_, mine) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(ids(&mine), [a.as_str(), c.as_str()]);
    let (_, page) = app
        .get("/api/v1/connections?end_user_id=user-1&limit=1")
        .await;
    assert_eq!(ids(&page), [a.as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page) = app
        .get(&format!(
            "/api/v1/connections?end_user_id=user-1&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(&page), [c.as_str()]);

    let (_, active) = app.get("/api/v1/connections?status=active").await;
    assert_eq!(ids(&active).len(), 3);
    break_connection(&app, &a).await;
    let (_, broken) = app.get("/api/v1/connections?status=needs_reauth").await;
    assert_eq!(ids(&broken), [a.as_str()]);
    let (_, active) = app
        .get("/api/v1/connections?status=active&end_user_id=user-1")
        .await;
    assert_eq!(ids(&active), [c.as_str()]);
    let (_, bob) = app.get("/api/v1/connections?end_user_id=user-2").await;
    assert_eq!(bob["connections"][0]["cal_profile"]["name"], "Bob Brown");
}

/// Webhooks carry the person too, also when the connection breaks.
#[tokio::test]
async fn webhooks_carry_the_person() {
    let (rx, url) = receiver(0).await;
    let app = spawn_with(hook_options(&url, WEBHOOK_SECRET)).await;
    let id = app.connected("user-1", ALICE).await;
    break_connection(&app, &id).await;
    let got = rx.wait_for(2).await;
    let events: Vec<Value> = got.iter().map(|(h, b)| verify(h, b)).collect();
    assert_eq!(events[0]["type"], "connection.created");
    assert_eq!(events[1]["type"], "connection.needs_reauth");
    for e in &events {
        assert_eq!(e["data"]["cal_profile"]["name"], "Alice Anderson", "{e}");
        assert_eq!(e["data"]["cal_profile"]["username"], "alice", "{e}");
        assert_eq!(
            e["data"]["cal_profile"]["email"], "alice@example.com",
            "{e}"
        );
    }
}

/// The OpenAPI document describes the list's new parameters and answer.
#[tokio::test]
async fn the_openapi_document_describes_paging() {
    let app = spawn_app().await;
    let (_, doc) = json_of(
        app.http
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let params: Vec<&str> = doc["paths"]["/api/v1/connections"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["end_user_id", "status", "limit", "cursor"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["ConnectionList"]["properties"]["next_cursor"].is_object());
    assert!(schemas["ConnectionView"]["properties"]["cal_profile"].is_object());
    assert!(schemas["ProfileView"]["properties"]["email"].is_object());
}
