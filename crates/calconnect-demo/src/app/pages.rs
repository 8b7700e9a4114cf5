//! Sign-in, the home page (the user's Cal.com connections and "Connect Cal.com"), starting a
//! connection through a broker connect session, and the page the broker's flow returns to.

use super::AppCtx;
use super::html::{esc, layout, page, post_form, problem, see_other};
use super::session::{MaybeUser, Sessions, valid_name};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// A POST carrying only the CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// The signed-in user if the CSRF token matches, else the error page to send.
#[allow(
    clippy::result_large_err,
    reason = "the error is the page to send at once; boxing it buys nothing"
)]
pub(crate) fn check(ctx: &AppCtx, user: MaybeUser, form: &CsrfForm) -> Result<String, Response> {
    let Some(user) = user.0 else {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "signed_out",
            "You are signed out",
            "This action needs a signed-in demo user.",
            "Sign in again and retry.",
        ));
    };
    if !ctx.sessions.csrf_ok(&user, &form.csrf) {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "csrf",
            "This form has expired",
            "The form was not sent by this page (or the demo restarted since it was shown), so nothing was done.",
            "Go back, reload the page and try again.",
        ));
    }
    Ok(user)
}

/// Notices shown after a redirect (`?notice=`), from a fixed list (no user text is reflected).
pub(crate) fn notice_html(key: Option<&str>) -> String {
    let (class, text) = match key {
        Some("disconnected") => (
            "",
            "Disconnected. Cal.com has no revocation endpoint, so the app stays listed in the user's Cal.com settings and the last access token works until it expires.",
        ),
        Some("refreshed") => ("", "The broker handed out a fresh access token."),
        Some("expired") => (
            "",
            "Demo: Cal.com's clock moved past the access token's expiry. This page's calls got a 401, and the broker refreshed the token and retried.",
        ),
        Some("revoked") => (
            "bad",
            "Demo: the grant was revoked at Cal.com and the access token ran out.",
        ),
        Some("outage") => (
            "bad",
            "Demo: the access token ran out and Cal.com's token endpoint answers 503 for the next minute. The connection stays active; reload after a minute to watch the broker recover.",
        ),
        Some("recovered") => ("", "Demo: Cal.com's token endpoint works again."),
        _ => return String::new(),
    };
    format!(
        "<div class=\"notice {class}\" data-notice=\"{}\">{}</div>",
        esc(key.unwrap_or_default()),
        esc(text)
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct HomeQuery {
    notice: Option<String>,
}

/// `GET /`.
pub(crate) async fn home(
    State(ctx): State<AppCtx>,
    user: MaybeUser,
    Query(q): Query<HomeQuery>,
) -> Response {
    let Some(user) = user.0 else {
        return page(StatusCode::OK, layout("Sign in", None, None, SIGN_IN));
    };
    let csrf = ctx.sessions.csrf(&user);
    let list = match ctx.broker.connections(&user).await {
        Ok(list) => list,
        Err(e) => return broker_down(&e.code),
    };
    let mut rows = String::new();
    for c in &list {
        rows.push_str(&format!(
            "<tr><td><a href=\"/connections/{id}\" data-testid=\"connection-link\">Cal.com {kind} {cal}</a></td>\
             <td><span class=\"status {st}\">{st}</span></td><td class=\"muted\">{reason}</td><td class=\"muted\">{created}</td></tr>",
            id = esc(&c.id),
            kind = esc(&c.cal_identity.kind),
            cal = c.cal_identity.id,
            st = esc(&c.status),
            reason = esc(&c.status_reason),
            created = esc(&c.created_at),
        ));
    }
    let table = if list.is_empty() {
        "<p class=\"muted\" data-testid=\"no-connections\">No Cal.com account connected yet.</p>"
            .to_owned()
    } else {
        format!(
            "<table><tr><th>Account</th><th>Status</th><th>Reason</th><th>Connected</th></tr>{rows}</table>"
        )
    };
    let ids: Vec<&str> = list.iter().map(|c| c.id.as_str()).collect();
    let hooks: String = ctx
        .received
        .lock()
        .map(|r| {
            r.iter()
                .filter(|(_, id)| ids.contains(&id.as_str()))
                .take(5)
                .map(|(kind, id)| {
                    format!(
                        "<li><code>{}</code> for <code>{}</code></li>",
                        esc(kind),
                        esc(id)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let hooks = if hooks.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=\"card\"><h2>Webhooks this app received</h2><ul data-testid=\"webhooks\">{hooks}</ul></div>"
        )
    };
    let body = format!(
        "{notice}<div class=\"card\"><h1>Your Cal.com connections</h1>{table}<p>{button}</p>\
         <p class=\"muted\">The button asks the broker for a connect link and sends you to Cal.com's consent screen \
         (here: the local sandbox; sign in as <b>alice</b> or <b>bob</b>).</p></div>\
         <p class=\"muted\">Operators: <a href=\"/admin\">dashboard</a> (user <code>admin</code>, password printed by <code>calconnect demo</code>).</p>{hooks}",
        notice = notice_html(q.notice.as_deref()),
        button = post_form("/connect", &csrf, "Connect Cal.com", "", "connect"),
    );
    page(
        StatusCode::OK,
        layout("Connections", Some(&user), Some(&csrf), &body),
    )
}

const SIGN_IN: &str = "<div class=\"card\"><h1>Sign in to Acme Planner</h1>\
<p>This demo app has no passwords: pick a name. Your Cal.com connections belong to it.</p>\
<form method=\"post\" action=\"/signin\"><label>Name <input name=\"name\" value=\"ann\" pattern=\"[a-z0-9_-]{1,32}\" required></label> \
<button class=\"btn\" type=\"submit\" data-testid=\"sign-in\">Sign in</button></form>\
<p class=\"muted\">Lowercase letters, digits, - and _.</p></div>";

#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    name: String,
}

/// `POST /signin`.
pub(crate) async fn sign_in(State(ctx): State<AppCtx>, Form(form): Form<SignIn>) -> Response {
    let name = form.name.trim();
    if !valid_name(name) {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_name",
            "That name cannot be used",
            "Demo user names are 1 to 32 lowercase letters, digits, - or _.",
            "Go back and pick another name.",
        );
    }
    with_cookie(see_other("/"), &ctx.sessions.cookie_for(name))
}

/// `POST /signout`.
pub(crate) async fn sign_out(
    State(ctx): State<AppCtx>,
    user: MaybeUser,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check(&ctx, user, &form) {
        return r;
    }
    with_cookie(see_other("/"), &Sessions::clear_cookie())
}

fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `POST /connect`: a connect session for the user, then off to the broker's connect link.
pub(crate) async fn connect(
    State(ctx): State<AppCtx>,
    user: MaybeUser,
    Form(form): Form<CsrfForm>,
) -> Response {
    let user = match check(&ctx, user, &form) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let return_to = format!("{}/connected", ctx.app_url);
    match ctx.broker.connect_session(&user, &return_to).await {
        Ok(url) => see_other(&url),
        Err(e) => broker_down(&e.code),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Returned {
    connection_id: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
}

/// `GET /connected`: where the broker sends the browser back.
pub(crate) async fn connected(Query(q): Query<Returned>) -> Response {
    match (q.outcome.as_deref(), q.connection_id.as_deref()) {
        (Some("created" | "updated"), Some(id)) => {
            let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
            see_other(&format!("/connections/{id}"))
        }
        (Some("access_denied"), _) => problem(
            StatusCode::OK,
            "access_denied",
            "You declined access at Cal.com",
            "Nothing was connected, and Acme Planner cannot see your Cal.com calendar.",
            "If that was a mistake, click \"Connect Cal.com\" again and choose Allow.",
        ),
        _ => {
            let why = match q.error.as_deref() {
                Some("exchange_failed") => "Cal.com did not issue tokens for this connection.",
                Some("callback_rejected") => {
                    "Cal.com's answer did not match this connection attempt."
                }
                Some("identity_unknown") => "Cal.com did not say whose account this is.",
                Some("store_failed") => "The connection could not be saved.",
                _ => "The connection attempt did not finish.",
            };
            problem(
                StatusCode::OK,
                "connect_failed",
                "Cal.com was not connected",
                why,
                "Click \"Connect Cal.com\" to start again.",
            )
        }
    }
}

/// The broker could not be reached or answered with an error.
pub(crate) fn broker_down(code: &str) -> Response {
    problem(
        StatusCode::BAD_GATEWAY,
        "broker_error",
        "The connection service did not answer",
        &format!("The calconnect broker answered `{code}`."),
        "Check the terminal running `calconnect demo`, then reload this page.",
    )
}

/// Unknown paths.
pub(crate) async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not_found",
        "Page not found",
        "There is no page at this address.",
        "Start from the home page.",
    )
    .into_response()
}
