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

/// A session as found by its link: the stored fields and its use so far.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) id: String,
    pub(crate) session: Session,
    /// A flow through the link has finished (the link is used up).
    pub(crate) consumed: bool,
}

/// How many times one link may start a flow (reloads, a second tab): each start records a
/// pending authorization, so the number is bounded.
pub(crate) const MAX_OPENS: i64 = 10;

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
#[utoipa::path(post, path = "/api/v1/connect-sessions", operation_id = "createConnectSession", tag = "connect",
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
pub(crate) async fn find(db: &BrokerDb, token: &str) -> Result<Option<Found>, DbError> {
    let hash = token_hash(token);
    let err = db_err("reading a connect session");
    let row = query(
        "SELECT id, end_user_id, scopes, return_to, team, expires_at, \
         CAST(CASE WHEN consumed_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS consumed \
         FROM broker_connect_sessions WHERE token_hash = $1",
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
    Ok(Some(Found {
        id: r.get("id").map_err(&err)?,
        session: Session {
            end_user_id: r.get("end_user_id").map_err(&err)?,
            scopes,
            return_to: r.get("return_to").map_err(&err)?,
            team: r.get::<i64>("team").map_err(&err)? != 0,
            expires_at_ms: unix_ms(r.get("expires_at").map_err(&err)?),
        },
        consumed: r.get::<i64>("consumed").map_err(&err)? != 0,
    }))
}

/// Records that the link of session `id` started the flow whose state digest is `flow_state`
/// (the callback finds the session by it). `false` when the link is used up or was opened
/// [`MAX_OPENS`] times.
pub(crate) async fn opened(db: &BrokerDb, id: &str, flow_state: &str) -> Result<bool, DbError> {
    let err = db_err("recording a connect link's use");
    let n = query(
        "UPDATE broker_connect_sessions SET opened = opened + 1 \
         WHERE id = $1 AND consumed_at IS NULL AND opened < $2",
    )
    .bind(id)
    .bind(MAX_OPENS)
    .execute(db.sql())
    .await
    .map_err(&err)?;
    if n != 1 {
        return Ok(false);
    }
    query("INSERT INTO broker_connect_flows (flow_state, session_id) VALUES ($1, $2)")
        .bind(flow_state)
        .bind(id)
        .execute(db.sql())
        .await
        .map_err(&err)?;
    Ok(true)
}

/// What consuming a session by its flow found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Consumed {
    /// This call used the link up: the session's id.
    Now(String),
    /// A flow through this link already finished.
    Already,
    /// No link of this service started this flow.
    Unknown,
}

/// Uses up the session that started the flow with state digest `flow_state`, exactly once:
/// whichever of its flows finishes first.
pub(crate) async fn consume(
    db: &BrokerDb,
    flow_state: &str,
    now_ms: i64,
) -> Result<Consumed, DbError> {
    let err = db_err("using up a connect session");
    let Some(row) = query("SELECT session_id FROM broker_connect_flows WHERE flow_state = $1")
        .bind(flow_state)
        .fetch_optional(db.sql())
        .await
        .map_err(&err)?
    else {
        return Ok(Consumed::Unknown);
    };
    let id: String = row.get("session_id").map_err(&err)?;
    let n = query(
        "UPDATE broker_connect_sessions SET consumed_at = $2 \
         WHERE id = $1 AND consumed_at IS NULL",
    )
    .bind(&id)
    .bind(at_ms(now_ms))
    .execute(db.sql())
    .await
    .map_err(&err)?;
    Ok(if n == 1 {
        Consumed::Now(id)
    } else {
        Consumed::Already
    })
}

/// Records how the flow of session `id` ended, with the digest of the one-time result token
/// the app's backend redeems.
pub(crate) async fn record_outcome(
    db: &BrokerDb,
    id: &str,
    outcome: &str,
    connection_id: Option<&str>,
    result_hash: &str,
) -> Result<(), DbError> {
    query(
        "UPDATE broker_connect_sessions SET outcome = $2, connection_id = $3, result_hash = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(outcome)
    .bind(connection_id)
    .bind(result_hash)
    .execute(db.sql())
    .await
    .map(|_| ())
    .map_err(db_err("recording a connect session's outcome"))
}

/// A redeemed outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionResult {
    /// The session.
    pub id: String,
    /// The app's user the session was created for: compare it with the user who came back.
    pub end_user_id: String,
    /// `created`, `updated`, `access_denied` or `error`.
    pub outcome: String,
    /// The connection, when one was created or updated.
    pub connection_id: Option<String>,
    /// With `outcome = error`: what went wrong (`conflict`, `exchange_failed`, …).
    pub error: Option<String>,
}

/// What redeeming found.
pub(crate) enum Redeemed {
    Now(SessionResult),
    Already,
    Unknown,
}

/// Redeems the result token `result` of session `id`, once.
pub(crate) async fn redeem(
    db: &BrokerDb,
    id: &str,
    result: &str,
    now_ms: i64,
) -> Result<Redeemed, DbError> {
    let err = db_err("redeeming a connect session's result");
    let hash = token_hash(result);
    let n = query(
        "UPDATE broker_connect_sessions SET redeemed_at = $3 \
         WHERE id = $1 AND result_hash = $2 AND redeemed_at IS NULL",
    )
    .bind(id)
    .bind(&hash)
    .bind(at_ms(now_ms))
    .execute(db.sql())
    .await
    .map_err(&err)?;
    let row = query(
        "SELECT end_user_id, outcome, connection_id FROM broker_connect_sessions \
         WHERE id = $1 AND result_hash = $2",
    )
    .bind(id)
    .bind(&hash)
    .fetch_optional(db.sql())
    .await
    .map_err(&err)?;
    let Some(r) = row else {
        return Ok(Redeemed::Unknown);
    };
    if n != 1 {
        return Ok(Redeemed::Already);
    }
    let outcome: String = r.get("outcome").map_err(&err)?;
    let (outcome, error) = match outcome.split_once(':') {
        Some((o, e)) => (o.to_owned(), Some(e.to_owned())),
        None => (outcome, None),
    };
    Ok(Redeemed::Now(SessionResult {
        id: id.to_owned(),
        end_user_id: r.get("end_user_id").map_err(&err)?,
        outcome,
        connection_id: r.get("connection_id").map_err(&err)?,
        error,
    }))
}

/// Query of [`get`].
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// The one-time `result` the browser brought back to `return_to`.
    pub result: String,
}

/// Redeems the one-time result of a finished connect session: who the session was for and how
/// it ended. The browser that came back to `return_to` carries `session_id` and `result`; the
/// app's backend calls this and checks that `end_user_id` is the user signed in in that browser
/// (a link forwarded to someone else shows up here). Works once.
#[utoipa::path(get, path = "/api/v1/connect-sessions/{id}", operation_id = "getConnectSession", tag = "connect",
    params(("id" = String, Path, description = "Session id"), ResultQuery),
    responses(
        (status = 200, description = "The outcome", body = SessionResult),
        (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such session or result", body = crate::openapi::ErrorResponse),
        (status = 410, description = "Already redeemed", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Database unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    _auth: Authenticated,
    axum::extract::Path(id): axum::extract::Path<String>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<ResultQuery>,
) -> Result<Json<SessionResult>, ApiError> {
    match redeem(&state.db, &id, &q.result, state.now_ms()).await? {
        Redeemed::Now(result) => Ok(Json(result)),
        Redeemed::Already => Err(ApiError::new(
            StatusCode::GONE,
            "already_redeemed",
            "this result was already redeemed; each works once",
        )),
        Redeemed::Unknown => Err(ApiError::not_found(
            "no such connect session result (unknown session, wrong result, or the flow has not finished)",
        )),
    }
}

/// Deletes sessions that expired before `now_ms`.
pub(crate) async fn purge_expired(db: &BrokerDb, now_ms: i64) -> Result<u64, DbError> {
    let err = db_err("purging connect sessions");
    let n = query("DELETE FROM broker_connect_sessions WHERE expires_at < $1")
        .bind(at_ms(now_ms))
        .execute(db.sql())
        .await
        .map_err(&err)?;
    query(
        "DELETE FROM broker_connect_flows WHERE session_id NOT IN \
         (SELECT id FROM broker_connect_sessions)",
    )
    .execute(db.sql())
    .await
    .map_err(&err)?;
    Ok(n)
}
