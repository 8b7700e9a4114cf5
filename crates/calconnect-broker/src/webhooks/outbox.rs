//! The durable outbox: one row per (event, endpoint), inserted idempotently from the store's event
//! log, claimed with a short lease, delivered oldest first per (connection, endpoint).

use crate::db::{BrokerDb, DbError, db_err, with_pool};
use serde::Serialize;
use sqlx::Row as _;

/// A delivery row as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The event id (`evt_<seq>`), the same for every endpoint.
    pub event_id: String,
    /// `connection.created`, ...
    pub event_type: String,
    /// The connection.
    pub connection_id: String,
    /// The receiver (scheme, host and path).
    pub endpoint: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Last HTTP status from the receiver.
    pub last_status_code: Option<i64>,
    /// Last failure (no secrets: a status or a transport error kind).
    pub last_error: Option<String>,
    /// Next attempt (unix ms) while pending.
    pub next_attempt_at_ms: i64,
    /// Created (unix ms).
    pub created_at_ms: i64,
    /// Delivered (unix ms).
    pub delivered_at_ms: Option<i64>,
    /// The signed JSON body.
    #[serde(skip)]
    pub payload: String,
}

const COLUMNS: &str = "id, event_id, event_type, connection_id, endpoint, status, attempts, last_status_code, last_error, next_attempt_at_ms, created_at_ms, delivered_at_ms, payload";

macro_rules! delivery_from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<Delivery, sqlx::Error>(Delivery {
            id: r.try_get("id")?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("event_type")?,
            connection_id: r.try_get("connection_id")?,
            endpoint: r.try_get("endpoint")?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            last_status_code: r.try_get("last_status_code")?,
            last_error: r.try_get("last_error")?,
            next_attempt_at_ms: r.try_get("next_attempt_at_ms")?,
            created_at_ms: r.try_get("created_at_ms")?,
            delivered_at_ms: r.try_get("delivered_at_ms")?,
            payload: r.try_get("payload")?,
        })
    }};
}

/// The event cursor (last store event seq turned into deliveries).
pub(crate) async fn cursor(db: &BrokerDb) -> Result<i64, DbError> {
    let v: Option<i64> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT seq FROM broker_webhook_cursor WHERE name = 'events'")
            .fetch_optional(pool)
            .await
    })
    .map_err(db_err("reading the webhook cursor"))?;
    Ok(v.unwrap_or(0))
}

/// Moves the cursor forward (never back).
pub(crate) async fn advance_cursor(db: &BrokerDb, seq: i64) -> Result<(), DbError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "INSERT INTO broker_webhook_cursor (name, seq) VALUES ('events', $1)
             ON CONFLICT (name) DO UPDATE SET seq = CASE WHEN excluded.seq > broker_webhook_cursor.seq THEN excluded.seq ELSE broker_webhook_cursor.seq END",
        )
        .bind(seq)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .map_err(db_err("moving the webhook cursor"))
}

/// Whether deliveries exist for event `seq`.
pub(crate) async fn has_event(db: &BrokerDb, seq: i64) -> Result<bool, DbError> {
    let v: Option<i64> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT id FROM broker_webhook_deliveries WHERE event_seq = $1 LIMIT 1")
            .bind(seq)
            .fetch_optional(pool)
            .await
    })
    .map_err(db_err("reading the outbox"))?;
    Ok(v.is_some())
}

/// A new outbox row.
pub(crate) struct NewDelivery<'a> {
    pub(crate) event_seq: i64,
    pub(crate) event_type: &'a str,
    pub(crate) connection_id: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) now_ms: i64,
}

/// Inserts unless (event, endpoint) is already there.
pub(crate) async fn insert(db: &BrokerDb, d: &NewDelivery<'_>) -> Result<(), DbError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "INSERT INTO broker_webhook_deliveries
               (event_id, event_seq, endpoint, connection_id, event_type, payload, status, attempts, next_attempt_at_ms, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8)
             ON CONFLICT (event_seq, endpoint) DO NOTHING",
        )
        .bind(format!("evt_{}", d.event_seq))
        .bind(d.event_seq)
        .bind(d.endpoint)
        .bind(d.connection_id)
        .bind(d.event_type)
        .bind(d.payload)
        .bind(d.now_ms)
        .bind(d.now_ms)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .map_err(db_err("writing the outbox"))
}

/// Due deliveries that are the oldest pending one of their (connection, endpoint), claimed
/// (leased until `now + lease_ms`) for this worker.
pub(crate) async fn claim_due(
    db: &BrokerDb,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    let candidates: Vec<Delivery> = with_pool!(db, |pool| {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM broker_webhook_deliveries d
             WHERE d.status = 'pending' AND d.next_attempt_at_ms <= $1
               AND (d.lease_until_ms IS NULL OR d.lease_until_ms < $1)
               AND NOT EXISTS (SELECT 1 FROM broker_webhook_deliveries e
                   WHERE e.connection_id = d.connection_id AND e.endpoint = d.endpoint
                     AND e.status = 'pending' AND e.event_seq < d.event_seq)
             ORDER BY d.event_seq LIMIT $2"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| delivery_from_row!(r))
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(db_err("reading due deliveries"))?;
    let mut claimed = Vec::new();
    for d in candidates {
        let n = with_pool!(db, |pool| {
            sqlx::query(
                "UPDATE broker_webhook_deliveries SET lease_until_ms = $1
                 WHERE id = $2 AND status = 'pending' AND (lease_until_ms IS NULL OR lease_until_ms < $3)",
            )
            .bind(now_ms + lease_ms)
            .bind(d.id)
            .bind(now_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(db_err("claiming a delivery"))?;
        if n == 1 {
            claimed.push(d);
        }
    }
    Ok(claimed)
}

/// Records an attempt's result.
pub(crate) async fn record(
    db: &BrokerDb,
    id: i64,
    status: &str,
    code: Option<i64>,
    error: Option<&str>,
    next_attempt_at_ms: i64,
    delivered_at_ms: Option<i64>,
) -> Result<(), DbError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "UPDATE broker_webhook_deliveries SET status = $1, attempts = attempts + 1,
               last_status_code = $2, last_error = $3, next_attempt_at_ms = $4,
               delivered_at_ms = $5, lease_until_ms = NULL
             WHERE id = $6",
        )
        .bind(status)
        .bind(code)
        .bind(error)
        .bind(next_attempt_at_ms)
        .bind(delivered_at_ms)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .map_err(db_err("recording a delivery attempt"))
}

/// The delivery log, newest first, optionally for one connection.
pub(crate) async fn list(
    db: &BrokerDb,
    connection_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    with_pool!(db, |pool| {
        let rows = match connection_id {
            Some(c) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM broker_webhook_deliveries WHERE connection_id = $1 ORDER BY id DESC LIMIT $2"
                ))
                .bind(c)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM broker_webhook_deliveries ORDER BY id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        rows.iter().map(|r| delivery_from_row!(r)).collect::<Result<Vec<_>, _>>()
    })
    .map_err(db_err("reading the delivery log"))
}
