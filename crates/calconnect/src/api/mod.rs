//! Cal.com API v2 with OAuth access tokens: [`CalClient`] (docs/calcom.md §5).
//!
//! API v1 accepts only API keys (§5.1), so OAuth tokens use API v2, where each endpoint needs its
//! `cal-api-version` header (§5). The client:
//!
//! - takes tokens from an [`AccessTokenSource`] (the token keeper, or [`StaticToken`]);
//! - on 401, and on 403 "no oAuth client found for access token", asks the source for a newer
//!   token **once** and retries **once** (§5, §8); a 403 `insufficient_scope` is a permanent
//!   [`ApiError::InsufficientScope`] and never triggers a refresh;
//! - keeps a sliding-log [governor](GovernorConfig) per access token (120 per minute by
//!   default) so bursts queue instead of provoking 429s, and honours
//!   `X-RateLimit-{Limit,Remaining,Reset}-Default` (§6);
//! - waits out a 429 until the reset (capped) and retries idempotent requests; retries network
//!   failures and 5xx with backoff and jitter, for idempotent methods only ([`RetryPolicy`]);
//! - returns Cal.com's error envelope in structured form ([`ErrorEnvelope`]), with the token
//!   redacted even where Cal.com echoes it.
//!
//! Waiting goes through an injected [`Timer`], so tests move a simulated clock.

mod client;
mod envelope;
mod errors;
pub mod models;
mod ratelimit;
mod raw;
mod request;
mod retry;
mod timer;
mod token_source;
#[cfg(test)]
mod trace_tests;
mod versions;

pub use client::{CalClient, CalClientBuilder, NoApiError};
pub use envelope::{ErrorEnvelope, Rejection};
pub use errors::{ApiError, FailedAttempt, RequestLabel};
pub use models::booking::{
    Attendee, Booking, BookingFilters, BookingHost, BookingPage, BookingStatus, Pagination,
    SortOrder, StatusFilter,
};
pub use models::event_type::EventType;
pub use models::legacy_schedule::{
    AnySchedule, AvailabilityRow, LegacyDateOverride, LegacySchedule, TimeRange, WorkingHours,
};
pub use models::me::{Me, Organization};
pub use models::schedule::{DateOverride, Schedule, WeeklyAvailability};
pub use ratelimit::{GovernorConfig, RateGovernor, RateKey, RateLimitHeaders, RatePermit};
pub use raw::{ApiResponse, RawRequest};
pub use retry::RetryPolicy;
pub use timer::{Timer, TokioTimer};
pub use token_source::{AccessTokenSource, StaticToken, TokenSourceError};
pub use versions::{SLOTS_API_VERSION, default_api_version};
