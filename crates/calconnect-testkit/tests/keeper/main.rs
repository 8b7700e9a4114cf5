//! Token keeper tests against the sandbox: storms (one process, two processes on PostgreSQL,
//! two keepers on one SQLite file), crashes at each refresh step, faults, classification,
//! backoff and the keep-alive sweep on an injected clock, and no secrets in metrics or traces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod budget;
mod classify;
mod crash;
mod faults;
mod multiprocess;
mod short_lived;
mod storm;
mod sweep;
// The telemetry test has a test binary of its own (tests/keeper_telemetry): tracing's callsite
// interest cache is process-wide, and tests running beside it on other threads can leave its
// spans disabled.
mod fixture;

pub use fixture::*;
