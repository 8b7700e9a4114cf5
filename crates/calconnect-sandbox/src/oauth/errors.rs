//! Token-endpoint errors and how each endpoint renders them (`docs/calcom.md` §3.5): the v2
//! endpoint sends a bare `{error, error_description}`, the legacy web endpoints only `{error}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::borrow::Cow;

/// One failure of a token request: status, RFC 6749 `error`, Cal.com's machine `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub status: StatusCode,
    /// `invalid_request`, `invalid_grant`, `invalid_client`, `unauthorized_client`, `server_error`.
    pub error: &'static str,
    /// The v2 `error_description`: the reason, or the validator text of the input pipe.
    pub description: Cow<'static, str>,
    /// The short reason used in the call counters (equal to `description` for service errors).
    pub reason: &'static str,
}

impl TokenError {
    fn new(status: StatusCode, error: &'static str, reason: &'static str) -> Self {
        Self {
            status,
            error,
            description: Cow::Borrowed(reason),
            reason,
        }
    }

    /// 400 `invalid_request` from the v2 input pipe (§3.2), with its exact description.
    pub fn pipe(reason: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
            reason,
        }
    }

    /// 400 `invalid_request` (`pkce_missing_parameters_or_invalid_method`, legacy field checks).
    pub fn invalid_request(reason: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", reason)
    }

    /// 400 `invalid_grant` with a reason such as `code_invalid_or_expired`.
    pub fn invalid_grant(reason: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", reason)
    }

    /// 401 `invalid_client` (`client_not_found`, `invalid_client_credentials`).
    pub fn invalid_client(reason: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", reason)
    }

    /// 401 `unauthorized_client` (`client_not_approved`, `client_rejected`).
    pub fn unauthorized_client(reason: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized_client", reason)
    }

    /// The counter label, e.g. `invalid_grant:refresh_token_revoked`.
    pub fn outcome(&self) -> String {
        format!("{}:{}", self.error, self.reason)
    }

    /// The v2 body: `{"error":…,"error_description":…}`.
    pub fn v2_response(&self) -> Response {
        no_store(
            self.status,
            json!({"error": self.error, "error_description": self.description}),
        )
    }

    /// The legacy body: `{"error":…}` only.
    pub fn legacy_response(&self) -> Response {
        no_store(self.status, json!({"error": self.error}))
    }
}

/// A JSON response with `Cache-Control: no-store` and `Pragma: no-cache` (§3.5; sent on errors
/// too, which the real endpoint may not do).
pub fn no_store<T: serde::Serialize>(status: StatusCode, body: T) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}
