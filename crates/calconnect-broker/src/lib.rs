//! calconnect-broker: a self-hosted service that owns the Cal.com OAuth flow and token lifecycle
//! for apps in any language (issue 7; docs/architecture.md §1.1).
//!
//! - The app's backend uses the JSON API with an API key: connect sessions, connections, fresh
//!   access tokens, a proxy to Cal.com API v2, the webhook delivery log.
//! - The end user's browser follows `connect_url` → Cal.com consent → `/oauth/callback`.
//! - Webhooks tell the app when a connection is created, breaks or recovers.
//!
//! [`router`] builds the whole service on an [`AppState`] (testable with `oneshot`);
//! [`Broker::builder`] opens the database, binds and serves. `calconnect serve` runs it.

mod access_token;
pub mod api_keys;
pub mod checks;
pub mod config;
mod connect;
pub mod connections;
pub mod db;
pub mod edge;
pub mod error;
mod extract;
mod front;
pub mod metrics;
pub mod openapi;
mod ops;
pub mod pages;
pub mod profiles;
pub mod proxy;
mod server;
pub mod sessions;
pub mod state;
pub mod webhooks;

pub use config::{BrokerConfig, ConfigError, DatabaseConfig, EXAMPLE_CONFIG, LogFormat};
pub use db::BrokerDb;
pub use edge::EdgeConfig;
pub use error::ApiError;
pub use server::{Broker, BrokerBuilder, MAX_BODY_BYTES, StartError, open_storage, router};
pub use state::AppState;

use axum::Router;
use calconnect::store::ConnectionStore;
use calconnect::{AuthorizationFlow, Clock};
use std::sync::Arc;

/// Token, proxy and webhook-log routes.
fn extra_routes() -> Router<AppState> {
    use axum::routing::{any, post};
    Router::new()
        .route(
            "/api/v1/connections/{id}/access-token",
            post(access_token::access_token),
        )
        .route(
            "/api/v1/connections/{id}/refresh",
            post(access_token::refresh),
        )
        // The proxy limits its request bodies itself (proxy::MAX_PROXY_BODY_BYTES): a limit
        // layer here would box the route and wrap every response body (issue 15).
        .route("/api/v1/connections/{id}/proxy/{*rest}", any(proxy::proxy))
        .route(
            "/api/v1/webhook-deliveries",
            axum::routing::get(webhooks::list),
        )
        .route(
            "/api/v1/webhook-deliveries/{id}/redeliver",
            post(webhooks::manual::redeliver_handler),
        )
        .route("/api/v1/webhooks/test", post(webhooks::manual::test))
}

/// `/api/openapi.json`.
fn openapi_routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", axum::routing::get(openapi::document))
}

/// The token keeper behind the access-token endpoint and the proxy.
fn keeper(
    store: Arc<dyn ConnectionStore>,
    config: &BrokerConfig,
    flow: AuthorizationFlow,
    clock: Arc<dyn Clock>,
    name: Option<String>,
    budget: Arc<dyn calconnect::budget::RefreshBudget>,
) -> calconnect::keeper::TokenKeeper {
    let mut builder = calconnect::keeper::KeeperConfig::builder().budget(budget);
    if let Some(name) = name {
        builder = builder.instance_name(name);
    }
    let keeper_config = builder.build().unwrap_or_default();
    calconnect::keeper::TokenKeeper::new(
        store,
        config.keyring.clone(),
        Arc::new(flow),
        clock,
        keeper_config,
    )
}
