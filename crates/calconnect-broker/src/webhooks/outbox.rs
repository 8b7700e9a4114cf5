//! The durable outbox: one row per (event, endpoint), inserted idempotently from the store's event
//! log, claimed with a short lease, delivered oldest first per (connection, endpoint). A row of an
//! endpoint no longer configured is marked `dropped` instead of being sent.

use crate::db::{BrokerDb, DbError, at_ms, db_err};
use crate::state::unix_ms;
use calconnect_sql::{Row, query, sqlx};
use serde::Serialize;
use time::OffsetDateTime;

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
    /// `pending`, `delivered`, `failed` (gave up) or `dropped` (its endpoint was removed from
    /// the configuration before it was delivered; never sent).
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
    /// The JSON body as stored: what is signed and sent, except that a reconnect link is
    /// minted at delivery (`payload.rs`).
    #[serde(skip)]
    pub payload: String,
}

const COLUMNS: &str = "id, event_id, event_type, connection_id, endpoint, status, attempts, \
    last_status_code, last_error, next_attempt_at, created_at, delivered_at, payload";

fn delivery(r: &Row) -> Result<Delivery, sqlx::Error> {
    Ok(Delivery {
        id: r.get("id")?,
        event_id: r.get("event_id")?,
        event_type: r.get("event_type")?,
        connection_id: r.get("connection_id")?,
        endpoint: r.get("endpoint")?,
        status: r.get("status")?,
        attempts: r.get("attempts")?,
        last_status_code: r.get("last_status_code")?,
        last_error: r.get("last_error")?,
        next_attempt_at_ms: unix_ms(r.get("next_attempt_at")?),
        created_at_ms: unix_ms(r.get("created_at")?),
        delivered_at_ms: r
            .get::<Option<OffsetDateTime>>("delivered_at")?
            .map(unix_ms),
        payload: r.get("payload")?,
    })
}

/// The event cursor (last store event seq turned into deliveries).
pub(crate) async fn cursor(db: &BrokerDb) -> Result<i64, DbError> {
    let err = db_err("reading the webhook cursor");
    let row = query("SELECT seq FROM broker_webhook_cursor WHERE name = 'events'")
        .fetch_optional(db.sql())
        .await
        .map_err(&err)?;
    match row {
        Some(r) => r.get("seq").map_err(&err),
        None => Ok(0),
    }
}

/// Moves the cursor forward (never back).
pub(crate) async fn advance_cursor(db: &BrokerDb, seq: i64) -> Result<(), DbError> {
    query(
        "INSERT INTO broker_webhook_cursor (name, seq) VALUES ('events', $1) \
         ON CONFLICT (name) DO UPDATE SET seq = CASE WHEN excluded.seq > broker_webhook_cursor.seq \
         THEN excluded.seq ELSE broker_webhook_cursor.seq END",
    )
    .bind(seq)
    .execute(db.sql())
    .await
    .map(|_| ())
    .map_err(db_err("moving the webhook cursor"))
}

/// Whether deliveries exist for event `seq`.
pub(crate) async fn has_event(db: &BrokerDb, seq: i64) -> Result<bool, DbError> {
    let row = query("SELECT id FROM broker_webhook_deliveries WHERE event_seq = $1 LIMIT 1")
        .bind(seq)
        .fetch_optional(db.sql())
        .await
        .map_err(db_err("reading the outbox"))?;
    Ok(row.is_some())
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
    query(
        "INSERT INTO broker_webhook_deliveries (event_id, event_seq, endpoint, connection_id, \
         event_type, payload, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) \
         ON CONFLICT (event_seq, endpoint) DO NOTHING",
    )
    .bind(&format!("evt_{}", d.event_seq))
    .bind(d.event_seq)
    .bind(d.endpoint)
    .bind(d.connection_id)
    .bind(d.event_type)
    .bind(d.payload)
    .bind(at_ms(d.now_ms))
    .execute(db.sql())
    .await
    .map(|_| ())
    .map_err(db_err("writing the outbox"))
}

/// Due deliveries to `endpoint` that are the oldest pending one of their connection, claimed
/// (leased until `now + lease_ms`) for this worker.
pub(crate) async fn claim_due_for(
    db: &BrokerDb,
    endpoint: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    claim(db, Some(endpoint), now_ms, lease_ms, limit).await
}

/// [`claim_due_for`] across every endpoint (the worker claims per endpoint; tests of the stored
/// rows look at all).
#[cfg(test)]
pub(crate) async fn claim_due(
    db: &BrokerDb,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    claim(db, None, now_ms, lease_ms, limit).await
}

async fn claim(
    db: &BrokerDb,
    endpoint: Option<&str>,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    let err = db_err("reading due deliveries");
    let now = at_ms(now_ms);
    let sql = format!(
        "SELECT {COLUMNS} FROM broker_webhook_deliveries d \
         WHERE d.status = 'pending' AND ($3 IS NULL OR d.endpoint = $3) \
           AND d.next_attempt_at <= $1 \
           AND (d.lease_until IS NULL OR d.lease_until < $1) \
           AND NOT EXISTS (SELECT 1 FROM broker_webhook_deliveries e \
               WHERE e.connection_id = d.connection_id AND e.endpoint = d.endpoint \
                 AND e.status = 'pending' AND e.event_seq < d.event_seq) \
         ORDER BY d.event_seq LIMIT $2"
    );
    let candidates = query(&sql)
        .bind(now)
        .bind(limit)
        .bind(endpoint)
        .fetch_all(db.sql())
        .await
        .map_err(&err)?
        .iter()
        .map(delivery)
        .collect::<Result<Vec<_>, _>>()
        .map_err(&err)?;
    let mut claimed = Vec::new();
    for d in candidates {
        let n = query(
            "UPDATE broker_webhook_deliveries SET lease_until = $1 \
             WHERE id = $2 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3)",
        )
        .bind(at_ms(now_ms + lease_ms))
        .bind(d.id)
        .bind(now)
        .execute(db.sql())
        .await
        .map_err(db_err("claiming a delivery"))?;
        if n == 1 {
            claimed.push(d);
        }
    }
    Ok(claimed)
}

/// A delivery marked `dropped`.
pub(crate) struct Dropped {
    pub(crate) id: i64,
    pub(crate) event_id: String,
    pub(crate) endpoint: String,
}

/// Marks `dropped` the pending deliveries (not leased right now) to any endpoint other than
/// `configured` that were written before `written_before_ms`, at most `limit` of them; returns
/// them.
///
/// Only rows older than the caller's start: during a rolling change of `webhooks.urls`, an
/// instance still on the old list must not drop what an instance on the new list has just
/// written for an endpoint it added.
pub(crate) async fn drop_unconfigured(
    db: &BrokerDb,
    configured: &[&str],
    written_before_ms: i64,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Dropped>, DbError> {
    let err = db_err("dropping deliveries to removed endpoints");
    let others = if configured.is_empty() {
        String::new()
    } else {
        let places: Vec<String> = (0..configured.len())
            .map(|i| format!("${}", i + 4))
            .collect();
        format!("AND endpoint NOT IN ({})", places.join(", "))
    };
    let which = format!(
        "status = 'pending' AND (lease_until IS NULL OR lease_until < $1) \
         AND created_at < $3 {others}"
    );
    let bound = |sql| {
        let mut q = query(sql)
            .bind(at_ms(now_ms))
            .bind(limit)
            .bind(at_ms(written_before_ms));
        for endpoint in configured {
            q = q.bind(*endpoint);
        }
        q
    };
    // Read first: the worker asks every round, and an UPDATE would take SQLite's write lock
    // even when it changes nothing.
    let any = format!("SELECT id FROM broker_webhook_deliveries WHERE {which} AND $2 > 0 LIMIT 1");
    if bound(&any)
        .fetch_optional(db.sql())
        .await
        .map_err(&err)?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let update = format!(
        "UPDATE broker_webhook_deliveries SET status = 'dropped', \
         last_error = 'endpoint removed from the configuration', lease_until = NULL \
         WHERE id IN (SELECT id FROM broker_webhook_deliveries WHERE {which} \
             ORDER BY id LIMIT $2) AND {which} \
         RETURNING id, event_id, endpoint"
    );
    bound(&update)
        .fetch_all(db.sql())
        .await
        .map_err(&err)?
        .iter()
        .map(|r| {
            Ok(Dropped {
                id: r.get("id")?,
                event_id: r.get("event_id")?,
                endpoint: r.get("endpoint")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(&err)
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
    query(
        "UPDATE broker_webhook_deliveries SET status = $1, attempts = attempts + 1, \
         last_status_code = $2, last_error = $3, next_attempt_at = $4, delivered_at = $5, \
         lease_until = NULL WHERE id = $6",
    )
    .bind(status)
    .bind(code)
    .bind(error)
    .bind(at_ms(next_attempt_at_ms))
    .bind(delivered_at_ms.map(at_ms))
    .bind(id)
    .execute(db.sql())
    .await
    .map(|_| ())
    .map_err(db_err("recording a delivery attempt"))
}

/// The delivery `id`, if any.
pub(crate) async fn get(db: &BrokerDb, id: i64) -> Result<Option<Delivery>, DbError> {
    let err = db_err("reading a delivery");
    let sql = format!("SELECT {COLUMNS} FROM broker_webhook_deliveries WHERE id = $1");
    query(&sql)
        .bind(id)
        .fetch_optional(db.sql())
        .await
        .map_err(&err)?
        .as_ref()
        .map(delivery)
        .transpose()
        .map_err(&err)
}

/// Queues `original` again as a new pending row: the same event id, type, connection, endpoint
/// and stored body, due now, under a fresh negative sequence number (no store event uses one;
/// the worker sends it before the connection's other pending deliveries to that endpoint).
/// Returns the new row.
pub(crate) async fn requeue(
    db: &BrokerDb,
    original: &Delivery,
    now_ms: i64,
) -> Result<Delivery, DbError> {
    let err = db_err("queueing a redelivery");
    let sql = format!(
        "INSERT INTO broker_webhook_deliveries (event_id, event_seq, endpoint, connection_id, \
         event_type, payload, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) \
         ON CONFLICT (event_seq, endpoint) DO NOTHING RETURNING {COLUMNS}"
    );
    // A collision of two random sequence numbers in the same millisecond is unlikely; one more
    // draw settles it.
    for _ in 0..4 {
        let seq = -(now_ms.saturating_mul(1000) + i64::from(rand::random::<u16>() % 1000));
        let row = query(&sql)
            .bind(&original.event_id)
            .bind(seq)
            .bind(&original.endpoint)
            .bind(&original.connection_id)
            .bind(&original.event_type)
            .bind(&original.payload)
            .bind(at_ms(now_ms))
            .fetch_optional(db.sql())
            .await
            .map_err(&err)?;
        if let Some(r) = row {
            return delivery(&r).map_err(&err);
        }
    }
    Err(err(sqlx::Error::Protocol(
        "no free sequence number for the redelivery; retry".to_owned(),
    )))
}

/// The delivery log, newest first, optionally for one connection.
pub(crate) async fn list(
    db: &BrokerDb,
    connection_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    let err = db_err("reading the delivery log");
    let sql = match connection_id {
        Some(_) => format!(
            "SELECT {COLUMNS} FROM broker_webhook_deliveries WHERE connection_id = $2 \
             ORDER BY id DESC LIMIT $1"
        ),
        None => {
            format!("SELECT {COLUMNS} FROM broker_webhook_deliveries ORDER BY id DESC LIMIT $1")
        }
    };
    let mut q = query(&sql).bind(limit);
    if let Some(c) = connection_id {
        q = q.bind(c);
    }
    q.fetch_all(db.sql())
        .await
        .map_err(&err)?
        .iter()
        .map(delivery)
        .collect::<Result<Vec<_>, _>>()
        .map_err(&err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::config::DatabaseConfig;
    use calconnect::SystemClock;
    use std::sync::Arc;

    const START: i64 = 1_700_000_000_000;

    async fn row(db: &BrokerDb, seq: i64, endpoint: &str, at: i64) {
        insert(
            db,
            &NewDelivery {
                event_seq: seq,
                event_type: "connection.created",
                connection_id: "c-1",
                endpoint,
                payload: "{}",
                now_ms: at,
            },
        )
        .await
        .unwrap();
    }

    /// Only pending rows of other endpoints, written before the start and not leased, go.
    async fn drops_only_old_rows_of_other_endpoints(db: &BrokerDb) {
        let (kept, gone) = ("https://kept.example/h", "https://gone.example/h");
        row(db, 1, kept, START - 10).await;
        row(db, 1, gone, START - 10).await;
        row(db, 2, gone, START - 5).await;
        row(db, 3, gone, START + 5).await; // written by an instance that has it configured
        // Event 1's delivery to `gone` is being sent by another instance right now.
        let leased = claim(db, Some(gone), START - 1, 60_000, 10).await.unwrap();
        assert_eq!(leased.len(), 1);
        assert_eq!(leased[0].event_id, "evt_1");
        let dropped = drop_unconfigured(db, &[kept], START, START, 100)
            .await
            .unwrap();
        let seqs: Vec<&str> = dropped.iter().map(|d| d.event_id.as_str()).collect();
        assert_eq!(seqs, ["evt_2"], "not the leased, new or configured rows");
        assert!(dropped.iter().all(|d| d.endpoint == gone));
        assert!(
            drop_unconfigured(db, &[kept], START, START, 100)
                .await
                .unwrap()
                .is_empty(),
            "nothing twice"
        );
        // With no endpoint configured, every old pending row goes once its lease ran out.
        let dropped = drop_unconfigured(db, &[], START, START + 120_000, 100)
            .await
            .unwrap();
        let mut seqs: Vec<(String, String)> = dropped
            .into_iter()
            .map(|d| (d.event_id, d.endpoint))
            .collect();
        seqs.sort();
        assert_eq!(
            seqs,
            [
                ("evt_1".to_owned(), gone.to_owned()),
                ("evt_1".to_owned(), kept.to_owned())
            ]
        );
        let log = list(db, None, 10).await.unwrap();
        let statuses: Vec<(&str, &str)> = log
            .iter()
            .map(|d| (d.event_id.as_str(), d.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("evt_3", "pending"),
                ("evt_2", "dropped"),
                ("evt_1", "dropped"),
                ("evt_1", "dropped")
            ]
        );
        assert_eq!(
            log[1].last_error.as_deref(),
            Some("endpoint removed from the configuration")
        );
    }

    #[tokio::test]
    async fn sqlite_drops_only_old_rows_of_other_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let database = DatabaseConfig::Sqlite(dir.path().join("broker.db"));
        let (_store, db) = crate::open_storage(&database, Arc::new(SystemClock))
            .await
            .unwrap();
        drops_only_old_rows_of_other_endpoints(&db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_drops_only_old_rows_of_other_endpoints() {
        let Some(test_db) = calconnect_testkit::postgres::TestDatabase::create().await else {
            return;
        };
        let database = DatabaseConfig::Postgres(secrecy::SecretString::from(test_db.url()));
        let (_store, db) = crate::open_storage(&database, Arc::new(SystemClock))
            .await
            .unwrap();
        drops_only_old_rows_of_other_endpoints(&db).await;
    }
}
