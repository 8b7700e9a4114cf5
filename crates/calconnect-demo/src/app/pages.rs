//! Sign-in, the home page (the user's Cal.com connections and "Connect Cal.com"), starting a
//! connection through a broker connect session, and the page the broker's flow returns to.

use super::AppCtx;
use super::broker::{CallError, Conn, SessionResult};
use super::html::{APP_NAME, Who, layout, page, post_form, problem, see_other};
use super::session::{Csrf, CsrfToken, SignedIn, UserName};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::SignedCookieJar;
use maud::{Markup, html};
use serde::Deserialize;

/// Notices shown after a redirect (`?notice=`), from a fixed list (no user text is reflected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    Disconnected,
    Refreshed,
    RefreshDeferred,
    RefreshRefused,
    RefreshFailed,
    Expired,
    Revoked,
    Outage,
    Recovered,
}

impl Notice {
    const ALL: [Self; 9] = [
        Self::Disconnected,
        Self::Refreshed,
        Self::RefreshDeferred,
        Self::RefreshRefused,
        Self::RefreshFailed,
        Self::Expired,
        Self::Revoked,
        Self::Outage,
        Self::Recovered,
    ];

    /// The notice a `?notice=` names, if any (the inverse of [`Notice::key`]).
    pub(crate) fn from_query(key: Option<&str>) -> Option<Self> {
        let key = key?;
        Self::ALL.into_iter().find(|n| n.key() == key)
    }

    /// The `?notice=` value (also the page's `data-notice`).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Refreshed => "refreshed",
            Self::RefreshDeferred => "refresh-deferred",
            Self::RefreshRefused => "refresh-refused",
            Self::RefreshFailed => "refresh-failed",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Outage => "outage",
            Self::Recovered => "recovered",
        }
    }

    fn bad(self) -> bool {
        matches!(
            self,
            Self::Revoked
                | Self::Outage
                | Self::RefreshDeferred
                | Self::RefreshRefused
                | Self::RefreshFailed
        )
    }

    fn text(self) -> &'static str {
        match self {
            Self::Disconnected => {
                "Disconnected. Cal.com has no revocation endpoint, so the app stays listed in the user's Cal.com settings and the last access token works until it expires."
            }
            Self::Refreshed => "Refreshed: Cal.com issued a new access token.",
            Self::RefreshDeferred => {
                "The refresh did not happen: Cal.com (or the broker's database) is unavailable right now. The connection stays active and its current access token is used until it expires; the broker retries."
            }
            Self::RefreshRefused => {
                "The refresh was refused: Cal.com no longer accepts this connection's grant. Reconnect Cal.com to go on."
            }
            Self::RefreshFailed => {
                "The refresh failed inside the broker; its log says why. The connection was not changed."
            }
            Self::Expired => {
                "Demo: Cal.com's clock moved past the access token's expiry, so Cal.com answers it with a 401; on that the broker refreshes the token and retries the call. The countdown and the last refresh below show whether it could."
            }
            Self::Revoked => "Demo: the grant was revoked at Cal.com and the access token ran out.",
            Self::Outage => {
                "Demo: Cal.com's clock moved past the access token's expiry, and Cal.com's token endpoint answers 503 for the next minute, so the broker cannot refresh the token yet. The connection stays active and the broker retries; reload after a minute to watch it recover."
            }
            Self::Recovered => "Demo: Cal.com's token endpoint works again.",
        }
    }
}

impl maud::Render for Notice {
    fn render(&self) -> Markup {
        html! { div.notice.bad[self.bad()] data-notice=(self.key()) { (self.text()) } }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct HomeQuery {
    notice: Option<String>,
}

/// A webhook event the app received: its type and connection id.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) kind: String,
    pub(crate) connection_id: String,
}

/// What the home page shows a signed-in user.
#[derive(Debug)]
struct Home<'a> {
    who: Who<'a>,
    notice: Option<Notice>,
    connections: &'a [Conn],
    /// The latest webhook events for these connections (at most 5).
    webhooks: Vec<Received>,
    /// The names the sandbox's sign-in page offers.
    cal_users: Vec<String>,
    now: time::OffsetDateTime,
}

fn home_page(h: &Home<'_>) -> Markup {
    let body = html! {
        @if let Some(n) = h.notice { (n) }
        div.card {
            h1 { "Your Cal.com connections" }
            @if h.connections.is_empty() {
                p.muted data-testid="no-connections" { "No Cal.com account connected yet." }
            } @else {
                div.scroll { table {
                    tr { th scope="col" { "Account" } th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Connected" } }
                    @for c in h.connections {
                        tr {
                            td {
                                a href={ "/connections/" (c.id) } data-testid="connection-link" {
                                    (c.account_label())
                                }
                            }
                            td { span.status.(c.status) { (c.status) } }
                            td.muted { (c.status_reason) }
                            td.muted {
                                @match super::when::parse(&c.created_at) {
                                    Some(t) => { time datetime=(c.created_at) { (super::when::ago(t, h.now)) } }
                                    None => { (c.created_at) }
                                }
                            }
                        }
                    }
                } }
            }
            p { (post_form("/connect", h.who.csrf, "Connect Cal.com", "", Some("connect"))) }
            p.muted data-testid="cal-users" {
                "The button asks the broker for a connect link and sends you to Cal.com's consent screen \
                 (here: the local sandbox, where you sign in by picking "
                @for (i, u) in h.cal_users.iter().enumerate() {
                    @if i > 0 { @if i + 1 == h.cal_users.len() { " or " } @else { ", " } }
                    b { (u) }
                }
                ")."
            }
        }
        p.muted {
            "Operators: " a href="/admin" { "dashboard" } " (user " code { "admin" }
            ", password printed by " code { "calconnect demo" } ")."
        }
        @if !h.webhooks.is_empty() {
            div.card {
                h2 { "Webhooks this app received" }
                ul data-testid="webhooks" {
                    @for w in &h.webhooks {
                        li { code { (w.kind) } " for " code { (w.connection_id) } }
                    }
                }
            }
        }
    };
    layout("Connections", Some(h.who), body)
}

/// The sign-in field's `pattern`: [`UserName::parse`]'s rule, valid under both the `u` and the
/// `v` regular-expression flags.
const NAME_PATTERN: &str = r"[a-z0-9_\-]{1,32}";

fn sign_in_page() -> Markup {
    let body = html! {
        div.card {
            h1 { "Sign in to " (APP_NAME) }
            p { "This demo app has no passwords: pick a name. Your Cal.com connections belong to it." }
            form method="post" action="/signin" {
                label for="name" { "Name" }
                " "
                // Chromium compiles `pattern` with the `v` flag, where a `-` in a class must be
                // escaped; `\-` is valid with the `u` flag too.
                input #name name="name" value="ann" pattern=(NAME_PATTERN) maxlength="32" required
                    autocomplete="username" aria-describedby="name-rule"
                    title="1 to 32 lowercase letters, digits, - or _";
                " "
                button.btn type="submit" data-testid="sign-in" { "Sign in" }
            }
            p.muted #name-rule { "1 to 32 lowercase letters, digits, - and _." }
        }
    };
    layout("Sign in", None, body)
}

/// `GET /`.
pub(crate) async fn home(
    State(ctx): State<AppCtx>,
    user: Option<SignedIn>,
    Query(q): Query<HomeQuery>,
) -> Response {
    let Some(SignedIn(user)) = user else {
        return page(StatusCode::OK, sign_in_page());
    };
    let csrf: CsrfToken = ctx.sessions.csrf(&user);
    let list = match ctx.broker.connections(user.as_str()).await {
        Ok(list) => list,
        Err(e) => return broker_down(&e.code),
    };
    let webhooks = ctx
        .received
        .lock()
        .map(|r| {
            r.iter()
                .filter(|w| list.iter().any(|c| c.id == w.connection_id))
                .take(5)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let home = Home {
        who: Who {
            user: &user,
            csrf: &csrf,
        },
        notice: Notice::from_query(q.notice.as_deref()),
        connections: &list,
        webhooks,
        cal_users: ctx
            .sandbox
            .users()
            .into_iter()
            .map(|u| format!("{} ({})", u.name, u.username))
            .collect(),
        now: ctx.clock.now(),
    };
    page(StatusCode::OK, home_page(&home))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    name: String,
}

/// `POST /signin`.
pub(crate) async fn sign_in(jar: SignedCookieJar, Form(form): Form<SignIn>) -> Response {
    let Some(name) = UserName::parse(form.name.trim()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_name",
            "That name cannot be used",
            "Demo user names are 1 to 32 lowercase letters, digits, - or _.",
            "Go back and pick another name.",
        );
    };
    (
        jar.add(super::session::Sessions::cookie_for(&name)),
        see_other("/"),
    )
        .into_response()
}

/// `POST /signout`.
pub(crate) async fn sign_out(jar: SignedCookieJar, _: Csrf) -> Response {
    (
        jar.remove(super::session::Sessions::session_cookie()),
        see_other("/"),
    )
        .into_response()
}

/// `POST /connect`: a connect session for the user, then off to the broker's connect link.
pub(crate) async fn connect(State(ctx): State<AppCtx>, Csrf(user): Csrf) -> Response {
    let return_to = format!("{}/connected", ctx.app_url);
    match ctx.broker.connect_session(user.as_str(), &return_to).await {
        Ok(url) => see_other(&url),
        Err(e) => broker_down(&e.code),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Returned {
    connection_id: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    session_id: Option<String>,
    result: Option<String>,
}

/// `GET /connected`: where the broker sends the browser back.
///
/// Anyone can type a query, and a connect link finishes in whichever browser opens it. So when
/// the broker adds the flow's one-time `result`, the app redeems it (its backend asks the
/// broker, with its API key) and trusts only the answer, after checking that the flow was
/// started for the user signed in in this browser. A link forwarded to someone else fails that
/// check: the connection it made is removed and the page says so (issue 14, "the app can confirm
/// who finished the flow").
pub(crate) async fn connected(
    State(ctx): State<AppCtx>,
    user: Option<SignedIn>,
    Query(q): Query<Returned>,
) -> Response {
    let (Some(session_id), Some(result)) = (q.session_id.as_deref(), q.result.as_deref()) else {
        // Nothing to confirm: only pages follow, and a connection's page shows it to its
        // owner only.
        return ended(
            q.outcome.as_deref(),
            q.connection_id.as_deref(),
            q.error.as_deref(),
        );
    };
    let r = match ctx.broker.redeem(session_id, result).await {
        Ok(r) => r,
        Err(CallError { status: 410, .. }) => {
            return problem(
                StatusCode::OK,
                "result_used",
                "This connection attempt was already confirmed",
                "This page was opened before (perhaps through the back button), and its result counts once.",
                "Your connections are on the home page.",
            );
        }
        Err(CallError {
            status: 400 | 404, ..
        }) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "result_unknown",
                "This connection attempt could not be confirmed",
                "The connection service does not know the result this page was opened with.",
                "Click \"Connect Cal.com\" to start again.",
            );
        }
        Err(e) => return broker_down(&e.code),
    };
    let user = user.map(|SignedIn(u)| u);
    match &user {
        Some(u) if u.as_str() == r.end_user_id => ended(
            Some(&r.outcome),
            r.connection_id.as_deref(),
            r.error.as_deref(),
        ),
        _ => someone_elses_link(&ctx, user.as_ref(), &r).await,
    }
}

/// The flow of `r` was started for another user than the one signed in here (or nobody is):
/// a connection it created is removed, and the page says what happened.
async fn someone_elses_link(ctx: &AppCtx, user: Option<&UserName>, r: &SessionResult) -> Response {
    let here = match user {
        Some(u) => format!("you are signed in to {APP_NAME} as {}", u.as_str()),
        None => format!("nobody is signed in to {APP_NAME} in this browser"),
    };
    let what = match (r.outcome.as_str(), r.connection_id.as_deref()) {
        ("created", Some(id)) => match ctx.broker.delete(id).await {
            Ok(()) => format!("The Cal.com account connected through it has been disconnected again, so it is not linked to anyone else's {APP_NAME} account."),
            Err(e) => {
                tracing::warn!(connection = id, code = %e.code, "removing a connection made through someone else's link failed");
                format!(
                    "The Cal.com account connected through it could not be disconnected (the connection service answered `{}`): an operator must remove connection {id}.",
                    e.code
                )
            }
        },
        ("updated", Some(_)) => "It reached a Cal.com account that was already connected for that user; that connection was left with its owner, and nothing was connected for you.".to_owned(),
        _ => "Nothing was connected.".to_owned(),
    };
    problem(
        StatusCode::FORBIDDEN,
        "someone_elses_link",
        "This connect link was made for someone else",
        &format!(
            "The link you just finished was made for another {APP_NAME} user, but {here}. {APP_NAME} cannot tell that whoever finished it is that user, so it does not keep the result. {what}"
        ),
        &format!(
            "To connect your own Cal.com account, sign in to {APP_NAME} as yourself and click \"Connect Cal.com\". Do not finish a connect link someone else sent you."
        ),
    )
}

/// The page for how a flow ended (confirmed, or with nothing to confirm).
fn ended(outcome: Option<&str>, connection_id: Option<&str>, error: Option<&str>) -> Response {
    match (outcome, connection_id) {
        (Some("created" | "updated"), Some(id)) => {
            see_other(&format!("/connections/{}", super::connection::enc(id)))
        }
        (Some("access_denied"), _) => problem(
            StatusCode::OK,
            "access_denied",
            "You declined access at Cal.com",
            &format!("Nothing was connected, and {APP_NAME} cannot see your Cal.com calendar."),
            "If that was a mistake, click \"Connect Cal.com\" again and choose Allow.",
        ),
        _ => {
            let why = match error {
                Some("exchange_failed") => "Cal.com did not issue tokens for this connection.",
                Some("callback_rejected") => {
                    "Cal.com's answer did not match this connection attempt."
                }
                Some("identity_unknown") => "Cal.com did not say whose account this is.",
                Some("store_failed") => "The connection could not be saved.",
                Some("conflict") => {
                    "This Cal.com account is already connected for another Acme Planner user, so it was not connected again."
                }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::broker::Identity;

    #[test]
    fn every_notice_is_found_by_its_key_and_nothing_else_is() {
        for n in Notice::ALL {
            assert_eq!(Notice::from_query(Some(n.key())), Some(n));
        }
        assert_eq!(Notice::from_query(Some("<script>")), None);
        assert_eq!(Notice::from_query(None), None);
    }

    #[test]
    fn the_home_page_escapes_connection_fields_and_webhooks() {
        let user = UserName::parse("ann").unwrap();
        let csrf = super::super::session::Sessions::random()
            .unwrap()
            .csrf(&user);
        let evil = r#"<script>alert("x")</script>'"#;
        let conn = Conn {
            id: "c1".into(),
            end_user_id: "ann".into(),
            cal_identity: Identity {
                kind: evil.into(),
                id: 1,
            },
            cal_profile: None,
            scopes: vec![evil.into()],
            status: "active".into(),
            status_reason: evil.into(),
            access_token_expires_at: None,
            last_refreshed_at: evil.into(),
            created_at: evil.into(),
        };
        let html = home_page(&Home {
            who: Who {
                user: &user,
                csrf: &csrf,
            },
            notice: Notice::from_query(Some("<b>")),
            connections: &[conn],
            webhooks: vec![Received {
                kind: evil.into(),
                connection_id: evil.into(),
            }],
            cal_users: vec![evil.into()],
            now: time::OffsetDateTime::UNIX_EPOCH,
        })
        .into_string();
        assert!(
            !html.contains("<script>") && !html.contains("&lt;b&gt;"),
            "{html}"
        );
        assert!(!html.contains(r#""x""#), "{html}");
        assert!(html.contains(r#"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'"#));
        assert!(
            !html.contains("data-notice"),
            "unknown notices are not shown"
        );
    }
}
