//! [`KeeperConfig`]: margins, lease and wait bounds, backoff, the keep-alive sweep, and the
//! fail-point hooks used by the crash tests.

use crate::api::{Timer, TokioTimer};
use crate::store::ConnectionId;
use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;

/// A step of a refresh, in order (see the state machine in [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshStep {
    /// The lease is held and the intent recorded; Cal.com has not been called.
    BeforeCall,
    /// Cal.com answered with a new pair (the old refresh token is now dead); nothing written.
    AfterResponse,
    /// The new pair is written; the lease is not yet released.
    AfterWrite,
}

impl RefreshStep {
    /// `before_call`, `after_response` or `after_write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BeforeCall => "before_call",
            Self::AfterResponse => "after_response",
            Self::AfterWrite => "after_write",
        }
    }
}

/// Fail points: called at each [`RefreshStep`]. The default does nothing; the crash tests
/// print the step and block so a parent process can kill the refresher exactly there.
#[async_trait]
pub trait RefreshHooks: Send + Sync + Debug {
    /// Called at `step` of a refresh of `connection`; the refresh continues when it returns.
    async fn at(&self, step: RefreshStep, connection: ConnectionId) {
        let _ = (step, connection);
    }
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl RefreshHooks for NoHooks {}

/// How the keeper behaves. [`KeeperConfig::default`] suits Cal.com (30-minute access tokens,
/// 30-day sliding refresh window, docs/calcom.md §3.6).
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// Refresh when the access token is valid for less than this (default 5 minutes), but at
    /// most a quarter of the token's lifetime (module docs of [`super`], "The margin adapts").
    pub margin: Duration,
    /// How long a refresh lease lasts; longer than `refresh_timeout` plus the write
    /// (default 60 s).
    pub lease_for: Duration,
    /// Upper bound for the token call (default 30 s; the HTTP client's own timeouts apply too).
    pub refresh_timeout: StdDuration,
    /// How long to wait for another instance's refresh before re-reading (default 10 s).
    pub lease_wait: StdDuration,
    /// How often to re-read the store while waiting for another instance (default 50 ms).
    pub poll_interval: StdDuration,
    /// First backoff after a transient failure (default 1 s); doubles per failure.
    pub backoff_base: StdDuration,
    /// Longest backoff (default 5 minutes).
    pub backoff_max: StdDuration,
    /// The provider's sliding refresh-token window (default 30 days; Cal.com may move to a
    /// year, docs/calcom.md §3.6). Used for the refresh-token expiry estimate and the sweep.
    pub refresh_window: Duration,
    /// The keep-alive sweep.
    pub sweep: SweepConfig,
    /// Sleeping (waits and backoff); tests inject a simulated timer.
    pub timer: Arc<dyn Timer>,
    /// Fail points (default: none).
    pub hooks: Arc<dyn RefreshHooks>,
    /// Seed for backoff and sweep jitter (default: from the OS).
    pub jitter_seed: Option<u64>,
    /// Name of this instance in leases (default `keeper-<uuid>`).
    pub instance_name: Option<String>,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        Self {
            margin: Duration::minutes(5),
            lease_for: Duration::seconds(60),
            refresh_timeout: StdDuration::from_secs(30),
            lease_wait: StdDuration::from_secs(10),
            poll_interval: StdDuration::from_millis(50),
            backoff_base: StdDuration::from_secs(1),
            backoff_max: StdDuration::from_secs(300),
            refresh_window: Duration::days(30),
            sweep: SweepConfig::default(),
            timer: Arc::new(TokioTimer::new()),
            hooks: Arc::new(NoHooks),
            jitter_seed: None,
            instance_name: None,
        }
    }
}

/// The keep-alive sweep (docs/architecture.md §3.6, last point).
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Refresh a connection once its refresh token is this fraction of the window old
    /// (default 0.5: with a 30-day window, after 15 days). The other half is slack for
    /// spreading the work and surviving outages.
    pub refresh_at_fraction: f64,
    /// Time between sweeps (default 60 s), jittered by up to ±20 % so instances drift apart.
    pub interval: StdDuration,
    /// Connections claimed per sweep (default 100): spreads a wave of due connections over
    /// several sweeps and instances.
    pub batch: u32,
    /// Refreshes running at once per sweep (default 4).
    pub concurrency: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            refresh_at_fraction: 0.5,
            interval: StdDuration::from_secs(60),
            batch: 100,
            concurrency: 4,
        }
    }
}

impl SweepConfig {
    /// The age after which a refresh token is kept alive, for `window`.
    pub fn refresh_age(&self, window: Duration) -> Duration {
        let fraction = self.refresh_at_fraction.clamp(0.05, 0.95);
        window * fraction
    }
}

/// A [`KeeperConfig`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperConfigError {
    /// The margin is negative or not shorter than an access token's life at Cal.com.
    #[error(
        "keeper margin must be between 0 and 30 minutes (Cal.com access tokens live 30 minutes); 5 minutes is the default"
    )]
    Margin,
    /// The lease does not outlast the token call.
    #[error(
        "keeper lease_for must be longer than refresh_timeout (plus time to write); the default is 60 s for a 30 s timeout"
    )]
    LeaseTooShort,
    /// The refresh window is outside what Cal.com may use.
    #[error(
        "keeper refresh_window must be between 1 day and 2 years (Cal.com: 30 days today, perhaps 1 year later)"
    )]
    RefreshWindow,
    /// The sweep would never run or never refresh.
    #[error("keeper sweep needs interval > 0, batch > 0 and concurrency > 0")]
    Sweep,
}

impl KeeperConfig {
    /// Checks the values against each other and against Cal.com's lifetimes (docs/calcom.md
    /// §3.6). Call it where configuration is loaded.
    ///
    /// # Errors
    /// [`KeeperConfigError`] naming the setting to fix.
    pub fn validate(&self) -> Result<(), KeeperConfigError> {
        if self.margin < Duration::ZERO || self.margin >= Duration::minutes(30) {
            return Err(KeeperConfigError::Margin);
        }
        let timeout = Duration::try_from(self.refresh_timeout).unwrap_or(Duration::MAX);
        if self.lease_for <= timeout {
            return Err(KeeperConfigError::LeaseTooShort);
        }
        if self.refresh_window < Duration::days(1) || self.refresh_window > Duration::days(730) {
            return Err(KeeperConfigError::RefreshWindow);
        }
        if self.sweep.interval.is_zero() || self.sweep.batch == 0 || self.sweep.concurrency == 0 {
            return Err(KeeperConfigError::Sweep);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(KeeperConfig::default().validate(), Ok(()));
        let short_lease = KeeperConfig {
            lease_for: Duration::seconds(10),
            ..KeeperConfig::default()
        };
        assert_eq!(
            short_lease.validate(),
            Err(KeeperConfigError::LeaseTooShort)
        );
        let margin = KeeperConfig {
            margin: Duration::minutes(31),
            ..KeeperConfig::default()
        };
        assert_eq!(margin.validate(), Err(KeeperConfigError::Margin));
    }

    #[test]
    fn sweep_age_is_a_fraction_of_the_window() {
        let sweep = SweepConfig::default();
        assert_eq!(sweep.refresh_age(Duration::days(30)), Duration::days(15));
        assert_eq!(
            sweep.refresh_age(Duration::days(365)),
            Duration::hours(365 * 12)
        );
    }
}
