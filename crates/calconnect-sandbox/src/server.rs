//! Starting and stopping the sandbox: [`SandboxBuilder`] and the [`Sandbox`] handle.

use crate::clock::SandboxClock;
use crate::seed::{ClientType, Seed, SeedError};
use crate::state::{Db, Settings, Shared};
use axum::Router;
use rand::RngCore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use url::Url;

/// Errors starting the sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("the seed has no client {0}; pass --client-id only with a seed that defines it")]
    UnknownClient(String),
    #[error(transparent)]
    StateFile(#[from] crate::persist::StateFileError),
}

/// Configures and starts a [`Sandbox`].
#[derive(Debug)]
pub struct SandboxBuilder {
    seed: Seed,
    settings: Settings,
    bind: SocketAddr,
    clock: Option<SandboxClock>,
    signing_key: Option<Vec<u8>>,
    state_file: Option<PathBuf>,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            seed: Seed::default(),
            settings: Settings::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: None,
            signing_key: None,
            state_file: None,
        }
    }
}

impl SandboxBuilder {
    /// Replaces the whole seed.
    pub fn seed(mut self, seed: Seed) -> Self {
        self.seed = seed;
        self
    }

    /// Edits the seed in place (add a client, a redirect URI, ...).
    pub fn with_seed(mut self, f: impl FnOnce(&mut Seed)) -> Self {
        f(&mut self.seed);
        self
    }

    /// Adds `uri` to the registered redirect URIs of every seeded client of the given type
    /// (exact match applies, as at Cal.com).
    pub fn redirect_uri(mut self, client_type: ClientType, uri: impl Into<String>) -> Self {
        let uri = uri.into();
        for c in self
            .seed
            .clients
            .iter_mut()
            .filter(|c| c.client_type == client_type)
        {
            if !c.redirect_uris.contains(&uri) {
                c.redirect_uris.push(uri.clone());
            }
        }
        self
    }

    /// The address to listen on; `127.0.0.1:0` (a free port) by default.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Replaces all settings.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.settings.access_token_ttl = ttl;
        self
    }

    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.settings.refresh_token_ttl = ttl;
        self
    }

    /// Requests per bearer token per window on API v2 (default 120 per 60 s, Cal.com's limit
    /// for third-party OAuth tokens). The window is shared with [`SandboxBuilder::ip_rate_limit`].
    pub fn rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.settings.rate_limit = limit;
        self.settings.rate_window = window;
        self
    }

    /// Requests per client IP per window without a bearer: bearer-less API v2 calls and
    /// `POST /v2/auth/oauth2/token` (default 120, as at Cal.com). Tests that make more than 120
    /// token calls per sandbox minute from one address raise this.
    pub fn ip_rate_limit(mut self, limit: u32) -> Self {
        self.settings.ip_rate_limit = limit;
        self
    }

    /// Uses a clock frozen at `at` (moved only by [`Sandbox::advance_clock`]).
    pub fn frozen_clock(mut self, at: OffsetDateTime) -> Self {
        self.clock = Some(SandboxClock::frozen(at));
        self
    }

    /// The HS256 key that signs tokens (random by default).
    pub fn signing_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.signing_key = Some(key.into());
        self
    }

    /// Keeps the grants in `path` across restarts: refresh-token rows, consent records, unused
    /// codes, client statuses and the clock's offset are loaded from it at start (when it
    /// exists) and written to it after every change ([`crate::persist`]). Use it with a fixed
    /// [`SandboxBuilder::signing_key`], or the tokens it remembers no longer verify.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Binds the listener and starts serving in the background.
    ///
    /// # Errors
    /// The seed is inconsistent, the state file cannot be read, or the address cannot be bound.
    pub async fn start(self) -> Result<Sandbox, StartError> {
        self.seed.validate()?;
        let clock = self.clock.unwrap_or_else(SandboxClock::system);
        let signing_key = self.signing_key.unwrap_or_else(|| {
            let mut k = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k
        });
        let db = Db::from_seed(&self.seed, clock.now());
        let shared = Arc::new(Shared {
            clock,
            settings: Mutex::new(self.settings),
            signing_key,
            db: Mutex::new(db),
            api: crate::api::ApiState::default(),
            persistence: self
                .state_file
                .clone()
                .map(crate::persist::Persistence::new),
        });
        if let Some(path) = &self.state_file {
            crate::persist::load(path, &shared)?;
        }
        let listener = TcpListener::bind(self.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.bind,
            source,
        })?;
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        let (writer_stop, writer_stopped) = tokio::sync::watch::channel(false);
        let writer = crate::persist::spawn_writer(shared.clone(), writer_stopped);
        let base_url = base_url(addr);
        Ok(Sandbox {
            addr,
            base_url,
            shared,
            shutdown: Some(tx),
            task: Some(task),
            writer_stop,
            writer,
        })
    }
}

fn base_url(addr: SocketAddr) -> Url {
    // A socket address always makes a valid http URL.
    Url::parse(&format!("http://{addr}"))
        .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable_url()))
}

#[allow(clippy::panic)] // reason: "http://127.0.0.1/" always parses; this is never reached
fn unreachable_url() -> Url {
    panic!("static URL failed to parse")
}

/// The whole sandbox as one router: the web app's pages and legacy endpoints, API v2 and the
/// control surface, served on one origin.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(crate::oauth::router())
        .merge(crate::api::router())
        .nest("/_sandbox", crate::control::router())
        .with_state(shared)
}

/// A running sandbox. Stops when dropped (or by [`Sandbox::shutdown`]).
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    base_url: Url,
    pub(crate) shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Stops the state-file writer (after the server: in-flight token calls wait for it).
    writer_stop: tokio::sync::watch::Sender<bool>,
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// The address the sandbox listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/` — plays both `app.cal.com` and `api.cal.com`.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn join(&self, path: &str) -> Url {
        let mut u = self.base_url.clone();
        u.set_path(path);
        u
    }

    /// `GET /auth/oauth2/authorize` (the consent page).
    pub fn authorize_url(&self) -> Url {
        self.join("/auth/oauth2/authorize")
    }

    /// `POST /v2/auth/oauth2/token`.
    pub fn token_url(&self) -> Url {
        self.join("/v2/auth/oauth2/token")
    }

    /// Legacy `POST /api/auth/oauth/token`.
    pub fn legacy_token_url(&self) -> Url {
        self.join("/api/auth/oauth/token")
    }

    /// Legacy `POST /api/auth/oauth/refreshToken`.
    pub fn legacy_refresh_url(&self) -> Url {
        self.join("/api/auth/oauth/refreshToken")
    }

    /// API v2 base, `http://127.0.0.1:<port>/v2`.
    pub fn api_url(&self) -> Url {
        self.join("/v2")
    }

    /// The control surface, `http://127.0.0.1:<port>/_sandbox/`.
    pub fn control_url(&self) -> Url {
        self.join("/_sandbox/")
    }

    /// The sandbox's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.shared.clock.now()
    }

    /// Moves the sandbox clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.advance_clock(by);
    }

    /// Waits until the state file (if any) holds every change made so far.
    pub async fn saved(&self) {
        self.shared.saved().await;
    }

    /// Stops serving, waits for in-flight requests to finish, then writes the state file (if
    /// any) a last time.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = self.writer_stop.send(true);
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.writer_stop.send(true);
    }
}
