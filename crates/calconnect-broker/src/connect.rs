//! The browser's part: `GET /connect/{token}` binds the browser with a cookie and sends it to
//! Cal.com's authorize URL; `GET /oauth/callback` checks the answer against the pending
//! authorization (state, browser binding, expiry: docs/architecture.md §3.1–§3.2), exchanges the code
//! and saves the connection (step 3–4), then redirects to `return_to` or shows a page.
//!
//! The pending authorization lives in the shared store (so a flow started on one instance can
//! finish on another), sealed whole: its state and PKCE verifier never reach the database in clear.

use crate::pages::Page;
use crate::sessions;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use calconnect::connect::{CompleteError, ConnectRequest, FinishError, Finished};
use calconnect::store::{EndUserId, StateKey};
use calconnect::{AuthorizeOptions, Callback, CallbackError};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

/// Cookie name prefix; the rest is the first 16 hex digits of the state's digest, so parallel
/// flows in one browser do not overwrite each other's binding.
const COOKIE_PREFIX: &str = "calconnect_flow_";
/// The flow cookie is sent back to the callback only.
const COOKIE_PATH: &str = "/oauth/callback";

fn cookie_name(state_key: &StateKey) -> String {
    let hex = state_key.to_hex();
    format!("{COOKIE_PREFIX}{}", &hex[..16])
}

fn flow_cookie(state: &AppState, name: String, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.public_base_url.scheme() == "https")
        .build()
}

fn used_up() -> Response {
    Page::new(
        StatusCode::GONE,
        "link_used",
        "This connect link was already used",
        "Each connect link works once. Go back to the application and start connecting again to get a new one.",
    )
    .into_response()
}

fn unavailable(e: &dyn std::error::Error) -> Response {
    tracing::warn!(error = %e, "connect flow: dependency unavailable");
    Page::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Temporarily unavailable",
        "The connection service cannot continue right now. Try again in a minute.",
    )
    .into_response()
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /connect/{token}`.
pub(crate) async fn connect(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
) -> Response {
    let found = match sessions::find(&state.db, &token).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Page::new(
                StatusCode::NOT_FOUND,
                "unknown_link",
                "Unknown connect link",
                "This connect link is not valid. Go back to the application and start again.",
            )
            .into_response();
        }
        Err(e) => return unavailable(&e),
    };
    if found.consumed {
        return used_up();
    }
    let session = &found.session;
    if session.expires_at_ms <= state.now_ms() {
        return Page::new(
            StatusCode::GONE,
            "expired_link",
            "This connect link has expired",
            "Go back to the application and start connecting again.",
        )
        .into_response();
    }
    let (Ok(options), Ok(end_user)) = (
        AuthorizeOptions::new(session.scopes.iter().cloned()),
        EndUserId::new(&session.end_user_id),
    ) else {
        return Page::start_again("invalid_session", "The connect link is damaged.")
            .into_response();
    };
    let mut request = ConnectRequest::new(end_user, options.show_account_selector(session.team));
    if let Some(to) = &session.return_to {
        request = request.return_to(to.clone());
    }
    let started = match state.connector.start(request, &mut OsRng).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    // Only the link's latest flow can finish; a used-up or much-reopened link starts nothing.
    match sessions::opened(&state.db, &found.id, &started.state_key.to_hex()).await {
        Ok(true) => {}
        Ok(false) => return used_up(),
        Err(e) => return unavailable(&e),
    }
    let cookie = flow_cookie(
        &state,
        cookie_name(&started.state_key),
        started.browser_binding.expose_secret().to_owned(),
    )
    .into_owned();
    let mut cookie = cookie;
    cookie.set_max_age(time::Duration::minutes(10));
    no_store(
        (
            jar.add(cookie),
            Redirect::to(started.authorize_url.as_str()),
        )
            .into_response(),
    )
}

/// `GET /oauth/callback`: the connector finishes; this maps its outcome to a redirect to
/// `return_to` (with `outcome`, `connection_id` or `error`) or to a page.
pub(crate) async fn callback(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok(callback) = Callback::parse(query.as_deref().unwrap_or("")) else {
        return start_again(
            "malformed_callback",
            "The answer from Cal.com was malformed.",
        );
    };
    let Some(key) = callback.state_key() else {
        return start_again("missing_state", "The answer from Cal.com has no state.");
    };
    let name = cookie_name(&key);
    let Some(binding) = jar
        .get(&name)
        .map(|c| SecretString::from(c.value().to_owned()))
    else {
        return start_again(
            "missing_cookie",
            "This browser did not start this connection, or its cookie expired.",
        );
    };
    // Only the browser that started the flow gets past the claim; then the link is used up.
    let ending = match state.connector.claim(callback, &binding).await {
        Err(e) => failure_page(&state, e).await,
        Ok(claim) => {
            let now = state.now_ms();
            match sessions::consume(&state.db, &claim.state_key().to_hex(), now).await {
                Err(e) => Failure::Page(unavailable(&e)),
                Ok(sessions::Consumed::Already) => Failure::Page(used_up()),
                Ok(sessions::Consumed::Unknown) => Failure::Page(start_again(
                    "unknown_state",
                    "This answer belongs to an earlier attempt with this link, or to no link of this service.",
                )),
                Ok(sessions::Consumed::Now(session_id)) => {
                    let result = state.connector.finish_claim(claim, &mut OsRng).await;
                    let ending = match result {
                        Ok(finished) => Failure::Back(finished_page(&state, finished)),
                        Err(e) => failure_page(&state, e).await,
                    };
                    with_result(&state, &session_id, ending).await
                }
            }
        }
    };
    let (return_to, params, page) = match ending {
        Failure::Back(ending) => ending,
        Failure::Page(response) => return response,
    };
    let response = match return_to.as_deref().and_then(|r| url::Url::parse(r).ok()) {
        Some(mut url) => {
            url.query_pairs_mut().extend_pairs(&params);
            Redirect::to(url.as_str()).into_response()
        }
        None => page.into_response(),
    };
    let cleared = jar.remove(flow_cookie(&state, name, String::new()));
    no_store((cleared, response).into_response())
}

/// Where a flow ends: `return_to` (if any), the parameters for it, and the page otherwise.
type Ending = (Option<String>, Vec<(&'static str, String)>, Page);

/// A failed finish: before the pending authorization was consumed only a page can be shown;
/// after, the browser goes back to `return_to` when there is one.
enum Failure {
    Page(Response),
    Back(Ending),
}

/// Records the flow's outcome on its session with a one-time result token, and adds
/// `session_id` and `result` to the redirect so the app's backend can redeem it
/// (`GET /api/v1/connect-sessions/{id}?result=…`).
async fn with_result(state: &AppState, session_id: &str, ending: Failure) -> Failure {
    let Failure::Back((return_to, mut params, page)) = ending else {
        return ending;
    };
    let value = |key: &str| {
        params
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    let outcome = match (value("outcome"), value("error")) {
        (Some(o), Some(e)) => format!("{o}:{e}"),
        (Some(o), None) => o,
        _ => "error".to_owned(),
    };
    let connection_id = value("connection_id");
    let (_, result) = sessions::new_id_and_token();
    match sessions::record_outcome(
        &state.db,
        session_id,
        &outcome,
        connection_id.as_deref(),
        &sessions::token_hash(&result),
    )
    .await
    {
        Ok(()) => {
            params.push(("session_id", session_id.to_owned()));
            params.push(("result", result));
        }
        Err(e) => tracing::warn!(error = %e, "cannot record a connect session's outcome"),
    }
    Failure::Back((return_to, params, page))
}

fn start_again(outcome: &'static str, why: &str) -> Response {
    Page::start_again(outcome, why).into_response()
}

fn finished_page(state: &AppState, finished: Finished) -> Ending {
    let word = finished.connected.outcome.as_str();
    state.metrics.flow(word);
    state.webhooks_nudge();
    let id = finished.connected.connection.id.to_string();
    let page = Page::new(
        StatusCode::OK,
        word,
        "Connected",
        "Your Cal.com account is connected. You can close this window.",
    );
    let params = vec![("connection_id", id), ("outcome", word.to_owned())];
    (finished.return_to, params, page)
}

async fn failure_page(state: &AppState, e: FinishError) -> Failure {
    let error = match e {
        FinishError::MissingState => {
            return Failure::Page(start_again(
                "missing_state",
                "The answer from Cal.com has no state.",
            ));
        }
        FinishError::UnknownState => {
            return Failure::Page(start_again(
                "unknown_state",
                "This answer was already used, was not issued by this service, or belongs to another browser.",
            ));
        }
        FinishError::Expired => {
            return Failure::Page(start_again(
                "expired",
                "The connection attempt took longer than 10 minutes.",
            ));
        }
        FinishError::Unreadable { reason } => {
            tracing::error!(%reason, "cannot open a pending authorization: is its key still configured?");
            return Failure::Page(start_again(
                "internal",
                "The stored connection attempt is unreadable.",
            ));
        }
        FinishError::Store(e) => return Failure::Page(unavailable(&e)),
        FinishError::Failed { return_to, error } => (return_to, error),
        other => return Failure::Page(unavailable(&other)),
    };
    let (return_to, error) = error;
    let (outcome, error_word, page) = match &error {
        CompleteError::Callback(CallbackError::AccessDenied { .. }) => (
            "access_denied",
            None,
            Page::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "Connection declined",
                "You declined access at Cal.com, so nothing was connected. You can close this window.",
            ),
        ),
        CompleteError::Callback(CallbackError::TeamNotAllowed { .. }) => (
            "error",
            Some("team_not_allowed"),
            Page::new(
                StatusCode::FORBIDDEN,
                "team_not_allowed",
                "Cal.com refused the team",
                "Only an owner or admin of a Cal.com team can connect it, so nothing was connected. Go back to the application and connect again, choosing your own account or a team you administer.",
            ),
        ),
        CompleteError::Callback(e) => {
            tracing::info!(error = %e, "callback rejected");
            (
                "error",
                Some("callback_rejected"),
                Page::start_again(
                    "callback_rejected",
                    "Cal.com did not complete the authorization.",
                ),
            )
        }
        CompleteError::Exchange(e) => {
            tracing::warn!(error = %e, "code exchange failed");
            (
                "error",
                Some("exchange_failed"),
                Page::new(
                    StatusCode::BAD_GATEWAY,
                    "exchange_failed",
                    "Cal.com did not complete the connection",
                    "Cal.com refused or failed to issue tokens. Go back to the application and try again.",
                ),
            )
        }
        CompleteError::Conflict {
            connection_id,
            existing_end_user,
            requested_end_user,
        } => {
            tracing::warn!(%connection_id, "connect flow refused: the Cal.com account is connected for another end user");
            if let Err(e) = crate::webhooks::conflict(
                state,
                &connection_id.to_string(),
                existing_end_user.as_str(),
                requested_end_user.as_str(),
            )
            .await
            {
                tracing::warn!(error = %e, "cannot queue the connection.conflict webhook");
            }
            (
                "error",
                Some("conflict"),
                Page::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "This Cal.com account is already connected",
                    "This Cal.com account is already connected to another account of the application, so nothing was changed. Sign in to the application with that account, or ask its owner to disconnect it first.",
                ),
            )
        }
        CompleteError::Busy(e) => {
            tracing::warn!(error = %e, "code exchange not sent: the token-endpoint budget is spent");
            (
                "error",
                Some("busy"),
                Page::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "Cal.com is busy",
                    "Too many connections are being made at once for Cal.com's rate limit, so nothing was connected. Wait a minute, then go back to the application and connect again.",
                ),
            )
        }
        CompleteError::Identity(e) => {
            tracing::warn!(error = %e, "cannot tell whose account the token is for");
            (
                "error",
                Some("identity_unknown"),
                Page::new(
                    StatusCode::BAD_GATEWAY,
                    "identity_unknown",
                    "Connection failed",
                    "Cal.com did not say whose account this is. Try again.",
                ),
            )
        }
        other => {
            tracing::error!(error = %other, "saving the connection failed");
            (
                "error",
                Some("store_failed"),
                Page::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_failed",
                    "Connection failed",
                    "The connection could not be saved. Try again.",
                ),
            )
        }
    };
    let metric = error_word.unwrap_or(outcome);
    state.metrics.flow(metric);
    let mut params = vec![("outcome", outcome.to_owned())];
    if let Some(word) = error_word {
        params.push(("error", word.to_owned()));
    }
    Failure::Back((return_to, params, page))
}
