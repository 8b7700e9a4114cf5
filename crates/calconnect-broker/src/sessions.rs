//! `POST /api/v1/connect-sessions`: the app's backend asks for a connect link for one of its
//! users. The link (`/connect/{token}`) carries a 256-bit token; only its SHA-256 is stored.

use crate::api_keys::Authenticated;
use crate::db::{BrokerDb, DbError, at_ms, db_err};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::{AppState, rfc3339_ms, unix_ms};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calconnect::AuthorizeOptions;
use calconnect::store::EndUserId;
use calconnect_sql::{query, scopes, sqlx};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The app's id for its user (1–255 characters, no control characters).
    #[schema(min_length = 1, max_length = 255)]
    pub end_user_id: String,
    /// Scopes to request (default: the configured `client.scopes`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Where to send the browser when the flow ends (http or https URL).
    #[serde(default)]
    pub return_to: Option<String>,
    /// Let the user pick a team at Cal.com's consent screen.
    #[serde(default)]
    pub team: Option<bool>,
}

/// Response body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    /// Session id.
    pub id: String,
    /// Send the user's browser here.
    pub connect_url: String,
    /// The link stops working then (RFC 3339).
    pub expires_at: String,
}

/// A stored connect session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) end_user_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) return_to: Option<String>,
    pub(crate) team: bool,
    pub(crate) expires_at_ms: i64,
}

/// A fresh session id and 256-bit link token.
pub(crate) fn new_id_and_token() -> (String, String) {
    let mut rng = rand::rngs::OsRng;
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    let id = uuid::Builder::from_random_bytes(b).into_uuid().to_string();
    (id, token)
}

/// Creates a connect link for `end_user_id` valid for `ttl_ms` (reconnect links in webhooks).
pub(crate) async fn reconnect_link(
    state: &AppState,
    end_user_id: &str,
    scopes: Vec<String>,
    team: bool,
    ttl_ms: i64,
) -> Result<String, DbError> {
    let (id, token) = new_id_and_token();
    let now = state.now_ms();
    let session = Session {
        end_user_id: end_user_id.to_owned(),
        scopes,
        return_to: None,
        team,
        expires_at_ms: now + ttl_ms,
    };
    insert(&state.db, &id, &token_hash(&token), &session, now).await?;
    let base = state.config.public_base_url.as_str().trim_end_matches('/');
    Ok(format!("{base}/connect/{token}"))
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a connect session: a link to send the end user's browser to.
#[utoipa::path(post, path = "/api/v1/connect-sessions", tag = "connect",
    request_body = CreateSession,
    responses(
        (status = 201, description = "Created", body = SessionCreated),
        (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorResponse),
        (status = 415, description = "Not JSON", body = crate::openapi::ErrorResponse),
        (status = 422, description = "JSON of the wrong shape", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Database unavailable", body = crate::openapi::ErrorResponse)
    ),
    security(("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    _auth: Authenticated,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
    EndUserId::new(&body.end_user_id)
        .map_err(|e| ApiError::invalid(format!("end_user_id: {e}")))?;
    let scopes = body
        .scopes
        .unwrap_or_else(|| state.config.default_scopes.clone());
    if scopes.is_empty() {
        return Err(ApiError::invalid(
            "scopes: empty; list at least one scope your OAuth client is registered for (or leave `scopes` out for the configured default)",
        ));
    }
    if scopes.len() > 50 {
        return Err(ApiError::invalid("scopes: at most 50"));
    }
    AuthorizeOptions::new(scopes.iter().cloned())
        .map_err(|e| ApiError::invalid(format!("scopes: {e}")))?;
    if let Some(r) = &body.return_to {
        let ok = r.len() <= 2048
            && url::Url::parse(r).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(ApiError::invalid(
                "return_to: use an absolute http or https URL of at most 2048 characters",
            ));
        }
    }
    let (id, token) = new_id_and_token();
    let now = state.now_ms();
    let ttl_ms = i64::try_from(state.config.connect_session_ttl.whole_milliseconds()).unwrap_or(0);
    let session = Session {
        end_user_id: body.end_user_id,
        scopes,
        return_to: body.return_to,
        team: body.team.unwrap_or(false),
        expires_at_ms: now + ttl_ms,
    };
    insert(&state.db, &id, &token_hash(&token), &session, now).await?;
    let base = state.config.public_base_url.as_str().trim_end_matches('/');
    Ok((
        StatusCode::CREATED,
        Json(SessionCreated {
            id,
            connect_url: format!("{base}/connect/{token}"),
            expires_at: rfc3339_ms(session.expires_at_ms),
        }),
    ))
}

pub(crate) async fn insert(
    db: &BrokerDb,
    id: &str,
    hash: &str,
    s: &Session,
    now_ms: i64,
) -> Result<(), DbError> {
    query(
        "INSERT INTO broker_connect_sessions (id, token_hash, end_user_id, scopes, return_to, \
         team, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(hash)
    .bind(&s.end_user_id)
    .bind(&scopes::encode(&s.scopes))
    .bind(s.return_to.as_deref())
    .bind(i64::from(s.team))
    .bind(at_ms(now_ms))
    .bind(at_ms(s.expires_at_ms))
    .execute(db.sql())
    .await
    .map(|_| ())
    .map_err(db_err("creating a connect session"))
}

/// The session of a connect-link token, if any.
pub(crate) async fn find(db: &BrokerDb, token: &str) -> Result<Option<Session>, DbError> {
    let hash = token_hash(token);
    let err = db_err("reading a connect session");
    let row = query(
        "SELECT end_user_id, scopes, return_to, team, expires_at FROM broker_connect_sessions \
         WHERE token_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(db.sql())
    .await
    .map_err(&err)?;
    let Some(r) = row else { return Ok(None) };
    let stored: String = r.get("scopes").map_err(&err)?;
    let scopes = scopes::decode(&stored).ok_or_else(|| {
        err(sqlx::Error::ColumnDecode {
            index: "scopes".to_owned(),
            source: "not a JSON array".into(),
        })
    })?;
    Ok(Some(Session {
        end_user_id: r.get("end_user_id").map_err(&err)?,
        scopes,
        return_to: r.get("return_to").map_err(&err)?,
        team: r.get::<i64>("team").map_err(&err)? != 0,
        expires_at_ms: unix_ms(r.get("expires_at").map_err(&err)?),
    }))
}

/// Deletes sessions that expired before `now_ms`.
pub(crate) async fn purge_expired(db: &BrokerDb, now_ms: i64) -> Result<u64, DbError> {
    query("DELETE FROM broker_connect_sessions WHERE expires_at < $1")
        .bind(at_ms(now_ms))
        .execute(db.sql())
        .await
        .map_err(db_err("purging connect sessions"))
}
