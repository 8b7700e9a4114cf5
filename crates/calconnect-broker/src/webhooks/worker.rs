//! The webhook worker: turns the store's events into outbox rows, drops deliveries to endpoints
//! no longer configured, and delivers the rest.
//!
//! Deliveries run concurrently: each endpoint has its own slots ([`WorkerConfig::per_endpoint`]),
//! so a slow receiver holds up only its own deliveries. Order per (connection, endpoint) is the
//! outbox's: it hands out only the oldest pending delivery of each pair, and the next one only
//! after that one is recorded (`outbox::claim_due_for`).

use super::{WorkerConfig, outbox, payload, shown_endpoint};
use crate::state::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Events re-read behind the cursor: on PostgreSQL a lower sequence number can commit after a
/// higher one (see `ConnectionStore::events_after`); outbox rows are idempotent.
const REREAD_WINDOW: i64 = 100;

/// Turns new store events into outbox rows.
async fn pump(state: &AppState) -> Result<(), BoxError> {
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
        let (kind, reconnect) = payload::event_type(e);
        // The connection as it is now (gone after a delete): its profile and scopes. A store
        // that fails here fails the pump, which tries these events again.
        let connection = match state.store.get_connection(e.connection_id).await {
            Ok(c) => Some(c),
            Err(calconnect::store::StoreError::NotFound { .. }) => None,
            Err(err) => return Err(err.into()),
        };
        // What the link is for, not the link: it is minted at delivery (payload.rs).
        let reconnect = if reconnect {
            let (scopes, team) = match &connection {
                Some(c) => (c.scopes.clone(), c.identity.owner.kind() == "team"),
                None => (state.config.default_scopes.clone(), false),
            };
            Some(payload::ReconnectFor { scopes, team })
        } else {
            None
        };
        let profile = connection.as_ref().and_then(|c| c.profile.as_ref());
        let body = payload::stored(e, kind, reconnect, profile)?;
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

/// Marks pending deliveries to endpoints that are no longer configured, written before this
/// worker started, as `dropped` (they are never sent), and logs each.
async fn drop_unconfigured(state: &AppState, started_ms: i64) -> Result<(), BoxError> {
    let configured: Vec<&str> = state
        .config
        .webhooks
        .urls
        .iter()
        .map(url::Url::as_str)
        .collect();
    let dropped =
        outbox::drop_unconfigured(&state.db, &configured, started_ms, state.now_ms(), 500).await?;
    for d in dropped {
        state.metrics.webhook("dropped");
        tracing::warn!(
            delivery = d.id,
            event = %d.event_id,
            endpoint = %shown_endpoint(&d.endpoint),
            "webhook delivery dropped: its endpoint is no longer in webhooks.urls"
        );
    }
    Ok(())
}

pub(super) fn backoff(config: &WorkerConfig, attempts: i64) -> Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts.clamp(0, 30)).unwrap_or(30));
    config
        .backoff_base
        .saturating_mul(factor)
        .min(config.backoff_max)
}

/// One endpoint's delivery slots.
struct Slots {
    endpoint: String,
    free: Arc<Semaphore>,
}

/// Claims due deliveries for each endpoint with a free slot and starts them in `tasks`.
async fn start_due(
    state: &AppState,
    config: &WorkerConfig,
    slots: &[Slots],
    tasks: &mut JoinSet<()>,
) -> Result<(), BoxError> {
    if state.config.webhooks.secrets.is_empty() {
        return Ok(());
    }
    let lease_ms = i64::try_from(config.timeout.as_millis()).unwrap_or(10_000) * 3;
    for slot in slots {
        let free = slot.free.available_permits();
        if free == 0 {
            continue;
        }
        let limit = i64::try_from(free).unwrap_or(1);
        let due = outbox::claim_due_for(&state.db, &slot.endpoint, state.now_ms(), lease_ms, limit)
            .await?;
        for d in due {
            // Only this loop takes permits, so `free` of them are there; were one missing, the
            // lease would run out and a later round would send the delivery.
            let Ok(permit) = slot.free.clone().try_acquire_owned() else {
                break;
            };
            tasks.spawn(deliver(state.clone(), config.clone(), d, permit));
        }
    }
    Ok(())
}

/// What one attempt gave: success, or the status code and error to record.
type Attempt = Result<i64, (Option<i64>, String)>;

/// Sends `d` once, signing it now (minting its reconnect link, if any, just before).
async fn attempt(state: &AppState, config: &WorkerConfig, d: &outbox::Delivery) -> Attempt {
    let body = match payload::to_send(state, &d.payload).await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(delivery = d.id, error = %e, "webhook body not ready");
            return Err((None, "the reconnect link could not be made".to_owned()));
        }
    };
    let t = state.clock.now().unix_timestamp();
    super::Signed {
        endpoint: &d.endpoint,
        event_id: &d.event_id,
        event_type: &d.event_type,
        body,
    }
    .send(
        &state.webhook_http,
        &state.config.webhooks.secrets,
        t,
        config.timeout,
    )
    .await
}

/// Sends `d`, records the result, frees its slot and wakes the worker (the next delivery of
/// the same connection may now go).
async fn deliver(
    state: AppState,
    config: WorkerConfig,
    d: outbox::Delivery,
    permit: OwnedSemaphorePermit,
) {
    let result = attempt(&state, &config, &d).await;
    let now = state.now_ms();
    let recorded = match result {
        Ok(code) => {
            state.metrics.webhook("delivered");
            outbox::record(
                &state.db,
                d.id,
                "delivered",
                Some(code),
                None,
                now,
                Some(now),
            )
            .await
        }
        Err((code, error)) => {
            let attempts = d.attempts + 1;
            let gave_up = attempts >= config.max_attempts;
            state
                .metrics
                .webhook(if gave_up { "failed" } else { "retry" });
            let wait =
                i64::try_from(backoff(&config, d.attempts).as_millis()).unwrap_or(i64::MAX / 2);
            tracing::info!(delivery = d.id, event = %d.event_id, attempts, error = %error, "webhook delivery failed");
            outbox::record(
                &state.db,
                d.id,
                if gave_up { "failed" } else { "pending" },
                code,
                Some(&error),
                now + wait,
                None,
            )
            .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(delivery = d.id, error = %e, "webhook outbox: recording a delivery failed");
    }
    drop(permit);
    state.webhooks_nudge();
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

/// Spawns the worker; when `stop` turns true it starts nothing new and waits for the deliveries
/// in flight (each bounded by [`WorkerConfig::timeout`]).
pub(crate) fn spawn_worker(
    state: AppState,
    config: WorkerConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots: Vec<Slots> = state
            .config
            .webhooks
            .urls
            .iter()
            .map(|u| Slots {
                endpoint: u.as_str().to_owned(),
                free: Arc::new(Semaphore::new(config.per_endpoint.max(1))),
            })
            .collect();
        let started_ms = state.now_ms();
        let mut tasks = JoinSet::new();
        let mut rounds = 0u64;
        loop {
            if *stop.borrow() {
                break;
            }
            if rounds % 30 == 0 {
                housekeeping(&state).await;
            }
            rounds += 1;
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::warn!(error = %e, "webhook delivery task ended abnormally");
                }
            }
            if let Err(e) = drop_unconfigured(&state, started_ms).await {
                tracing::warn!(error = %e, "webhook outbox: dropping deliveries failed");
            }
            if !slots.is_empty() {
                if let Err(e) = pump(&state).await {
                    tracing::warn!(error = %e, "webhook outbox: reading events failed");
                }
                if let Err(e) = start_due(&state, &config, &slots, &mut tasks).await {
                    tracing::warn!(error = %e, "webhook outbox: delivering failed");
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = state.webhook_wake.notified() => {}
                () = tokio::time::sleep(config.poll) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    })
}
