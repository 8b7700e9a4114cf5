//! The connection page: Cal.com identity, granted scopes, status and its reason, a live countdown
//! to access-token expiry, the last refresh, the weekly availability grid and upcoming bookings —
//! all fetched through the broker (connection view + API v2 proxy). Buttons: refresh now,
//! disconnect, reconnect (when the connection needs it), and the demo controls.

use super::AppCtx;
use super::broker::{CallError, Conn};
use super::html::{esc, layout, page, post_form, problem, see_other};
use super::pages::{CsrfForm, broker_down, check, notice_html};
use super::session::MaybeUser;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn not_yours() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "unknown_connection",
        "No such connection",
        "This connection does not exist (any more) or belongs to another user.",
        "Pick one of your connections on the home page.",
    )
}

/// The connection if it is the user's; otherwise the page to show.
#[allow(
    clippy::result_large_err,
    reason = "the error is the page to send at once; boxing it buys nothing"
)]
pub(crate) async fn owned(ctx: &AppCtx, user: &str, id: &str) -> Result<Conn, Response> {
    match ctx.broker.connection(id).await {
        Ok(c) if c.end_user_id == user => Ok(c),
        Ok(_) => Err(not_yours()),
        Err(CallError {
            status: 404 | 400, ..
        }) => Err(not_yours()),
        Err(e) => Err(broker_down(&e.code)),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShowQuery {
    notice: Option<String>,
}

/// What a Cal.com call gave: data, or a line saying why not.
/// `active` is the connection's status after the calls: concurrent calls that lost the race to a
/// failed refresh may report a transient error, but a broken connection explains them all.
fn data_or_reason(r: &Result<Value, CallError>, active: bool) -> Result<&Value, String> {
    match r {
        Ok(v) => Ok(&v["data"]),
        Err(e) if e.code == "connection_needs_reauth" || !active => {
            Err("The connection needs to be re-authorized, so Cal.com cannot be asked.".into())
        }
        Err(e) if e.status == 503 => Err(
            "Cal.com is unavailable right now; the connection stays active and the broker retries."
                .into(),
        ),
        Err(e) => Err(format!(
            "Cal.com did not answer ({}, {}).",
            e.status, e.code
        )),
    }
}

/// `GET /connections/{id}`.
pub(crate) async fn show(
    State(ctx): State<AppCtx>,
    user: MaybeUser,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let Some(user) = user.0 else {
        return see_other("/");
    };
    if let Err(r) = owned(&ctx, &user, &id).await {
        return r;
    }
    // Through the broker's proxy: the broker attaches a fresh token, and on a 401 refreshes
    // once and retries (docs/architecture.md §3.5).
    let (me, schedule, bookings) = tokio::join!(
        ctx.broker.cal_get(&id, "me", "2024-06-11"),
        ctx.broker.cal_get(&id, "schedules/default", "2024-06-11"),
        ctx.broker.cal_get(
            &id,
            "bookings?status=upcoming&take=5&sortStart=asc",
            "2024-08-13"
        ),
    );
    // Read it again: the calls may have refreshed the token or changed the status.
    let conn = match owned(&ctx, &user, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let csrf = ctx.sessions.csrf(&user);
    let now = ctx.clock.now();
    let active = conn.status == "active";
    let body = format!(
        "{notice}{summary}{grid}{bookings}{controls}",
        notice = notice_html(q.notice.as_deref()),
        summary = summary(&conn, data_or_reason(&me, active), &csrf, now),
        grid = grid_card(data_or_reason(&schedule, active)),
        bookings = bookings_card(data_or_reason(&bookings, active)),
        controls = super::controls::panel(&conn.id, &csrf),
    );
    page(
        StatusCode::OK,
        layout("Cal.com connection", Some(&user), Some(&csrf), &body),
    )
}

/// `12 min 05 s` (or `expired`).
fn remaining(expires: Option<OffsetDateTime>, now: OffsetDateTime) -> (i64, String) {
    let Some(exp) = expires else {
        return (0, "unknown".into());
    };
    let secs = (exp - now).whole_seconds();
    if secs <= 0 {
        return (0, "expired".into());
    }
    (secs, format!("{} min {:02} s", secs / 60, secs % 60))
}

const COUNTDOWN_JS: &str = "<script>(function(){var e=document.getElementById('countdown');if(!e)return;\
var end=Date.parse(e.getAttribute('data-expires-at'));if(isNaN(end))return;\
function t(){var s=Math.round((end-Date.now())/1000);e.textContent=s>0?Math.floor(s/60)+' min '+('0'+s%60).slice(-2)+' s':'expired';\
if(s>0)setTimeout(t,1000);}t();})();</script>";

fn summary(c: &Conn, me: Result<&Value, String>, csrf: &str, now: OffsetDateTime) -> String {
    let who = match me {
        Ok(m) => format!(
            "{} &lt;{}&gt; (@{})",
            esc(m["name"].as_str().unwrap_or("?")),
            esc(m["email"].as_str().unwrap_or("?")),
            esc(m["username"].as_str().unwrap_or("?")),
        ),
        Err(why) => format!("<span class=\"muted\">{}</span>", esc(&why)),
    };
    let expires = c
        .access_token_expires_at
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let active = c.status == "active";
    let left = if active {
        remaining(expires, now).1
    } else {
        "not usable until reconnected".to_owned()
    };
    let reconnect = if active {
        String::new()
    } else {
        format!(
            "<div class=\"notice bad\" data-testid=\"reconnect-offer\"><b>This connection no longer works.</b> \
             Cal.com must be asked again: reconnect to grant access anew. {}</div>",
            post_form("/connect", csrf, "Reconnect Cal.com", "", "reconnect")
        )
    };
    format!(
        "<div class=\"card\"><h1>Cal.com connection</h1>{reconnect}<dl>\
         <dt>Cal.com account</dt><dd data-testid=\"identity\">{who} — {kind} id {cal}</dd>\
         <dt>Status</dt><dd><span class=\"status {st}\" data-testid=\"status\">{st}</span> <span class=\"muted\">{reason}</span></dd>\
         <dt>Granted scopes</dt><dd>{scopes}</dd>\
         <dt>Access token expires in</dt><dd><span {countdown}data-testid=\"countdown\" data-expires-at=\"{exp}\">{left}</span> <span class=\"muted\">({exp})</span></dd>\
         <dt>Last refresh</dt><dd>{last}</dd><dt>Connection id</dt><dd><code>{id}</code></dd></dl>\
         <p style=\"margin-top:14px\">{refresh} {disconnect}</p></div>{COUNTDOWN_JS}",
        countdown = if active { "id=\"countdown\" " } else { "" },
        kind = esc(&c.cal_identity.kind),
        cal = c.cal_identity.id,
        st = esc(&c.status),
        reason = esc(&c.status_reason),
        scopes = c
            .scopes
            .iter()
            .map(|s| format!("<code>{}</code>", esc(s)))
            .collect::<Vec<_>>()
            .join(" "),
        exp = esc(c.access_token_expires_at.as_deref().unwrap_or("")),
        last = esc(&c.last_refreshed_at),
        id = esc(&c.id),
        refresh = post_form(
            &format!("/connections/{}/refresh", c.id),
            csrf,
            "Refresh now",
            "secondary",
            "refresh"
        ),
        disconnect = post_form(
            &format!("/connections/{}/disconnect", c.id),
            csrf,
            "Disconnect",
            "danger",
            "disconnect"
        ),
    )
}

fn grid_card(schedule: Result<&Value, String>) -> String {
    let inner = match schedule {
        Ok(Value::Null) => {
            "<p class=\"muted\">This Cal.com user has no default schedule.</p>".to_owned()
        }
        Ok(s) => format!(
            "<p class=\"muted\">Default schedule <b>{}</b>, times in {}.</p>{}",
            esc(s["name"].as_str().unwrap_or("")),
            esc(s["timeZone"].as_str().unwrap_or("UTC")),
            super::grid::svg(s)
        ),
        Err(why) => format!("<p class=\"muted\">{}</p>", esc(&why)),
    };
    format!("<div class=\"card\"><h2>Weekly availability</h2>{inner}</div>")
}

fn bookings_card(bookings: Result<&Value, String>) -> String {
    let inner = match bookings {
        Ok(Value::Array(list)) if !list.is_empty() => {
            let rows: String = list
                .iter()
                .map(|b| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{} min</td><td>{}</td></tr>",
                        esc(b["start"].as_str().unwrap_or("")),
                        esc(b["title"].as_str().unwrap_or("")),
                        b["duration"].as_i64().unwrap_or(0),
                        esc(b["attendees"][0]["name"].as_str().unwrap_or("")),
                    )
                })
                .collect();
            format!(
                "<table data-testid=\"bookings\"><tr><th>Starts (UTC)</th><th>Title</th><th>Length</th><th>With</th></tr>{rows}</table>"
            )
        }
        Ok(_) => "<p class=\"muted\">No upcoming bookings.</p>".to_owned(),
        Err(why) => format!("<p class=\"muted\">{}</p>", esc(&why)),
    };
    format!("<div class=\"card\"><h2>Upcoming bookings</h2>{inner}</div>")
}

/// `POST /connections/{id}/refresh`: asks the broker to refresh the connection now, then shows
/// the page again (with the new expiry and last-refresh time).
pub(crate) async fn refresh(
    State(ctx): State<AppCtx>,
    user: MaybeUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let user = match check(&ctx, user, &form) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = owned(&ctx, &user, &id).await {
        return r;
    }
    let _ = ctx.broker.refresh_now(&id).await;
    see_other(&format!("/connections/{}?notice=refreshed", enc(&id)))
}

/// `POST /connections/{id}/disconnect`.
pub(crate) async fn disconnect(
    State(ctx): State<AppCtx>,
    user: MaybeUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let user = match check(&ctx, user, &form) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = owned(&ctx, &user, &id).await {
        return r;
    }
    match ctx.broker.delete(&id).await {
        Ok(()) => see_other("/?notice=disconnected"),
        Err(e) => broker_down(&e.code),
    }
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_text() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let (s, t) = remaining(Some(now + time::Duration::seconds(725)), now);
        assert_eq!((s, t.as_str()), (725, "12 min 05 s"));
        assert_eq!(remaining(Some(now), now).1, "expired");
    }
}
