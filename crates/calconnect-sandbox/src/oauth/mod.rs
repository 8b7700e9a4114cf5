//! The OAuth half of the sandbox: the authorize and consent pages (`app.cal.com`), the v2 token
//! endpoint (`api.cal.com`) and the legacy web token endpoints, following `docs/calcom.md`
//! §1–§3. One module per protocol step.

mod authorize;
mod consent;
pub mod errors;
pub mod faults;
pub(crate) mod grants;
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
        // The control index with a trailing slash (`Sandbox::control_url`): a nested router's
        // "/" only matches `/_sandbox`, so the slash form is registered here.
        .route("/_sandbox/", get(crate::control::index))
}

/// A 303 See Other to `location`. A registered redirect URI that cannot be a header value (raw
/// control characters from a seed file) gets an explanatory page instead of a panic.
pub(crate) fn see_other(location: &str) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse as _;
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => html::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The redirect cannot be sent as a Location header; register the redirect URI percent-encoded.",
        ),
    }
}

/// `n` random bytes from the OS, base64url without padding (codes, secrets, session ids).
pub(crate) fn random_b64url(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsendable_locations_get_a_page_not_a_panic() {
        assert_eq!(see_other("/ok?a=1").status(), 303);
        assert_eq!(see_other("http://127.0.0.1/a\nb").status(), 500);
    }
}
