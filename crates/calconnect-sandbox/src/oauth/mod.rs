//! The OAuth half of the sandbox: the authorize and consent pages (`app.cal.com`), the v2 token
//! endpoint (`api.cal.com`) and the legacy web token endpoints, following `calcom-facts.md`
//! §1–§3. One module per protocol step.

mod authorize;
mod consent;
pub mod errors;
pub mod faults;
mod grants;
mod html;
mod legacy;
pub mod scopes;
mod session;
mod token;

pub(crate) use html::control_index;

use crate::state::Shared;
use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use std::sync::Arc;

/// The routes of the OAuth half (merged into the sandbox router).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/auth/oauth2/authorize",
            get(authorize::get_authorize).post(consent::post_consent),
        )
        .route(
            "/auth/login",
            get(session::login_page).post(session::login_submit),
        )
        .route("/auth/logout", post(session::logout))
        .route("/v2/auth/oauth2/token", post(token::token))
        .route("/api/auth/oauth/token", post(legacy::token))
        .route("/api/auth/oauth/refreshToken", post(legacy::refresh))
}

/// `n` random bytes from the OS, base64url without padding (codes, secrets, session ids).
pub(crate) fn random_b64url(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
