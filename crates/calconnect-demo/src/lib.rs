//! calconnect-demo: `calconnect demo` — the sandbox (a local Cal.com), the broker (SQLite in a
//! data folder, a generated sealing key) and an example app, in one process (issue 8).
//!
//! The example app uses the broker exactly as an app in any language would: over its HTTP JSON
//! API with an API key (connect sessions, connections, the API v2 proxy). Its pages show a
//! connection's identity, scopes, status, token countdown, weekly availability grid and upcoming
//! bookings; demo controls act on the sandbox (expire, revoke, outage); `/admin` is the
//! operator's dashboard.
//!
//! ```no_run
//! # async fn run() -> Result<(), calconnect_demo::DemoError> {
//! let demo = calconnect_demo::Demo::start(calconnect_demo::DemoOptions::new("/tmp/demo")).await?;
//! println!("open {}", demo.app_url());
//! demo.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
mod start;

pub use start::{Demo, DemoError, DemoOptions};
