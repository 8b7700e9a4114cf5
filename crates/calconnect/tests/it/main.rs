//! calconnect's integration tests (one binary): the wire format against in-test responders,
//! interop with an independent authorization server, and the flow against the sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connect;
mod contract;
mod interop;
mod interop_identity;
mod responder;
mod sandbox;
mod wire;
