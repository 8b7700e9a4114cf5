//! The connection page: Cal.com identity, granted scopes, status and its reason, a live countdown
//! to access-token expiry, the last refresh, the weekly availability grid and upcoming bookings —
//! all fetched through the broker (connection view + API v2 proxy) and read into the library's
//! typed models (`calconnect::api::{Me, Schedule, Booking}`). Buttons: refresh now, disconnect,
//! reconnect (when the connection needs it), and the demo controls.

use super::AppCtx;
use super::broker::{CallError, Conn};
use super::html::{APP_NAME, Who, layout, page, post_form, problem, see_other};
use super::pages::{Notice, broker_down};
use super::session::{Csrf, CsrfToken, SignedIn, UserName};
use super::when::{self, Hours, Zone};
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
    /// The Cal.com user's time zone and clock, for every time on the page.
    zone: Zone,
    /// A demo control moved Cal.com's clock past the access token's expiry and the broker has
    /// not refreshed since: Cal.com refuses the token, whatever the broker's record says.
    expired_at_cal: bool,
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
    let expired_at_cal = super::controls::expired_at_cal(&ctx, &conn);
    let me = data_or_reason(me, active);
    let schedule = data_or_reason(schedule, active);
    let zone = {
        // What `/v2/me` said last time, for the pages Cal.com cannot answer.
        let remembered = match &me {
            Ok(m) => {
                let now = when::UserClock {
                    time_zone: m.time_zone.clone(),
                    time_format: m.time_format,
                };
                if let Ok(mut zones) = ctx.zones.lock() {
                    zones.insert(conn.id.clone(), now.clone());
                }
                now
            }
            Err(_) => ctx
                .zones
                .lock()
                .ok()
                .and_then(|zones| zones.get(&conn.id).cloned())
                .unwrap_or_default(),
        };
        let names = [
            remembered.time_zone.as_deref(),
            schedule
                .as_ref()
                .ok()
                .and_then(Option::as_ref)
                .map(|s| s.time_zone.as_str()),
        ];
        Zone::first_known(
            names.into_iter().flatten(),
            Hours::from_time_format(remembered.time_format),
        )
    };
    let view = ConnectionView {
        who: Who {
            user: &user,
            csrf: &csrf,
        },
        notice: Notice::from_query(q.notice.as_deref()),
        conn: &conn,
        me,
        schedule,
        bookings: data_or_reason(bookings, active),
        now: ctx.clock.now(),
        zone,
        expired_at_cal,
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
        (bookings_card(&v.bookings, &v.zone))
        (super::controls::panel(&v.conn.id, v.who.csrf))
    };
    layout("Cal.com connection", Some(v.who), body)
}

fn summary(v: &ConnectionView<'_>) -> Markup {
    let c = v.conn;
    let csrf: &CsrfToken = v.who.csrf;
    let exp = c.access_token_expires_at.as_deref().unwrap_or("");
    let expires = when::parse(exp);
    let active = c.status == "active";
    let left = if active {
        remaining(expires, v.now).1
    } else {
        "not usable until reconnected".to_owned()
    };
    let zone = &v.zone;
    let stamp = |text: &str| match when::parse(text) {
        Some(t) => html! {
            time datetime=(text) { (zone.date_time(t)) }
            " " span.muted { "(" (when::ago(t, v.now)) ")" }
        },
        None => html! { (text) },
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
                    @if active && v.expired_at_cal {
                        span data-testid="countdown" data-state="expired-at-cal" { "expired" }
                        " "
                        span.muted {
                            "(Cal.com's clock was moved past it; the broker refreshes the token at \
                             the next call Cal.com's token endpoint answers)"
                        }
                    } @else {
                        span id=[active.then_some("countdown")] data-testid="countdown" data-expires-at=(exp) { (left) }
                        @if let (true, Some(t)) = (active, expires) {
                            " "
                            span.muted { "(at " time datetime=(exp) { (zone.time(t)) } ")" }
                        }
                    }
                }
                dt { "Last refresh" }
                dd { (stamp(&c.last_refreshed_at)) }
                dt { "Connected" }
                dd { (stamp(&c.created_at)) }
                dt { "Connection id" }
                dd { code { (c.id) } }
            }
            p style="margin-top:14px" {
                (post_form(&format!("/connections/{}/refresh", enc(&c.id)), csrf, "Refresh now", "secondary", Some("refresh")))
                " "
                // A page that asks first (no JavaScript needed).
                a.btn.danger href={ "/connections/" (enc(&c.id)) "/disconnect" } data-testid="disconnect" { "Disconnect…" }
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

fn bookings_card(bookings: &Result<Vec<Booking>, String>, zone: &Zone) -> Markup {
    html! {
        div.card {
            h2 { "Upcoming bookings" }
            @match bookings {
                Ok(list) if !list.is_empty() => {
                    p.muted { "Times in " (zone.name()) ", the Cal.com user's time zone." }
                    div.scroll {
                        table data-testid="bookings" {
                            tr { th scope="col" { "Starts" } th scope="col" { "Title" } th scope="col" { "Length" } th scope="col" { "With" } }
                            @for b in list {
                                tr {
                                    td {
                                        time datetime=(b.start.format(&Rfc3339).unwrap_or_default()) {
                                            (zone.date_time(b.start))
                                        }
                                    }
                                    td { (b.title) }
                                    td { (b.duration.unwrap_or(0)) " min" }
                                    td { (b.attendees.first().and_then(|a| a.name.as_deref()).unwrap_or("")) }
                                }
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

/// `GET /connections/{id}/disconnect`: asks first — what disconnecting does and does not do —
/// with the button that does it (a POST) and a way back.
pub(crate) async fn confirm_disconnect(
    State(ctx): State<AppCtx>,
    user: Option<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let Some(SignedIn(user)) = user else {
        return see_other("/");
    };
    let conn = match owned(&ctx, &user, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let csrf = ctx.sessions.csrf(&user);
    let who = Who {
        user: &user,
        csrf: &csrf,
    };
    page(StatusCode::OK, confirm_page(who, &conn))
}

fn confirm_page(who: Who<'_>, c: &Conn) -> Markup {
    let back = format!("/connections/{}", enc(&c.id));
    let body = html! {
        div.card data-testid="confirm-disconnect" {
            h1 { "Disconnect this Cal.com account?" }
            p {
                (APP_NAME) " forgets the connection to Cal.com " (c.cal_identity.kind) " "
                (c.cal_identity.id) " and its tokens, and stops reading its calendar."
            }
            p {
                "Cal.com has no revocation endpoint: " (APP_NAME) " stays listed in the Cal.com \
                 account's settings, and the last access token works until it expires (at most 30 \
                 minutes). Remove the app there to end its access at once."
            }
            p {
                (post_form(&format!("{back}/disconnect"), who.csrf, "Disconnect", "danger", Some("confirm-disconnect-button")))
                " "
                a.btn.secondary href=(back) data-testid="cancel-disconnect" { "Keep it connected" }
            }
        }
    };
    layout("Disconnect Cal.com?", Some(who), body)
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
            zone: Zone::first_known([EVIL], Hours::H24),
            expired_at_cal: false,
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
