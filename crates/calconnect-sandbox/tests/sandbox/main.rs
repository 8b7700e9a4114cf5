//! Integration tests: the sandbox over real HTTP, asserted against literal fixtures from
//! `docs/calcom.md`. One test binary; one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: tests fail loudly

mod helpers;

mod api;
mod api_bookings;
mod api_limits;
mod api_schedules;
mod control;
mod flow;
mod oauth;
mod oauth_consent;
mod oauth_legacy;
mod oauth_refresh;
mod oauth_token;
mod state_file;
