//! `GET /admin`: the operator's dashboard — every connection with its status (filters: status,
//! end user), the recent connection events, and the broker's webhook deliveries. Protected by
//! HTTP Basic `admin:<password>` (the password is generated into the data folder and printed by
//! `calconnect demo`), compared in constant time.
//!
//! It reads the connection store directly (a second handle on the broker's SQLite file) because
//! the broker's app-facing API is per end user; the delivery log comes from that API.

use super::AppCtx;
use super::html::{esc, layout, page};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use calconnect::store::Connection;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

fn authorized(ctx: &AppCtx, headers: &HeaderMap) -> bool {
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("admin:{}", ctx.admin_password.expose_secret());
    bool::from(expected.as_bytes().ct_eq(&decoded))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Filters {
    status: Option<String>,
    user: Option<String>,
}

fn time_text(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `GET /admin`.
pub(crate) async fn dashboard(
    State(ctx): State<AppCtx>,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    if !authorized(&ctx, &headers) {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            "The operator dashboard needs the admin password printed by `calconnect demo` (user: admin).",
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"calconnect demo operator\", charset=\"UTF-8\""),
        );
        return r;
    }
    let mut all: Vec<Connection> = Vec::new();
    let mut after = None;
    while all.len() < 1000 {
        match ctx.store.list_connections(after, 200).await {
            Ok(page) if page.is_empty() => break,
            Ok(page) => {
                after = page.last().map(|c| c.id);
                all.extend(page);
            }
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: listing connections failed");
                break;
            }
        }
    }
    let status_filter = f.status.as_deref().filter(|s| !s.is_empty());
    let user_filter = f.user.as_deref().filter(|s| !s.is_empty());
    let rows: String = all
        .iter()
        .filter(|c| status_filter.is_none_or(|s| c.status.as_str() == s))
        .filter(|c| user_filter.is_none_or(|u| c.end_user.as_str() == u))
        .map(|c| {
            format!(
                "<tr data-testid=\"admin-connection\"><td><code>{}</code></td><td>{}</td><td>{} {}</td>\
                 <td><span class=\"status {st}\">{st}</span></td><td class=\"muted\">{}</td><td>{}</td></tr>",
                esc(&c.id.to_string()),
                esc(c.end_user.as_str()),
                esc(c.identity.owner.kind()),
                match c.identity.owner {
                    calconnect::store::CalOwner::User(id) | calconnect::store::CalOwner::Team(id) => id,
                },
                esc(&c.status_reason),
                esc(&time_text(c.last_refreshed_at)),
                st = esc(c.status.as_str()),
            )
        })
        .collect();
    let events = ctx.store.events_after(0, 10_000).await.unwrap_or_default();
    let event_rows: String = events
        .iter()
        .rev()
        .take(30)
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{} → {}</td><td class=\"muted\">{}</td></tr>",
                esc(&time_text(e.at)),
                esc(e.kind.as_str()),
                esc(&e.connection_id.to_string()),
                esc(e.from_status.map_or("–", |s| s.as_str())),
                esc(e.to_status.map_or("–", |s| s.as_str())),
                esc(&e.reason),
            )
        })
        .collect();
    let deliveries: String = match ctx.broker.deliveries().await {
        Ok(list) => list
            .iter()
            .map(|d| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
                    esc(d["event_type"].as_str().unwrap_or("")),
                    esc(d["status"].as_str().unwrap_or("")),
                    d["attempts"].as_i64().unwrap_or(0),
                    d["last_status_code"].as_i64().map(|c| c.to_string()).unwrap_or_default(),
                    esc(d["endpoint"].as_str().unwrap_or("")),
                )
            })
            .collect(),
        Err(e) => format!("<tr><td colspan=\"5\">The broker answered `{}`.</td></tr>", esc(&e.code)),
    };
    let option = |v: &str| {
        let sel = if status_filter == Some(v) {
            " selected"
        } else {
            ""
        };
        format!("<option value=\"{v}\"{sel}>{v}</option>")
    };
    let body = format!(
        "<div class=\"card\"><h1>Operator dashboard</h1>\
         <form method=\"get\" action=\"/admin\">Status <select name=\"status\"><option value=\"\">any</option>{}{}{}</select> \
         End user <input name=\"user\" value=\"{}\"> <button class=\"btn secondary\" type=\"submit\">Filter</button></form></div>\
         <div class=\"card\"><h2>Connections ({} in total)</h2><table><tr><th>Id</th><th>End user</th><th>Cal.com</th><th>Status</th><th>Reason</th><th>Last refresh</th></tr>{rows}</table></div>\
         <div class=\"card\"><h2>Recent connection events</h2><table><tr><th>When</th><th>Event</th><th>Connection</th><th>Status</th><th>Reason</th></tr>{event_rows}</table></div>\
         <div class=\"card\"><h2>Webhook deliveries</h2><table><tr><th>Event</th><th>Status</th><th>Attempts</th><th>Last HTTP status</th><th>Endpoint</th></tr>{deliveries}</table></div>",
        option("active"),
        option("needs_reauth"),
        option("refresh_lost"),
        esc(user_filter.unwrap_or("")),
        all.len(),
    );
    page(
        StatusCode::OK,
        layout("Operator dashboard", None, None, &body),
    )
}
