//! No secrets in the keeper's metrics and traces. A test binary of its own: tracing's callsite
//! interest cache is process-wide, so tests running beside it could leave its spans disabled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../keeper/fixture.rs"]
mod fixture;
#[path = "../keeper/telemetry.rs"]
mod telemetry;

pub use fixture::{config, env};
