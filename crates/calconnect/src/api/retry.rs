//! Retry policy: transient failures (network, 5xx, HTML error pages) are retried with
//! exponential backoff and jitter, for idempotent methods only; a 429 is waited out up to a cap
//! (docs/calcom.md §6, §8 "treat 429 and 5xx as inconclusive and back off").

use http::Method;
use rand::Rng;
use std::time::Duration;

/// How [`CalClient`](super::CalClient) retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in total for transient failures (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled for each further retry.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
    /// How often a 429 is waited out and retried.
    pub max_rate_limit_retries: u32,
    /// Longest 429 wait: a later reset fails the call with
    /// [`ApiError::RateLimited`](super::ApiError::RateLimited) at once.
    pub max_rate_limit_wait: Duration,
    /// The wait after a 429 without a reset header (Cal.com blocks for 60 s).
    pub default_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            max_rate_limit_retries: 2,
            max_rate_limit_wait: Duration::from_secs(65),
            default_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (each request is sent once, 429s fail at once).
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            max_rate_limit_retries: 0,
            ..Self::default()
        }
    }

    /// Sets the total attempts for transient failures (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the backoff: `base` doubled per retry, at most `max`.
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }

    /// Sets how often and how long a 429 is waited out.
    #[must_use]
    pub fn rate_limit_waits(mut self, retries: u32, max_wait: Duration) -> Self {
        self.max_rate_limit_retries = retries;
        self.max_rate_limit_wait = max_wait;
        self
    }

    /// Sets the wait after a 429 that carries no reset.
    #[must_use]
    pub fn default_rate_limit_wait(mut self, wait: Duration) -> Self {
        self.default_rate_limit_wait = wait;
        self
    }

    /// The backoff before retry number `retry` (1-based): "equal jitter", i.e. a random value
    /// between half and all of `min(max, base * 2^(retry-1))`, so retries of many clients spread
    /// out but never collapse to zero.
    pub(crate) fn backoff_delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        let ceiling = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(rng.gen_range(0..=spread))
    }
}

/// Whether `method` may be repeated without changing the outcome (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_within_bounds() {
        let policy =
            RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_millis(350));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let d1 = policy.backoff_delay(1, &mut rng);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d2 = policy.backoff_delay(2, &mut rng);
            assert!(
                d2 >= Duration::from_millis(100) && d2 <= Duration::from_millis(200),
                "{d2:?}"
            );
            let d9 = policy.backoff_delay(9, &mut rng);
            assert!(
                d9 >= Duration::from_millis(175) && d9 <= Duration::from_millis(350),
                "{d9:?}"
            );
        }
    }

    #[test]
    fn idempotent_methods() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
