//! `GET /api/v1/connections` (every connection, or one end user's, page by page),
//! `GET /api/v1/connections/{id}`, `DELETE /api/v1/connections/{id}`. Views never contain tokens
//! (only the access-token endpoint hands one out); they show who holds the Cal.com account
//! (`cal_profile`, from `GET /v2/me`).

use crate::api_keys::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiQuery, ConnectionPath};
use crate::state::{AppState, rfc3339};
use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calconnect::store::{
    AccountProfile, CalOwner, Connection, ConnectionId, ConnectionQuery, ConnectionStatus,
    EndUserId, ListCursor,
};
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
    /// Who holds it, as Cal.com last said (`GET /v2/me`, asked when connecting and about once
    /// a day after): kept while the connection is in trouble; null until Cal.com has said.
    pub cal_profile: Option<ProfileView>,
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

/// The person behind a Cal.com account (for a team connection: the team owner, who connected
/// it). Personal data: show it to the people it concerns and to operators.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileView {
    /// Display name.
    pub name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Cal.com username.
    pub username: Option<String>,
    /// When Cal.com said so.
    pub fetched_at: String,
}

impl From<&AccountProfile> for ProfileView {
    fn from(p: &AccountProfile) -> Self {
        Self {
            name: p.name.clone(),
            email: p.email.clone(),
            username: p.username.clone(),
            fetched_at: rfc3339(p.fetched_at),
        }
    }
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
            cal_profile: c.profile.as_ref().map(ProfileView::from),
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

/// Default page size of the list.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// Largest page size of the list.
pub const MAX_LIST_LIMIT: u32 = 200;

/// Query of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this end user's connections.
    #[serde(default)]
    pub end_user_id: Option<String>,
    /// Only connections with this status: `active`, `needs_reauth` or `refresh_lost`.
    #[serde(default)]
    pub status: Option<String>,
    /// At most this many (1–200, default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to go on: the `next_cursor` of the previous page, as given (with the same filters).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A page of the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionList {
    /// Oldest first (creation order).
    pub connections: Vec<ConnectionView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// An opaque cursor: where a page ended (creation time and id of its last connection).
fn encode_cursor(c: &Connection) -> String {
    let micros = c.created_at.unix_timestamp_nanos() / 1_000;
    URL_SAFE_NO_PAD.encode(format!("v1.{micros}.{}", c.id))
}

fn decode_cursor(text: &str) -> Option<ListCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut parts = text.splitn(3, '.');
    if parts.next()? != "v1" {
        return None;
    }
    let micros: i128 = parts.next()?.parse().ok()?;
    let id = uuid::Uuid::parse_str(parts.next()?).ok()?;
    Some(ListCursor {
        created_at: time::OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1_000)?)
            .ok()?,
        id: ConnectionId::from_uuid(id),
    })
}

impl ListQuery {
    /// The store query (one row more than the page, to tell whether another page follows).
    fn to_store_query(&self) -> Result<ConnectionQuery, ApiError> {
        let end_user = self
            .end_user_id
            .as_deref()
            .map(EndUserId::new)
            .transpose()
            .map_err(|e| ApiError::invalid(format!("end_user_id: {e}")))?;
        let status = self
            .status
            .as_deref()
            .map(|s| {
                ConnectionStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid("status: use active, needs_reauth or refresh_lost")
                })
            })
            .transpose()?;
        let limit = self.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit: use 1 to {MAX_LIST_LIMIT}"
            )));
        }
        let after = self
            .cursor
            .as_deref()
            .map(|c| {
                decode_cursor(c).ok_or_else(|| {
                    ApiError::invalid("cursor: pass the next_cursor of the previous page as given")
                })
            })
            .transpose()?;
        Ok(ConnectionQuery {
            status,
            end_user,
            after,
            limit: limit + 1,
        })
    }
}

/// Lists connections, oldest first, a page at a time; filter by end user and status.
#[utoipa::path(get, path = "/api/v1/connections", operation_id = "listConnections", tag = "connections", params(ListQuery),
    responses((status = 200, description = "A page of connections; follow `next_cursor` for the next", body = ConnectionList), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Store unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _auth: Authenticated,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ConnectionList>, ApiError> {
    let query = q.to_store_query()?;
    let page_size = (query.limit - 1) as usize;
    let mut list = state.store.query_connections(&query).await?;
    let next_cursor = if list.len() > page_size {
        list.truncate(page_size);
        list.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(ConnectionList {
        connections: list.iter().map(ConnectionView::from).collect(),
        next_cursor,
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
