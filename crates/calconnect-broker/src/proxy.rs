//! `/api/v1/connections/{id}/proxy/{path}`: forwards to Cal.com API v2 with the connection's token.

/// The streaming HTTP client of the proxy and webhooks: connect timeout, no redirects.
///
/// # Errors
/// When the TLS backend cannot start.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
}
