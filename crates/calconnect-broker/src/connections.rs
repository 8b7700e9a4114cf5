//! `GET /api/v1/connections?end_user_id=`, `GET /api/v1/connections/{id}`,
//! `DELETE /api/v1/connections/{id}`. Views never contain tokens (only the access-token endpoint
//! hands one out).

use crate::api_keys::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiQuery, ConnectionPath};
use crate::state::{AppState, rfc3339};
use axum::Json;
use axum::extract::State;
use calconnect::store::{CalOwner, Connection, EndUserId};
use serde::{Deserialize, Serialize};

/// A connection as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    /// Connection id.
    pub id: String,
    /// The app's user.
    pub end_user_id: String,
    /// Whose Cal.com account: `{kind: "user"|"team", id}`.
    pub cal_identity: IdentityView,
    /// The OAuth client.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// `active`, `needs_reauth` or `refresh_lost`.
    pub status: &'static str,
    /// Why the status was last set.
    pub status_reason: String,
    /// When it was set.
    pub status_changed_at: String,
    /// When the current access token expires.
    pub access_token_expires_at: Option<String>,
    /// Estimated end of the refresh window (the user must reconnect after it).
    pub refresh_token_expires_at_estimate: Option<String>,
    /// Last code exchange or refresh.
    pub last_refreshed_at: String,
    /// Created.
    pub created_at: String,
    /// Last written.
    pub updated_at: String,
}

/// A Cal.com user or team.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    /// `user` or `team`.
    pub kind: &'static str,
    /// Cal.com id.
    pub id: i64,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        let (CalOwner::User(id) | CalOwner::Team(id)) = c.identity.owner;
        Self {
            id: c.id.to_string(),
            end_user_id: c.end_user.as_str().to_owned(),
            cal_identity: IdentityView {
                kind: c.identity.owner.kind(),
                id,
            },
            client_id: c.identity.client_id.clone(),
            scopes: c.scopes.clone(),
            status: c.status.as_str(),
            status_reason: c.status_reason.clone(),
            status_changed_at: rfc3339(c.status_changed_at),
            access_token_expires_at: c.access_expires_at.map(rfc3339),
            refresh_token_expires_at_estimate: c.refresh_expires_at_estimate.map(rfc3339),
            last_refreshed_at: rfc3339(c.last_refreshed_at),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// Query of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this user's connections.
    pub end_user_id: String,
}

/// The list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionList {
    /// Oldest first.
    pub connections: Vec<ConnectionView>,
}

/// Lists an end user's connections.
#[utoipa::path(get, path = "/api/v1/connections", operation_id = "listConnections", tag = "connections", params(ListQuery),
    responses((status = 200, description = "The connections", body = ConnectionList), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Store unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _auth: Authenticated,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ConnectionList>, ApiError> {
    let user = EndUserId::new(&q.end_user_id)
        .map_err(|e| ApiError::invalid(format!("end_user_id: {e}")))?;
    let list = state.store.list_for_end_user(&user).await?;
    Ok(Json(ConnectionList {
        connections: list.iter().map(ConnectionView::from).collect(),
    }))
}

/// Reads a connection: identity, scopes, status and reason, expiries. Never tokens.
#[utoipa::path(get, path = "/api/v1/connections/{id}", operation_id = "getConnection", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, description = "The connection", body = ConnectionView), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such connection", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Store unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    _auth: Authenticated,
    ConnectionPath(id): ConnectionPath,
) -> Result<Json<ConnectionView>, ApiError> {
    let c = state.store.get_connection(id).await?;
    Ok(Json(ConnectionView::from(&c)))
}

/// Answer to a delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The connection.
    pub id: String,
    /// Always true.
    pub deleted: bool,
    /// Always false: Cal.com has no revocation endpoint (docs/calcom.md §4).
    pub revoked_at_provider: bool,
    /// What that means.
    pub note: &'static str,
}

/// Deletes a connection locally (Cal.com has no revocation endpoint).
#[utoipa::path(delete, path = "/api/v1/connections/{id}", operation_id = "deleteConnection", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, description = "Deleted", body = Deleted), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such connection", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Store unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    _auth: Authenticated,
    ConnectionPath(cid): ConnectionPath,
) -> Result<Json<Deleted>, ApiError> {
    state
        .store
        .delete_connection(cid, "deleted through the API")
        .await?;
    state.keeper.forget(cid);
    state.webhooks_nudge();
    Ok(Json(Deleted {
        id: cid.to_string(),
        deleted: true,
        revoked_at_provider: false,
        note: "Deleted locally. Cal.com has no revocation endpoint: the last access token stays valid until it expires (at most 30 minutes) and the app stays listed in the user's Cal.com account.",
    }))
}
