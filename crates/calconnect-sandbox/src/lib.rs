//! A local Cal.com for development and tests.
//!
//! The sandbox plays both `app.cal.com` (the authorize and consent pages, the legacy token
//! endpoints) and `api.cal.com` (the v2 token endpoint and an API v2 subset) on one loopback
//! origin, following `docs/calcom.md`. A control surface under `/_sandbox/` (and the same
//! methods on [`Sandbox`]) moves the clock, revokes grants, changes client status and injects
//! faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), calconnect_sandbox::StartError> {
//! let sandbox = calconnect_sandbox::Sandbox::builder().start().await?;
//! println!("authorize at {}", sandbox.authorize_url());
//! # Ok(()) }
//! ```

pub mod api;
#[cfg(feature = "browser")]
pub mod browser;
pub mod clock;
pub mod control;
pub mod jwt;
pub mod oauth;
pub mod persist;
pub mod seed;
mod server;
pub mod state;

pub use control::{ControlError, FaultSpec, SettingsView, TokenCallCount};
pub use oauth::faults::{FaultKind, FaultRule, FaultTarget};
pub use persist::StateFileError;
pub use seed::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientStatus, ClientType,
    DEFAULT_PUBLIC_REDIRECT_URI, DEFAULT_REDIRECT_URI, PUBLIC_CLIENT_ID, Seed,
};
pub use server::{Sandbox, SandboxBuilder, StartError, router};
pub use state::{Owner, Settings, TokenEndpoint};
