//! Deliveries a person asks for: a signed `webhook.test` event sent right now to every configured
//! endpoint (`POST /api/v1/webhooks/test`, `calconnect webhooks test`), and another delivery of
//! an event from the log (`POST /api/v1/webhook-deliveries/{id}/redeliver`,
//! `calconnect webhooks redeliver`).
//!
//! A test event is sent at once, not through the outbox: the answer says what each receiver
//! did with it (its status code, or why nothing came back), which is what a developer wiring a
//! receiver wants to know. A redelivery goes through the outbox like any delivery (retries,
//! order, the log), as a new row of the same event.

use super::outbox::{self, Delivery};
use super::shown_endpoint;
use crate::api_keys::Authenticated;
use crate::config::BrokerConfig;
use crate::db::{BrokerDb, DbError};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::time::Duration;

/// The event type of a test delivery.
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// How long a receiver has to answer a test delivery (as a real one).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one receiver did with a signed delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    /// The receiver (scheme, host and path).
    pub endpoint: String,
    /// Whether it answered 2xx.
    pub delivered: bool,
    /// Its HTTP status, if it answered.
    pub status_code: Option<i64>,
    /// Why the delivery failed (a status, `timeout`, `connection failed`, `transport error`).
    pub error: Option<String>,
}

/// The answer of a test.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// The test event's id (`calconnect-event-id`), the same for every endpoint.
    pub event_id: String,
    /// One per configured endpoint, in the configuration's order.
    pub results: Vec<TestOutcome>,
}

/// A delivery could not be made: no endpoint, no secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// `webhooks.urls` is empty.
    #[error(
        "no webhook endpoint is configured: set webhooks.urls in the configuration file (or CALCONNECT_WEBHOOK_URLS)"
    )]
    NoEndpoint,
    /// The HTTP client could not start.
    #[error("building the HTTP client failed: {0}")]
    Client(#[from] calconnect::http::HttpClientError),
}

/// The body of a test event: a `webhook.test` in the shape of every event (`id`, `type`,
/// `created_at`, `data`).
pub(crate) fn test_body(event_id: &str, now_unix: i64) -> String {
    let created_at = crate::state::rfc3339_ms(now_unix.saturating_mul(1000));
    serde_json::json!({
        "id": event_id,
        "type": TEST_EVENT_TYPE,
        "created_at": created_at,
        "data": {
            "message": "a test delivery from calconnect: no connection changed",
        },
    })
    .to_string()
}

/// Signs a `webhook.test` event with every configured secret and sends it to every configured
/// endpoint at once, at unix time `now_unix`; reports what each answered. Nothing is written to
/// the database.
///
/// # Errors
/// [`TestError::NoEndpoint`] when `webhooks.urls` is empty.
pub async fn send_test(config: &BrokerConfig, now_unix: i64) -> Result<TestReport, TestError> {
    let http = super::client()?;
    send_test_with(&http, config, now_unix).await
}

async fn send_test_with(
    http: &reqwest::Client,
    config: &BrokerConfig,
    now_unix: i64,
) -> Result<TestReport, TestError> {
    if config.webhooks.urls.is_empty() {
        return Err(TestError::NoEndpoint);
    }
    let event_id = format!("evt_test_{}", uuid::Uuid::new_v4().simple());
    let body = test_body(&event_id, now_unix);
    let sends = config.webhooks.urls.iter().map(|url| {
        let signed = super::Signed {
            endpoint: url.as_str(),
            event_id: &event_id,
            event_type: TEST_EVENT_TYPE,
            body: body.clone(),
        };
        async move {
            let result = signed
                .send(http, &config.webhooks.secrets, now_unix, TEST_TIMEOUT)
                .await;
            let (delivered, status_code, error) = match result {
                Ok(code) => (true, Some(code), None),
                Err((code, error)) => (false, code, Some(error)),
            };
            TestOutcome {
                endpoint: shown_endpoint(url.as_str()),
                delivered,
                status_code,
                error,
            }
        }
    });
    let results = futures::future::join_all(sends).await;
    Ok(TestReport { event_id, results })
}

/// Sends a signed `webhook.test` event to every configured endpoint now and reports what each
/// answered. Not written to the delivery log, and not retried.
#[utoipa::path(post, path = "/api/v1/webhooks/test", operation_id = "testWebhooks", tag = "webhooks",
    responses((status = 200, description = "What each endpoint answered (a failed delivery is a result, not an error)", body = TestReport),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 409, description = "No webhook endpoint is configured", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn test(
    State(state): State<AppState>,
    _auth: Authenticated,
) -> Result<Json<TestReport>, ApiError> {
    let now = state.clock.now().unix_timestamp();
    match send_test_with(&state.webhook_http, &state.config, now).await {
        Ok(report) => Ok(Json(report)),
        Err(e @ TestError::NoEndpoint) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhooks_not_configured",
            e.to_string(),
        )),
        Err(TestError::Client(e)) => Err(ApiError::internal(&e)),
    }
}

/// Why a delivery cannot be sent again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedeliverError {
    /// No delivery has this id.
    #[error("no webhook delivery {0}: see GET /api/v1/webhook-deliveries for the ids")]
    NotFound(i64),
    /// The delivery is still pending: the worker sends (or retries) it anyway.
    #[error(
        "webhook delivery {0} is still pending: it is sent (or retried) on its own; redeliver it once it is delivered, failed or dropped"
    )]
    Pending(i64),
    /// Its endpoint is no longer in `webhooks.urls`.
    #[error(
        "the endpoint of webhook delivery {0} is no longer in webhooks.urls: add it back to send the delivery again"
    )]
    EndpointRemoved(i64),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Queues the event of delivery `id` again for its endpoint: a new delivery (a new row in the
/// log) with the same event id and body, due now; the worker signs it anew (and mints a fresh
/// reconnect link, when the event has one). Only a delivery that is no longer pending, to an
/// endpoint still configured.
///
/// # Errors
/// [`RedeliverError`].
pub async fn redeliver(
    db: &BrokerDb,
    config: &BrokerConfig,
    id: i64,
    now_ms: i64,
) -> Result<Delivery, RedeliverError> {
    let original = outbox::get(db, id)
        .await?
        .ok_or(RedeliverError::NotFound(id))?;
    if original.status == "pending" {
        return Err(RedeliverError::Pending(id));
    }
    if !config
        .webhooks
        .urls
        .iter()
        .any(|u| u.as_str() == original.endpoint)
    {
        return Err(RedeliverError::EndpointRemoved(id));
    }
    let mut queued = outbox::requeue(db, &original, now_ms).await?;
    queued.endpoint = shown_endpoint(&queued.endpoint);
    Ok(queued)
}

/// Sends a logged delivery's event again: queued as a new pending delivery of the same event id
/// and body, signed anew when it is sent. For a receiver that lost or rejected it.
#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/redeliver", operation_id = "redeliverWebhookDelivery", tag = "webhooks",
    params(("id" = i64, Path, description = "The delivery's id (from the delivery log)")),
    responses((status = 202, description = "Queued: the new delivery", body = Delivery),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such delivery", body = crate::openapi::ErrorResponse),
        (status = 409, description = "Still pending, or its endpoint is no longer configured", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Database unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn redeliver_handler(
    State(state): State<AppState>,
    _auth: Authenticated,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no webhook delivery `{id}`")))?;
    match redeliver(&state.db, &state.config, id, state.now_ms()).await {
        Ok(queued) => {
            state.webhooks_nudge();
            Ok((StatusCode::ACCEPTED, Json(queued)))
        }
        Err(e @ RedeliverError::NotFound(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ RedeliverError::Pending(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_pending",
            e.to_string(),
        )),
        Err(e @ RedeliverError::EndpointRemoved(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_not_configured",
            e.to_string(),
        )),
        Err(RedeliverError::Db(e)) => Err(e.into()),
    }
}
