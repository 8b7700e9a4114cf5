//! Demo controls: they act on the sandbox ("Cal.com"), not on the broker, so a person can watch
//! the broker react as it would to the real thing: expire the access token (Cal.com's clock jumps
//! past it, the next API call gets a 401 and the broker refreshes and retries), revoke the grant
//! (the next refresh gets `invalid_grant` and the connection becomes `needs_reauth`), make the
//! token endpoint fail for a minute while the token runs out (refreshes fail transiently; the
//! connection stays active and recovers once the minute is over).

use super::AppCtx;
use super::broker::Conn;
use super::connection::{enc, owned};
use super::html::{post_form, problem, see_other};
use super::pages::Notice;
use super::session::{Csrf, CsrfToken};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, FaultKind, Owner};
use maud::{Markup, html};

/// A demo control (the last segment of its URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Expire,
    Revoke,
    Outage,
    Recover,
}

impl Control {
    const ALL: [Control; 4] = [Self::Expire, Self::Revoke, Self::Outage, Self::Recover];

    fn parse(action: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.action() == action)
    }

    fn action(self) -> &'static str {
        match self {
            Self::Expire => "expire",
            Self::Revoke => "revoke",
            Self::Outage => "outage",
            Self::Recover => "recover",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Expire => "Expire the access token",
            Self::Revoke => "Revoke the grant at Cal.com",
            Self::Outage => "Make Cal.com fail for a minute",
            Self::Recover => "End the Cal.com outage",
        }
    }
}

/// The panel on the connection page.
pub(crate) fn panel(id: &str, csrf: &CsrfToken) -> Markup {
    html! {
        div.card.controls style="border-style:dashed" {
            h2 { "Demo controls" }
            p.muted { "These act on the local Cal.com sandbox, not on the app or the broker." }
            @for c in Control::ALL {
                (post_form(
                    &format!("/connections/{}/demo/{}", enc(id), c.action()),
                    csrf,
                    c.label(),
                    "secondary",
                    Some(&format!("demo-{}", c.action())),
                ))
            }
        }
    }
}

/// Whether a demo control moved Cal.com's clock past `conn`'s access token and the broker has
/// not refreshed it since (its last refresh is the one seen then). Cal.com refuses that token,
/// though the broker's record of its expiry, kept on the broker's own clock, is still ahead: the
/// page says "expired" rather than count down to a time Cal.com no longer honours. Forgets the
/// connection once a refresh has happened.
pub(crate) fn expired_at_cal(ctx: &AppCtx, conn: &Conn) -> bool {
    let Ok(mut marks) = ctx.expired_at_cal.lock() else {
        return false;
    };
    match marks.get(&conn.id) {
        Some(seen) if *seen == conn.last_refreshed_at => true,
        Some(_) => {
            marks.remove(&conn.id);
            false
        }
        None => false,
    }
}

/// Moves Cal.com's clock past the access token's expiry, and remembers it for `conn`.
fn expire_at_cal(ctx: &AppCtx, conn: &Conn) {
    let past_expiry = ctx.sandbox.settings().access_token_ttl + time::Duration::minutes(1);
    ctx.sandbox.advance_clock(past_expiry);
    if let Ok(mut marks) = ctx.expired_at_cal.lock() {
        marks.insert(conn.id.clone(), conn.last_refreshed_at.clone());
    }
}

/// `POST /connections/{id}/demo/{action}`.
pub(crate) async fn act(
    State(ctx): State<AppCtx>,
    Path((id, action)): Path<(String, String)>,
    Csrf(user): Csrf,
) -> Response {
    let conn = match owned(&ctx, &user, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(control) = Control::parse(&action) else {
        return problem(
            StatusCode::NOT_FOUND,
            "unknown_control",
            "No such demo control",
            "This demo control does not exist.",
            "Use the buttons on the connection page.",
        );
    };
    let sandbox = &ctx.sandbox;
    let notice = match control {
        Control::Expire => {
            expire_at_cal(&ctx, &conn);
            Notice::Expired
        }
        Control::Revoke => {
            let owner = match conn.cal_identity.kind.as_str() {
                "team" => Owner::Team(conn.cal_identity.id),
                _ => Owner::User(conn.cal_identity.id),
            };
            sandbox.revoke_grant(CONFIDENTIAL_CLIENT_ID, owner);
            // Cal.com keeps accepting the last access token until it expires (docs/calcom.md
            // §4): let it run out so the effect shows now.
            expire_at_cal(&ctx, &conn);
            Notice::Revoked
        }
        Control::Outage => {
            // The fault window is in sandbox time: move the clock first (so the current token
            // is expired at Cal.com and the next call needs a refresh), then arm it.
            expire_at_cal(&ctx, &conn);
            let fault = FaultKind::ServerError { status: 503 };
            if sandbox.fail_for(fault, time::Duration::minutes(1)).is_err() {
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "control_failed",
                    "The sandbox refused the fault",
                    "The outage could not be armed.",
                    "Try again.",
                );
            }
            Notice::Outage
        }
        Control::Recover => {
            sandbox.clear_faults();
            Notice::Recovered
        }
    };
    see_other(&format!(
        "/connections/{}?notice={}",
        enc(&id),
        notice.key()
    ))
}
