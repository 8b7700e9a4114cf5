//! `POST /api/v1/connections/{id}/access-token` → `{access_token, expires_at}`: the only place a
//! token leaves the broker. Always fresh: the keeper refreshes first when the token is within its
//! margin of expiry (docs/architecture.md §3.5).

use crate::api_keys::Authenticated;
use crate::connections::parse_id;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::{AppState, rfc3339};
use crate::tokens::TokenError;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccessTokenResponse {
    /// The bearer token for Cal.com API v2.
    pub access_token: String,
    /// Its expiry (RFC 3339).
    pub expires_at: String,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotFound => ApiError::not_found("no such connection"),
            TokenError::Reauth { status, reason } => ApiError::new(
                StatusCode::CONFLICT,
                "connection_needs_reauth",
                format!(
                    "the connection is {status} ({reason}): create a connect session and send the user through it again"
                ),
            ),
            TokenError::Transient(why) => {
                tracing::warn!(reason = %why, "no token for now");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "Cal.com or the store is unavailable for now; the connection is still active, retry shortly",
                )
            }
            TokenError::Internal(why) => {
                tracing::error!(reason = %why, "token failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the broker failed to get a token; see its logs",
                )
            }
        }
    }
}

/// A fresh access token for Cal.com API v2 (the only place a token leaves the broker).
#[utoipa::path(post, path = "/api/v1/connections/{id}/access-token", tag = "tokens",
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
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let started = std::time::Instant::now();
    let result = state.tokens.access_token(id).await;
    respond(&state, result, started)
}

/// Refreshes the connection now, whatever its token's expiry, and returns the new token. Cal.com
/// rotates the refresh token on every refresh (docs/calcom.md §3.4), so this is for a person's
/// "refresh now" button or an app that knows its token went bad — not for every request.
#[utoipa::path(post, path = "/api/v1/connections/{id}/refresh", tag = "tokens",
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
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let started = std::time::Instant::now();
    let result = state.tokens.refresh_now(id).await;
    respond(&state, result, started)
}

/// The token as JSON, never cached; the outcome counted in the metrics.
fn respond(
    state: &AppState,
    result: Result<crate::tokens::Fresh, TokenError>,
    started: std::time::Instant,
) -> Result<Response, ApiError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(TokenError::Reauth { .. }) => "needs_reauth",
        Err(TokenError::NotFound) => "not_found",
        Err(_) => "error",
    };
    state.metrics.token(outcome, started.elapsed());
    let fresh = result?;
    let body = AccessTokenResponse {
        access_token: fresh.access_token.expose_secret().to_owned(),
        expires_at: rfc3339(fresh.expires_at),
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}
