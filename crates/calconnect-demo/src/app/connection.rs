//! The connection page: Cal.com identity, granted scopes, status and its reason, a live countdown
//! to access-token expiry, the last refresh, the weekly availability grid and upcoming bookings —
//! all fetched through the broker (connection view + API v2 proxy) and read into the library's
//! typed models (`calconnect::api::{Me, Schedule, Booking}`). Buttons: refresh now, disconnect,
//! reconnect (when the connection needs it), and the demo controls.

use super::AppCtx;
use super::broker::{CallError, Conn};
use super::html::{Who, layout, page, post_form, problem, see_other};
use super::pages::{Notice, broker_down};
use super::session::{Csrf, CsrfToken, SignedIn, UserName};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use calconnect::api::{Booking, Me, Schedule};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
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
pub(crate) async fn owned(ctx: &AppCtx, user: &UserName, id: &str) -> Result<Conn, Response> {
    match ctx.broker.connection(id).await {
        Ok(c) if c.end_user_id == user.as_str() => Ok(c),
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
fn data_or_reason<T>(r: Result<T, CallError>, active: bool) -> Result<T, String> {
    match r {
        Ok(v) => Ok(v),
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

/// Everything the connection page shows.
#[derive(Debug)]
struct ConnectionView<'a> {
    who: Who<'a>,
    notice: Option<Notice>,
    conn: &'a Conn,
    me: Result<Me, String>,
    /// `None`: the user has no default schedule.
    schedule: Result<Option<Schedule>, String>,
    bookings: Result<Vec<Booking>, String>,
    now: OffsetDateTime,
}

/// `GET /connections/{id}`.
pub(crate) async fn show(
    State(ctx): State<AppCtx>,
    user: Option<SignedIn>,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let Some(SignedIn(user)) = user else {
        return see_other("/");
    };
    if let Err(r) = owned(&ctx, &user, &id).await {
        return r;
    }
    // Through the broker's proxy: the broker attaches a fresh token, and on a 401 refreshes
    // once and retries (docs/architecture.md §3.5).
    let (me, schedule, bookings) = tokio::join!(
        ctx.broker.cal_get::<Me>(&id, "me", "2024-06-11"),
        ctx.broker
            .cal_get::<Option<Schedule>>(&id, "schedules/default", "2024-06-11"),
        ctx.broker.cal_get::<Vec<Booking>>(
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
    let active = conn.status == "active";
    let view = ConnectionView {
        who: Who {
            user: &user,
            csrf: &csrf,
        },
        notice: Notice::from_query(q.notice.as_deref()),
        conn: &conn,
        me: data_or_reason(me, active),
        schedule: data_or_reason(schedule, active),
        bookings: data_or_reason(bookings, active),
        now: ctx.clock.now(),
    };
    page(StatusCode::OK, connection_page(&view))
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

const COUNTDOWN_JS: &str = "(function(){var e=document.getElementById('countdown');if(!e)return;\
var end=Date.parse(e.getAttribute('data-expires-at'));if(isNaN(end))return;\
function t(){var s=Math.round((end-Date.now())/1000);e.textContent=s>0?Math.floor(s/60)+' min '+('0'+s%60).slice(-2)+' s':'expired';\
if(s>0)setTimeout(t,1000);}t();})();";

fn connection_page(v: &ConnectionView<'_>) -> Markup {
    let body = html! {
        @if let Some(n) = v.notice { (n) }
        (summary(v))
        (grid_card(&v.schedule))
        (bookings_card(&v.bookings))
        (super::controls::panel(&v.conn.id, v.who.csrf))
    };
    layout("Cal.com connection", Some(v.who), body)
}

fn summary(v: &ConnectionView<'_>) -> Markup {
    let c = v.conn;
    let csrf: &CsrfToken = v.who.csrf;
    let exp = c.access_token_expires_at.as_deref().unwrap_or("");
    let expires = OffsetDateTime::parse(exp, &Rfc3339).ok();
    let active = c.status == "active";
    let left = if active {
        remaining(expires, v.now).1
    } else {
        "not usable until reconnected".to_owned()
    };
    let unknown = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".to_owned());
    html! {
        div.card {
            h1 { "Cal.com connection" }
            @if !active {
                div.notice.bad data-testid="reconnect-offer" {
                    b { "This connection no longer works." }
                    " Cal.com must be asked again: reconnect to grant access anew. "
                    (post_form("/connect", csrf, "Reconnect Cal.com", "", Some("reconnect")))
                }
            }
            dl {
                dt { "Cal.com account" }
                dd data-testid="identity" {
                    @match &v.me {
                        Ok(m) => {
                            (unknown(&m.name)) " <" (unknown(&m.email)) "> (@" (unknown(&m.username)) ")"
                        }
                        Err(why) => { span.muted { (why) } }
                    }
                    " — " (c.cal_identity.kind) " id " (c.cal_identity.id)
                }
                dt { "Status" }
                dd {
                    span.status.(c.status) data-testid="status" { (c.status) }
                    " "
                    span.muted { (c.status_reason) }
                }
                dt { "Granted scopes" }
                dd {
                    @for (i, s) in c.scopes.iter().enumerate() {
                        @if i > 0 { " " }
                        code { (s) }
                    }
                }
                dt { "Access token expires in" }
                dd {
                    span id=[active.then_some("countdown")] data-testid="countdown" data-expires-at=(exp) { (left) }
                    " "
                    span.muted { "(" (exp) ")" }
                }
                dt { "Last refresh" }
                dd { (c.last_refreshed_at) }
                dt { "Connection id" }
                dd { code { (c.id) } }
            }
            p style="margin-top:14px" {
                (post_form(&format!("/connections/{}/refresh", enc(&c.id)), csrf, "Refresh now", "secondary", Some("refresh")))
                " "
                (post_form(&format!("/connections/{}/disconnect", enc(&c.id)), csrf, "Disconnect", "danger", Some("disconnect")))
            }
        }
        script { (PreEscaped(COUNTDOWN_JS)) }
    }
}

fn grid_card(schedule: &Result<Option<Schedule>, String>) -> Markup {
    html! {
        div.card {
            h2 { "Weekly availability" }
            @match schedule {
                Ok(None) => { p.muted { "This Cal.com user has no default schedule." } }
                Ok(Some(s)) => {
                    p.muted { "Default schedule " b { (s.name) } ", times in " (s.time_zone) "." }
                    (super::grid::svg(s))
                }
                Err(why) => { p.muted { (why) } }
            }
        }
    }
}

fn bookings_card(bookings: &Result<Vec<Booking>, String>) -> Markup {
    html! {
        div.card {
            h2 { "Upcoming bookings" }
            @match bookings {
                Ok(list) if !list.is_empty() => {
                    table data-testid="bookings" {
                        tr { th { "Starts (UTC)" } th { "Title" } th { "Length" } th { "With" } }
                        @for b in list {
                            tr {
                                td { (b.start.format(&Rfc3339).unwrap_or_default()) }
                                td { (b.title) }
                                td { (b.duration.unwrap_or(0)) " min" }
                                td { (b.attendees.first().and_then(|a| a.name.as_deref()).unwrap_or("")) }
                            }
                        }
                    }
                }
                Ok(_) => { p.muted { "No upcoming bookings." } }
                Err(why) => { p.muted { (why) } }
            }
        }
    }
}

/// `POST /connections/{id}/refresh`: asks the broker to refresh the connection now, then shows
/// the page again (with the new expiry and last-refresh time).
pub(crate) async fn refresh(
    State(ctx): State<AppCtx>,
    Path(id): Path<String>,
    Csrf(user): Csrf,
) -> Response {
    if let Err(r) = owned(&ctx, &user, &id).await {
        return r;
    }
    // The notice says what happened: the broker's answer, not the button's intent.
    let notice = match ctx.broker.refresh_now(&id).await {
        Ok(_) => Notice::Refreshed,
        Err(e) if e.code == "connection_needs_reauth" => Notice::RefreshRefused,
        Err(e) if e.status == 503 || e.status == 0 => Notice::RefreshDeferred,
        Err(_) => Notice::RefreshFailed,
    };
    see_other(&format!(
        "/connections/{}?notice={}",
        enc(&id),
        notice.key()
    ))
}

/// `POST /connections/{id}/disconnect`.
pub(crate) async fn disconnect(
    State(ctx): State<AppCtx>,
    Path(id): Path<String>,
    Csrf(user): Csrf,
) -> Response {
    if let Err(r) = owned(&ctx, &user, &id).await {
        return r;
    }
    match ctx.broker.delete(&id).await {
        Ok(()) => see_other(&format!("/?notice={}", Notice::Disconnected.key())),
        Err(e) => broker_down(&e.code),
    }
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::broker::Identity;
    use crate::app::session::Sessions;

    #[test]
    fn countdown_text() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let (s, t) = remaining(Some(now + time::Duration::seconds(725)), now);
        assert_eq!((s, t.as_str()), (725, "12 min 05 s"));
        assert_eq!(remaining(Some(now), now).1, "expired");
    }

    /// Everything Cal.com or the broker says about a connection reaches the page escaped: the
    /// user's name and email, scopes, status reason, schedule and booking titles, attendees.
    #[test]
    fn cal_com_values_are_escaped() {
        const EVIL: &str = r#"<script>alert("x")</script>'"#;
        const SAFE: &str = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'";
        let user = UserName::parse("ann").unwrap();
        let csrf = Sessions::random().unwrap().csrf(&user);
        let conn = Conn {
            id: "c-1".into(),
            end_user_id: "ann".into(),
            cal_identity: Identity {
                kind: "user".into(),
                id: 1,
            },
            cal_profile: None,
            scopes: vec![EVIL.into()],
            status: "needs_reauth".into(),
            status_reason: EVIL.into(),
            access_token_expires_at: Some(EVIL.into()),
            last_refreshed_at: EVIL.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        };
        let me: Me = serde_json::from_value(
            serde_json::json!({"id": 1, "name": EVIL, "email": EVIL, "username": EVIL}),
        )
        .unwrap();
        let schedule: Schedule = serde_json::from_value(serde_json::json!({
            "id": 1, "name": EVIL, "timeZone": EVIL,
            "availability": [{"days": ["Monday"], "startTime": "09:00", "endTime": "17:00"}]
        }))
        .unwrap();
        let booking: Booking = serde_json::from_value(serde_json::json!({
            "id": 1, "uid": "u", "title": EVIL, "status": "accepted",
            "start": "2026-01-01T10:00:00.000Z", "end": "2026-01-01T10:30:00.000Z", "duration": 30,
            "attendees": [{"name": EVIL, "email": "e@example.org", "timeZone": "UTC"}]
        }))
        .unwrap();
        let html = connection_page(&ConnectionView {
            who: Who {
                user: &user,
                csrf: &csrf,
            },
            notice: None,
            conn: &conn,
            me: Ok(me),
            schedule: Ok(Some(schedule)),
            bookings: Ok(vec![booking]),
            now: OffsetDateTime::UNIX_EPOCH,
        })
        .into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains(r#""x""#), "{html}");
        // name, email, username, scope, reason, expiry (twice), last refresh, schedule name
        // and time zone (in the card and the SVG), booking title and attendee.
        assert!(html.matches(SAFE).count() >= 12, "{html}");
        assert!(html.contains("data-testid=\"reconnect-offer\""));
        assert!(
            html.contains("<script>(function(){"),
            "the countdown script stays"
        );
    }
}
