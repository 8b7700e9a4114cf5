//! Drives the built `calconnect` binary's local commands (login, token, api, connections, keys
//! rotate, doctor) against an in-process sandbox, and `--profile custom` against npm
//! `oidc-provider` (docs/interop.md). Each test has its own CALCONNECT_HOME, set per
//! child process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: tests fail loudly

mod custom;
mod custom_failures;
mod doctor;
mod helpers;
mod idp;
mod login;
mod session;
