//! The demo's pages over HTTP: the whole flow, demo controls, CSRF, escaping, friendly error
//! pages, the operator dashboard, and data kept between runs. The browser test is in `browser.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod browser;
mod flow;
mod helpers;
mod linking;
mod pages;
mod webhooks;
