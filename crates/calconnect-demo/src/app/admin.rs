//! `GET /admin`: the operator's dashboard — every connection with its status (filters: status,
//! end user), the recent connection events, and the broker's webhook deliveries. Protected by
//! HTTP Basic `admin:<password>` (the password is generated into the data folder and printed by
//! `calconnect demo`), compared in constant time ([`Operator`]).
//!
//! It reads the connection store directly (a second handle on the broker's SQLite file) because
//! the broker's app-facing API is per end user; the delivery log comes from that API.

use super::AppCtx;
use super::broker::{CallError, Delivery};
use super::html::{layout, page};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use calconnect::store::{CalOwner, Connection, ConnectionEvent};
use maud::{Markup, html};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

/// The operator (an extractor): HTTP Basic `admin:<password>`, compared in constant time. Without
/// it, a 401 that asks the browser for the password.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator;

impl FromRequestParts<AppCtx> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppCtx) -> Result<Self, Self::Rejection> {
        let decoded = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|v| STANDARD.decode(v.trim()).ok());
        let expected = format!("admin:{}", ctx.admin_password.expose_secret());
        if decoded.is_some_and(|d| bool::from(expected.as_bytes().ct_eq(&d))) {
            return Ok(Self);
        }
        let mut r = (
            StatusCode::UNAUTHORIZED,
            "The operator dashboard needs the admin password printed by `calconnect demo` (user: admin).",
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"calconnect demo operator\", charset=\"UTF-8\""),
        );
        Err(r)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Filters {
    status: Option<String>,
    user: Option<String>,
}

fn cal_id(owner: CalOwner) -> i64 {
    match owner {
        CalOwner::User(id) | CalOwner::Team(id) => id,
    }
}

fn time_text(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Everything the dashboard shows.
#[derive(Debug)]
struct Dashboard<'a> {
    status_filter: Option<&'a str>,
    user_filter: Option<&'a str>,
    /// Every connection (up to 1000), before filtering.
    all: &'a [Connection],
    /// The latest events, newest first.
    events: &'a [ConnectionEvent],
    deliveries: Result<Vec<Delivery>, CallError>,
}

const STATUSES: [&str; 3] = ["active", "needs_reauth", "refresh_lost"];

fn dashboard_page(d: &Dashboard<'_>) -> Markup {
    let shown = d
        .all
        .iter()
        .filter(|c| d.status_filter.is_none_or(|s| c.status.as_str() == s))
        .filter(|c| d.user_filter.is_none_or(|u| c.end_user.as_str() == u));
    let body = html! {
        div.card {
            h1 { "Operator dashboard" }
            form method="get" action="/admin" {
                label {
                    "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for s in STATUSES {
                            option value=(s) selected[d.status_filter == Some(s)] { (s) }
                        }
                    }
                }
                " "
                label { "End user " input name="user" value=(d.user_filter.unwrap_or("")); }
                " "
                button.btn.secondary type="submit" { "Filter" }
            }
        }
        div.card {
            h2 { "Connections (" (d.all.len()) " in total)" }
            table {
                tr { th { "Id" } th { "End user" } th { "Cal.com" } th { "Status" } th { "Reason" } th { "Last refresh" } }
                @for c in shown {
                    tr data-testid="admin-connection" {
                        td { code { (c.id.to_string()) } }
                        td { (c.end_user.as_str()) }
                        td { (c.identity.owner.kind()) " " (cal_id(c.identity.owner)) }
                        td { span.status.(c.status.as_str()) { (c.status.as_str()) } }
                        td.muted { (c.status_reason) }
                        td { (time_text(c.last_refreshed_at)) }
                    }
                }
            }
        }
        div.card {
            h2 { "Recent connection events" }
            table {
                tr { th { "When" } th { "Event" } th { "Connection" } th { "Status" } th { "Reason" } }
                @for e in d.events {
                    tr {
                        td { (time_text(e.at)) }
                        td { (e.kind.as_str()) }
                        td { code { (e.connection_id.to_string()) } }
                        td {
                            (e.from_status.map_or("–", |s| s.as_str())) " → "
                            (e.to_status.map_or("–", |s| s.as_str()))
                        }
                        td.muted { (e.reason) }
                    }
                }
            }
        }
        div.card {
            h2 { "Webhook deliveries" }
            table {
                tr { th { "Event" } th { "Status" } th { "Attempts" } th { "Last HTTP status" } th { "Endpoint" } }
                @match &d.deliveries {
                    Ok(list) => {
                        @for del in list {
                            tr {
                                td { (del.event_type) }
                                td { (del.status) }
                                td { (del.attempts) }
                                td { @if let Some(code) = del.last_status_code { (code) } }
                                td.muted { (del.endpoint) }
                            }
                        }
                    }
                    Err(e) => { tr { td colspan="5" { "The broker answered `" (e.code) "`." } } }
                }
            }
        }
    };
    layout("Operator dashboard", None, body)
}

/// `GET /admin`.
pub(crate) async fn dashboard(
    State(ctx): State<AppCtx>,
    _: Operator,
    Query(f): Query<Filters>,
) -> Response {
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
    let mut events = ctx.store.events_after(0, 10_000).await.unwrap_or_default();
    events.reverse();
    events.truncate(30);
    let dashboard = Dashboard {
        status_filter: f.status.as_deref().filter(|s| !s.is_empty()),
        user_filter: f.user.as_deref().filter(|s| !s.is_empty()),
        all: &all,
        events: &events,
        deliveries: ctx.broker.deliveries().await,
    };
    page(StatusCode::OK, dashboard_page(&dashboard))
}
