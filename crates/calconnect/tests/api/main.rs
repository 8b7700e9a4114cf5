//! `CalClient` against the sandbox (and in-test responders for failures the sandbox does not
//! fake): typed calls in both schedule shapes, refresh-and-retry, `insufficient_scope`, rate
//! limits and the governor, transient retries, secrets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod failures;
mod helpers;
mod limits;
mod refresh;
mod typed;
