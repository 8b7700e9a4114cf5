//! The secrets scan in a test binary of its own: it captures the broker's logs with a
//! thread-scoped tracing subscriber, and tracing caches each log site's interest process-wide,
//! so other tests running beside it in one binary could leave a site muted for it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../broker/helpers.rs"]
mod helpers;
mod secrets;
