//! A `connection.needs_reauth` webhook carries a working reconnect link, and the link's token is
//! nowhere in the database in clear: not in the SQLite files (WAL included), not in any
//! PostgreSQL column. The outbox stores what the link is for and the worker mints the link at
//! delivery (issue 14, "Webhooks and data at rest").

use crate::helpers::*;
use crate::webhooks::{break_connection, hook_options, receiver, settled_log, verify};
use calconnect_testkit::postgres::TestDatabase;
use reqwest::StatusCode;

/// Connects, breaks the connection, and returns the reconnect link its webhook carried, once
/// the delivery is recorded.
async fn delivered_reconnect_link(app: &TestApp, rx: &crate::webhooks::Receiver) -> String {
    let id = app.connected("user-1", ALICE).await;
    break_connection(app, &id).await;
    let got = rx.wait_for(2).await;
    let e = verify(&got[1].0, &got[1].1);
    assert_eq!(e["type"], "connection.needs_reauth");
    let link = e["data"]["reconnect_url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&app.url("/connect/")), "{link}");
    let log = settled_log(app, &id).await;
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:?}");
    link
}

/// The link works: it reconnects the same connection.
async fn assert_link_works(app: &TestApp, link: &str) {
    let b = browser();
    let callback = app.consent(&b, link, ALICE, "allow").await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(outcome(r).await.1, "updated");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_hold_no_reconnect_link() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, url) = receiver(0).await;
    let mut options = hook_options(&url, WEBHOOK_SECRET);
    options.database_url = Some(format!(
        "sqlite://{}",
        dir.path().join("broker.db").display()
    ));
    let app = spawn_with(options).await;
    let link = delivered_reconnect_link(&app, &rx).await;
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert!(token.len() >= 40, "{token}");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        assert!(
            !contains(&bytes, token.as_bytes()),
            "the reconnect link's token is in clear in {}",
            path.display()
        );
        all.extend(bytes);
    }
    // The scan can see the outbox: the stored body says what the link is for.
    assert!(contains(&all, b"connection.needs_reauth"));
    assert!(contains(&all, b"\"_reconnect\""));
    assert_link_works(&app, &link).await;
    let _kept = app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_columns_hold_no_reconnect_link() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (rx, url) = receiver(0).await;
    let mut options = hook_options(&url, WEBHOOK_SECRET);
    options.database_url = Some(db.url().to_owned());
    let app = spawn_with(options).await;
    let link = delivered_reconnect_link(&app, &rx).await;
    let token = link.rsplit('/').next().unwrap().to_owned();
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let mut outbox_cells = 0;
    for (place, bytes) in calconnect_testkit::postgres::all_text_cells(&pool).await {
        assert!(
            !contains(&bytes, token.as_bytes()),
            "the reconnect link's token is in clear in {place}"
        );
        if contains(&bytes, b"\"_reconnect\"") {
            outbox_cells += 1;
        }
    }
    assert_eq!(
        outbox_cells, 1,
        "the scan read the outbox's needs_reauth row"
    );
    pool.close().await;
    assert_link_works(&app, &link).await;
    let _kept = app.shutdown().await;
}
