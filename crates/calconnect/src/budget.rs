//! The refresh budget: how many token-endpoint requests this deployment may send per minute,
//! shared by every keeper and connector that uses one store (docs/scaling.md).
//!
//! Cal.com limits its token endpoint per client IP, not per connection: token requests carry no
//! bearer token, so every code exchange and refresh sent from one egress IP counts against one
//! counter (120 per minute by default; a 429 blocks the IP for about a minute, docs/calcom.md).
//! With 30-minute access tokens one IP can therefore keep about 120 × 30 = 3,600 connections
//! continuously fresh. The budget is a token bucket that stays below that limit, with
//! priorities, so that a person waiting on the consent screen goes first, an API call waiting
//! for a token second, and background keep-alive last:
//!
//! - the bucket refills at [`BudgetConfig::per_minute`] and holds at most
//!   [`BudgetConfig::burst`]; in any 60 seconds at most `burst + per_minute` requests leave
//!   (the defaults, 10 + 100 = 110, stay under Cal.com's 120);
//! - a code exchange ([`Priority::Exchange`]) may take the last permit; an on-demand refresh
//!   ([`Priority::OnDemand`]) leaves [`BudgetConfig::exchange_reserve`] permits for exchanges;
//!   background refreshes ([`Priority::Background`]) leave half the bucket and may use at most
//!   [`BudgetConfig::background_share`] of the rate (a second, smaller bucket);
//! - a 429 from the token endpoint pauses the whole budget until the provider's block ends
//!   ([`RefreshBudget::pause`]) and empties it, so every instance backs off together.
//!
//! [`LocalBudget`] keeps the bucket in memory (one process); the SQL store keeps it in a row
//! updated atomically, shared by all instances (`calconnect_sql::SqlBudget`).

use crate::api::Timer;
use crate::clock::Clock;
use crate::store::StoreError;
use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;
use time::{Duration, OffsetDateTime};

/// Who is waiting for a token-endpoint request, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// A code exchange: a person is on the consent screen's return.
    Exchange,
    /// A refresh an API call is waiting for.
    OnDemand,
    /// A refresh nobody waits for (the keep-alive sweep).
    Background,
}

impl Priority {
    /// `exchange`, `on_demand` or `background` (metrics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exchange => "exchange",
            Self::OnDemand => "on_demand",
            Self::Background => "background",
        }
    }
}

/// The budget's settings; [`BudgetConfig::default`] suits one egress IP at Cal.com.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    /// The budget's name in the store: one budget per egress IP (default `default`).
    pub name: String,
    /// Permits per minute (default 100, below Cal.com's 120 per IP per minute).
    pub per_minute: u32,
    /// The most permits that can be saved up (default 10): at most `burst + per_minute`
    /// requests in any minute.
    pub burst: u32,
    /// Permits only code exchanges may take (default 2).
    pub exchange_reserve: u32,
    /// The share of `per_minute` background refreshes may use (default 0.5).
    pub background_share: f64,
    /// How long an on-demand caller (an exchange or an API call) waits for a permit before it
    /// gets a typed error (default 10 s).
    pub max_wait: StdDuration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            per_minute: 100,
            burst: 10,
            exchange_reserve: 2,
            background_share: 0.5,
            max_wait: StdDuration::from_secs(10),
        }
    }
}

/// A [`BudgetConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetConfigError {
    /// No permits at all.
    #[error(
        "budget per_minute must be at least 1 (the default is 100, below Cal.com's 120 per minute per IP)"
    )]
    Rate,
    /// The bucket cannot hold the reserve and one more permit.
    #[error(
        "budget burst must be larger than exchange_reserve (defaults: burst 10, exchange_reserve 2)"
    )]
    Burst,
    /// The share is not in (0, 1].
    #[error("budget background_share must be above 0 and at most 1 (default 0.5)")]
    Share,
    /// The name is empty or too long.
    #[error("budget name must be 1 to 64 characters (default \"default\")")]
    Name,
}

impl BudgetConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`BudgetConfigError`] naming the setting to fix.
    pub fn validate(&self) -> Result<(), BudgetConfigError> {
        if self.per_minute == 0 {
            return Err(BudgetConfigError::Rate);
        }
        if self.burst <= self.exchange_reserve {
            return Err(BudgetConfigError::Burst);
        }
        if !(self.background_share > 0.0 && self.background_share <= 1.0) {
            return Err(BudgetConfigError::Share);
        }
        if self.name.is_empty() || self.name.len() > 64 {
            return Err(BudgetConfigError::Name);
        }
        Ok(())
    }

    /// Permits per second.
    fn rate(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    fn background_rate(&self) -> f64 {
        self.rate() * self.background_share
    }

    /// The background bucket's size: the share of the burst, at least one permit.
    fn background_burst(&self) -> f64 {
        (f64::from(self.burst) * self.background_share).max(1.0)
    }

    /// The permits a taker of `priority` must leave in the bucket.
    fn floor(&self, priority: Priority) -> f64 {
        match priority {
            Priority::Exchange => 0.0,
            Priority::OnDemand => f64::from(self.exchange_reserve),
            Priority::Background => {
                (f64::from(self.burst) / 2.0).max(f64::from(self.exchange_reserve))
            }
        }
    }

    /// Connections whose refresh tokens background refreshes can keep alive within `window`:
    /// `per_minute × background_share × minutes in the window`.
    pub fn keep_alive_capacity(&self, window: Duration) -> u64 {
        let minutes = window.whole_minutes().max(0) as f64;
        (f64::from(self.per_minute) * self.background_share * minutes) as u64
    }

    /// Connections this budget can keep continuously fresh when every one is in use, with
    /// tokens living `token_lifetime`: `per_minute × lifetime in minutes`.
    pub fn fresh_capacity(&self, token_lifetime: Duration) -> u64 {
        (f64::from(self.per_minute) * token_lifetime.whole_minutes().max(0) as f64) as u64
    }
}

/// The bucket: saved permits, the background bucket, and a pause. Both budget kinds run the
/// same arithmetic on it ([`BucketState::take`]), so one instance and many agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    /// Permits saved up (fractional between refills).
    pub tokens: f64,
    /// Background permits saved up.
    pub background: f64,
    /// When the counts were last brought up to date.
    pub updated_at: OffsetDateTime,
    /// No permits at all before this (a provider's 429).
    pub paused_until: Option<OffsetDateTime>,
}

/// The answer of one attempt to take a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Granted: send the request.
    Granted,
    /// Not now: try again after this long at the earliest.
    Wait(Duration),
}

impl BucketState {
    /// A full bucket at `now`.
    pub fn full(config: &BudgetConfig, now: OffsetDateTime) -> Self {
        Self {
            tokens: f64::from(config.burst),
            background: config.background_burst(),
            updated_at: now,
            paused_until: None,
        }
    }

    /// Brings the counts up to `now` (a clock that went backwards refills nothing).
    pub fn refill(&mut self, config: &BudgetConfig, now: OffsetDateTime) {
        let elapsed = (now - self.updated_at).as_seconds_f64().max(0.0);
        if let Some(until) = self.paused_until {
            if until > now {
                self.updated_at = self.updated_at.max(now);
                return;
            }
            // Refill only from the end of the pause.
            let since_pause = (now - until).as_seconds_f64().max(0.0);
            self.paused_until = None;
            self.add(config, since_pause.min(elapsed));
        } else {
            self.add(config, elapsed);
        }
        self.updated_at = self.updated_at.max(now);
    }

    fn add(&mut self, config: &BudgetConfig, seconds: f64) {
        self.tokens = (self.tokens + seconds * config.rate()).min(f64::from(config.burst));
        self.background =
            (self.background + seconds * config.background_rate()).min(config.background_burst());
    }

    /// Takes one permit for `priority` at `now`, or says how long to wait.
    pub fn take(
        &mut self,
        config: &BudgetConfig,
        now: OffsetDateTime,
        priority: Priority,
    ) -> Taken {
        self.refill(config, now);
        if let Some(until) = self.paused_until.filter(|u| *u > now) {
            return Taken::Wait(until - now);
        }
        let need = config.floor(priority) + 1.0;
        let main_short = (need - self.tokens).max(0.0);
        let background_short = if priority == Priority::Background {
            (1.0 - self.background).max(0.0)
        } else {
            0.0
        };
        // A tiny epsilon absorbs float error after exact refills.
        if main_short <= 1e-9 && background_short <= 1e-9 {
            self.tokens -= 1.0;
            if priority == Priority::Background {
                self.background -= 1.0;
            }
            return Taken::Granted;
        }
        let wait = (main_short / config.rate()).max(background_short / config.background_rate());
        // Round up to a whole millisecond so that waiting that long always suffices.
        let millis = (wait * 1000.0).ceil().max(1.0);
        Taken::Wait(Duration::milliseconds(millis as i64))
    }

    /// No permits before `until`; the bucket empties so that it refills gently after.
    pub fn pause(&mut self, config: &BudgetConfig, now: OffsetDateTime, until: OffsetDateTime) {
        self.refill(config, now);
        if until > now {
            self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
            self.tokens = self.tokens.min(0.0);
            self.background = self.background.min(0.0);
        }
    }
}

/// A shared budget of token-endpoint requests ([module docs](self)).
#[async_trait]
pub trait RefreshBudget: Send + Sync + Debug {
    /// The settings.
    fn config(&self) -> &BudgetConfig;

    /// Takes a permit for `priority` now, or says how long to wait.
    ///
    /// # Errors
    /// [`StoreError`] when a shared budget cannot be read or written.
    async fn try_take(&self, priority: Priority) -> Result<Taken, StoreError>;

    /// No permits for anyone before `until` (the provider answered 429).
    ///
    /// # Errors
    /// [`StoreError`] when a shared budget cannot be written.
    async fn pause(&self, until: OffsetDateTime) -> Result<(), StoreError>;

    /// The bucket as it is now (`doctor`, metrics, tests).
    ///
    /// # Errors
    /// [`StoreError`] when a shared budget cannot be read.
    async fn state(&self) -> Result<BucketState, StoreError>;
}

/// Why no permit was granted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The budget is spent (or paused after a 429) for longer than the caller may wait.
    #[error(
        "the token-endpoint budget is spent for now ({} request); try again in {} s",
        priority.as_str(),
        retry_after.as_secs().max(1)
    )]
    Exhausted {
        /// Who asked.
        priority: Priority,
        /// When a permit is expected at the earliest.
        retry_after: StdDuration,
    },
    /// The shared budget could not be read or written.
    #[error("the token-endpoint budget could not be read: {0}")]
    Store(#[source] StoreError),
}

/// Takes a permit for `priority`, waiting on `timer` up to `max_wait` in all (zero: no wait).
///
/// # Errors
/// [`BudgetError::Exhausted`] when no permit comes within `max_wait`, with the wait that was
/// left; [`BudgetError::Store`].
pub async fn acquire(
    budget: &dyn RefreshBudget,
    priority: Priority,
    max_wait: StdDuration,
    timer: &dyn Timer,
) -> Result<(), BudgetError> {
    let started = timer.now();
    // A timer whose clock does not move (a test's) must not spin here forever.
    for _ in 0..10_000 {
        let wait = match budget
            .try_take(priority)
            .await
            .map_err(BudgetError::Store)?
        {
            Taken::Granted => {
                permit_metric(priority, "granted", timer.now().saturating_sub(started));
                return Ok(());
            }
            Taken::Wait(wait) => StdDuration::try_from(wait).unwrap_or(StdDuration::ZERO),
        };
        let waited = timer.now().saturating_sub(started);
        if waited + wait > max_wait {
            permit_metric(priority, "exhausted", waited);
            return Err(BudgetError::Exhausted {
                priority,
                retry_after: wait,
            });
        }
        timer.sleep(wait).await;
    }
    permit_metric(priority, "exhausted", timer.now().saturating_sub(started));
    Err(BudgetError::Exhausted {
        priority,
        retry_after: max_wait,
    })
}

/// Permits asked for, by priority and outcome (`granted`, `exhausted`).
pub const PERMITS_TOTAL: &str = "calconnect_budget_permits_total";
/// Time callers waited for a permit, by priority and outcome.
pub const WAIT_SECONDS: &str = "calconnect_budget_wait_seconds";
/// Pauses after a provider's 429.
pub const PAUSES_TOTAL: &str = "calconnect_budget_pauses_total";

/// Registers descriptions of the budget's metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        PERMITS_TOTAL,
        "Token-endpoint permits by priority and outcome"
    );
    metrics::describe_histogram!(
        WAIT_SECONDS,
        metrics::Unit::Seconds,
        "Time waited for a token-endpoint permit by priority and outcome"
    );
    metrics::describe_counter!(
        PAUSES_TOTAL,
        "Budget pauses after a 429 from the token endpoint"
    );
}

fn permit_metric(priority: Priority, outcome: &'static str, waited: StdDuration) {
    metrics::counter!(PERMITS_TOTAL, "priority" => priority.as_str(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(WAIT_SECONDS, "priority" => priority.as_str(), "outcome" => outcome)
        .record(waited.as_secs_f64());
}

/// Pauses `budget` until `until` after a provider's 429, logging what cannot be written.
pub async fn pause_after_rate_limit(budget: &dyn RefreshBudget, until: OffsetDateTime) {
    metrics::counter!(PAUSES_TOTAL).increment(1);
    tracing::warn!(until = %until, budget = %budget.config().name, "the token endpoint answered 429; pausing the refresh budget for every instance");
    if let Err(e) = budget.pause(until).await {
        tracing::warn!(error = %e, "the refresh budget could not be paused");
    }
}

/// A budget kept in this process's memory: right for one process (the in-memory store, SQLite).
#[derive(Debug)]
pub struct LocalBudget {
    config: BudgetConfig,
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<BucketState>>,
}

/// The bucket of a [`LocalBudget`], to share between budgets of one process
/// ([`LocalBudget::sharing`]).
pub type SharedBucket = Arc<Mutex<BucketState>>;

impl LocalBudget {
    /// A full budget.
    pub fn new(config: BudgetConfig, clock: Arc<dyn Clock>) -> Self {
        let state = BucketState::full(&config, clock.now());
        Self::sharing(config, clock, Arc::new(Mutex::new(state)))
    }

    /// A budget taking from `bucket` (which others may take from too).
    pub fn sharing(config: BudgetConfig, clock: Arc<dyn Clock>, bucket: SharedBucket) -> Self {
        Self {
            config,
            clock,
            state: bucket,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RefreshBudget for LocalBudget {
    fn config(&self) -> &BudgetConfig {
        &self.config
    }

    async fn try_take(&self, priority: Priority) -> Result<Taken, StoreError> {
        let now = self.clock.now();
        Ok(self.lock().take(&self.config, now, priority))
    }

    async fn pause(&self, until: OffsetDateTime) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.lock().pause(&self.config, now, until);
        Ok(())
    }

    async fn state(&self) -> Result<BucketState, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        state.refill(&self.config, now);
        Ok(*state)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(BudgetConfig::default().validate(), Ok(()));
        let bad = BudgetConfig {
            burst: 2,
            ..BudgetConfig::default()
        };
        assert_eq!(bad.validate(), Err(BudgetConfigError::Burst));
        let bad = BudgetConfig {
            per_minute: 0,
            ..BudgetConfig::default()
        };
        assert_eq!(bad.validate(), Err(BudgetConfigError::Rate));
        let bad = BudgetConfig {
            background_share: 0.0,
            ..BudgetConfig::default()
        };
        assert_eq!(bad.validate(), Err(BudgetConfigError::Share));
    }

    /// In any 60 seconds, at most burst + per_minute permits, whatever the priorities.
    #[test]
    fn never_more_than_burst_plus_rate_in_a_minute() {
        let config = BudgetConfig::default();
        let mut state = BucketState::full(&config, t0());
        let mut granted = Vec::new();
        let priorities = [Priority::Exchange, Priority::OnDemand, Priority::Background];
        // Ask every 100 ms for 10 minutes, cycling through the priorities.
        for step in 0..6_000i64 {
            let now = t0() + Duration::milliseconds(step * 100);
            if state.take(&config, now, priorities[(step % 3) as usize]) == Taken::Granted {
                granted.push(now);
            }
        }
        for (i, at) in granted.iter().enumerate() {
            let in_minute = granted[i..]
                .iter()
                .take_while(|t| **t < *at + Duration::seconds(60))
                .count();
            assert!(
                in_minute <= 110,
                "{in_minute} permits in the minute from {at}"
            );
        }
        // And the rate is used: about 100 per minute over 10 minutes plus the first burst.
        assert!(granted.len() >= 1_000, "{}", granted.len());
    }

    #[test]
    fn priorities_leave_reserves() {
        let config = BudgetConfig::default();
        let now = t0();
        let mut state = BucketState::full(&config, now);
        // Background stops at half the bucket (5 permits), and its own bucket holds 5.
        let mut background = 0;
        while state.take(&config, now, Priority::Background) == Taken::Granted {
            background += 1;
        }
        assert_eq!(background, 5);
        // On-demand leaves the exchange reserve (2).
        let mut on_demand = 0;
        while state.take(&config, now, Priority::OnDemand) == Taken::Granted {
            on_demand += 1;
        }
        assert_eq!(on_demand, 3);
        // Exchanges take the last ones.
        assert_eq!(state.take(&config, now, Priority::Exchange), Taken::Granted);
        assert_eq!(state.take(&config, now, Priority::Exchange), Taken::Granted);
        let Taken::Wait(wait) = state.take(&config, now, Priority::Exchange) else {
            panic!("the bucket is empty");
        };
        // One permit every 0.6 s at 100 per minute.
        assert_eq!(wait, Duration::milliseconds(600));
        assert_eq!(
            state.take(&config, now + wait, Priority::Exchange),
            Taken::Granted
        );
    }

    #[test]
    fn background_uses_at_most_its_share() {
        let config = BudgetConfig::default();
        let mut state = BucketState::full(&config, t0());
        let mut granted = 0;
        for second in 0..3_600i64 {
            let now = t0() + Duration::seconds(second);
            while state.take(&config, now, Priority::Background) == Taken::Granted {
                granted += 1;
            }
        }
        // 50 per minute for an hour, plus the first background burst.
        assert!((2_995..=3_006).contains(&granted), "{granted}");
    }

    #[test]
    fn a_pause_stops_everyone_and_refills_from_its_end() {
        let config = BudgetConfig::default();
        let now = t0();
        let mut state = BucketState::full(&config, now);
        let until = now + Duration::seconds(60);
        state.pause(&config, now, until);
        assert_eq!(
            state.take(&config, now + Duration::seconds(59), Priority::Exchange),
            Taken::Wait(Duration::seconds(1))
        );
        // At the end of the pause the bucket is empty; it refills from then.
        assert!(matches!(
            state.take(&config, until, Priority::Exchange),
            Taken::Wait(_)
        ));
        assert_eq!(
            state.take(
                &config,
                until + Duration::milliseconds(600),
                Priority::Exchange
            ),
            Taken::Granted
        );
        // A shorter pause does not shorten a longer one.
        state.pause(&config, until, until + Duration::seconds(30));
        state.pause(&config, until, until + Duration::seconds(5));
        assert_eq!(state.paused_until, Some(until + Duration::seconds(30)));
    }

    #[test]
    fn capacity_arithmetic() {
        let config = BudgetConfig::default();
        // 100 per minute × 30-minute tokens.
        assert_eq!(config.fresh_capacity(Duration::minutes(30)), 3_000);
        // 50 per minute × 43,200 minutes in 30 days.
        assert_eq!(config.keep_alive_capacity(Duration::days(30)), 2_160_000);
    }
}
