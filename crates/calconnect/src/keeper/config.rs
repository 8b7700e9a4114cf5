//! [`KeeperConfig`]: margins, lease and wait bounds, backoff, the keep-alive sweep, and the
//! fail-point hooks used by the crash tests.

use crate::api::{Timer, TokioTimer};
use crate::budget::RefreshBudget;
use crate::store::ConnectionId;
#[cfg(feature = "fail-points")]
use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;

/// A step of a refresh, in order (see the state machine in [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg(feature = "fail-points")]
pub enum RefreshStep {
    /// The lease is held and the intent recorded; Cal.com has not been called.
    BeforeCall,
    /// Cal.com answered with a new pair (the old refresh token is now dead); nothing written.
    AfterResponse,
    /// The new pair is written; the lease is not yet released.
    AfterWrite,
}

#[cfg(feature = "fail-points")]
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
/// print the step and block so a parent process can kill the refresher exactly there. Only with
/// the crate's `fail-points` feature (tests).
#[cfg(feature = "fail-points")]
#[async_trait]
pub trait RefreshHooks: Send + Sync + Debug {
    /// Called at `step` of a refresh of `connection`; the refresh continues when it returns.
    async fn at(&self, step: RefreshStep, connection: ConnectionId) {
        let _ = (step, connection);
    }
}

/// Hooks that do nothing.
#[cfg(feature = "fail-points")]
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

#[cfg(feature = "fail-points")]
impl RefreshHooks for NoHooks {}

/// How the keeper behaves. [`KeeperConfig::default`] suits Cal.com (30-minute access tokens,
/// 30-day sliding refresh window, docs/calcom.md §3.6); [`KeeperConfig::builder`] changes it,
/// every duration a [`std::time::Duration`], and checks the values when it builds.
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    pub(crate) margin: Duration,
    pub(crate) lease_for: Duration,
    pub(crate) refresh_timeout: StdDuration,
    pub(crate) lease_wait: StdDuration,
    pub(crate) poll_interval: StdDuration,
    pub(crate) backoff_base: StdDuration,
    pub(crate) backoff_max: StdDuration,
    pub(crate) refresh_window: Duration,
    pub(crate) revalidate_after: Duration,
    pub(crate) sweep: SweepConfig,
    pub(crate) timer: Arc<dyn Timer>,
    #[cfg(feature = "fail-points")]
    pub(crate) hooks: Arc<dyn RefreshHooks>,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) instance_name: Option<String>,
    pub(crate) budget: Option<Arc<dyn RefreshBudget>>,
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
            revalidate_after: Duration::milliseconds(500),
            sweep: SweepConfig::default(),
            timer: Arc::new(TokioTimer::new()),
            #[cfg(feature = "fail-points")]
            hooks: Arc::new(NoHooks),
            jitter_seed: None,
            instance_name: None,
            budget: None,
        }
    }
}

fn time(d: StdDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::MAX)
}

fn std(d: Duration) -> StdDuration {
    StdDuration::try_from(d).unwrap_or(StdDuration::ZERO)
}

impl KeeperConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> KeeperConfigBuilder {
        KeeperConfigBuilder(Self::default())
    }

    /// A builder starting from this configuration.
    pub fn to_builder(&self) -> KeeperConfigBuilder {
        KeeperConfigBuilder(self.clone())
    }

    /// Refresh when the access token is valid for less than this.
    pub fn margin(&self) -> StdDuration {
        std(self.margin)
    }

    /// The provider's sliding refresh-token window.
    pub fn refresh_window(&self) -> StdDuration {
        std(self.refresh_window)
    }

    /// How long a cached token is handed out before the store is asked again.
    pub fn revalidate_after(&self) -> StdDuration {
        std(self.revalidate_after)
    }

    /// The keep-alive sweep.
    pub fn sweep(&self) -> &SweepConfig {
        &self.sweep
    }

    /// The token-endpoint budget refreshes take permits from, if one is set.
    pub fn budget(&self) -> Option<&Arc<dyn RefreshBudget>> {
        self.budget.as_ref()
    }

    #[cfg(feature = "fail-points")]
    pub(crate) async fn fail_point(&self, step: RefreshStep, id: ConnectionId) {
        self.hooks.at(step, id).await;
    }

    #[cfg(not(feature = "fail-points"))]
    #[allow(clippy::unused_async)] // reason: the same call shape as with the feature
    pub(crate) async fn fail_point(&self, _step: FailPoint, _id: ConnectionId) {}
}

/// The steps of a refresh, for [`KeeperConfig::fail_point`] without the `fail-points` feature.
#[cfg(not(feature = "fail-points"))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum FailPoint {
    BeforeCall,
    AfterResponse,
    AfterWrite,
}

/// Builds a [`KeeperConfig`]; [`KeeperConfigBuilder::build`] checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct KeeperConfigBuilder(KeeperConfig);

impl KeeperConfigBuilder {
    /// Refresh when the access token is valid for less than this (default 5 minutes), but at
    /// most a quarter of the token's lifetime (module docs of [`super`], "The margin adapts").
    pub fn margin(mut self, margin: StdDuration) -> Self {
        self.0.margin = time(margin);
        self
    }

    /// How long a refresh lease lasts; longer than `refresh_timeout` plus the write (default 60 s).
    pub fn lease_for(mut self, lease: StdDuration) -> Self {
        self.0.lease_for = time(lease);
        self
    }

    /// Upper bound for the token call (default 30 s; the HTTP client's own timeouts apply too).
    pub fn refresh_timeout(mut self, timeout: StdDuration) -> Self {
        self.0.refresh_timeout = timeout;
        self
    }

    /// How long to wait for another instance's refresh before re-reading (default 10 s).
    pub fn lease_wait(mut self, wait: StdDuration) -> Self {
        self.0.lease_wait = wait;
        self
    }

    /// How often to re-read the store while waiting for another instance (default 50 ms).
    pub fn poll_interval(mut self, interval: StdDuration) -> Self {
        self.0.poll_interval = interval;
        self
    }

    /// First backoff after a transient failure (default 1 s); doubles per failure up to
    /// `backoff_max` (default 5 minutes).
    pub fn backoff(mut self, base: StdDuration, max: StdDuration) -> Self {
        self.0.backoff_base = base;
        self.0.backoff_max = max;
        self
    }

    /// The provider's sliding refresh-token window (default 30 days; Cal.com may move to a
    /// year, docs/calcom.md §3.6): the refresh-token expiry estimate and the sweep.
    pub fn refresh_window(mut self, window: StdDuration) -> Self {
        self.0.refresh_window = time(window);
        self
    }

    /// How long a cached token is handed out before the store is asked again whether its
    /// connection still exists and is active (default 500 ms): a disconnect or `needs_reauth`
    /// written by another instance takes effect here within this time.
    pub fn revalidate_after(mut self, after: StdDuration) -> Self {
        self.0.revalidate_after = time(after);
        self
    }

    /// The keep-alive sweep.
    pub fn sweep(mut self, sweep: SweepConfig) -> Self {
        self.0.sweep = sweep;
        self
    }

    /// Sleeping (waits and backoff); tests inject a simulated timer.
    pub fn timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.0.timer = timer;
        self
    }

    /// Fail points (crash tests; feature `fail-points`).
    #[cfg(feature = "fail-points")]
    pub fn hooks(mut self, hooks: Arc<dyn RefreshHooks>) -> Self {
        self.0.hooks = hooks;
        self
    }

    /// Seed for backoff and sweep jitter (default: from the OS).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.0.jitter_seed = Some(seed);
        self
    }

    /// The token-endpoint budget every refresh takes a permit from before it calls the
    /// provider ([`crate::budget`]; default none: as many refreshes as needed). Share one
    /// budget between the keeper and the [`crate::connect::Connector`], and, across
    /// instances, use the store's shared budget. On-demand refreshes wait for a permit up to
    /// the budget's `max_wait`, then fail with [`super::KeeperError::BudgetExhausted`];
    /// keep-alive refreshes never wait (the sweep tries again later).
    pub fn budget(mut self, budget: Arc<dyn RefreshBudget>) -> Self {
        self.0.budget = Some(budget);
        self
    }

    /// Name of this instance in leases (default `keeper-<uuid>`).
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.0.instance_name = Some(name.into());
        self
    }

    /// The configuration, checked ([`KeeperConfig::validate`]).
    ///
    /// # Errors
    /// [`KeeperConfigError`] naming the setting to fix.
    pub fn build(self) -> Result<KeeperConfig, KeeperConfigError> {
        self.0.validate()?;
        Ok(self.0)
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
    /// How long a keep-alive refresh waits for a background permit of the token-endpoint
    /// budget before the sweep leaves the rest for later (default 20 s; no budget: unused).
    pub permit_wait: StdDuration,
    /// Once a refresh token is this fraction of the window old (default 0.8: 24 of 30 days),
    /// its keep-alive refresh stops yielding to API calls and takes an on-demand permit of the
    /// budget: a budget saturated by API calls delays keep-alive, it never lets a refresh
    /// token lapse.
    pub urgent_at_fraction: f64,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            refresh_at_fraction: 0.5,
            interval: StdDuration::from_secs(60),
            batch: 100,
            concurrency: 4,
            permit_wait: StdDuration::from_secs(20),
            urgent_at_fraction: 0.8,
        }
    }
}

impl SweepConfig {
    /// The age after which a refresh token is kept alive, for `window`.
    pub fn refresh_age(&self, window: Duration) -> Duration {
        let fraction = self.refresh_at_fraction.clamp(0.05, 0.95);
        window * fraction
    }

    /// The age after which a keep-alive refresh is urgent, for `window` (never before
    /// [`SweepConfig::refresh_age`]).
    pub fn urgent_age(&self, window: Duration) -> Duration {
        let fraction = self
            .urgent_at_fraction
            .clamp(self.refresh_at_fraction.clamp(0.05, 0.95), 0.99);
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
    /// A keep-alive refresh would wait for a permit longer than it holds its lease.
    #[error("keeper sweep permit_wait must be shorter than lease_for (defaults: 20 s and 60 s)")]
    PermitWait,
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
        if time(self.sweep.permit_wait) >= self.lease_for {
            return Err(KeeperConfigError::PermitWait);
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
        let short_lease = KeeperConfig::builder()
            .lease_for(StdDuration::from_secs(10))
            .build();
        assert_eq!(
            short_lease.map(|_| ()),
            Err(KeeperConfigError::LeaseTooShort)
        );
        let margin = KeeperConfig::builder()
            .margin(StdDuration::from_secs(31 * 60))
            .build();
        assert_eq!(margin.map(|_| ()), Err(KeeperConfigError::Margin));
        let ok = KeeperConfig::builder()
            .margin(StdDuration::from_secs(60))
            .refresh_window(StdDuration::from_secs(365 * 86_400))
            .build()
            .unwrap();
        assert_eq!(ok.margin(), StdDuration::from_secs(60));
        assert_eq!(ok.refresh_window(), StdDuration::from_secs(365 * 86_400));
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
