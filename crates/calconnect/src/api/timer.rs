//! Injected waiting (docs/architecture.md §6.5): the rate governor, the 429 wait and the
//! retry backoff read "now" and sleep through a [`Timer`], so tests can move a simulated clock
//! instead of sleeping.

use async_trait::async_trait;
use std::fmt::Debug;
use std::time::Duration;

/// Monotonic time and sleeping.
#[async_trait]
pub trait Timer: Send + Sync + Debug {
    /// Time since an arbitrary, fixed origin; never goes backwards.
    fn now(&self) -> Duration;

    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The real timer: tokio's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct TokioTimer {
    origin: tokio::time::Instant,
}

impl TokioTimer {
    /// A timer whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioTimer {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Timer for TokioTimer {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
