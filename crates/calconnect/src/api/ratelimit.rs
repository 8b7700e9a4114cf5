//! Rate limits (docs/calcom.md §6): the `X-RateLimit-*-Default` headers, and a client-side
//! governor per access token that queues requests instead of provoking 429s.
//!
//! Cal.com counts requests per access token in a fixed window that starts at the first hit
//! (120 per 60 s for third-party OAuth tokens) and blocks the token for 60 s once exceeded. A token bucket would
//! overrun a fixed window (a full bucket at the window's end plus refills), so the governor keeps
//! a **sliding log**: a request occupies a slot from the moment it is sent until `window` after
//! its answer arrived. Since Cal.com counts a request somewhere between those two moments, no
//! window of Cal.com's — wherever it starts — can see more than `limit` of our requests.
//! Headers tighten it further: `Remaining: 0` (or a 429) blocks the token until the reset, and a
//! smaller `Limit` than configured wins.
//!
//! Tokens are never keys: a bucket is keyed by the SHA-256 of the token.

use super::timer::Timer;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// Reset values above this are epoch seconds, not seconds remaining (a docs page claims an
/// epoch; the code says seconds remaining, §6 [UNVERIFIED]).
const EPOCH_THRESHOLD: u64 = 1_000_000_000;
/// Buckets are swept of idle entries once the map holds this many.
const SWEEP_AT: usize = 1024;

/// The rate-limit headers of one answer: `X-RateLimit-Limit-Default`, `-Remaining-Default`,
/// `-Reset-Default` (also the unsuffixed names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RateLimitHeaders {
    /// Requests allowed per window.
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Time until the window (or the block) ends.
    pub reset: Option<Duration>,
}

impl RateLimitHeaders {
    /// Reads the headers. `now_unix` (seconds since the epoch) converts a reset given as an
    /// epoch timestamp into a duration.
    pub fn parse(headers: &HeaderMap, now_unix: i64) -> Self {
        let number = |names: &[&str]| {
            names.iter().find_map(|n| {
                headers
                    .get(*n)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v >= 0.0)
            })
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // reason: finite, >= 0, checked above
        let whole = |v: f64| v.ceil() as u64;
        let reset = number(&["x-ratelimit-reset-default", "x-ratelimit-reset"]).map(|v| {
            let secs = whole(v);
            if secs > EPOCH_THRESHOLD {
                Duration::from_secs(secs.saturating_sub(u64::try_from(now_unix).unwrap_or(0)))
            } else {
                Duration::from_secs(secs)
            }
        });
        let retry_after = number(&["retry-after"]).map(|v| Duration::from_secs(whole(v)));
        Self {
            limit: number(&["x-ratelimit-limit-default", "x-ratelimit-limit"]).map(whole),
            remaining: number(&["x-ratelimit-remaining-default", "x-ratelimit-remaining"])
                .map(whole),
            reset: reset.or(retry_after),
        }
    }
}

/// Settings of the client-side rate governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GovernorConfig {
    /// Requests per access token per window (Cal.com gives third-party OAuth tokens its default
    /// limit, 120 per minute; see [docs/calcom.md](../../../../docs/calcom.md), rate limits).
    pub limit: u32,
    /// The window (Cal.com: 60 s).
    pub window: Duration,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self {
            limit: 120,
            window: Duration::from_secs(60),
        }
    }
}

impl GovernorConfig {
    /// `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
        }
    }
}

/// The key of an access token's bucket: SHA-256 of the token. Its short hex form is what
/// tracing shows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.short())
    }
}

impl TokenKey {
    pub(crate) fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The first 8 hex digits, for logs.
    pub(crate) fn short(&self) -> String {
        self.0.iter().take(4).map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Default)]
struct BucketState {
    in_flight: u32,
    /// Completion times (timer time) of requests within the last window, oldest first.
    done: VecDeque<Duration>,
    /// No request before this time (a 429, or `Remaining: 0`).
    blocked_until: Option<Duration>,
    /// A smaller limit Cal.com announced.
    server_limit: Option<u32>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// FIFO queue: only the head waits for a slot (tokio's mutex is fair).
    queue: tokio::sync::Mutex<()>,
    state: Mutex<BucketState>,
    freed: Notify,
}

enum Decision {
    Admit,
    Wait(Duration),
    WaitForCompletion,
}

/// The governor: one bucket per access token.
#[derive(Debug)]
pub(crate) struct Governor {
    config: GovernorConfig,
    timer: Arc<dyn Timer>,
    buckets: Mutex<HashMap<TokenKey, Arc<Bucket>>>,
}

impl Governor {
    pub(crate) fn new(config: GovernorConfig, timer: Arc<dyn Timer>) -> Self {
        Self {
            config,
            timer,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn bucket(&self, key: TokenKey) -> Arc<Bucket> {
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SWEEP_AT {
            let now = self.timer.now();
            let window = self.config.window;
            map.retain(|_, b| {
                Arc::strong_count(b) > 1 || {
                    let st = b.state.lock().unwrap_or_else(PoisonError::into_inner);
                    st.in_flight > 0
                        || st.done.back().is_some_and(|d| *d + window > now)
                        || st.blocked_until.is_some_and(|u| u > now)
                }
            });
        }
        map.entry(key).or_default().clone()
    }

    /// Waits for a slot of `key`'s bucket.
    pub(crate) async fn acquire(&self, key: TokenKey) -> Permit<'_> {
        let bucket = self.bucket(key);
        let turn = bucket.queue.lock().await;
        loop {
            let freed = bucket.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.decide(&bucket) {
                Decision::Admit => break,
                Decision::Wait(d) => {
                    tracing::debug!(token_key = %key.short(), wait_ms = d.as_millis(), "rate governor: waiting");
                    tokio::select! {
                        () = self.timer.sleep(d) => {}
                        () = &mut freed => {}
                    }
                }
                Decision::WaitForCompletion => freed.await,
            }
        }
        drop(turn);
        Permit {
            governor: self,
            bucket,
        }
    }

    /// How long a request of `key` would wait now if it were the only one queued (read only).
    fn wait_estimate(&self, key: TokenKey) -> Duration {
        let bucket = self.bucket(key);
        let now = self.timer.now();
        let window = self.config.window;
        let st = bucket.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = st.blocked_until.filter(|u| *u > now) {
            return until - now;
        }
        let limit = st
            .server_limit
            .map_or(self.config.limit, |s| s.min(self.config.limit));
        // `done` is sorted: the live entries are its tail.
        let expired = st.done.partition_point(|d| *d + window <= now);
        let used = u64::from(st.in_flight) + (st.done.len() - expired) as u64;
        if used < u64::from(limit.max(1)) {
            Duration::ZERO
        } else {
            st.done.get(expired).map_or(Duration::ZERO, |oldest| {
                (*oldest + window).saturating_sub(now)
            })
        }
    }

    fn decide(&self, bucket: &Bucket) -> Decision {
        let now = self.timer.now();
        let window = self.config.window;
        let mut st = bucket.state.lock().unwrap_or_else(PoisonError::into_inner);
        while st.done.front().is_some_and(|d| *d + window <= now) {
            st.done.pop_front();
        }
        if let Some(until) = st.blocked_until {
            if until > now {
                return Decision::Wait(until - now);
            }
            st.blocked_until = None;
        }
        let limit = st
            .server_limit
            .map_or(self.config.limit, |s| s.min(self.config.limit));
        let used = u64::from(st.in_flight) + st.done.len() as u64;
        if used < u64::from(limit.max(1)) {
            st.in_flight += 1;
            Decision::Admit
        } else if let Some(oldest) = st.done.front() {
            Decision::Wait((*oldest + window).saturating_sub(now))
        } else {
            Decision::WaitForCompletion
        }
    }
}

/// A slot of a bucket; released (and its window started) when dropped.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    governor: &'a Governor,
    bucket: Arc<Bucket>,
}

impl Permit<'_> {
    /// Applies an answer's rate-limit headers. `throttled_wait` is set for a 429: the block
    /// to assume when the answer names no reset.
    pub(crate) fn observe(&self, headers: &RateLimitHeaders, throttled_wait: Option<Duration>) {
        let now = self.governor.timer.now();
        let mut st = self
            .bucket
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(limit) = headers.limit.and_then(|l| u32::try_from(l).ok()) {
            st.server_limit = Some(limit.max(1));
        }
        if throttled_wait.is_some() || headers.remaining == Some(0) {
            let wait = headers
                .reset
                .or(throttled_wait)
                .unwrap_or(self.governor.config.window);
            let until = now + wait;
            st.blocked_until = Some(st.blocked_until.map_or(until, |u| u.max(until)));
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let now = self.governor.timer.now();
        {
            let mut st = self
                .bucket
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            st.in_flight = st.in_flight.saturating_sub(1);
            // Keep the log sorted even if completions are observed out of order.
            let at = st.done.partition_point(|d| *d <= now);
            st.done.insert(at, now);
        }
        self.bucket.freed.notify_one();
    }
}

/// The per-token rate governor on its own, for code that sends API v2 requests without
/// [`CalClient`](super::CalClient) (the broker's proxy): the same sliding log, the same reading of
/// Cal.com's headers.
#[derive(Debug)]
pub struct RateGovernor(Governor);

/// A slot of [`RateGovernor`]; the request's window starts when it is dropped.
#[derive(Debug)]
pub struct RatePermit<'a>(Permit<'a>);

/// The bucket of one access token in a [`RateGovernor`]: the SHA-256 of the token, so a caller
/// that sends many requests with one token hashes it once ([`RateGovernor::key`]) instead of on
/// every request (the broker's proxy keeps it beside the token, issue 15). `Debug` shows the
/// first 8 hex digits of the hash, never the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RateKey(TokenKey);

impl std::fmt::Debug for RateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RateKey({})", self.0.short())
    }
}

impl RateGovernor {
    /// A governor with `config`, waiting on `timer`.
    pub fn new(config: GovernorConfig, timer: Arc<dyn Timer>) -> Self {
        Self(Governor::new(config, timer))
    }

    /// Waits for a slot of `token`'s bucket, at most `max_wait`. `None`, at once, when the
    /// bucket is blocked for longer (a 429 or `Remaining: 0` seen, or the window full for a
    /// while), and after `max_wait` if no slot came: the caller then decides (the proxy forwards
    /// anyway and lets Cal.com answer, so a 429 the app sees is always Cal.com's).
    pub async fn acquire_within(
        &self,
        token: &crate::AccessToken,
        max_wait: Duration,
    ) -> Option<RatePermit<'_>> {
        self.acquire_key_within(Self::key(token), max_wait).await
    }

    /// The bucket key of `token` (one SHA-256).
    pub fn key(token: &crate::AccessToken) -> RateKey {
        RateKey(TokenKey::of(token.expose_secret()))
    }

    /// [`RateGovernor::acquire_within`] for a key kept from [`RateGovernor::key`].
    pub async fn acquire_key_within(
        &self,
        key: RateKey,
        max_wait: Duration,
    ) -> Option<RatePermit<'_>> {
        let RateKey(key) = key;
        if self.0.wait_estimate(key) > max_wait {
            return None;
        }
        tokio::select! {
            biased;
            permit = self.0.acquire(key) => Some(RatePermit(permit)),
            () = self.0.timer.sleep(max_wait) => None,
        }
    }
}

impl RatePermit<'_> {
    /// Applies an answer's status and rate-limit headers (a 429, `Remaining: 0`, a lower
    /// `Limit`). `now_unix` converts an epoch reset.
    pub fn observe(&self, status: http::StatusCode, headers: &HeaderMap, now_unix: i64) {
        let parsed = RateLimitHeaders::parse(headers, now_unix);
        let throttled = (status == http::StatusCode::TOO_MANY_REQUESTS)
            .then_some(crate::errors::TOKEN_RATE_LIMIT_DEFAULT_WAIT);
        self.0.observe(&parsed, throttled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn parses_cal_com_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit-default", HeaderValue::from_static("500"));
        h.insert(
            "x-ratelimit-remaining-default",
            HeaderValue::from_static("0"),
        );
        h.insert("x-ratelimit-reset-default", HeaderValue::from_static("42"));
        let r = RateLimitHeaders::parse(&h, 1_800_000_000);
        assert_eq!(r.limit, Some(500));
        assert_eq!(r.remaining, Some(0));
        assert_eq!(r.reset, Some(Duration::from_secs(42)));
        // An epoch reset (the docs' reading) becomes a duration.
        h.insert(
            "x-ratelimit-reset-default",
            HeaderValue::from_static("1800000030"),
        );
        let r = RateLimitHeaders::parse(&h, 1_800_000_000);
        assert_eq!(r.reset, Some(Duration::from_secs(30)));
        assert_eq!(
            RateLimitHeaders::parse(&HeaderMap::new(), 0),
            RateLimitHeaders::default()
        );
    }

    /// Time that only sleeping moves.
    #[derive(Debug, Default)]
    struct StepTimer {
        now: Mutex<Duration>,
        slept: Mutex<Vec<Duration>>,
    }

    #[async_trait::async_trait]
    impl Timer for StepTimer {
        fn now(&self) -> Duration {
            *self.now.lock().unwrap()
        }

        async fn sleep(&self, d: Duration) {
            self.slept.lock().unwrap().push(d);
            *self.now.lock().unwrap() += d;
        }
    }

    #[tokio::test]
    async fn sliding_log_counts_in_flight_and_starts_windows_at_completion() {
        let timer = Arc::new(StepTimer::default());
        let gov = Governor::new(
            GovernorConfig::new(2, Duration::from_secs(10)),
            timer.clone(),
        );
        let key = TokenKey::of("t");
        let a = gov.acquire(key).await;
        *timer.now.lock().unwrap() += Duration::from_secs(3);
        let b = gov.acquire(key).await;
        // Both slots in flight: the third waits for a completion, not for time.
        assert!(
            futures::FutureExt::now_or_never(gov.acquire(key)).is_none(),
            "a third request must queue"
        );
        assert!(timer.slept.lock().unwrap().is_empty());
        drop(a); // completes at t=3: its slot frees at t=13
        *timer.now.lock().unwrap() += Duration::from_secs(1);
        drop(b); // completes at t=4: frees at t=14
        let _c = gov.acquire(key).await;
        assert_eq!(timer.now(), Duration::from_secs(13));
        assert_eq!(*timer.slept.lock().unwrap(), vec![Duration::from_secs(9)]);
        // Another token has its own bucket.
        let _other = gov.acquire(TokenKey::of("u")).await;
        assert_eq!(timer.now(), Duration::from_secs(13));
    }

    #[tokio::test]
    async fn headers_block_until_the_reset_and_lower_the_limit() {
        let timer = Arc::new(StepTimer::default());
        let gov = Governor::new(GovernorConfig::default(), timer.clone());
        let key = TokenKey::of("t");
        let p = gov.acquire(key).await;
        p.observe(
            &RateLimitHeaders {
                limit: Some(500),
                remaining: Some(0),
                reset: Some(Duration::from_secs(7)),
            },
            None,
        );
        drop(p);
        let p = gov.acquire(key).await;
        assert_eq!(timer.now(), Duration::from_secs(7));
        // A 429 without a reset blocks for the wait the caller assumes.
        p.observe(&RateLimitHeaders::default(), Some(Duration::from_secs(30)));
        drop(p);
        let _p = gov.acquire(key).await;
        assert_eq!(timer.now(), Duration::from_secs(37));
    }

    #[tokio::test]
    async fn the_public_governor_waits_briefly_and_refuses_long_blocks_at_once() {
        let timer = Arc::new(StepTimer::default());
        let gov = RateGovernor::new(
            GovernorConfig::new(2, Duration::from_secs(60)),
            timer.clone(),
        );
        let token = crate::AccessToken::new("eyJ-t");
        let max = Duration::from_secs(5);
        let a = gov.acquire_within(&token, max).await.unwrap();
        a.observe(http::StatusCode::OK, &HeaderMap::new(), 0);
        drop(a);
        drop(gov.acquire_within(&token, max).await.unwrap());
        // The window is full for about 60 s: refused at once, without sleeping.
        assert!(gov.acquire_within(&token, max).await.is_none());
        assert!(timer.slept.lock().unwrap().is_empty());
        // Near the end of the window a short wait is taken.
        *timer.now.lock().unwrap() += Duration::from_secs(57);
        let p = gov.acquire_within(&token, max).await.unwrap();
        assert_eq!(timer.now(), Duration::from_secs(60));
        // A 429 blocks the token: the next caller is refused at once.
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset-default", HeaderValue::from_static("30"));
        p.observe(http::StatusCode::TOO_MANY_REQUESTS, &h, 0);
        drop(p);
        assert!(gov.acquire_within(&token, max).await.is_none());
    }

    #[test]
    fn token_keys_do_not_show_the_token() {
        let key = TokenKey::of("eyJsecret");
        assert_eq!(key.short().len(), 8);
        assert!(!key.short().contains("eyJ"));
    }
}
