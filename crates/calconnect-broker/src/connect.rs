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
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calconnect::crypto::SealContext;
use calconnect::store::{
    BrowserBinding, CalIdentity, CalOwner, EndUserId, NewPendingAuthorization, PendingId, StateKey,
    TokensToSave, UpsertOutcome, save_connection,
};
use calconnect::{AuthorizeOptions, Callback, CallbackError, PendingAuthorization, StoreError};
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// Cookie name prefix; the rest is the first 16 hex digits of the state's digest, so parallel
/// flows in one browser do not overwrite each other's binding.
const COOKIE_PREFIX: &str = "calconnect_flow_";

fn cookie_name(state_key: &calconnect::StateKey) -> String {
    let hex = state_key.as_str();
    format!("{COOKIE_PREFIX}{}", &hex[..hex.len().min(16)])
}

fn store_key(key: &calconnect::StateKey) -> Option<StateKey> {
    let bytes: [u8; 32] = hex::decode(key.as_str()).ok()?.try_into().ok()?;
    Some(StateKey::from_bytes(bytes))
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

/// `GET /connect/{token}`.
pub(crate) async fn connect(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let session = match sessions::find(&state.db, &token).await {
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
    let now = state.clock.now();
    if session.expires_at_ms <= crate::state::unix_ms(now) {
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
    let options = options.show_account_selector(session.team);
    let (authorize_url, pending) = state.flow.start(&options, &mut OsRng);
    let key = pending.state_key();
    let Some(state_key) = store_key(&key) else {
        return Page::start_again("internal", "An internal error occurred.").into_response();
    };
    let id = PendingId::random(&mut OsRng);
    let sealed = match state.config.keyring.seal(
        &mut OsRng,
        SealContext::pending_verifier(id.as_uuid()),
        pending.to_sealable_bytes().expose_secret(),
    ) {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let mut binding_bytes = [0u8; 32];
    OsRng.fill_bytes(&mut binding_bytes);
    let binding = SecretString::from(URL_SAFE_NO_PAD.encode(binding_bytes));
    let new = NewPendingAuthorization {
        id,
        state_key,
        pkce_verifier: sealed,
        end_user,
        scopes: session.scopes.clone(),
        redirect_uri: state.flow.client().redirect_uri().as_str().to_owned(),
        return_to: session.return_to.clone(),
        browser_binding: BrowserBinding::of(&binding),
        expires_at: pending.expires_at(),
    };
    if let Err(e) = state.store.insert_pending(new).await {
        return unavailable(&e);
    }
    let secure = if state.config.public_base_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/oauth/callback; Max-Age=600; HttpOnly; SameSite=Lax{secure}",
        cookie_name(&key),
        binding.expose_secret()
    );
    let mut response = Redirect::to(authorize_url.as_str()).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn find_cookie(headers: &HeaderMap, name: &str) -> Option<SecretString> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| SecretString::from(v.to_owned()))
}

/// Where the flow ended, for `return_to` and the page.
struct Finish {
    return_to: Option<String>,
    cookie: String,
}

impl Finish {
    fn respond(self, params: &[(&str, &str)], page: Page) -> Response {
        let mut response = match self
            .return_to
            .as_deref()
            .and_then(|r| url::Url::parse(r).ok())
        {
            Some(mut url) => {
                url.query_pairs_mut().extend_pairs(params);
                Redirect::to(url.as_str()).into_response()
            }
            None => page.into_response(),
        };
        let clear = format!(
            "{}=; Path=/oauth/callback; Max-Age=0; HttpOnly; SameSite=Lax",
            self.cookie
        );
        if let Ok(v) = HeaderValue::from_str(&clear) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// `GET /oauth/callback`.
pub(crate) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok(callback) = Callback::parse(query.as_deref().unwrap_or("")) else {
        return Page::start_again(
            "malformed_callback",
            "The answer from Cal.com was malformed.",
        )
        .into_response();
    };
    let Some(key) = callback.state_key() else {
        return Page::start_again("missing_state", "The answer from Cal.com has no state.")
            .into_response();
    };
    let name = cookie_name(&key);
    let Some(binding) = find_cookie(&headers, &name) else {
        return Page::start_again(
            "missing_cookie",
            "This browser did not start this connection, or its cookie expired.",
        )
        .into_response();
    };
    let Some(store_key) = store_key(&key) else {
        return Page::start_again("unknown_state", "Unknown state.").into_response();
    };
    let stored = match state
        .store
        .consume_pending(&store_key, &BrowserBinding::of(&binding))
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound { .. }) => {
            return Page::start_again(
                "unknown_state",
                "This answer was already used, was not issued by this service, or belongs to another browser.",
            )
            .into_response();
        }
        Err(StoreError::PendingExpired) => {
            return Page::start_again(
                "expired",
                "The connection attempt took longer than 10 minutes.",
            )
            .into_response();
        }
        Err(e) => return unavailable(&e),
    };
    let finish = Finish {
        return_to: stored.return_to.clone(),
        cookie: name,
    };
    let opened = state.config.keyring.open(
        &stored.pkce_verifier,
        SealContext::pending_verifier(stored.id.as_uuid()),
    );
    let pending = match opened.map(|b| {
        PendingAuthorization::from_unsealed_bytes(&SecretSlice::from(b.expose_secret().to_vec()))
    }) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "stored pending authorization unreadable");
            return Page::start_again("internal", "The stored connection attempt is unreadable.")
                .into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open a pending authorization: is its key still configured?");
            return Page::start_again("internal", "The stored connection attempt is unreadable.")
                .into_response();
        }
    };
    let verified = match pending.verify(callback, state.clock.as_ref()) {
        Ok(v) => v,
        Err(CallbackError::AccessDenied { .. }) => {
            state.metrics.flow("access_denied");
            return finish.respond(
                &[("outcome", "access_denied")],
                Page::new(
                    StatusCode::FORBIDDEN,
                    "access_denied",
                    "Connection declined",
                    "You declined access at Cal.com, so nothing was connected. You can close this window.",
                ),
            );
        }
        Err(CallbackError::TeamNotAllowed { .. }) => {
            state.metrics.flow("team_not_allowed");
            return finish.respond(
                &[("outcome", "error"), ("error", "team_not_allowed")],
                Page::new(
                    StatusCode::FORBIDDEN,
                    "team_not_allowed",
                    "Cal.com refused the team",
                    "Only an owner or admin of a Cal.com team can connect it, so nothing was connected. Go back to the application and connect again, choosing your own account or a team you administer.",
                ),
            );
        }
        Err(e) => {
            tracing::info!(error = %e, "callback rejected");
            state.metrics.flow("callback_rejected");
            return finish.respond(
                &[("outcome", "error"), ("error", "callback_rejected")],
                Page::start_again(
                    "callback_rejected",
                    "Cal.com did not complete the authorization.",
                ),
            );
        }
    };
    let tokens = match state.flow.exchange(verified).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "code exchange failed");
            state.metrics.flow("exchange_failed");
            return finish.respond(
                &[("outcome", "error"), ("error", "exchange_failed")],
                Page::new(
                    StatusCode::BAD_GATEWAY,
                    "exchange_failed",
                    "Cal.com did not complete the connection",
                    "Cal.com refused or failed to issue tokens. Go back to the application and try again.",
                ),
            );
        }
    };
    let owner = match tokens.identity {
        Some(calconnect::CalIdentity::User(id)) => Some(CalOwner::User(id)),
        Some(calconnect::CalIdentity::Team(id)) => Some(CalOwner::Team(id)),
        _ => None,
    };
    let owner = match owner {
        Some(o) => o,
        None => match state.flow.me(&tokens.access_token).await {
            Ok(user) => CalOwner::User(user.id),
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whose account the token is for");
                return finish.respond(
                    &[("outcome", "error"), ("error", "identity_unknown")],
                    Page::new(
                        StatusCode::BAD_GATEWAY,
                        "identity_unknown",
                        "Connection failed",
                        "Cal.com did not say whose account this is. Try again.",
                    ),
                );
            }
        },
    };
    let now = state.clock.now();
    let save = TokensToSave {
        end_user: stored.end_user.clone(),
        identity: CalIdentity {
            client_id: state.flow.client().client_id().to_owned(),
            owner,
        },
        scopes: tokens
            .scopes
            .clone()
            .unwrap_or_else(|| stored.scopes.clone()),
        access_token: SecretString::from(tokens.access_token.expose_secret().to_owned()),
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| SecretString::from(t.expose_secret().to_owned())),
        access_expires_at: Some(tokens.expires_at),
        // Sliding 30-day refresh window (docs/calcom.md §3.6); only an estimate.
        refresh_expires_at_estimate: Some(now + time::Duration::days(30)),
    };
    let outcome = match save_connection(
        state.store.as_ref(),
        &state.config.keyring,
        &mut OsRng,
        save,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "saving the connection failed");
            return finish.respond(
                &[("outcome", "error"), ("error", "store_failed")],
                Page::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_failed",
                    "Connection failed",
                    "The connection could not be saved. Try again.",
                ),
            );
        }
    };
    let (word, id) = match &outcome {
        UpsertOutcome::Created(c) => ("created", c.id),
        UpsertOutcome::Updated { connection, .. } => ("updated", connection.id),
    };
    state.metrics.flow(word);
    state.webhooks_nudge();
    let id = id.to_string();
    finish.respond(
        &[("connection_id", &id), ("outcome", word)],
        Page::new(
            StatusCode::OK,
            if word == "created" {
                "created"
            } else {
                "updated"
            },
            "Connected",
            "Your Cal.com account is connected. You can close this window.",
        ),
    )
}
