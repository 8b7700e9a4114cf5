//! `GET /admin/connections/{id}`: one connection for the operator — who holds the Cal.com
//! account, its status and expiries, its events and its webhook deliveries — with **Refresh
//! now** and **Disconnect** (`POST …/refresh`, `POST …/disconnect`, through the broker's API).
//! An action answers with the page as it is afterwards and a notice saying what the broker
//! answered. A deleted connection's page still shows its events and deliveries.

use super::{Operator, OperatorForm, deliveries_table, person, time_text};
use crate::app::AppCtx;
use crate::app::broker::{CallError, Delivery};
use crate::app::html::{layout, page, problem};
use crate::app::session::CsrfToken;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use calconnect::store::{Connection, ConnectionEvent, ConnectionId, StoreError};
use maud::{Markup, html};

/// What an action did, as the broker answered.
#[derive(Debug, Clone)]
enum Outcome {
    Refreshed { expires_at: String },
    RefreshFailed(CallError),
    Disconnected,
    DisconnectFailed(CallError),
}

impl Outcome {
    fn key(&self) -> &'static str {
        match self {
            Self::Refreshed { .. } => "refreshed",
            Self::RefreshFailed(_) => "refresh-failed",
            Self::Disconnected => "disconnected",
            Self::DisconnectFailed(_) => "disconnect-failed",
        }
    }

    fn good(&self) -> bool {
        matches!(self, Self::Refreshed { .. } | Self::Disconnected)
    }
}

fn outcome_notice(o: &Outcome) -> Markup {
    let class = if o.good() { "notice" } else { "notice bad" };
    html! {
        div class=(class) role="status" data-outcome=(o.key()) {
            @match o {
                Outcome::Refreshed { expires_at } => {
                    b { "Refreshed." } " Cal.com issued new tokens; the access token now expires at " (expires_at) "."
                }
                Outcome::RefreshFailed(e) => {
                    b { "The refresh failed." } " The broker answered " (e.status) " " code { (e.code) } ". "
                    @if e.code == "connection_needs_reauth" {
                        "Cal.com refused the grant: the user must reconnect."
                    } @else if e.status == 503 || e.status == 0 {
                        "Cal.com or the broker is unavailable for now; the connection stays as it was."
                    }
                }
                Outcome::Disconnected => {
                    b { "Disconnected." } " The broker deleted the connection. Cal.com has no revocation endpoint: its last access token stays valid until it expires (at most 30 minutes)."
                }
                Outcome::DisconnectFailed(e) => {
                    b { "The disconnect failed." } " The broker answered " (e.status) " " code { (e.code) } "; nothing was deleted."
                }
            }
        }
    }
}

/// Everything the page shows.
#[derive(Debug)]
struct Detail<'a> {
    id: ConnectionId,
    /// `None`: deleted (its events remain).
    connection: Option<&'a Connection>,
    /// Newest first.
    events: &'a [ConnectionEvent],
    deliveries: Result<Vec<Delivery>, CallError>,
    outcome: Option<Outcome>,
    csrf: &'a CsrfToken,
}

fn when(t: Option<time::OffsetDateTime>) -> String {
    t.map_or_else(|| "–".to_owned(), time_text)
}

fn action(action: &str, id: ConnectionId, csrf: &CsrfToken, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/admin/connections/" (id.to_string()) "/" (action) } {
            input type="hidden" name="csrf" value=(csrf.as_str());
            button class={ "btn " (class) } type="submit" data-testid={ "admin-" (action) } { (label) }
        }
    }
}

fn detail_page(d: &Detail<'_>) -> Markup {
    let body = html! {
        p { a href="/admin" { "← All connections" } }
        @if let Some(o) = &d.outcome { (outcome_notice(o)) }
        div.card {
            h1 { "Connection " code { (d.id.to_string()) } }
            @match d.connection {
                Some(c) => {
                    dl data-testid="admin-detail" {
                        dt { "Cal.com account" }
                        dd data-testid="admin-person" { (person(c.profile.as_ref())) }
                        dt { "Cal.com id" }
                        dd { (c.identity.owner.kind()) " " (c.identity.owner.id()) " (client " code { (c.identity.client_id) } ")" }
                        dt { "Profile as of" }
                        dd { (when(c.profile.as_ref().map(|p| p.fetched_at))) span.muted { " (asked again from " (time_text(c.profile_check_at)) ")" } }
                        dt { "End user" }
                        dd { (c.end_user.as_str()) }
                        dt { "Status" }
                        dd {
                            span.status.(c.status.as_str()) data-testid="admin-status" { (c.status.as_str()) }
                            " " span.muted { (c.status_reason) " since " (time_text(c.status_changed_at)) }
                        }
                        dt { "Granted scopes" }
                        dd {
                            @for (i, s) in c.scopes.iter().enumerate() {
                                @if i > 0 { " " }
                                code { (s) }
                            }
                        }
                        dt { "Access token expires" }
                        dd { (when(c.access_expires_at)) }
                        dt { "Last refresh" }
                        dd { (time_text(c.last_refreshed_at)) }
                        dt { "Refresh window ends (estimate)" }
                        dd { (when(c.refresh_expires_at_estimate)) }
                        dt { "Refresh lease" }
                        dd {
                            @match &c.lease {
                                Some(l) => { (l.owner.as_str()) " until " (time_text(l.until)) }
                                None => { "none" }
                            }
                        }
                        dt { "Created" }
                        dd { (time_text(c.created_at)) }
                    }
                    p.controls {
                        (action("refresh", d.id, d.csrf, "Refresh now", "secondary"))
                        (action("disconnect", d.id, d.csrf, "Disconnect", "danger"))
                    }
                }
                None => {
                    p data-testid="admin-deleted" { "This connection was deleted. Its events and webhook deliveries remain." }
                }
            }
        }
        div.card {
            h2 { "Events" }
            table {
                tr { th { "When" } th { "Event" } th { "Status" } th { "Reason" } th { "End user" } }
                @for e in d.events {
                    tr data-testid="admin-event" {
                        td { (time_text(e.at)) }
                        td { (e.kind.as_str()) }
                        td {
                            (e.from_status.map_or("–", |s| s.as_str())) " → "
                            (e.to_status.map_or("–", |s| s.as_str()))
                        }
                        td.muted { (e.reason) }
                        td { (e.end_user.as_str()) }
                    }
                }
            }
        }
        div.card {
            h2 { "Webhook deliveries" }
            (deliveries_table(&d.deliveries))
        }
    };
    layout("Connection", None, body)
}

fn no_such_connection() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "unknown_connection",
        "No such connection",
        "No connection has this id, and none had.",
        "Pick a connection on the operator dashboard.",
    )
}

fn store_down(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "admin: reading a connection failed");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_error",
        "The connection cannot be read",
        "The store did not answer.",
        "Check the terminal running `calconnect demo`, then reload this page.",
    )
}

fn parse_id(id: &str) -> Option<ConnectionId> {
    uuid::Uuid::parse_str(id).ok().map(ConnectionId::from_uuid)
}

/// The page of connection `id` as it is now, with `outcome` on top.
async fn render(ctx: &AppCtx, id: ConnectionId, outcome: Option<Outcome>) -> Response {
    let connection = match ctx.store.get_connection(id).await {
        Ok(c) => Some(c),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return store_down(&e),
    };
    let mut events = match ctx.store.events_for_connection(id).await {
        Ok(events) => events,
        Err(e) => return store_down(&e),
    };
    if connection.is_none() && events.is_empty() {
        return no_such_connection();
    }
    events.reverse();
    let csrf = ctx.sessions.operator_csrf();
    let detail = Detail {
        id,
        connection: connection.as_ref(),
        events: &events,
        deliveries: ctx.broker.deliveries(Some(&id.to_string())).await,
        outcome,
        csrf: &csrf,
    };
    page(StatusCode::OK, detail_page(&detail))
}

/// `GET /admin/connections/{id}`.
pub(crate) async fn show(
    State(ctx): State<AppCtx>,
    _: Operator,
    Path(id): Path<String>,
) -> Response {
    match parse_id(&id) {
        Some(id) => render(&ctx, id, None).await,
        None => no_such_connection(),
    }
}

/// `POST /admin/connections/{id}/refresh`: refresh now, through the broker.
pub(crate) async fn refresh(
    State(ctx): State<AppCtx>,
    Path(id): Path<String>,
    _: OperatorForm,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return no_such_connection();
    };
    let outcome = match ctx.broker.refresh_now(&id.to_string()).await {
        Ok(expires_at) => Outcome::Refreshed { expires_at },
        Err(e) => Outcome::RefreshFailed(e),
    };
    render(&ctx, id, Some(outcome)).await
}

/// `POST /admin/connections/{id}/disconnect`: delete, through the broker.
pub(crate) async fn disconnect(
    State(ctx): State<AppCtx>,
    Path(id): Path<String>,
    _: OperatorForm,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return no_such_connection();
    };
    let outcome = match ctx.broker.delete(&id.to_string()).await {
        Ok(()) => Outcome::Disconnected,
        Err(e) => Outcome::DisconnectFailed(e),
    };
    render(&ctx, id, Some(outcome)).await
}
