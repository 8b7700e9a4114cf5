//! Demo controls: they act on the sandbox ("Cal.com"), not on the broker, so a person can watch
//! the broker react as it would to the real thing: expire the access token (Cal.com's clock jumps
//! past it, the next API call gets a 401 and the broker refreshes and retries), revoke the grant
//! (the next refresh gets `invalid_grant` and the connection becomes `needs_reauth`), make the
//! token endpoint fail for a minute while the token runs out (refreshes fail transiently; the
//! connection stays active and recovers once the minute is over).

use super::AppCtx;
use super::connection::{enc, owned};
use super::html::{post_form, problem, see_other};
use super::pages::{CsrfForm, check};
use super::session::MaybeUser;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, FaultKind, Owner};

/// The panel on the connection page.
pub(crate) fn panel(id: &str, csrf: &str) -> String {
    let button = |action: &str, label: &str| {
        post_form(
            &format!("/connections/{}/demo/{action}", enc(id)),
            csrf,
            label,
            "secondary",
            &format!("demo-{action}"),
        )
    };
    format!(
        "<div class=\"card controls\" style=\"border-style:dashed\"><h2>Demo controls</h2>\
         <p class=\"muted\">These act on the local Cal.com sandbox, not on the app or the broker.</p>\
         {}{}{}{}</div>",
        button("expire", "Expire the access token"),
        button("revoke", "Revoke the grant at Cal.com"),
        button("outage", "Make Cal.com fail for a minute"),
        button("recover", "End the Cal.com outage"),
    )
}

/// `POST /connections/{id}/demo/{action}`.
pub(crate) async fn act(
    State(ctx): State<AppCtx>,
    user: MaybeUser,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let user = match check(&ctx, user, &form) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let conn = match owned(&ctx, &user, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let sandbox = &ctx.sandbox;
    let past_expiry = sandbox.settings().access_token_ttl + time::Duration::minutes(1);
    let notice = match action.as_str() {
        "expire" => {
            sandbox.advance_clock(past_expiry);
            "expired"
        }
        "revoke" => {
            let owner = match conn.cal_identity.kind.as_str() {
                "team" => Owner::Team(conn.cal_identity.id),
                _ => Owner::User(conn.cal_identity.id),
            };
            sandbox.revoke_grant(CONFIDENTIAL_CLIENT_ID, owner);
            // Cal.com keeps accepting the last access token until it expires (docs/calcom.md
            // §4): let it run out so the effect shows now.
            sandbox.advance_clock(past_expiry);
            "revoked"
        }
        "outage" => {
            // The fault window is in sandbox time: move the clock first (so the current token
            // is expired at Cal.com and the next call needs a refresh), then arm it.
            sandbox.advance_clock(past_expiry);
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
            "outage"
        }
        "recover" => {
            sandbox.clear_faults();
            "recovered"
        }
        _ => {
            return problem(
                StatusCode::NOT_FOUND,
                "unknown_control",
                "No such demo control",
                "This demo control does not exist.",
                "Use the buttons on the connection page.",
            );
        }
    };
    see_other(&format!("/connections/{}?notice={notice}", enc(&id)))
}
