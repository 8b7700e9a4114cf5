//! Webhooks: the store's connection events (docs/architecture.md §3.7) become `connection.*` events in a
//! durable outbox, delivered at least once, in order per connection and endpoint, signed with
//! `calconnect-signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (one `v1` per
//! configured secret, `signature.rs`), retried with exponential backoff. The delivery log is at
//! `GET /api/v1/webhook-deliveries`.
//!
//! Several instances may run the worker against one PostgreSQL database: outbox rows are unique
//! per (event, endpoint), and each delivery is claimed with a lease before it is sent.
//!
//! - `payload.rs`: the bodies; reconnect links are minted at delivery, never stored.
//! - `outbox.rs`: the outbox's queries.
//! - `worker.rs`: events to rows, dropping rows of removed endpoints, concurrent delivery.

pub(crate) mod manual;
pub(crate) mod outbox;
mod payload;
mod schema;
mod signature;
mod worker;

pub use manual::{
    RedeliverError, TEST_EVENT_TYPE, TestError, TestOutcome, TestReport, redeliver, send_test,
};
pub use outbox::Delivery;
pub use schema::{WebhookEvent, WebhookEventData, WebhookEventType};
pub use signature::{signature, signature_header};
pub(crate) use worker::spawn_worker;

use crate::api_keys::Authenticated;
use crate::db::DbError;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The client of webhook deliveries: the library's one reqwest builder (no redirects, rustls),
/// with the proxy's timeouts (5 s to connect, 60 s per request); each delivery also sets its own
/// timeout.
///
/// # Errors
/// When the TLS backend cannot start.
pub(crate) fn client() -> Result<reqwest::Client, calconnect::http::HttpClientError> {
    calconnect::http::reqwest_client(&crate::proxy::upstream_http_config())
}

/// One signed delivery about to go out: the headers every delivery carries
/// (`calconnect-event-id`, `calconnect-event-type`, `calconnect-signature`) on `body`.
pub(crate) struct Signed<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) event_id: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) body: String,
}

impl Signed<'_> {
    /// Signs the body at unix time `t` with every secret and POSTs it; the receiver's 2xx
    /// status, or the status (if any) and a reason to record. The reason holds no secret and no
    /// URL.
    pub(crate) async fn send(
        self,
        http: &reqwest::Client,
        secrets: &[secrecy::SecretString],
        t: i64,
        timeout: Duration,
    ) -> Result<i64, (Option<i64>, String)> {
        let signature = signature_header(secrets, t, self.body.as_bytes());
        let sent = http
            .post(self.endpoint)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("user-agent", "calconnect-broker")
            .header("calconnect-event-id", self.event_id)
            .header("calconnect-event-type", self.event_type)
            .header("calconnect-signature", signature)
            .body(self.body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Ok(i64::from(r.status().as_u16())),
            Ok(r) => Err((
                Some(i64::from(r.status().as_u16())),
                format!("receiver answered {}", r.status().as_u16()),
            )),
            Err(e) if e.is_timeout() => Err((None, "timeout".to_owned())),
            Err(e) if e.is_connect() => Err((None, "connection failed".to_owned())),
            Err(_) => Err((None, "transport error".to_owned())),
        }
    }
}

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
    /// Deliveries in flight to one endpoint at once (for different connections: one
    /// connection's deliveries to an endpoint always go one after the other). Each endpoint has
    /// its own, so a slow receiver does not hold up the others.
    pub per_endpoint: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            max_attempts: 15,
            timeout: Duration::from_secs(10),
            per_endpoint: 8,
        }
    }
}

/// The body of a `connection.conflict` event numbered `seq`, at `now_ms`.
pub(crate) fn conflict_body(
    seq: i64,
    now_ms: i64,
    connection_id: &str,
    existing_end_user: &str,
    requested_end_user: &str,
) -> String {
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
    serde_json::to_string(&ConflictPayload {
        id: format!("evt_{seq}"),
        kind: "connection.conflict",
        created_at: crate::state::rfc3339_ms(now_ms),
        data: ConflictData {
            connection_id,
            end_user_id: existing_end_user,
            requested_end_user_id: requested_end_user,
            reason: "a connect flow for another end user reached this Cal.com account; the connection was left as it was",
        },
    })
    .unwrap_or_default()
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
    let now = state.now_ms();
    let seq = -(now.saturating_mul(1000) + i64::from(rand::random::<u16>()));
    let body = conflict_body(
        seq,
        now,
        connection_id,
        existing_end_user,
        requested_end_user,
    );
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
#[utoipa::path(get, path = "/api/v1/webhook-deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks", params(DeliveriesQuery),
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
        d.endpoint = shown_endpoint(&d.endpoint);
    }
    Ok(Json(DeliveryList { deliveries }))
}

/// An endpoint as the log and the API show it: without its query and password (either may hold
/// a receiver's token).
pub(crate) fn shown_endpoint(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut u) => {
            u.set_query(None);
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(unreadable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = WorkerConfig::default();
        assert_eq!(worker::backoff(&c, 0), Duration::from_secs(5));
        assert_eq!(worker::backoff(&c, 1), Duration::from_secs(10));
        assert_eq!(worker::backoff(&c, 20), Duration::from_secs(3600));
    }

    #[test]
    fn shown_endpoints_hold_no_credentials() {
        assert_eq!(
            shown_endpoint("https://u:pw@h.example/hook?token=abc"),
            "https://u@h.example/hook"
        );
        assert_eq!(shown_endpoint("not a url"), "(unreadable URL)");
    }
}
