//! The operator dashboard: who holds each Cal.com account, labelled filters, counts that follow
//! the filters, pages, and a page per connection with its events, its webhook deliveries, and
//! refresh and disconnect buttons guarded by the operator's CSRF token.

use crate::helpers::*;
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;

struct Operator<'a> {
    app: &'a Running,
    b: reqwest::Client,
    pw: String,
}

impl Operator<'_> {
    async fn get(&self, path: &str) -> Page {
        page(
            self.b
                .get(self.app.url(path))
                .basic_auth("admin", Some(&self.pw))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str, csrf: &str) -> Page {
        page(
            self.b
                .post(self.app.url(path))
                .basic_auth("admin", Some(&self.pw))
                .form(&[("csrf", csrf)])
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

fn operator(app: &Running) -> Operator<'_> {
    Operator {
        app,
        b: browser_no_redirects(),
        pw: app.demo.admin_password().expose_secret().to_owned(),
    }
}

fn rows(html: &str) -> usize {
    html.matches("data-testid=\"admin-connection\"").count()
}

/// The href of the link marked `data-testid="{test_id}"`, unescaped.
fn link(html: &str, test_id: &str) -> Option<String> {
    let at = html.find(&format!("data-testid=\"{test_id}\""))?;
    let start = html[..at].rfind("href=\"")? + 6;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

#[tokio::test]
async fn the_dashboard_names_people_counts_under_filters_and_pages() {
    let app = start().await;
    for (user, cal) in [("ann", 1), ("ben", 2), ("cat", 3)] {
        let b = browser();
        sign_in(&app, &b, user).await;
        connect(&app, &b, cal, "allow").await;
    }
    let op = operator(&app);
    let all = op.get("/admin").await;
    assert_eq!(all.status, StatusCode::OK);
    let html = &all.html;
    // Every control has a label of its own.
    for id in ["filter-status", "filter-user"] {
        assert!(html.contains(&format!("<label for=\"{id}\">")), "{html}");
        assert!(html.contains(&format!("id=\"{id}\"")), "{html}");
    }
    assert_eq!(rows(html), 3);
    assert!(html.contains("<b>Alice Anderson</b>"), "{html}");
    assert!(html.contains("@bob"), "{html}");
    assert!(html.contains("dev@example.com"), "{html}");
    assert!(html.contains("Connections: 3 in total"), "{html}");

    let ann = op.get("/admin?user=ann").await;
    assert_eq!(rows(&ann.html), 1);
    assert!(
        ann.html
            .contains("Connections: 1 match the filters (3 in total)"),
        "{}",
        ann.html
    );
    let broken = op.get("/admin?status=needs_reauth").await;
    assert_eq!(rows(&broken.html), 0);
    assert!(
        broken
            .html
            .contains("Connections: 0 match the filters (3 in total)")
    );
    assert!(broken.html.contains("data-testid=\"admin-empty\""));
    let bad = op.get("/admin?status=bogus").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Two per page: two, then one, then back to the first.
    let first = op.get("/admin?status=active&per_page=2").await;
    assert_eq!(rows(&first.html), 2);
    assert!(
        first
            .html
            .contains("Connections: 3 match the filters (3 in total)")
    );
    let next = link(&first.html, "admin-next-page").expect("a next page");
    assert!(
        next.contains("status=active") && next.contains("per_page=2"),
        "{next}"
    );
    let second = op.get(&next).await;
    assert_eq!(rows(&second.html), 1);
    assert!(link(&second.html, "admin-next-page").is_none());
    let back = link(&second.html, "admin-first-page").expect("a first page link");
    assert_eq!(rows(&op.get(&back).await.html), 2);
    let mut seen: Vec<String> = Vec::new();
    for p in [&first.html, &second.html] {
        let table = &p[..p.find("Recent connection events").unwrap()];
        for part in table.split("href=\"/admin/connections/").skip(1) {
            seen.push(part[..36].to_owned());
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "each connection on one page: {seen:?}");
    app.demo.shutdown().await;
}

#[tokio::test]
async fn a_connection_page_shows_events_and_deliveries_and_acts() {
    let app = start().await;
    let b = browser();
    sign_in(&app, &b, "dot").await;
    let landed = connect(&app, &b, 1, "allow").await;
    let id = landed.url.rsplit('/').next().unwrap().to_owned();
    let op = operator(&app);
    let path = format!("/admin/connections/{id}");

    // Without the password: nothing to see.
    let anon = browser_no_redirects();
    let r = anon.get(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let detail = op.get(&path).await;
    assert_eq!(detail.status, StatusCode::OK);
    let html = &detail.html;
    assert!(html.contains("data-testid=\"admin-person\""), "{html}");
    assert!(html.contains("<b>Alice Anderson</b>"), "{html}");
    assert!(
        html.contains("data-testid=\"admin-status\">active<"),
        "{html}"
    );
    assert!(html.contains("data-testid=\"admin-event\""), "{html}");
    assert!(html.contains("<td>created</td>"), "{html}");
    assert!(html.contains("Webhook deliveries"), "{html}");
    let token = csrf(html);

    // A forged form (no token, or a user's token) does nothing.
    let refreshes = app.demo.sandbox().token_calls("refresh_token", "ok");
    let forged = op.post(&format!("{path}/refresh"), "").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let users = csrf(&landed.html);
    let forged = op.post(&format!("{path}/refresh"), &users).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let r = anon
        .post(app.url(&format!("{path}/refresh")))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.demo.sandbox().token_calls("refresh_token", "ok"),
        refreshes
    );

    let refreshed = op.post(&format!("{path}/refresh"), &token).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    assert!(
        refreshed.html.contains("data-outcome=\"refreshed\""),
        "{}",
        refreshed.html
    );
    assert_eq!(
        app.demo.sandbox().token_calls("refresh_token", "ok"),
        refreshes + 1
    );

    // Cal.com forgets the grant: the refresh fails, and the page says what the broker said.
    app.demo.sandbox().revoke_grant(
        calconnect_sandbox::CONFIDENTIAL_CLIENT_ID,
        calconnect_sandbox::Owner::User(1),
    );
    let failed = op.post(&format!("{path}/refresh"), &token).await;
    assert!(
        failed.html.contains("data-outcome=\"refresh-failed\""),
        "{}",
        failed.html
    );
    assert!(
        failed.html.contains("connection_needs_reauth"),
        "{}",
        failed.html
    );
    assert!(
        failed
            .html
            .contains("data-testid=\"admin-status\">needs_reauth<")
    );
    assert!(failed.html.contains("<b>Alice Anderson</b>"), "still named");

    let gone = op.post(&format!("{path}/disconnect"), &token).await;
    assert_eq!(gone.status, StatusCode::OK);
    assert!(
        gone.html.contains("data-outcome=\"disconnected\""),
        "{}",
        gone.html
    );
    assert!(gone.html.contains("data-testid=\"admin-deleted\""));
    assert!(gone.html.contains("<td>deleted</td>"), "{}", gone.html);
    let again = op.post(&format!("{path}/disconnect"), &token).await;
    assert!(
        again.html.contains("data-outcome=\"disconnect-failed\""),
        "{}",
        again.html
    );

    let unknown = op
        .get("/admin/connections/5f0c6a3e-8d1e-4c4e-9a55-0d6f0e4b1a11")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    app.demo.shutdown().await;
}
