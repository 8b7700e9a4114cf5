//! The router and the running service: [`router`], [`Broker::builder`], graceful shutdown.

use crate::api_keys::KeyCache;
use crate::config::{BrokerConfig, DatabaseConfig};
use crate::db::BrokerDb;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{connect, connections, ops, sessions};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::routing::{any, get, post};
use calconnect::connect::Connector;
use calconnect::store::ConnectionStore;
use calconnect::{
    AuthorizationFlow, Clock, SystemClock, http::HttpClient, http::HttpConfig, store::StoreError,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Largest JSON request body accepted by the API (the proxy streams and has its own limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a request may take before the broker answers 503 (the proxy's upstream calls have
/// their own 60-second limit; a streamed response body is not cut).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(65);

/// All routes of the broker, on `state`, inside [`outer_layers`]. Composable: a
/// `calconnect demo` can merge its own pages.
pub fn router(state: AppState) -> Router {
    Router::new().fallback_service(outer_layers().service(routes(state)))
}

/// The layers around everything the listener serves, once: the security headers and the 503
/// timeout. `Router::layer` would wrap every route in its own boxed service, cloned and called
/// through a boxed future on every request (issue 15, BENCHMARKS.md). The trace layer stays per
/// route, where the matched route is known.
pub(crate) fn outer_layers() -> tower::ServiceBuilder<
    tower::layer::util::Stack<
        tower_http::timeout::TimeoutLayer,
        tower::layer::util::Stack<SecurityHeaders, tower::layer::util::Identity>,
    >,
> {
    tower::ServiceBuilder::new()
        .layer(security_headers())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
}

/// The broker's routes without [`outer_layers`].
pub(crate) fn routes(state: AppState) -> Router {
    let metrics_here = state.config.metrics.listen.is_none();
    // Flat routes under `/api/v1` rather than a nested router: `nest` rewrites every request's
    // URI and routes it twice (issue 15, BENCHMARKS.md). The catch-alls keep the JSON 404 of
    // unknown API routes.
    let api_not_found = || async { ApiError::not_found("no such API route") };
    let api = Router::new()
        .route("/api/v1/connect-sessions", post(sessions::create))
        .route("/api/v1/connect-sessions/{id}", get(sessions::get))
        .route("/api/v1/connections", get(connections::list))
        .route(
            "/api/v1/connections/{id}",
            get(connections::get).delete(connections::delete),
        )
        .merge(crate::extra_routes())
        .route("/api/v1", any(api_not_found))
        .route("/api/v1/", any(api_not_found))
        .route("/api/v1/{*rest}", any(api_not_found))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let mut routes = Router::new()
        .merge(api)
        .route("/connect/{token}", get(connect::connect))
        .route("/oauth/callback", get(connect::callback))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    if metrics_here {
        routes = routes.route("/metrics", get(ops::metrics));
    }
    routes
        .merge(crate::openapi_routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // The path only: queries (codes, states) and headers (keys) are never logged.
                // At DEBUG, as tower-http's own default: the fmt layer formats a span's fields
                // when it is created, and at INFO that was a sixth of a `/healthz` request
                // (issue 15, BENCHMARKS.md). `RUST_LOG=calconnect_broker=debug` shows them.
                let path = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("unmatched", |p| p.as_str());
                tracing::debug_span!("request", method = %req.method(), route = path)
            }),
        )
        .with_state(state)
}

type SecurityHeaders = tower::layer::util::Stack<
    SetResponseHeaderLayer<HeaderValue>,
    tower::layer::util::Stack<
        SetResponseHeaderLayer<HeaderValue>,
        SetResponseHeaderLayer<HeaderValue>,
    >,
>;

fn security_headers() -> SecurityHeaders {
    let nosniff = SetResponseHeaderLayer::if_not_present(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let frames = SetResponseHeaderLayer::if_not_present(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    let referrer = SetResponseHeaderLayer::if_not_present(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    tower::layer::util::Stack::new(nosniff, tower::layer::util::Stack::new(frames, referrer))
}

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error("opening the database failed: {0}")]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error("building the HTTP client failed: {0}")]
    Http(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Opens the connection store and the broker tables on the configured database, running both
/// migrations.
///
/// # Errors
/// [`StoreError`] (never showing a password).
pub async fn open_storage(
    database: &DatabaseConfig,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<dyn ConnectionStore>, BrokerDb), StoreError> {
    let (store, db): (Arc<dyn ConnectionStore>, BrokerDb) = match database {
        DatabaseConfig::Sqlite(path) => {
            let store = calconnect_sql::SqliteStore::open(path, clock).await?;
            let db = BrokerDb::new(store.db().clone());
            (Arc::new(store), db)
        }
        DatabaseConfig::Postgres(url) => {
            probe_postgres(url).await?;
            let store = calconnect_sql::PostgresStore::connect(url, clock).await?;
            let db = BrokerDb::new(store.db().clone());
            (Arc::new(store), db)
        }
    };
    db.migrate().await?;
    Ok((store, db))
}

/// How long the first connection to PostgreSQL may take.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection attempt before the pool is built, so that an unreachable server is reported
/// at once in its own words ("connection refused", "password authentication failed") rather
/// than as the pool's "timed out" after ten seconds. A URL that does not parse is left to the
/// store, which explains it.
async fn probe_postgres(url: &secrecy::SecretString) -> Result<(), StoreError> {
    use calconnect_sql::sqlx::Connection as _;
    use calconnect_sql::sqlx::postgres::{PgConnectOptions, PgConnection};
    use secrecy::ExposeSecret as _;
    let Ok(options) = url.expose_secret().parse::<PgConnectOptions>() else {
        return Ok(());
    };
    let unavailable = |why: String| StoreError::Unavailable {
        database: calconnect_sql::describe(&options),
        operation: "connecting",
        source: why.into(),
    };
    match tokio::time::timeout(
        POSTGRES_CONNECT_TIMEOUT,
        PgConnection::connect_with(&options),
    )
    .await
    {
        Err(_) => Err(unavailable(format!(
            "no answer within {} s (is the host right, and the port open?)",
            POSTGRES_CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) => Err(unavailable(explain_postgres_error(&e))),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// The cause of a failed connection, once and in plain words.
fn explain_postgres_error(e: &calconnect_sql::sqlx::Error) -> String {
    use calconnect_sql::sqlx::Error;
    match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: no PostgreSQL listens on that host and port".to_owned()
        }
        Error::Io(io) => io.to_string(),
        Error::Database(db) => db.message().to_owned(),
        Error::Tls(tls) => format!("TLS failed: {tls}"),
        other => other.to_string(),
    }
}

/// Configures a [`Broker`].
#[derive(Debug)]
pub struct BrokerBuilder {
    config: BrokerConfig,
    clock: Arc<dyn Clock>,
    listener: Option<std::net::TcpListener>,
    api_key_cache_ttl: Duration,
    webhook: crate::webhooks::WorkerConfig,
    keeper_name: Option<String>,
}

impl BrokerBuilder {
    /// The clock (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serve on an already bound listener (tests bind `127.0.0.1:0` first to learn the port
    /// for the redirect URI).
    #[must_use]
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// How long a verified API key is trusted without a database read (default 5 s; zero in
    /// tests of revocation).
    #[must_use]
    pub fn api_key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.api_key_cache_ttl = ttl;
        self
    }

    /// Webhook worker settings (poll interval, backoff).
    #[must_use]
    pub fn webhook_worker(mut self, config: crate::webhooks::WorkerConfig) -> Self {
        self.webhook = config;
        self
    }

    /// Name of this instance in refresh leases (default: random).
    #[must_use]
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.keeper_name = Some(name.into());
        self
    }

    /// Opens the database (running migrations), binds, and serves in the background.
    ///
    /// # Errors
    /// [`StartError`].
    pub async fn start(self) -> Result<Broker, StartError> {
        let config = Arc::new(self.config);
        let _ = crate::metrics::recorder();
        let (store, db) = open_storage(&config.database, self.clock.clone()).await?;
        let http =
            HttpClient::new(HttpConfig::default()).map_err(|e| StartError::Http(e.to_string()))?;
        let flow = AuthorizationFlow::new(
            config.profile.clone(),
            config.client.clone(),
            http,
            self.clock.clone(),
        );
        // One token-endpoint budget for the keeper and the code exchanges, shared through the
        // database by every instance on it (docs/scaling.md).
        let budget = store.budget(config.budget.clone(), self.clock.clone());
        let keeper = crate::keeper(
            store.clone(),
            &config,
            flow.clone(),
            self.clock.clone(),
            self.keeper_name,
            budget.clone(),
        );
        let sweep = keeper.spawn_sweep();
        let governor = Arc::new(calconnect::api::RateGovernor::new(
            calconnect::api::GovernorConfig::default(),
            Arc::new(calconnect::api::TokioTimer::default()),
        ));
        let webhook_http =
            crate::webhooks::client().map_err(|e| StartError::Http(e.to_string()))?;
        let upstream =
            crate::proxy::Upstream::new(config.profile.api_base(), &config.upstream_proxy)
                .map_err(|e| StartError::Http(e.to_string()))?;
        let connector = Connector::new(
            flow.clone(),
            store.clone(),
            config.keyring.clone(),
            self.clock.clone(),
        )
        .with_refresh_window(calconnect::keeper::KeeperConfig::default().refresh_window())
        .with_profile_lookup(true)
        .with_budget(budget)
        .allow_reassignment(config.allow_reassignment);
        let state = AppState::new(crate::state::AppStateFields {
            config: config.clone(),
            flow,
            connector,
            store,
            db,
            clock: self.clock,
            api_key_cache: Arc::new(KeyCache::new(self.api_key_cache_ttl)),
            keeper,
            governor,
            webhook_http,
            upstream,
            metrics: Arc::new(Metrics),
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
        });
        let listener = match self.listener {
            Some(l) => l,
            None => {
                std::net::TcpListener::bind(config.listen).map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?
            }
        };
        let bind_err = |source| StartError::Bind {
            addr: config.listen,
            source,
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_err)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = crate::webhooks::spawn_worker(state.clone(), self.webhook, stop_rx.clone());
        let profiles = crate::profiles::spawn(state.clone(), stop_rx.clone());
        let app = routes(state.clone());
        let edge = config.edge;
        let (metrics_server, metrics_addr) = match config.metrics.listen {
            None => (None, None),
            Some(at) => {
                let bound = tokio::net::TcpListener::bind(at)
                    .await
                    .map_err(|source| StartError::Bind { addr: at, source })?;
                let bound_addr = bound
                    .local_addr()
                    .map_err(|source| StartError::Bind { addr: at, source })?;
                let app = Router::new()
                    .route("/metrics", get(ops::metrics))
                    .with_state(state.clone());
                tracing::info!(addr = %bound_addr, "metrics listening");
                let task = tokio::spawn(crate::edge::serve(bound, app, edge, stop_rx.clone()));
                (Some(task), Some(bound_addr))
            }
        };
        // The proxy route is served before the router (issue 15, front.rs), both inside the
        // outer layers.
        let app = outer_layers().service(crate::front::Front::new(app, state.clone()));
        let server = tokio::spawn(crate::edge::serve(listener, app, edge, stop_rx));
        tracing::info!(%addr, "broker listening");
        Ok(Broker {
            addr,
            state,
            stop: stop_tx,
            server: Some(server),
            metrics_server,
            metrics_addr,
            worker: Some(worker),
            profiles,
            sweep: Some(sweep),
        })
    }
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    addr: SocketAddr,
    state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    metrics_server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    metrics_addr: Option<SocketAddr>,
    worker: Option<tokio::task::JoinHandle<()>>,
    profiles: Option<tokio::task::JoinHandle<()>>,
    sweep: Option<calconnect::keeper::SweepHandle>,
}

impl Broker {
    /// A builder for `config`.
    pub fn builder(config: BrokerConfig) -> BrokerBuilder {
        BrokerBuilder {
            config,
            clock: Arc::new(SystemClock),
            listener: None,
            api_key_cache_ttl: KeyCache::TTL,
            webhook: crate::webhooks::WorkerConfig::default(),
            keeper_name: None,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the separate metrics listener (`metrics.listen`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `http://<addr>`.
    pub fn local_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The handlers' state (for tests and embedding).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The broker's own database (API keys, sessions, webhooks).
    pub fn db(&self) -> &BrokerDb {
        &self.state.db
    }

    /// Stops accepting connections, lets in-flight requests (and the refreshes they wait on)
    /// finish, stops the webhook worker after its current delivery, and waits.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "server ended with an error"),
                Err(e) => tracing::warn!(error = %e, "server task failed"),
            }
        }
        if let Some(metrics) = self.metrics_server.take() {
            let _ = metrics.await;
        }
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
        if let Some(profiles) = self.profiles.take() {
            let _ = profiles.await;
        }
        if let Some(sweep) = self.sweep.take() {
            sweep.stop().await;
        }
    }

    /// Waits until the server ends (after [`Broker::shutdown`] from another handle, or an error).
    pub async fn wait_for_signal_then_shutdown(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await;
    }
}
