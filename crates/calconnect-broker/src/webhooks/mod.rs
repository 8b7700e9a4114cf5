//! Webhooks: the store's connection events (docs/architecture.md §3.7) become `connection.*` events in a
//! durable outbox, delivered at least once, in order per connection and endpoint, signed with
//! `calconnect-signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, retried with
//! exponential backoff. The delivery log is at `GET /api/v1/webhook-deliveries`.
//!
//! Several instances may run the worker against one PostgreSQL database: outbox rows are unique
//! per (event, endpoint), and each delivery is claimed with a lease before it is sent.

pub(crate) mod outbox;

pub use outbox::Delivery;

use crate::api_keys::Authenticated;
use crate::db::DbError;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::{AppState, rfc3339};
use axum::Json;
use axum::extract::State;
use calconnect::store::{ConnectionEvent, ConnectionStatus, EventKind};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often to look for work when not woken.
    pub poll: Duration,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Attempts before a delivery is marked `failed` (and later events of its connection go on).
    pub max_attempts: i64,
    /// Timeout of one delivery.
    pub timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            max_attempts: 15,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Events re-read behind the cursor: on PostgreSQL a lower sequence number can commit after a
/// higher one (see `ConnectionStore::events_after`); outbox rows are idempotent.
const REREAD_WINDOW: i64 = 100;
/// Reconnect links in webhooks stay valid for 7 days.
const RECONNECT_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// The signature header value for `body` at unix time `t`.
pub fn signature(secret: &SecretString, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook type of a store event, and whether it carries a reconnect link.
fn event_type(e: &ConnectionEvent) -> (&'static str, bool) {
    let broken = |s: Option<ConnectionStatus>| {
        matches!(
            s,
            Some(ConnectionStatus::NeedsReauth | ConnectionStatus::RefreshLost)
        )
    };
    match e.kind {
        EventKind::Created => ("connection.created", false),
        EventKind::Reauthorized if broken(e.from_status) => ("connection.recovered", false),
        EventKind::Reauthorized => ("connection.updated", false),
        EventKind::Deleted => ("connection.deleted", false),
        EventKind::StatusChanged => match e.to_status {
            Some(ConnectionStatus::NeedsReauth) => ("connection.needs_reauth", true),
            Some(ConnectionStatus::RefreshLost) => ("connection.refresh_lost", true),
            Some(ConnectionStatus::Active) => ("connection.recovered", false),
            None => ("connection.updated", false),
        },
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    data: PayloadData<'a>,
}

#[derive(Serialize)]
struct PayloadData<'a> {
    connection_id: String,
    end_user_id: &'a str,
    from_status: Option<&'static str>,
    status: Option<&'static str>,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reconnect_url: Option<String>,
}

/// `connection.conflict`: a flow for `requested_end_user` reached a Cal.com account already
/// connected for `existing_end_user`; nothing changed. Not a store event (the store did not
/// change), so it is written to the outbox directly, under a negative sequence number that no
/// store event uses.
pub(crate) async fn conflict(
    state: &AppState,
    connection_id: &str,
    existing_end_user: &str,
    requested_end_user: &str,
) -> Result<(), DbError> {
    #[derive(Serialize)]
    struct ConflictData<'a> {
        connection_id: &'a str,
        end_user_id: &'a str,
        requested_end_user_id: &'a str,
        reason: &'static str,
    }
    #[derive(Serialize)]
    struct ConflictPayload<'a> {
        id: String,
        #[serde(rename = "type")]
        kind: &'static str,
        created_at: String,
        data: ConflictData<'a>,
    }
    let now = state.now_ms();
    let seq = -(now.saturating_mul(1000) + i64::from(rand::random::<u16>()));
    let body = serde_json::to_string(&ConflictPayload {
        id: format!("evt_{seq}"),
        kind: "connection.conflict",
        created_at: crate::state::rfc3339_ms(now),
        data: ConflictData {
            connection_id,
            end_user_id: existing_end_user,
            requested_end_user_id: requested_end_user,
            reason: "a connect flow for another end user reached this Cal.com account; the connection was left as it was",
        },
    })
    .unwrap_or_default();
    for url in &state.config.webhooks.urls {
        outbox::insert(
            &state.db,
            &outbox::NewDelivery {
                event_seq: seq,
                event_type: "connection.conflict",
                connection_id,
                endpoint: url.as_str(),
                payload: &body,
                now_ms: now,
            },
        )
        .await?;
    }
    state.webhooks_nudge();
    Ok(())
}

/// Turns new store events into outbox rows.
async fn pump(state: &AppState) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cursor = outbox::cursor(&state.db).await?;
    let events = state
        .store
        .events_after((cursor - REREAD_WINDOW).max(0), 500)
        .await?;
    let mut newest = cursor;
    for e in &events {
        newest = newest.max(e.seq);
        if outbox::has_event(&state.db, e.seq).await? {
            continue;
        }
        let (kind, reconnect) = event_type(e);
        let reconnect_url = if reconnect {
            let (scopes, team) = match state.store.get_connection(e.connection_id).await {
                Ok(c) => (c.scopes, c.identity.owner.kind() == "team"),
                Err(_) => (state.config.default_scopes.clone(), false),
            };
            Some(
                crate::sessions::reconnect_link(
                    state,
                    e.end_user.as_str(),
                    scopes,
                    team,
                    RECONNECT_TTL_MS,
                )
                .await?,
            )
        } else {
            None
        };
        let payload = Payload {
            id: format!("evt_{}", e.seq),
            kind,
            created_at: rfc3339(e.at),
            data: PayloadData {
                connection_id: e.connection_id.to_string(),
                end_user_id: e.end_user.as_str(),
                from_status: e.from_status.map(|s| s.as_str()),
                status: e.to_status.map(|s| s.as_str()),
                reason: &e.reason,
                reconnect_url,
            },
        };
        let body = serde_json::to_string(&payload)?;
        let now = state.now_ms();
        let connection_id = e.connection_id.to_string();
        for url in &state.config.webhooks.urls {
            outbox::insert(
                &state.db,
                &outbox::NewDelivery {
                    event_seq: e.seq,
                    event_type: kind,
                    connection_id: &connection_id,
                    endpoint: url.as_str(),
                    payload: &body,
                    now_ms: now,
                },
            )
            .await?;
        }
    }
    if newest > cursor {
        outbox::advance_cursor(&state.db, newest).await?;
    }
    Ok(())
}

fn backoff(config: &WorkerConfig, attempts: i64) -> Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts.clamp(0, 30)).unwrap_or(30));
    config
        .backoff_base
        .saturating_mul(factor)
        .min(config.backoff_max)
}

/// Sends due deliveries once each.
async fn deliver_due(
    state: &AppState,
    config: &WorkerConfig,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(secret) = state.config.webhooks.secret.clone() else {
        return Ok(());
    };
    let lease_ms = i64::try_from(config.timeout.as_millis()).unwrap_or(10_000) * 3;
    let due = outbox::claim_due(&state.db, state.now_ms(), lease_ms, 50).await?;
    for d in due {
        let t = state.clock.now().unix_timestamp();
        let sent = state
            .proxy_http
            .post(&d.endpoint)
            .timeout(config.timeout)
            .header("content-type", "application/json")
            .header("user-agent", "calconnect-broker")
            .header("calconnect-event-id", &d.event_id)
            .header("calconnect-event-type", &d.event_type)
            .header(
                "calconnect-signature",
                signature(&secret, t, d.payload.as_bytes()),
            )
            .body(d.payload.clone())
            .send()
            .await;
        let now = state.now_ms();
        let (ok, code, error) = match sent {
            Ok(r) if r.status().is_success() => (true, Some(i64::from(r.status().as_u16())), None),
            Ok(r) => (
                false,
                Some(i64::from(r.status().as_u16())),
                Some(format!("receiver answered {}", r.status().as_u16())),
            ),
            Err(e) if e.is_timeout() => (false, None, Some("timeout".to_owned())),
            Err(e) if e.is_connect() => (false, None, Some("connection failed".to_owned())),
            Err(_) => (false, None, Some("transport error".to_owned())),
        };
        if ok {
            state.metrics.webhook("delivered");
            outbox::record(&state.db, d.id, "delivered", code, None, now, Some(now)).await?;
        } else {
            let attempts = d.attempts + 1;
            let gave_up = attempts >= config.max_attempts;
            state
                .metrics
                .webhook(if gave_up { "failed" } else { "retry" });
            let wait =
                i64::try_from(backoff(config, d.attempts).as_millis()).unwrap_or(i64::MAX / 2);
            tracing::info!(delivery = d.id, event = %d.event_id, attempts, error = ?error, "webhook delivery failed");
            outbox::record(
                &state.db,
                d.id,
                if gave_up { "failed" } else { "pending" },
                code,
                error.as_deref(),
                now + wait,
                None,
            )
            .await?;
        }
    }
    Ok(())
}

/// Deletes expired connect sessions and pending authorizations.
async fn housekeeping(state: &AppState) {
    if let Err(e) = crate::sessions::purge_expired(&state.db, state.now_ms()).await {
        tracing::warn!(error = %e, "purging connect sessions failed");
    }
    if let Err(e) = state.store.purge_expired_pending().await {
        tracing::warn!(error = %e, "purging pending authorizations failed");
    }
}

/// Spawns the worker; it stops (after the delivery in progress) when `stop` turns true.
pub(crate) fn spawn_worker(
    state: AppState,
    config: WorkerConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rounds = 0u64;
        loop {
            if *stop.borrow() {
                return;
            }
            if rounds % 30 == 0 {
                housekeeping(&state).await;
            }
            rounds += 1;
            if !state.config.webhooks.urls.is_empty() {
                if let Err(e) = pump(&state).await {
                    tracing::warn!(error = %e, "webhook outbox: reading events failed");
                }
                if let Err(e) = deliver_due(&state, &config).await {
                    tracing::warn!(error = %e, "webhook outbox: delivering failed");
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = state.webhook_wake.notified() => {}
                () = tokio::time::sleep(config.poll) => {}
            }
        }
    })
}

/// Query of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only this connection's deliveries.
    #[serde(default)]
    pub connection_id: Option<String>,
    /// At most this many (1–500, default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// The delivery log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
}

/// The webhook delivery log, newest first.
#[utoipa::path(get, path = "/api/v1/webhook-deliveries", tag = "webhooks", params(DeliveriesQuery),
    responses((status = 200, description = "Deliveries", body = DeliveryList), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Database unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _auth: Authenticated,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit: use 1 to 500"));
    }
    let mut deliveries = outbox::list(&state.db, q.connection_id.as_deref(), limit).await?;
    for d in &mut deliveries {
        if let Ok(mut u) = url::Url::parse(&d.endpoint) {
            u.set_query(None);
            let _ = u.set_password(None);
            d.endpoint = u.to_string();
        }
    }
    Ok(Json(DeliveryList { deliveries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_reference_hmac() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec'
        let s = signature(&SecretString::from("whsec"), 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            s,
            "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = WorkerConfig::default();
        assert_eq!(backoff(&c, 0), Duration::from_secs(5));
        assert_eq!(backoff(&c, 1), Duration::from_secs(10));
        assert_eq!(backoff(&c, 20), Duration::from_secs(3600));
    }
}
