//! [`TokenKeeper`]: fresh access tokens for stored connections, with refreshes that never lose
//! a connection (docs/architecture.md §3.5–§3.7).
//!
//! Cal.com access tokens live 30 minutes; every refresh rotates the refresh token and deletes
//! all older ones (docs/calcom.md §3.4, §3.6). So a second concurrent refresh, a crash between
//! Cal.com's answer and the write, or a transient error mistaken for revocation each disconnect
//! a user. The keeper prevents the first, detects the second, and never does the third.
//!
//! # Quick start
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use calconnect::store::{ConnectionId, ConnectionStore};
//! # use calconnect::{AuthorizationFlow, http::HttpClient, crypto::Keyring, ProviderProfile};
//! # async fn demo(store: Arc<dyn ConnectionStore>, keyring: Arc<Keyring>, flow: Arc<AuthorizationFlow>,
//! #     profile: ProviderProfile, http: HttpClient, id: ConnectionId) -> Result<(), Box<dyn std::error::Error>> {
//! use calconnect::{api::CalClient, keeper::KeeperConfig, SystemClock, keeper::TokenKeeper};
//!
//! // Once per process: the store, keyring and flow the broker already has.
//! let keeper = TokenKeeper::new(store, keyring, flow, Arc::new(SystemClock), KeeperConfig::default());
//! let sweep = keeper.spawn_sweep(); // keeps idle connections alive
//!
//! // A token valid for more than 5 minutes (from memory; refreshed first if needed) ...
//! let token = keeper.access_token(id).await?;
//! // ... or let the API client ask for it, and for a replacement after a 401.
//! let api = CalClient::for_profile(&profile, http, Arc::new(keeper.token_source(id)))?.build();
//! let me = api.me().await?;
//!
//! sweep.stop().await; // on shutdown
//! # let _ = (token, me); Ok(()) }
//! ```
//!
//! # Hot path
//!
//! [`TokenKeeper::access_token`] answers from an in-memory cache while the token is valid for
//! longer than its margin: no store, no network.
//!
//! # The margin adapts to the token's lifetime
//!
//! A token is refreshed once it is valid for less than [`KeeperConfig::margin`] (5 minutes), but
//! never less than three quarters of its own lifetime after it was obtained: the margin is at
//! most a quarter of the lifetime ([`MARGIN_SHARE_OF_LIFETIME`]). So a token just received is
//! never "already within the margin" (a provider issuing 60-second tokens made the keeper refresh
//! on nearly every call with a fixed 5-minute margin, docs/architecture.md §3.5), and a connection in constant use
//! is refreshed about once per lifetime whatever the lifetime. Cal.com's 30-minute tokens keep
//! the 5-minute margin. The lifetime is the stored expiry minus the time the tokens were written
//! (`Connection::last_refreshed_at`), or the answer's expiry minus now right after a refresh. Access tokens stay valid at
//! Cal.com until they expire even after a refresh elsewhere (§3.4), so a cached token is never
//! wrong, only older.
//!
//! # Single flight
//!
//! In one process, callers that need a refresh of one connection share one refresh task
//! (spawned, so a cancelled caller never abandons a refresh half-way). Across processes, the
//! store's refresh lease decides; the others poll the store until the winner's write appears
//! (bounded by [`KeeperConfigBuilder::lease_wait`]), then use it.
//!
//! # The refresh, as a state machine
//!
//! The stored row moves through these states (`v` = version, `I` = refresh intent, `L` =
//! lease):
//!
//! ```text
//!  S0 idle (v, no I, L free)
//!   │ acquire_lease                                 ── LeaseHeld ─▶ wait for v+1 or L expiry, re-read
//!   ▼
//!  S1 leased (v, L ours)          re-read: if tokens already fresh (someone else wrote) → release, done
//!   │ record_refresh_intent(v)    note: an I found here is STALE (its lease ended, no write cleared it)
//!   ▼
//!  S2 intent (v, I, L ours)       ◀── crash here: RT still valid; next refresher succeeds (step before_call)
//!   │ POST refresh_token
//!   ├── 200 ─▶ S3 answered (Cal.com rotated; only this process knows the new RT)
//!   │           ◀── crash here: I stays set; next refresher gets invalid_grant + stale I → refresh_lost
//!   │          write_tokens(v) ─▶ S4 written (v+1, no I) ◀── crash here: tokens fine, lease expires
//!   │          release_lease ─▶ S0
//!   ├── invalid_grant / invalid_client / unauthorized_client
//!   │     re-read: version moved and refresh token changed → newer tokens exist: use them
//!   │     else invalid_grant with a stale I (found at S1)     → status refresh_lost
//!   │     else                                                → status needs_reauth (Cal.com's reason)
//!   ├── 5xx / 429 / other HTTP errors (Cal.com answered, nothing rotated) → I cleared
//!   └── network / timeout / unreadable answer → I stays set (Cal.com may have rotated before
//!         the answer was lost: then the next refresh is rightly classified refresh_lost)
//!       either way the status stays active, refreshes back off (exponential, jittered) and the
//!       old access token is served while it is still valid
//! ```
//!
//! A fenced write that finds the version moved (our lease expired during a slow call and
//! another refresher marked the row `refresh_lost`) still holds the only live refresh token:
//! the keeper re-reads, writes at the new version and restores `active`.
//!
//! Every status change is a store event with a reason a person can read, which the broker turns
//! into webhooks. Metrics (`calconnect_keeper_*`) and `tracing` spans carry connection ids and
//! outcomes, never tokens.

mod config;
mod error;
mod flight;
mod refresh;
mod source;
mod sweep;
mod telemetry;

pub use config::{KeeperConfig, KeeperConfigBuilder, KeeperConfigError, SweepConfig};
#[cfg(feature = "fail-points")]
pub use config::{NoHooks, RefreshHooks, RefreshStep};
pub use error::{FreshToken, KeeperError};
pub use source::KeeperTokenSource;
pub use sweep::{SweepError, SweepHandle, SweepReport};
pub use telemetry::describe_metrics;

use crate::clock::Clock;
use crate::crypto::Keyring;
use crate::flow::AuthorizationFlow;
use crate::secret::AccessToken;
use crate::store::{ConnectionId, ConnectionStore, LeaseOwner};
use flight::Trigger;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use time::OffsetDateTime;

/// Hands out fresh access tokens for stored connections and refreshes them safely. Cheap to
/// clone (one shared state); create one per process.
#[derive(Debug, Clone)]
pub struct TokenKeeper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    store: Arc<dyn ConnectionStore>,
    keyring: Arc<Keyring>,
    flow: Arc<AuthorizationFlow>,
    clock: Arc<dyn Clock>,
    config: KeeperConfig,
    owner: LeaseOwner,
    cache: RwLock<HashMap<ConnectionId, CachedToken>>,
    /// The cache's size at which expired tokens are dropped next ([`Inner::remember`]).
    cache_purge_at: std::sync::atomic::AtomicUsize,
    flights: Mutex<HashMap<ConnectionId, flight::Flight>>,
    backoff: Mutex<HashMap<ConnectionId, Backoff>>,
    rng: Mutex<StdRng>,
    /// The task that applies the store's change feed; it stops with the keeper.
    change_feed: std::sync::OnceLock<AbortOnDrop>,
    /// When the sweep last compared the connections with the budget's capacity.
    capacity_checked_at: Mutex<Option<OffsetDateTime>>,
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The margin is at most this share of a token's lifetime: a quarter, so a token is used for
/// at least three quarters of its life (module docs, "The margin adapts").
pub const MARGIN_SHARE_OF_LIFETIME: f64 = 0.25;

/// The smallest cache size at which expired tokens are dropped.
const CACHE_PURGE_MIN: usize = 1024;

/// The last access token seen for a connection (possibly within the margin: then it is only
/// served as a fallback while refreshes fail transiently).
#[derive(Debug, Clone)]
struct CachedToken {
    token: AccessToken,
    expires_at: OffsetDateTime,
    /// When the store last confirmed the connection is still there and active.
    checked_at: OffsetDateTime,
    /// Its margin ([`Inner::margin_for`]).
    margin: time::Duration,
}

/// Consecutive transient failures of one connection and when to try again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    next_attempt_at: OffsetDateTime,
}

impl TokenKeeper {
    /// A keeper over `store`, opening tokens with `keyring` and refreshing with `flow`.
    /// `clock` should be the one the flow and store use.
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        keyring: Arc<Keyring>,
        flow: Arc<AuthorizationFlow>,
        clock: Arc<dyn Clock>,
        config: KeeperConfig,
    ) -> Self {
        let mut os = rand::rngs::OsRng;
        let seed = config.jitter_seed.unwrap_or_else(|| os.next_u64());
        let owner = match &config.instance_name {
            Some(name) => LeaseOwner::new(name.clone()),
            None => {
                let mut bytes = [0u8; 16];
                os.fill_bytes(&mut bytes);
                let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
                LeaseOwner::new(format!("keeper-{id}"))
            }
        };
        let inner = Arc::new(Inner {
            store,
            keyring,
            flow,
            clock,
            config,
            owner,
            cache: RwLock::new(HashMap::new()),
            cache_purge_at: std::sync::atomic::AtomicUsize::new(CACHE_PURGE_MIN),
            flights: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            change_feed: std::sync::OnceLock::new(),
            capacity_checked_at: Mutex::new(None),
        });
        // One truth across instances: with a store that has a change feed (PostgreSQL's
        // LISTEN/NOTIFY), a connection changed anywhere loses its cached token here at once.
        if let Some(changes) = inner.store.subscribe_changes() {
            let task = tokio::spawn(forget_changed(Arc::downgrade(&inner), changes));
            let _ = inner.change_feed.set(AbortOnDrop(task.abort_handle()));
        }
        Self { inner }
    }

    /// This instance's name in refresh leases.
    pub fn lease_owner(&self) -> &LeaseOwner {
        &self.inner.owner
    }

    /// The configuration.
    pub fn config(&self) -> &KeeperConfig {
        &self.inner.config
    }

    /// An access token for `id` valid for longer than the margin, refreshing first if needed.
    /// While refreshes fail transiently, the old token is served as long as it is still valid.
    ///
    /// # Errors
    /// [`KeeperError::NeedsReauth`] and [`KeeperError::RefreshLost`] (the user must reconnect),
    /// [`KeeperError::Transient`] (no valid token for now; the connection stays active),
    /// [`KeeperError::NotFound`], and store, crypto or protocol failures.
    pub async fn access_token(&self, id: ConnectionId) -> Result<FreshToken, KeeperError> {
        let now = self.inner.clock.now();
        if let Some((fresh, checked_at)) = self.inner.cached_entry(id, now) {
            if now - checked_at < self.inner.config.revalidate_after {
                return Ok(fresh);
            }
            if let Some(answer) = self.inner.revalidate(id, now, fresh).await {
                return answer;
            }
        }
        self.inner.slow_access_token(id, now).await
    }

    /// Refreshes now, whatever the token's age ("refresh now" button), shared with any
    /// concurrent refresh of the same connection.
    ///
    /// # Errors
    /// As [`TokenKeeper::access_token`], but a transient failure is returned, not hidden
    /// behind the old token.
    pub async fn refresh_now(&self, id: ConnectionId) -> Result<FreshToken, KeeperError> {
        self.inner.run_flight(id, Trigger::Forced).await
    }

    /// The API rejected `rejected` (401): refresh unless the stored token is already another
    /// one, and return the newer token (the API client's path, docs/architecture.md §3.5).
    ///
    /// # Errors
    /// As [`TokenKeeper::refresh_now`].
    pub async fn refresh_rejected(
        &self,
        id: ConnectionId,
        rejected: &AccessToken,
    ) -> Result<FreshToken, KeeperError> {
        self.inner.forget_if(id, rejected);
        self.inner
            .run_flight(id, Trigger::Rejected(rejected.clone()))
            .await
    }

    /// A [`crate::api::AccessTokenSource`] for [`crate::api::CalClient`], for one connection.
    pub fn token_source(&self, id: ConnectionId) -> KeeperTokenSource {
        KeeperTokenSource::new(self.clone(), id)
    }

    /// How many access tokens the keeper holds in memory (expired ones are dropped as the cache
    /// grows, so this stays near the tokens still valid).
    pub fn cached_tokens(&self) -> usize {
        self.inner.read_cache().len()
    }

    /// Drops the cached token of `id` (after a disconnect, for example).
    pub fn forget(&self, id: ConnectionId) {
        self.inner.write_cache().remove(&id);
    }

    /// What the token-endpoint budget can carry against the connections in the store
    /// (docs/scaling.md); `None` without a budget.
    ///
    /// # Errors
    /// [`crate::store::StoreError`] when the connections cannot be counted.
    pub async fn capacity(&self) -> Result<Option<Capacity>, crate::store::StoreError> {
        let Some(budget) = self.inner.config.budget.as_deref() else {
            return Ok(None);
        };
        let counts = self.inner.store.count_by_status().await?;
        let config = budget.config();
        Ok(Some(Capacity {
            active_connections: counts.get(crate::store::ConnectionStatus::Active),
            keep_alive_capacity: config.keep_alive_capacity(self.inner.config.refresh_window),
            fresh_capacity: config.fresh_capacity(time::Duration::minutes(30)),
            per_minute: config.per_minute,
        }))
    }

    /// At most once an hour: compares the connections with what the budget can keep alive,
    /// publishes both as gauges and warns when the connections are more.
    pub(crate) async fn check_capacity(&self) {
        let now = self.inner.clock.now();
        {
            let mut last = self
                .inner
                .capacity_checked_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| now - at < time::Duration::hours(1)) {
                return;
            }
            *last = Some(now);
        }
        match self.capacity().await {
            Ok(Some(c)) => {
                telemetry::capacity(&c);
                if c.keep_alive_exceeded() {
                    tracing::warn!(
                        connections = c.active_connections,
                        keep_alive_capacity = c.keep_alive_capacity,
                        per_minute = c.per_minute,
                        "more active connections than the refresh budget can keep alive: idle ones may pass their refresh-token window; add an egress IP with its own budget (docs/scaling.md)"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot count connections for the capacity check")
            }
        }
    }
}

/// What a refresh budget can carry ([`TokenKeeper::capacity`], docs/scaling.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Active connections in the store.
    pub active_connections: u64,
    /// Idle connections the budget's background share keeps alive within the refresh window.
    pub keep_alive_capacity: u64,
    /// Connections in constant use the budget keeps fresh (30-minute access tokens).
    pub fresh_capacity: u64,
    /// The budget's permits per minute.
    pub per_minute: u32,
}

impl Capacity {
    /// Whether there are more active connections than the keep-alive capacity.
    pub fn keep_alive_exceeded(&self) -> bool {
        self.active_connections > self.keep_alive_capacity
    }
}

/// Drops the cached token of every connection the store reports changed, until the keeper is
/// gone; a lagging feed drops the whole cache (revalidation covers anything missed).
async fn forget_changed(
    inner: std::sync::Weak<Inner>,
    mut changes: tokio::sync::broadcast::Receiver<ConnectionId>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let changed = changes.recv().await;
        let Some(inner) = inner.upgrade() else { return };
        match changed {
            // The feed (re)connected: what happened before may have been missed.
            Ok(id) if id == ConnectionId::ANY => inner.write_cache().clear(),
            Ok(id) => {
                inner.write_cache().remove(&id);
            }
            Err(RecvError::Lagged(_)) => inner.write_cache().clear(),
            Err(RecvError::Closed) => return,
        }
    }
}

impl Inner {
    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ConnectionId, CachedToken>> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ConnectionId, CachedToken>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached token and when the store last confirmed it, if it is valid at `now` for
    /// longer than its margin.
    fn cached_entry(
        &self,
        id: ConnectionId,
        now: OffsetDateTime,
    ) -> Option<(FreshToken, OffsetDateTime)> {
        let cache = self.read_cache();
        let entry = cache.get(&id)?;
        (entry.expires_at - now > entry.margin).then(|| {
            (
                FreshToken {
                    access_token: entry.token.clone(),
                    expires_at: entry.expires_at,
                },
                entry.checked_at,
            )
        })
    }

    /// One truth across instances: another instance may have deleted the connection or marked
    /// it `needs_reauth` since this one cached its token. At most every `revalidate_after`, one
    /// read of the row says so. `Some(answer)` when the cached token may be handed out (the
    /// connection is active, or the store is unreachable for now) or the connection is gone;
    /// `None` to take the slow path (its status changed).
    async fn revalidate(
        &self,
        id: ConnectionId,
        now: OffsetDateTime,
        fresh: FreshToken,
    ) -> Option<Result<FreshToken, KeeperError>> {
        match self.store.get_connection(id).await {
            Ok(c) if c.status == crate::store::ConnectionStatus::Active => {
                if let Some(entry) = self.write_cache().get_mut(&id) {
                    entry.checked_at = now;
                }
                Some(Ok(fresh))
            }
            Ok(_) => {
                self.write_cache().remove(&id);
                None
            }
            Err(crate::store::StoreError::NotFound { .. }) => {
                self.write_cache().remove(&id);
                Some(Err(KeeperError::NotFound { id }))
            }
            Err(e) => {
                tracing::debug!(connection_id = %id, error = %e, "cannot revalidate a cached token; serving it");
                Some(Ok(fresh))
            }
        }
    }

    /// The cached token if it is valid at `now` for longer than `at_least`, or (`None`) than
    /// its own margin.
    fn cached(
        &self,
        id: ConnectionId,
        now: OffsetDateTime,
        at_least: Option<time::Duration>,
    ) -> Option<FreshToken> {
        let cache = self.read_cache();
        let entry = cache.get(&id)?;
        let margin = at_least.unwrap_or(entry.margin);
        (entry.expires_at - now > margin).then(|| FreshToken {
            access_token: entry.token.clone(),
            expires_at: entry.expires_at,
        })
    }

    /// The refresh margin of a token that lives `lifetime` (unknown: the configured margin):
    /// [`KeeperConfig::margin`], at most [`MARGIN_SHARE_OF_LIFETIME`] of the lifetime, never
    /// negative.
    pub(crate) fn margin_for(&self, lifetime: Option<time::Duration>) -> time::Duration {
        match lifetime {
            Some(lifetime) => self
                .config
                .margin
                .min(lifetime * MARGIN_SHARE_OF_LIFETIME)
                .max(time::Duration::ZERO),
            None => self.config.margin,
        }
    }

    /// The margin of a stored connection's access token: its lifetime is the expiry minus the
    /// time the tokens were written.
    pub(crate) fn margin_of(&self, c: &crate::store::Connection) -> time::Duration {
        self.margin_for(c.access_expires_at.map(|at| at - c.last_refreshed_at))
    }

    fn remember(&self, id: ConnectionId, fresh: &FreshToken, margin: time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut cache = self.write_cache();
        // Every connection the sweep keeps alive passes through here, most of them never to be
        // asked for: drop the expired tokens whenever the cache has doubled since the last
        // time, so it holds about the tokens still valid (at most what the token-endpoint
        // budget minted in one access-token lifetime), not one per connection ever refreshed.
        if cache.len() >= self.cache_purge_at.load(Relaxed) {
            let now = self.clock.now();
            cache.retain(|_, c| c.expires_at > now);
            self.cache_purge_at
                .store((cache.len() * 2).max(CACHE_PURGE_MIN), Relaxed);
        }
        let newer = cache
            .get(&id)
            .is_none_or(|old| old.expires_at <= fresh.expires_at);
        if newer {
            cache.insert(
                id,
                CachedToken {
                    token: fresh.access_token.clone(),
                    expires_at: fresh.expires_at,
                    checked_at: self.clock.now(),
                    margin,
                },
            );
        }
    }

    fn forget_if(&self, id: ConnectionId, rejected: &AccessToken) {
        let mut cache = self.write_cache();
        if cache.get(&id).is_some_and(|c| c.token.ct_eq(rejected)) {
            cache.remove(&id);
        }
    }

    fn backoff_until(&self, id: ConnectionId) -> Option<OffsetDateTime> {
        let map = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&id).map(|b| b.next_attempt_at)
    }

    /// Records a transient failure; returns the wait before the next attempt (exponential,
    /// with "equal jitter": between half and all of the doubled delay), and never shorter than
    /// `at_least` (the provider's own rate-limit wait).
    fn record_failure(
        &self,
        id: ConnectionId,
        now: OffsetDateTime,
        at_least: Option<std::time::Duration>,
    ) -> std::time::Duration {
        let mut map = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        let failures = map.get(&id).map_or(0, |b| b.failures).saturating_add(1);
        let base = self.config.backoff_base;
        let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let capped = exp.min(self.config.backoff_max);
        let jitter = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            0.5 + (rng.next_u32() as f64 / u32::MAX as f64) * 0.5
        };
        let wait = at_least.map_or(capped.mul_f64(jitter), |min| {
            capped.mul_f64(jitter).max(min)
        });
        let next_attempt_at = now + wait;
        map.insert(
            id,
            Backoff {
                failures,
                next_attempt_at,
            },
        );
        wait
    }

    fn clear_backoff(&self, id: ConnectionId) {
        let mut map = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&id);
    }

    /// Not cached (or within the margin): refresh through the single flight, or, while backing
    /// off after transient failures, serve the old token while it is valid.
    async fn slow_access_token(
        self: &Arc<Self>,
        id: ConnectionId,
        now: OffsetDateTime,
    ) -> Result<FreshToken, KeeperError> {
        if let Some(until) = self.backoff_until(id).filter(|t| *t > now) {
            if let Some(old) = self.cached(id, now, Some(time::Duration::ZERO)) {
                return Ok(old);
            }
            return Err(KeeperError::Transient {
                id,
                reason: "refreshes failed recently and the old access token has expired".into(),
                retry_after: (until - now).try_into().ok(),
                source: None,
            });
        }
        match self.run_flight(id, Trigger::Expiring).await {
            Err(err @ (KeeperError::Transient { .. } | KeeperError::BudgetExhausted { .. })) => {
                let now = self.clock.now();
                self.cached(id, now, Some(time::Duration::ZERO)).ok_or(err)
            }
            other => other,
        }
    }
}
