//! Shared test helpers: start a sandbox on a free port, a plain HTTP client that never follows
//! redirects.
#![allow(dead_code)]

use calconnect_sandbox::Sandbox;

pub async fn start() -> Sandbox {
    Sandbox::builder().start().await.expect("sandbox starts")
}

/// A client that does not follow redirects, so every `Location` can be asserted.
#[allow(
    clippy::disallowed_methods,
    reason = "a test client of the sandbox itself, which may not use calconnect's builder"
)]
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}
