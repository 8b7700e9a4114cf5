//! calconnect: connect your users' Cal.com accounts over OAuth 2.0 and keep the connections alive.

pub mod clock;

pub use clock::{Clock, MockClock, SystemClock};
