//! The global throttler guard of API v2 (`apps/api/v2/src/lib/throttler/throttler-guard.ts`,
//! `CustomThrottlerGuard`, registered as `APP_GUARD` in `app.module.ts`, over
//! `@nest-lab/throttler-storage-redis`; `docs/calcom.md` §6 "Rate limiting").
//!
//! **Trackers** (`getTracker`): a request with an `Authorization` value (after removing
//! `"Bearer "`) is counted against `access_token_<token>`; without one, against
//! `oauth_client_<x-cal-client-id>` if that header is sent, else against `ip_<req.ip>` (Express's
//! `req.ip`; Cal.com sets no `trust proxy`, so it is the TCP peer), else `unknown`. The token
//! endpoint `POST /v2/auth/oauth2/token` carries no bearer, so it is counted per client IP, in the
//! same counter as the IP's other bearer-less API v2 requests. The legacy web endpoints are a
//! Next.js app without a throttler and are not counted.
//!
//! **Limits**: a third-party OAuth JWT is not a platform token, so the guard falls back to
//! `getDefaultRateLimit()` = `RATE_LIMIT_DEFAULT_LIMIT` (120); unknown platform clients and IPs get
//! the same default. The sandbox keeps two settings so tests can raise them separately:
//! `Settings::rate_limit` for bearer trackers and `Settings::ip_rate_limit` for the others (both
//! 120), over one window `Settings::rate_window` (`RATE_LIMIT_DEFAULT_TTL_MS`, 60 s) that is also
//! the block duration (`RATE_LIMIT_DEFAULT_BLOCK_DURATION_MS`, 60 s).
//!
//! **Counters**: the storage key is `<tracker>:<limit>:<ttl>`, so a changed limit or window starts
//! fresh counters; here the key is its SHA-256 so tokens are not kept in memory. Semantics of the
//! Redis script: a fixed window starts at the first hit; a hit beyond `limit` blocks the tracker
//! for the block duration; hits made while blocked are still counted. Every request that reaches
//! a route is counted, valid or not, because the guard runs before authentication (401) and the
//! scope guard (403); unmatched routes are not (Nest runs no guards for them).
//!
//! **Answers**: the guard sets `X-RateLimit-Limit-Default`, `X-RateLimit-Remaining-Default` (0
//! while blocked) and `X-RateLimit-Reset-Default` (`timeToBlockExpire || timeToExpire`: seconds
//! until the block ends, else until the window ends, rounded up) on every response it lets
//! through and on its own 429, which is `ThrottlerException("Too many requests. Please try again
//! later.")` rendered by the global `HttpExceptionFilter` as the v2 envelope with `details` the
//! bare string, also on the token endpoint (its `OAuth2HttpExceptionFilter` only catches
//! `OAuth2HttpException`). There is no `Retry-After`, and a 429 of the token endpoint has no
//! `Cache-Control`/`Pragma` (the route's `@Header`s are applied after the guards).
//!
//! The sandbox clock drives the windows, so `Sandbox::advance_clock` ends a block. The state is
//! sharded over several `std::sync::Mutex`es; each critical section is a map lookup and a few
//! integer operations, never an await.

use crate::state::{Settings, Shared};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// `X_CAL_CLIENT_ID` (`@calcom/platform-constants`): a platform client's id header.
const X_CAL_CLIENT_ID: &str = "x-cal-client-id";

const SHARDS: usize = 32;
/// A shard is swept of finished windows once it holds this many trackers.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    window_end_ms: i64,
    hits: u64,
    block_until_ms: i64,
}

/// The counters of every tracker.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<[u8; 32], Window>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// The result of one hit, and what goes into the `X-RateLimit-*-Default` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateOutcome {
    pub limit: u32,
    pub remaining: u64,
    /// Seconds until the block ends (when blocked) or the window ends.
    pub reset_secs: i64,
    pub blocked: bool,
}

/// Who a request is counted against (`CustomThrottlerGuard.getTracker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracker {
    /// `access_token_<token>`: any `Authorization` value (an API key, `cal_…`, would be
    /// `api_key_<hash>`; the sandbox has none, and an unknown key gets the default limit too).
    Bearer(String),
    /// `oauth_client_<id>`: no bearer, an `x-cal-client-id` header (a platform client).
    OAuthClient(String),
    /// `ip_<ip>`: neither; the TCP peer's address.
    Ip(IpAddr),
    /// `unknown`: not even a peer address (a router driven without connect info).
    Unknown,
}

impl Tracker {
    /// The tracker of a request with these headers from `peer`.
    pub fn of(headers: &HeaderMap, peer: Option<IpAddr>) -> Self {
        if let Some(token) = super::auth::bearer(headers) {
            return Self::Bearer(token.to_owned());
        }
        let client_id = headers
            .get(X_CAL_CLIENT_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        match (client_id, peer) {
            (Some(id), _) => Self::OAuthClient(id.to_owned()),
            (None, Some(ip)) => Self::Ip(ip),
            (None, None) => Self::Unknown,
        }
    }

    /// Cal.com's tracker string.
    pub fn name(&self) -> String {
        match self {
            Self::Bearer(t) => format!("access_token_{t}"),
            Self::OAuthClient(id) => format!("oauth_client_{id}"),
            Self::Ip(ip) => format!("ip_{ip}"),
            Self::Unknown => "unknown".to_owned(),
        }
    }

    /// The limit that applies: [`Settings::rate_limit`] for a bearer, else
    /// [`Settings::ip_rate_limit`].
    pub fn limit(&self, settings: &Settings) -> u32 {
        match self {
            Self::Bearer(_) => settings.rate_limit,
            _ => settings.ip_rate_limit,
        }
    }
}

/// The counter key: SHA-256 of Cal.com's storage key `<tracker>:<limit>:<ttl>`.
pub fn counter_key(tracker: &str, limit: u32, ttl_ms: i64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tracker.as_bytes());
    h.update(format!(":{limit}:{ttl_ms}").as_bytes());
    h.finalize().into()
}

/// The throttler guard for one request: counts it against its tracker and says whether it is
/// blocked, with the values of the rate-limit headers.
pub(crate) fn check(shared: &Shared, headers: &HeaderMap, peer: Option<IpAddr>) -> RateOutcome {
    let settings = shared.settings();
    let tracker = Tracker::of(headers, peer);
    let limit = tracker.limit(&settings);
    let window_ms = i64::try_from(settings.rate_window.whole_milliseconds()).unwrap_or(60_000);
    let now_ms =
        i64::try_from(shared.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    let key = counter_key(&tracker.name(), limit, window_ms);
    // Block duration = window (both 60 s at Cal.com).
    shared
        .api
        .limiter
        .hit(key, now_ms, limit, window_ms, window_ms)
}

/// The headers of a 429 that did not come from a counter (an injected fault): the tracker's
/// limit, nothing remaining, a whole block to wait.
pub(crate) fn blocked_outcome(
    settings: &Settings,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> RateOutcome {
    RateOutcome {
        limit: Tracker::of(headers, peer).limit(settings),
        remaining: 0,
        reset_secs: settings.rate_window.whole_seconds().max(0),
        blocked: true,
    }
}

fn ceil_secs(ms: i64) -> i64 {
    (ms.max(0) + 999) / 1000
}

impl RateLimiter {
    /// Forgets every tracker.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Counts one request of `key` at `now_ms`.
    pub fn hit(
        &self,
        key: [u8; 32],
        now_ms: i64,
        limit: u32,
        window_ms: i64,
        block_ms: i64,
    ) -> RateOutcome {
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SWEEP_AT {
            map.retain(|_, w| w.window_end_ms > now_ms || w.block_until_ms > now_ms);
        }
        let w = map.entry(key).or_insert(Window {
            window_end_ms: now_ms + window_ms,
            hits: 0,
            block_until_ms: 0,
        });
        if w.window_end_ms <= now_ms {
            w.window_end_ms = now_ms + window_ms;
            w.hits = 0;
        }
        w.hits += 1;
        if w.block_until_ms <= now_ms && w.hits > u64::from(limit) {
            w.block_until_ms = now_ms + block_ms;
        }
        if w.block_until_ms > now_ms {
            RateOutcome {
                limit,
                remaining: 0,
                reset_secs: ceil_secs(w.block_until_ms - now_ms),
                blocked: true,
            }
        } else {
            RateOutcome {
                limit,
                remaining: u64::from(limit).saturating_sub(w.hits),
                reset_secs: ceil_secs(w.window_end_ms - now_ms),
                blocked: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit_until_block_ends() {
        let rl = RateLimiter::default();
        let k = counter_key("access_token_t", 2, 60_000);
        let a = rl.hit(k, 0, 2, 60_000, 60_000);
        assert_eq!((a.remaining, a.reset_secs, a.blocked), (1, 60, false));
        let b = rl.hit(k, 1_500, 2, 60_000, 60_000);
        assert_eq!((b.remaining, b.reset_secs, b.blocked), (0, 59, false));
        let c = rl.hit(k, 2_000, 2, 60_000, 60_000);
        assert_eq!((c.remaining, c.reset_secs, c.blocked), (0, 60, true));
        let d = rl.hit(k, 30_000, 2, 60_000, 60_000);
        assert_eq!((d.reset_secs, d.blocked), (32, true));
        let e = rl.hit(k, 62_000, 2, 60_000, 60_000);
        assert_eq!((e.remaining, e.reset_secs, e.blocked), (1, 60, false));
        // Another token has its own counter.
        assert!(
            !rl.hit(
                counter_key("access_token_u", 2, 60_000),
                30_000,
                2,
                60_000,
                60_000
            )
            .blocked
        );
    }

    #[test]
    fn trackers_follow_get_tracker() {
        use axum::http::HeaderValue;
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut h = HeaderMap::new();
        assert_eq!(Tracker::of(&h, Some(ip)).name(), "ip_127.0.0.1");
        assert_eq!(Tracker::of(&h, None), Tracker::Unknown);
        h.insert(X_CAL_CLIENT_ID, HeaderValue::from_static("pc"));
        assert_eq!(Tracker::of(&h, Some(ip)).name(), "oauth_client_pc");
        h.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(Tracker::of(&h, Some(ip)).name(), "oauth_client_pc");
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(Tracker::of(&h, Some(ip)).name(), "access_token_abc");
        h.insert("authorization", HeaderValue::from_static("Basic xyz"));
        assert_eq!(Tracker::of(&h, Some(ip)).name(), "access_token_Basic xyz");
        let s = Settings {
            rate_limit: 7,
            ip_rate_limit: 9,
            ..Settings::default()
        };
        assert_eq!(Tracker::of(&h, Some(ip)).limit(&s), 7);
        assert_eq!(Tracker::Ip(ip).limit(&s), 9);
        // A changed limit or window is another counter.
        assert_ne!(
            counter_key("ip_1", 120, 60_000),
            counter_key("ip_1", 121, 60_000)
        );
        assert_ne!(
            counter_key("ip_1", 120, 60_000),
            counter_key("ip_1", 120, 1_000)
        );
    }
}
