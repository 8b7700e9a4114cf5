//! `GET /admin`: the operator's dashboard — the connections a page at a time, with who holds each
//! Cal.com account and its status (filters: status, end user; counts that follow the filters),
//! the recent connection events, and the broker's webhook deliveries; and a page per connection
//! ([`detail`]) with its events, its deliveries, and refresh and disconnect buttons. Protected by
//! HTTP Basic `admin:<password>` (the password is generated into the data folder and printed by
//! `calconnect demo`), compared in constant time ([`Operator`]); its forms carry the operator's
//! CSRF token ([`OperatorForm`]).
//!
//! It reads the connection store directly (a second handle on the broker's SQLite file), for the
//! operator's view of every connection; actions and the delivery log go through the broker's
//! API, as an app's would.

pub(crate) mod detail;

use super::AppCtx;
use super::broker::{CallError, Delivery};
use super::html::{layout, page, problem};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use calconnect::store::{
    AccountProfile, CalOwner, Connection, ConnectionEvent, ConnectionQuery, ConnectionStatus,
    EndUserId, ListCursor, StatusCounts,
};
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

/// The operator's form fields: only the CSRF token.
#[derive(Debug, Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A dashboard form (an extractor): the operator's password ([`Operator`]) first, then the
/// operator's CSRF token, so that a page elsewhere cannot make the browser, which sends the
/// Basic credentials by itself, act for the operator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OperatorForm;

impl axum::extract::FromRequest<AppCtx> for OperatorForm {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, ctx: &AppCtx) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        Operator::from_request_parts(&mut parts, ctx).await?;
        let req = axum::extract::Request::from_parts(parts, body);
        let token = match axum::Form::<CsrfField>::from_request(req, ctx).await {
            Ok(axum::Form(f)) => f.csrf,
            Err(_) => String::new(),
        };
        if ctx.sessions.operator_csrf_ok(&token) {
            Ok(Self)
        } else {
            Err(problem(
                StatusCode::FORBIDDEN,
                "csrf",
                "This form has expired",
                "The form was not sent by the dashboard (or the demo restarted since it was shown), so nothing was done.",
                "Go back, reload the dashboard and try again.",
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Filters {
    status: Option<String>,
    user: Option<String>,
    /// Where the page starts: the `after` of the previous page's "Next page" link.
    after: Option<String>,
    /// Connections per page (1–100, default 25).
    per_page: Option<u32>,
}

/// Connections per dashboard page, unless `per_page` says otherwise.
const PAGE_SIZE: u32 = 25;
/// The largest `per_page`.
const MAX_PAGE_SIZE: u32 = 100;

fn cal_id(owner: CalOwner) -> i64 {
    match owner {
        CalOwner::User(id) | CalOwner::Team(id) => id,
    }
}

/// A time as the operator reads it: UTC, to the second (`2026-12-01 18:04:39 UTC`).
fn time_text(t: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A page cursor in a link: `<creation time in µs>.<id>`.
fn cursor_text(c: &Connection) -> String {
    format!("{}.{}", c.created_at.unix_timestamp_nanos() / 1_000, c.id)
}

fn parse_cursor(text: &str) -> Option<ListCursor> {
    let (micros, id) = text.split_once('.')?;
    let micros: i128 = micros.parse().ok()?;
    Some(ListCursor {
        created_at: time::OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1_000)?)
            .ok()?,
        id: calconnect::store::ConnectionId::from_uuid(uuid::Uuid::parse_str(id).ok()?),
    })
}

/// Who holds a Cal.com account, for a table cell: name, `@username`, e-mail.
pub(crate) fn person(profile: Option<&AccountProfile>) -> Markup {
    html! {
        @match profile {
            Some(p) => {
                @if let Some(name) = &p.name { b { (name) } " " }
                @if let Some(username) = &p.username { span { "@" (username) } " " }
                @if let Some(email) = &p.email { span.muted { (email) } }
            }
            None => { span.muted { "not known yet" } }
        }
    }
}

/// The dashboard's link for its filters and page size, starting after `after`.
fn page_link(d: &Dashboard<'_>, after: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(s) = d.status_filter {
        q.append_pair("status", s.as_str());
    }
    if let Some(u) = d.user_filter {
        q.append_pair("user", u.as_str());
    }
    if d.per_page != PAGE_SIZE {
        q.append_pair("per_page", &d.per_page.to_string());
    }
    if let Some(a) = after {
        q.append_pair("after", a);
    }
    let q = q.finish();
    if q.is_empty() {
        "/admin".to_owned()
    } else {
        format!("/admin?{q}")
    }
}

/// Everything the dashboard shows.
#[derive(Debug)]
struct Dashboard<'a> {
    status_filter: Option<ConnectionStatus>,
    user_filter: Option<&'a EndUserId>,
    /// Whether this is a later page (not the first).
    paged: bool,
    /// Connections per page.
    per_page: u32,
    /// This page of the connections that match the filters.
    page: &'a [Connection],
    /// Where the next page starts, if there is one.
    next: Option<String>,
    /// Connections per status, under the end-user filter (all of them without it).
    counts: StatusCounts,
    /// All connections.
    total: u64,
    /// The latest events, newest first.
    events: &'a [ConnectionEvent],
    deliveries: Result<Vec<Delivery>, CallError>,
}

impl Dashboard<'_> {
    /// Connections matching both filters.
    fn matching(&self) -> u64 {
        self.status_filter
            .map_or(self.counts.total(), |s| self.counts.get(s))
    }
}

fn dashboard_page(d: &Dashboard<'_>) -> Markup {
    let body = html! {
        div.card {
            h1 { "Operator dashboard" }
            form method="get" action="/admin" {
                label for="filter-status" { "Status" }
                " "
                select id="filter-status" name="status" {
                    option value="" { "any (" (d.counts.total()) ")" }
                    @for (s, n) in d.counts.iter() {
                        option value=(s.as_str()) selected[d.status_filter == Some(s)] {
                            (s.as_str()) " (" (n) ")"
                        }
                    }
                }
                " "
                label for="filter-user" { "End user" }
                " "
                input id="filter-user" name="user" value=(d.user_filter.map_or("", EndUserId::as_str));
                @if d.per_page != PAGE_SIZE {
                    input type="hidden" name="per_page" value=(d.per_page);
                }
                " "
                button.btn.secondary type="submit" { "Filter" }
                @if d.status_filter.is_some() || d.user_filter.is_some() {
                    " " a href="/admin" { "Clear the filters" }
                }
            }
        }
        div.card {
            h2 data-testid="admin-count" {
                @if d.status_filter.is_some() || d.user_filter.is_some() {
                    "Connections: " (d.matching()) " match the filters (" (d.total) " in total)"
                } @else {
                    "Connections: " (d.total) " in total"
                }
            }
            table {
                tr { th { "Cal.com account" } th { "End user" } th { "Status" } th { "Reason" } th { "Last refresh" } th { "Details" } }
                @for c in d.page {
                    tr data-testid="admin-connection" {
                        td {
                            (person(c.profile.as_ref()))
                            br;
                            span.muted { "Cal.com " (c.identity.owner.kind()) " " (cal_id(c.identity.owner)) }
                        }
                        td { (c.end_user.as_str()) }
                        td { span.status.(c.status.as_str()) { (c.status.as_str()) } }
                        td.muted { (c.status_reason) }
                        td { (time_text(c.last_refreshed_at)) }
                        td { a href={ "/admin/connections/" (c.id.to_string()) } { "Open " code { (c.id.to_string()) } } }
                    }
                }
            }
            @if d.page.is_empty() {
                p.muted data-testid="admin-empty" { "No connection matches." }
            }
            p {
                @if d.paged {
                    a href=(page_link(d, None)) data-testid="admin-first-page" { "First page" }
                    " "
                }
                @if let Some(next) = &d.next {
                    a href=(page_link(d, Some(next))) rel="next" data-testid="admin-next-page" { "Next page" }
                }
            }
        }
        div.card {
            h2 { "Recent connection events (all connections)" }
            table {
                tr { th { "When" } th { "Event" } th { "Connection" } th { "Status" } th { "Reason" } }
                @for e in d.events {
                    tr {
                        td { (time_text(e.at)) }
                        td { (e.kind.as_str()) }
                        td { a href={ "/admin/connections/" (e.connection_id.to_string()) } { code { (e.connection_id.to_string()) } } }
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
            h2 { "Webhook deliveries (latest)" }
            (deliveries_table(&d.deliveries))
        }
    };
    layout("Operator dashboard", None, body)
}

/// The webhook deliveries, or what the broker answered instead.
pub(crate) fn deliveries_table(deliveries: &Result<Vec<Delivery>, CallError>) -> Markup {
    html! {
        table {
            tr { th { "Event" } th { "Status" } th { "Attempts" } th { "Last HTTP status" } th { "Endpoint" } }
            @match deliveries {
                Ok(list) => {
                    @for del in list {
                        tr data-testid="admin-delivery" {
                            td { (del.event_type) }
                            td { (del.status) }
                            td { (del.attempts) }
                            td { @if let Some(code) = del.last_status_code { (code) } }
                            td.muted { (del.endpoint) }
                        }
                    }
                    @if list.is_empty() {
                        tr { td colspan="5" .muted { "None." } }
                    }
                }
                Err(e) => { tr { td colspan="5" { "The broker answered `" (e.code) "`." } } }
            }
        }
    }
}

fn bad_filter(what: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "bad_filter",
        "That filter cannot be used",
        what,
        "Pick the filters again on the dashboard.",
    )
}

/// `GET /admin`.
pub(crate) async fn dashboard(
    State(ctx): State<AppCtx>,
    _: Operator,
    Query(f): Query<Filters>,
) -> Response {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let status = match nonempty(&f.status).map(|s| ConnectionStatus::parse(&s)) {
        None => None,
        Some(Some(s)) => Some(s),
        Some(None) => {
            return bad_filter("The status is not one of active, needs_reauth, refresh_lost.");
        }
    };
    let user = match nonempty(&f.user).map(|u| EndUserId::new(&u)) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(e)) => return bad_filter(&format!("The end user: {e}.")),
    };
    let after = match nonempty(&f.after).map(|a| parse_cursor(&a)) {
        None => None,
        Some(Some(a)) => Some(a),
        Some(None) => return bad_filter("The page link is damaged."),
    };
    let per_page = f.per_page.unwrap_or(PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&per_page) {
        return bad_filter("The page size is not between 1 and 100.");
    }
    let query = ConnectionQuery {
        status,
        end_user: user.clone(),
        after,
        limit: per_page + 1,
    };
    let all_counts = ctx.store.count_by_status().await;
    let counts = match (&user, &all_counts) {
        (Some(u), _) => ctx.store.count_by_status_for(u).await,
        (None, Ok(all)) => Ok(*all),
        (None, Err(_)) => Ok(StatusCounts::default()),
    };
    let (mut list, all_counts, counts) = match (
        ctx.store.query_connections(&query).await,
        all_counts,
        counts,
    ) {
        (Ok(list), Ok(all), Ok(counts)) => (list, all, counts),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            tracing::warn!(error = %e, "dashboard: reading connections failed");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                "The connections cannot be read",
                "The store did not answer.",
                "Check the terminal running `calconnect demo`, then reload this page.",
            );
        }
    };
    let next = if list.len() > per_page as usize {
        list.truncate(per_page as usize);
        list.last().map(cursor_text)
    } else {
        None
    };
    let mut events = ctx.store.events_after(0, 10_000).await.unwrap_or_default();
    events.reverse();
    events.truncate(30);
    let dashboard = Dashboard {
        status_filter: status,
        user_filter: user.as_ref(),
        paged: after.is_some(),
        per_page,
        page: &list,
        next,
        counts,
        total: all_counts.total(),
        events: &events,
        deliveries: ctx.broker.deliveries(None).await,
    };
    page(StatusCode::OK, dashboard_page(&dashboard))
}
