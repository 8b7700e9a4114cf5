//! API v2 methods on the [`Sandbox`] handle: statistics, the 403 switch, rate-limit knobs.

use super::stats::ApiCallCount;
use crate::server::Sandbox;
use time::Duration;

impl Sandbox {
    /// API v2 requests answered so far whose path starts with `path_prefix` (`"/v2"` for all).
    pub fn api_calls(&self, path_prefix: &str) -> u64 {
        self.shared.api.stats.count(path_prefix, None)
    }

    /// Like [`Sandbox::api_calls`], counting only answers with `status` (e.g. 429 or 401).
    pub fn api_calls_with_status(&self, path_prefix: &str, status: u16) -> u64 {
        self.shared.api.stats.count(path_prefix, Some(status))
    }

    /// Every (path, status) counter.
    pub fn api_stats(&self) -> Vec<ApiCallCount> {
        self.shared.api.stats.snapshot()
    }

    /// Makes `GET /v2/bookings` answer an expired (validly signed) token with 403
    /// `PermissionsGuard - no oAuth client found for access token=…` instead of 401
    /// (`docs/calcom.md` §5, `calcom#24840`).
    pub fn set_bookings_expired_token_403(&self, on: bool) {
        self.shared
            .update_settings(|s| s.bookings_expired_token_403 = on);
    }

    /// Changes the API v2 rate limit (requests per bearer token per window) from now on. As at
    /// Cal.com, whose counters are keyed by tracker, limit and window, a changed limit or window
    /// starts fresh counters.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        self.shared.update_settings(|s| {
            s.rate_limit = limit;
            s.rate_window = window;
        });
    }

    /// Changes the per-IP limit (requests without a bearer, the v2 token endpoint included).
    pub fn set_ip_rate_limit(&self, limit: u32) {
        self.shared.update_settings(|s| s.ip_rate_limit = limit);
    }

    /// Forgets every rate-limit counter and block.
    pub fn reset_rate_limits(&self) {
        self.shared.api.limiter.clear();
    }
}
