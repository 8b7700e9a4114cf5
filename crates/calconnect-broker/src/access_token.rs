//! `POST /api/v1/connections/{id}/access-token` → `{access_token, expires_at}`: the only place a
//! token leaves the broker. Always fresh: the keeper refreshes first when the token is within its
//! margin of expiry (docs/architecture.md §3.5).

use crate::api_keys::Authenticated;
use crate::error::ApiError;
use crate::extract::ConnectionPath;
use crate::state::{AppState, rfc3339};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use calconnect::{keeper::FreshToken, keeper::KeeperError};
use serde::Serialize;

/// The answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccessTokenResponse {
    /// The bearer token for Cal.com API v2.
    pub access_token: String,
    /// Its expiry (RFC 3339).
    pub expires_at: String,
}

/// A fresh access token for Cal.com API v2 (the only place a token leaves the broker).
#[utoipa::path(post, path = "/api/v1/connections/{id}/access-token", operation_id = "getAccessToken", tag = "tokens",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, description = "A token valid for at least a few minutes", body = AccessTokenResponse), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such connection", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The user must reconnect", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Cal.com or the store unavailable; retry", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn access_token(
    State(state): State<AppState>,
    _auth: Authenticated,
    ConnectionPath(id): ConnectionPath,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let result = state.keeper.access_token(id).await;
    respond(&state, result, started)
}

/// Refreshes the connection now, whatever its token's expiry, and returns the new token. Cal.com
/// rotates the refresh token on every refresh (docs/calcom.md §3.4), so this is for a person's
/// "refresh now" button or an app that knows its token went bad — not for every request.
#[utoipa::path(post, path = "/api/v1/connections/{id}/refresh", operation_id = "refreshConnection", tag = "tokens",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, description = "The token from a refresh made just now", body = AccessTokenResponse), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such connection", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The user must reconnect", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Cal.com or the store unavailable; retry", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    _auth: Authenticated,
    ConnectionPath(id): ConnectionPath,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let result = state.keeper.refresh_now(id).await;
    respond(&state, result, started)
}

/// The token as JSON, never cached; the outcome counted in the metrics.
fn respond(
    state: &AppState,
    result: Result<FreshToken, KeeperError>,
    started: std::time::Instant,
) -> Result<Response, ApiError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(KeeperError::NeedsReauth { .. } | KeeperError::RefreshLost { .. }) => "needs_reauth",
        Err(KeeperError::NotFound { .. }) => "not_found",
        Err(_) => "error",
    };
    state.metrics.token(outcome, started.elapsed());
    let fresh = result?;
    let expires_at = rfc3339(fresh.expires_at);
    let token = fresh.access_token.expose_secret();
    let mut response = if json_safe(token) && json_safe(&expires_at) {
        // Cal.com's tokens are JWTs (base64url and dots) and the expiry is RFC 3339: nothing to
        // escape, so the body is written directly rather than through serde_json's escaper
        // (a tenth of this endpoint's work, issue 15). It is the same JSON as the fallback's.
        let mut body = String::with_capacity(token.len() + expires_at.len() + 36);
        body.push_str("{\"access_token\":\"");
        body.push_str(token);
        body.push_str("\",\"expires_at\":\"");
        body.push_str(&expires_at);
        body.push_str("\"}");
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    } else {
        Json(AccessTokenResponse {
            access_token: token.to_owned(),
            expires_at,
        })
        .into_response()
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Whether `s` can stand in a JSON string as it is (no quote, backslash or control character):
/// the characters of a JWT and of an RFC 3339 time.
fn json_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_body_is_serde_json_s() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl-_";
        let expires_at = "2027-01-15T08:30:00Z";
        assert!(json_safe(token) && json_safe(expires_at));
        let direct = format!("{{\"access_token\":\"{token}\",\"expires_at\":\"{expires_at}\"}}");
        let serde = serde_json::to_string(&AccessTokenResponse {
            access_token: token.to_owned(),
            expires_at: expires_at.to_owned(),
        })
        .unwrap();
        assert_eq!(direct, serde);
        assert!(!json_safe("a\"b") && !json_safe("a\\b") && !json_safe("a\nb"));
    }
}
