//! After a whole flow through the broker (connect link, consent, callback, code exchange, a
//! token handed out, a refresh that rotates the pair), the database holds no token, code, state,
//! client secret or API key in clear: not in the SQLite files (WAL included), not in any
//! PostgreSQL column. Issue 4's at-rest check at the level of the real flow; the store-level
//! version (which also covers the PKCE verifier) is in each backend's tests.

use crate::helpers::*;
use calconnect::{Clock, MockClock};
use calconnect_testkit::postgres::TestDatabase;
use reqwest::StatusCode;
use std::sync::Arc;

/// Runs the flow and returns every secret that passed through it.
async fn full_flow(app: &TestApp, clock: &MockClock) -> Vec<String> {
    let connect_url = app.session("user-1", None).await;
    let b = browser();
    let callback = app.consent(&b, &connect_url, ALICE, "allow").await;
    let q = query_of(&callback);
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/connections/{id}/access-token");
    let (status, first) = app.post(&path, serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // Inside the keeper's margin: the next request refreshes (and Cal.com rotates the pair).
    clock.advance(time::Duration::minutes(29));
    let (status, second) = app.post(&path, serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    // (The new access token may equal the old one byte for byte: Cal.com's access-token claims
    // have no `jti`, so two minted in the same second are identical. The counter proves the
    // refresh.)
    assert_eq!(app.sandbox.token_calls("refresh_token", "ok"), 1);

    let mut secrets = vec![
        q["code"].clone(),
        q["state"].clone(),
        CLIENT_SECRET_TEXT.to_owned(),
        app.api_key.clone(),
        connect_url.rsplit('/').next().unwrap().to_owned(),
    ];
    for issued in app.sandbox.issued_tokens() {
        secrets.push(issued.access_token);
        secrets.push(issued.refresh_token);
    }
    assert_eq!(
        secrets.len(),
        5 + 4,
        "one exchange and one refresh were issued"
    );
    secrets
}

fn assert_absent(haystack: &[u8], secrets: &[String], place: &str) {
    for s in secrets {
        assert!(
            !haystack.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret ({} bytes, starting {:?}) is in clear in {place}",
            s.len(),
            &s[..4.min(s.len())]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_hold_no_secret_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(MockClock::new(calconnect::SystemClock.now()));
    let app = spawn_with(Options {
        clock: Some(clock.clone() as Arc<dyn Clock>),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("broker.db").display()
        )),
        ..Options::default()
    })
    .await;
    let secrets = full_flow(&app, &clock).await;
    let scan = |when: &str| {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            // The WAL and shared-memory files go away when the last connection closes.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            assert_absent(&bytes, &secrets, &format!("{} ({when})", path.display()));
            all.extend(bytes);
        }
        // The scan can find things: the client id and the end user are stored in clear.
        assert!(all.windows(15).any(|w| w == b"calconnect-demo"), "{when}");
        assert!(all.windows(6).any(|w| w == b"user-1"), "{when}");
    };
    scan("running, latest pages in the WAL");
    let _kept = app.shutdown().await;
    scan("after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_columns_hold_no_secret_in_clear() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let clock = Arc::new(MockClock::new(calconnect::SystemClock.now()));
    let app = spawn_with(Options {
        clock: Some(clock.clone() as Arc<dyn Clock>),
        database_url: Some(db.url().to_owned()),
        ..Options::default()
    })
    .await;
    let secrets = full_flow(&app, &clock).await;
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let mut everything = Vec::new();
    let mut cells = 0;
    for (place, bytes) in calconnect_testkit::postgres::all_text_cells(&pool).await {
        assert_absent(&bytes, &secrets, &place);
        everything.extend(bytes);
        cells += 1;
    }
    assert!(cells > 10, "the scan read only {cells} cells");
    assert!(everything.windows(15).any(|w| w == b"calconnect-demo"));
    assert!(everything.windows(6).any(|w| w == b"user-1"));
    pool.close().await;
    let _kept = app.shutdown().await;
}
