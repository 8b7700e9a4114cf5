//! Per-access-token rate limiting (`calcom-facts.md` §5.3; `apps/api/v2/src/lib/throttler/
//! throttler-guard.ts` over `@nest-lab/throttler-storage-redis`).
//!
//! The tracker is `access_token_<token>`; here it is keyed by the token's SHA-256 so tokens are
//! not kept in memory. Semantics of the Redis script: a fixed window starts at the first hit; a
//! hit beyond `limit` blocks the tracker for the block duration (60 s at Cal.com, here the same
//! as the window); hits made while blocked are still counted. The headers carry
//! `X-RateLimit-Limit-Default`, `X-RateLimit-Remaining-Default` (0 while blocked) and
//! `X-RateLimit-Reset-Default` = seconds until the block ends, else until the window ends
//! (rounded up). There is no `Retry-After`.
//!
//! Only requests with a bearer are limited; Cal.com also limits requests without one by client
//! IP (120 per minute), which the sandbox does not. Every bearer counts, valid or not, because
//! the throttler is a global guard that runs before authentication; unmatched routes are not
//! counted (Nest runs no guards for them). Which limit Cal.com applies to third-party JWTs
//! (500 vs 120) is unverified (§5.3); the sandbox uses `Settings::rate_limit` (default 500).
//!
//! The sandbox clock drives the windows, so `Sandbox::advance_clock` ends a block. The state is
//! sharded over several `std::sync::Mutex`es; each critical section is a map lookup and a few
//! integer operations, never an await.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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

/// The tracker key of a bearer token: SHA-256 of `access_token_<token>`.
pub fn tracker_key(token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"access_token_");
    h.update(token.as_bytes());
    h.finalize().into()
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
        let k = tracker_key("t");
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
        assert!(!rl.hit(tracker_key("u"), 30_000, 2, 60_000, 60_000).blocked);
    }
}
