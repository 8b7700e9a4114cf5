//! The example app ("an example app using calconnect"): a tiny web app that uses the broker the
//! way an app in any language would — over its HTTP JSON API with an API key — plus the demo
//! controls (which act on the sandbox) and the operator dashboard.
//!
//! Pages are server-rendered (`maud`) and work without JavaScript. The demo end user signs in by
//! picking a name (a signed cookie, [`session::SignedIn`]); every form is a POST carrying a CSRF
//! token bound to that cookie, checked by the [`session::Csrf`] extractor before the handler.

mod admin;
mod broker;
mod connection;
mod controls;
mod grid;
mod html;
mod pages;
mod session;
mod webhooks;
mod when;

pub(crate) use broker::BrokerApi;

use axum::Router;
use axum::routing::{get, post};
use calconnect::Clock;
use calconnect::store::ConnectionStore;
use calconnect_sandbox::Sandbox;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the app is built from.
pub(crate) struct AppSetup {
    pub(crate) app_url: String,
    pub(crate) broker_url: String,
    pub(crate) api_key: SecretString,
    pub(crate) admin_password: SecretString,
    pub(crate) webhook_secret: SecretString,
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) store: Arc<dyn ConnectionStore>,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The handlers' state. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppCtx {
    pub(crate) app_url: String,
    pub(crate) broker: BrokerApi,
    pub(crate) sessions: Arc<session::Sessions>,
    pub(crate) admin_password: SecretString,
    pub(crate) webhook_secret: SecretString,
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) store: Arc<dyn ConnectionStore>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Webhook events received (newest first, at most 20).
    pub(crate) received: Arc<Mutex<Vec<pages::Received>>>,
    /// Connections whose access token a demo control made Cal.com's clock pass, with their last
    /// refresh at the time (see [`controls::expired_at_cal`]).
    pub(crate) expired_at_cal: Arc<Mutex<HashMap<String, String>>>,
    /// The Cal.com user's time zone and clock (`/v2/me`'s `timeZone`, `timeFormat`) per
    /// connection, as last read: times stay in that zone while Cal.com does not answer.
    pub(crate) zones: Arc<Mutex<HashMap<String, when::UserClock>>>,
}

impl std::fmt::Debug for AppCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCtx")
            .field("app_url", &self.app_url)
            .finish_non_exhaustive()
    }
}

/// The app could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error(transparent)]
    Http(#[from] calconnect::http::HttpClientError),
    #[error(transparent)]
    Keys(#[from] session::KeyError),
}

impl AppCtx {
    pub(crate) fn new(setup: AppSetup) -> Result<Self, SetupError> {
        Ok(Self {
            broker: BrokerApi::new(setup.broker_url, setup.api_key)?,
            app_url: setup.app_url,
            sessions: Arc::new(session::Sessions::random()?),
            admin_password: setup.admin_password,
            webhook_secret: setup.webhook_secret,
            sandbox: setup.sandbox,
            store: setup.store,
            clock: setup.clock,
            received: Arc::new(Mutex::new(Vec::new())),
            expired_at_cal: Arc::new(Mutex::new(HashMap::new())),
            zones: Arc::new(Mutex::new(HashMap::new())),
        })
    }
}

/// The app's routes.
pub(crate) fn router(ctx: AppCtx) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/signin", post(pages::sign_in))
        .route("/signout", post(pages::sign_out))
        .route("/connect", post(pages::connect))
        .route("/connected", get(pages::connected))
        .route("/connections/{id}", get(connection::show))
        .route("/connections/{id}/refresh", post(connection::refresh))
        .route(
            "/connections/{id}/disconnect",
            get(connection::confirm_disconnect).post(connection::disconnect),
        )
        .route("/connections/{id}/demo/{action}", post(controls::act))
        .route("/webhooks/calconnect", post(webhooks::receive))
        .route("/admin", get(admin::dashboard))
        .route("/admin/connections/{id}", get(admin::detail::show))
        .route(
            "/admin/connections/{id}/refresh",
            post(admin::detail::refresh),
        )
        .route(
            "/admin/connections/{id}/disconnect",
            post(admin::detail::disconnect),
        )
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(html::security_headers))
        .with_state(ctx)
}

/// Serves the app on `listener` until the returned sender says stop.
pub(crate) fn serve(
    ctx: AppCtx,
    listener: std::net::TcpListener,
) -> std::io::Result<(
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let app = router(ctx);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    Ok((stop, task))
}
