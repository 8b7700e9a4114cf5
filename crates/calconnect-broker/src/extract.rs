//! Extractors whose rejections are [`ApiError`]s (JSON `{error: {code, message}}`), not axum's
//! plain-text bodies.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use calconnect::store::ConnectionId;

/// `Json<T>` with an [`ApiError`] rejection.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` with an [`ApiError`] rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The `{id}` of a `/connections/{id}/…` route as a [`ConnectionId`]; anything that is not one
/// is 404 `not_found` (an unknown id and a malformed one look the same).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionPath(pub ConnectionId);

impl<S: Send + Sync> FromRequestParts<S> for ConnectionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("no such connection"))?;
        let id = params
            .iter()
            .find(|(name, _)| *name == "id")
            .map(|(_, value)| value)
            .ok_or_else(|| ApiError::not_found("no such connection"))?;
        connection_id(id).map(Self)
    }
}

/// A decoded `{id}` path parameter as a [`ConnectionId`]: 404 `not_found` unless a UUID.
pub(crate) fn connection_id(id: &str) -> Result<ConnectionId, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(ConnectionId::from_uuid)
        .map_err(|_| ApiError::not_found("no such connection"))
}
