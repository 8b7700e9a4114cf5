//! Shared state of the handlers.

use crate::api_keys::KeyCache;
use crate::config::BrokerConfig;
use crate::db::BrokerDb;
use crate::metrics::Metrics;
use calconnect::api::RateGovernor;
use calconnect::connect::Connector;
use calconnect::keeper::TokenKeeper;
use calconnect::store::ConnectionStore;
use calconnect::{AuthorizationFlow, Clock};
use std::sync::Arc;

/// Everything a handler needs, behind one `Arc`: axum clones the state for every request (once
/// for the route, once more per `State` extractor), so a clone must be one reference count, not
/// a copy of the configuration (issue 15; `crates/calconnect-broker/BENCHMARKS.md`). The fields
/// are reached through `Deref` ([`AppStateFields`]).
#[derive(Clone)]
pub struct AppState(Arc<AppStateFields>);

/// The fields of [`AppState`].
pub struct AppStateFields {
    pub(crate) config: Arc<BrokerConfig>,
    pub(crate) flow: AuthorizationFlow,
    pub(crate) connector: Connector,
    pub(crate) store: Arc<dyn ConnectionStore>,
    pub(crate) db: BrokerDb,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) api_key_cache: Arc<KeyCache>,
    /// The library's token keeper: the only refresher (access-token endpoint, proxy, refresh).
    pub(crate) keeper: TokenKeeper,
    /// The library's per-token rate governor, for the proxy.
    pub(crate) governor: Arc<RateGovernor>,
    /// Webhook deliveries' client.
    pub(crate) webhook_http: reqwest::Client,
    /// The API proxy's client, API base and per-connection bearers.
    pub(crate) upstream: crate::proxy::Upstream,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) webhook_wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for AppStateFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("flow", &self.flow)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateFields;

    fn deref(&self) -> &AppStateFields {
        &self.0
    }
}

impl AppState {
    /// The state made of `fields`.
    pub(crate) fn new(fields: AppStateFields) -> Self {
        Self(Arc::new(fields))
    }

    /// The connection store (for embedding and tests).
    pub fn store(&self) -> &Arc<dyn ConnectionStore> {
        &self.store
    }

    /// Wakes the webhook worker (a new store event may be waiting).
    pub(crate) fn webhooks_nudge(&self) {
        self.webhook_wake.notify_one();
    }

    /// Now, in unix milliseconds, from the injected clock.
    pub(crate) fn now_ms(&self) -> i64 {
        unix_ms(self.clock.now())
    }
}

/// A time as unix milliseconds.
pub(crate) fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds as RFC 3339 text.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A time as RFC 3339 text.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
