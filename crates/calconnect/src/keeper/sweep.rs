//! The keep-alive sweep: refreshes idle connections before their sliding refresh-token window
//! closes (docs/calcom.md §3.6: 30 days today, perhaps a year later), so a user who does not
//! use the app for a month is not disconnected.
//!
//! Work is spread over time and instances: each sweep claims at most
//! [`SweepConfig::batch`](super::SweepConfig::batch) due connections, leased to this instance
//! in the same store step (so two instances never claim the same row), refreshes them with at
//! most `concurrency` at once, and the next sweep starts after a jittered interval. A
//! connection becomes due once its refresh token is `refresh_at_fraction` of the window old,
//! which leaves the rest of the window to work through a backlog or an outage.

use super::flight::Trigger;
use super::{KeeperError, TokenKeeper, telemetry};
use crate::store::{DueQuery, StoreError};
use futures::StreamExt;
use rand::RngCore;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Due connections claimed.
    pub claimed: usize,
    /// Refreshed (or found refreshed by someone else).
    pub kept_alive: usize,
    /// Skipped because their refreshes are backing off after transient failures.
    pub backing_off: usize,
    /// Found dead (`needs_reauth` or `refresh_lost` now).
    pub broken: usize,
    /// Failed for now (transient, store or other errors); retried by a later sweep.
    pub failed: usize,
    /// Not refreshed because the token-endpoint budget had no background permit in time
    /// ([`crate::budget`]); left for a later sweep.
    pub deferred: usize,
}

impl super::Inner {
    /// Releases our leases of `ids` (a lease we no longer hold is left alone).
    async fn release_all(&self, ids: &[crate::store::ConnectionId]) {
        for id in ids {
            let _ = self.store.release_lease(*id, &self.owner).await;
        }
    }
}

impl SweepReport {
    /// Whether to sweep again at once: the batch was full and all of it went through. Out of
    /// budget, or with connections failing or backing off (an outage: they would be claimed
    /// first again), the background task waits its interval instead.
    pub fn more_due(&self, batch: u32) -> bool {
        self.claimed >= batch as usize
            && self.deferred == 0
            && self.failed == 0
            && self.backing_off == 0
    }
}

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// Claiming due connections failed.
    #[error("the keep-alive sweep could not claim due connections: {0}")]
    Store(#[source] StoreError),
}

/// A running sweep task. [`SweepHandle::stop`] ends it after the sweep in progress, if any.
#[derive(Debug)]
pub struct SweepHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SweepHandle {
    /// Stops the sweep gracefully: a batch in progress finishes, no new one starts.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the keep-alive sweep task ended abnormally");
        }
    }
}

impl TokenKeeper {
    /// Runs one keep-alive sweep now.
    ///
    /// # Errors
    /// [`SweepError`] when the store cannot be queried; failures of single connections are
    /// counted in the report instead.
    pub async fn sweep_once(&self) -> Result<SweepReport, SweepError> {
        let inner = &self.inner;
        let config = &inner.config;
        let now = inner.clock.now();
        let before = now - config.sweep.refresh_age(config.refresh_window);
        let urgent_before = now - config.sweep.urgent_age(config.refresh_window);
        let mut report = SweepReport::default();
        // Claimed in small chunks, so that rows wait for the budget unclaimed (and another
        // instance may take them) rather than under a lease that runs out.
        let chunk = (config.sweep.concurrency.max(1) * 2).min(config.sweep.batch as usize);
        let budget_spent = AtomicBool::new(false);
        let mut held = Vec::new();
        while report.claimed < config.sweep.batch as usize && !budget_spent.load(Ordering::Relaxed)
        {
            let want = chunk.min(config.sweep.batch as usize - report.claimed);
            let claimed = match inner
                .store
                .claim_due_for_refresh(DueQuery {
                    // Only keep-alive: idle access tokens are left to expire (refreshing them
                    // would mean a refresh every 30 minutes per connection).
                    access_expires_before: OffsetDateTime::UNIX_EPOCH,
                    last_refreshed_before: before,
                    limit: u32::try_from(want).unwrap_or(u32::MAX),
                    owner: inner.owner.clone(),
                    lease_for: config.lease_for,
                })
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    inner.release_all(&held).await;
                    return Err(SweepError::Store(e));
                }
            };
            if claimed.is_empty() {
                break;
            }
            let last_chunk = claimed.len() < want;
            report.claimed += claimed.len();
            let budget_spent = &budget_spent;
            let results = futures::stream::iter(claimed)
                .map(|c| async move {
                    let outcome = if budget_spent.load(Ordering::Relaxed) {
                        "deferred"
                    } else if inner.backoff_until(c.id).is_some_and(|t| t > now) {
                        "backing_off"
                    } else {
                        let urgent = c.last_refreshed_at < urgent_before;
                        match inner
                            .run_flight(c.id, Trigger::KeepAlive { before, urgent })
                            .await
                        {
                            Ok(_) => "kept_alive",
                            Err(KeeperError::BudgetExhausted { .. }) => {
                                budget_spent.store(true, Ordering::Relaxed);
                                "deferred"
                            }
                            Err(e) if e.requires_reauthorization() => "broken",
                            Err(_) => "failed",
                        }
                    };
                    // Our claim's lease, if the flight did not already release it. A
                    // connection backing off keeps it until the sweep ends, or the next chunk
                    // would claim it again (it is among the most due).
                    if outcome != "backing_off" {
                        let _ = inner.store.release_lease(c.id, &inner.owner).await;
                    }
                    telemetry::swept(outcome);
                    (c.id, outcome)
                })
                .buffer_unordered(config.sweep.concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
            for (id, outcome) in results {
                match outcome {
                    "kept_alive" => report.kept_alive += 1,
                    "backing_off" => {
                        report.backing_off += 1;
                        held.push(id);
                    }
                    "broken" => report.broken += 1,
                    "deferred" => report.deferred += 1,
                    _ => report.failed += 1,
                }
            }
            if last_chunk {
                break;
            }
        }
        inner.release_all(&held).await;
        Ok(report)
    }

    /// Starts the keep-alive sweep in the background: one sweep per jittered
    /// [`SweepConfig::interval`](super::SweepConfig::interval), first after one interval.
    pub fn spawn_sweep(&self) -> SweepHandle {
        let (stop, mut stopped) = watch::channel(false);
        let keeper = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let wait = keeper.jittered_interval();
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = keeper.inner.config.timer.sleep(wait) => {}
                }
                // While a full batch leaves more due connections, sweep again at once: the
                // budget's background permits pace the work, not the interval.
                loop {
                    match keeper.sweep_once().await {
                        Ok(report) => {
                            tracing::debug!(?report, "keep-alive sweep done");
                            keeper.check_capacity().await;
                            if !report.more_due(keeper.inner.config.sweep.batch)
                                || *stopped.borrow()
                            {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "keep-alive sweep failed");
                            break;
                        }
                    }
                }
                if *stopped.borrow() {
                    break;
                }
            }
        });
        SweepHandle { stop, task }
    }

    /// The sweep interval ±20 %.
    fn jittered_interval(&self) -> std::time::Duration {
        let base = self.inner.config.sweep.interval;
        let mut rng = self
            .inner
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let factor = 0.8 + (rng.next_u32() as f64 / u32::MAX as f64) * 0.4;
        base.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::SweepReport;

    #[test]
    fn sweeps_again_at_once_only_after_a_full_batch_that_went_through() {
        let full = SweepReport {
            claimed: 10,
            kept_alive: 10,
            ..SweepReport::default()
        };
        assert!(full.more_due(10));
        assert!(
            !SweepReport {
                claimed: 9,
                kept_alive: 9,
                ..full
            }
            .more_due(10)
        );
        assert!(
            !SweepReport {
                deferred: 1,
                ..full
            }
            .more_due(10)
        );
        // An outage: the same connections would be claimed again at once.
        assert!(
            !SweepReport {
                kept_alive: 0,
                backing_off: 10,
                ..full
            }
            .more_due(10)
        );
        assert!(
            !SweepReport {
                kept_alive: 9,
                failed: 1,
                ..full
            }
            .more_due(10)
        );
    }
}
