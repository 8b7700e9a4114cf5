//! calconnect: connect your users' Cal.com accounts over OAuth 2.0 and keep the connections alive.

pub mod clock;
pub mod crypto;
pub mod store;

pub use clock::{Clock, MockClock, SystemClock};
pub use crypto::{Keyring, SealedBlob};
pub use store::{ConnectionStore, StoreError};
