//! Webhooks: events from the store's event log, an outbox, signed deliveries with retries.

use crate::state::AppState;
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
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// Spawns the worker; it stops when `stop` turns true.
pub(crate) fn spawn_worker(
    _state: AppState,
    _config: WorkerConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
}
