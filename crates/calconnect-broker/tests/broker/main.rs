//! Broker tests over real sockets: the broker and the sandbox on 127.0.0.1:0, a cookie-jar
//! browser following each redirect by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod at_rest;
mod checks;
mod connections;
mod edge;
mod flow;
mod hardening;
mod helpers;
mod integrate;
mod linking;
mod postgres;
mod schemathesis;
mod tokens;
mod webhook_at_rest;
mod webhook_manual;
mod webhooks;
