//! [`Demo::start`]: the sandbox, the broker (SQLite in the data folder, a generated sealing key)
//! and the example app, in one process, each on its own loopback port.
//!
//! Files in the data folder (created on first run, kept between runs, secrets with mode 0600):
//! `keys` (the sealing key — for the demo only), `calconnect.db`, `app-api-key` (the example
//! app's broker API key), `admin-password` (the operator dashboard), `sandbox-signing-key` (so
//! access tokens the sandbox issued stay valid across restarts), `sandbox-state.json` (the local
//! Cal.com's grants: refresh-token rows, consent records, client statuses and its clock's
//! offset, so a connection's next refresh after a restart works as before it).

use crate::app::{self, AppCtx};
use calconnect::Clock as _;
use calconnect::crypto::{KeyId, SealingKey};
use calconnect_broker::{Broker, BrokerConfig};
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, Sandbox};
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret as _, SecretString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the demo keeps its data and listens.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The data folder (created if missing).
    pub data_dir: PathBuf,
    /// The example app (the address to open).
    pub app_listen: SocketAddr,
    /// The broker.
    pub broker_listen: SocketAddr,
    /// The sandbox ("Cal.com").
    pub sandbox_listen: SocketAddr,
}

impl DemoOptions {
    /// Fixed default ports (app 3000, broker 8080, sandbox 5555) on 127.0.0.1.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            app_listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            broker_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            sandbox_listen: SocketAddr::from(([127, 0, 0, 1], 5555)),
        }
    }

    /// Every port 0 (tests).
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: data_dir.into(),
            app_listen: any,
            broker_listen: any,
            sandbox_listen: any,
        }
    }
}

/// The demo could not start. Each variant says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The data folder or a file in it could not be read or written.
    #[error("data folder {path}: {source}; choose another with --data-dir or CALCONNECT_DEMO_DIR")]
    DataDir {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A port is taken.
    #[error(
        "cannot listen on {addr}: {source}; is another demo running? Pick other ports (--port, --broker-port, --sandbox-port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox did not start.
    #[error("starting the sandbox failed: {0}")]
    Sandbox(#[from] calconnect_sandbox::StartError),
    /// The broker configuration was rejected.
    #[error("broker configuration: {0}")]
    Config(#[from] calconnect_broker::ConfigError),
    /// The broker did not start.
    #[error("starting the broker failed: {0}")]
    Broker(#[from] calconnect_broker::StartError),
    /// The broker's database failed.
    #[error("the broker's database failed: {0}; delete the data folder to start over")]
    Database(String),
    /// The sealing key could not be made.
    #[error("generating the demo key failed: {0}")]
    Key(String),
    /// The example app's HTTP client could not be built.
    #[error("building the HTTP client failed: {0}")]
    Http(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::DataDir {
        path: path.to_owned(),
        source,
    }
}

/// Writes `contents` to a new file readable only by the owner.
fn write_private(path: &Path, contents: &str) -> Result<(), DemoError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(contents.as_bytes()).map_err(io_err(path))
}

/// Reads a secret file, or creates it with `make()`. Returns the text and whether it was new.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> String,
) -> Result<(SecretString, bool), DemoError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((SecretString::from(text.trim().to_owned()), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = make();
            write_private(path, &format!("{text}\n"))?;
            Ok((SecretString::from(text), true))
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, DemoError> {
    std::net::TcpListener::bind(addr).map_err(|source| DemoError::Bind { addr, source })
}

fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The sandbox's state file in the data folder.
const SANDBOX_STATE: &str = "sandbox-state.json";

/// A running demo.
#[derive(Debug)]
pub struct Demo {
    app_url: String,
    admin_password: SecretString,
    webhook_secret: SecretString,
    key_created: bool,
    data_dir: PathBuf,
    sandbox: Arc<Sandbox>,
    broker: Broker,
    app_stop: tokio::sync::watch::Sender<bool>,
    app_task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Demo {
    /// Starts the sandbox, the broker and the example app.
    ///
    /// # Errors
    /// [`DemoError`], naming the folder, file or port and the fix.
    pub async fn start(options: DemoOptions) -> Result<Self, DemoError> {
        let dir = options.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let key_path = dir.join("keys");
        let id = KeyId::new("demo").map_err(|e| DemoError::Key(e.to_string()))?;
        let (_, key_created) = read_or_create(&key_path, || {
            SealingKey::generate(id, &mut OsRng)
                .to_text()
                .expose_secret()
                .to_owned()
        })?;
        let (admin_password, _) = read_or_create(&dir.join("admin-password"), || random_hex(12))?;
        let (signing, _) = read_or_create(&dir.join("sandbox-signing-key"), || random_hex(32))?;

        let broker_listener = bind(options.broker_listen)?;
        let app_listener = bind(options.app_listen)?;
        let broker_addr = broker_listener
            .local_addr()
            .map_err(|source| DemoError::Bind {
                addr: options.broker_listen,
                source,
            })?;
        let app_addr = app_listener
            .local_addr()
            .map_err(|source| DemoError::Bind {
                addr: options.app_listen,
                source,
            })?;
        let broker_url = format!("http://{broker_addr}");
        let app_url = format!("http://{app_addr}");

        let sandbox = Sandbox::builder()
            .bind(options.sandbox_listen)
            .signing_key(signing.expose_secret().as_bytes().to_vec())
            .state_file(dir.join(SANDBOX_STATE))
            .redirect_uri(
                ClientType::Confidential,
                format!("{broker_url}/oauth/callback"),
            )
            .start()
            .await?;
        let sandbox = Arc::new(sandbox);

        let webhook_secret = random_hex(24);
        let db_path = dir.join("calconnect.db");
        let toml = format!(
            "public_base_url = {base}\ndatabase_url = {db}\n\
             [provider]\nkind = \"sandbox\"\nweb_url = {sandbox}\n\
             [client]\nid = {client}\nscopes = [\"PROFILE_READ\", \"SCHEDULE_READ\", \"BOOKING_READ\"]\n\
             [keys]\nfile = {keys}\n\
             [webhooks]\nurls = [{hook}]\n",
            base = toml_str(&broker_url),
            db = toml_str(&format!("sqlite://{}", db_path.display())),
            sandbox = toml_str(sandbox.base_url().as_str().trim_end_matches('/')),
            client = toml_str(CONFIDENTIAL_CLIENT_ID),
            keys = toml_str(&key_path.display().to_string()),
            hook = toml_str(&format!("{app_url}/webhooks/calconnect")),
        );
        let mut env = calconnect_broker::config::Env::new();
        env.insert(
            "CALCONNECT_CLIENT_SECRET".into(),
            CONFIDENTIAL_CLIENT_SECRET.into(),
        );
        env.insert("CALCONNECT_WEBHOOK_SECRET".into(), webhook_secret.clone());
        env.insert("CALCONNECT_LISTEN".into(), broker_addr.to_string());
        let config = BrokerConfig::from_toml_and_env(&toml, &env)?;
        let database = config.database.clone();
        let broker = Broker::builder(config)
            .listener(broker_listener)
            .start()
            .await?;

        let api_key = app_api_key(&broker, &dir.join("app-api-key")).await?;
        let clock: Arc<dyn calconnect::Clock> = Arc::new(calconnect::SystemClock);
        let (store, _) = calconnect_broker::open_storage(&database, clock.clone())
            .await
            .map_err(|e| DemoError::Database(e.to_string()))?;
        let ctx = AppCtx::new(app::AppSetup {
            app_url: app_url.clone(),
            broker_url,
            api_key,
            admin_password: admin_password.clone(),
            webhook_secret: SecretString::from(webhook_secret.clone()),
            sandbox: sandbox.clone(),
            store,
            clock,
        })
        .map_err(|e| DemoError::Http(e.to_string()))?;
        let (app_stop, app_task) =
            app::serve(ctx, app_listener).map_err(|source| DemoError::Bind {
                addr: app_addr,
                source,
            })?;
        Ok(Self {
            app_url,
            admin_password,
            webhook_secret: SecretString::from(webhook_secret),
            key_created,
            data_dir: dir,
            sandbox,
            broker,
            app_stop,
            app_task,
        })
    }

    /// The address to open.
    pub fn app_url(&self) -> &str {
        &self.app_url
    }

    /// The broker's address.
    pub fn broker_url(&self) -> String {
        self.broker.local_url()
    }

    /// The sandbox's address.
    pub fn sandbox_url(&self) -> String {
        self.sandbox.base_url().to_string()
    }

    /// The sandbox handle (tests).
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The operator dashboard's password (user `admin`).
    pub fn admin_password(&self) -> &SecretString {
        &self.admin_password
    }

    /// The secret the broker signs webhooks with and the app's receiver checks them with (new
    /// each run; for tests, or to point another receiver at the demo's broker).
    pub fn webhook_secret(&self) -> &SecretString {
        &self.webhook_secret
    }

    /// Whether this run generated the sealing key (first run).
    pub fn key_created(&self) -> bool {
        self.key_created
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the app, then the broker (finishing in-flight requests), then the sandbox.
    pub async fn shutdown(self) {
        let _ = self.app_stop.send(true);
        let _ = self.app_task.await;
        self.broker.shutdown().await;
        // The state file holds every grant so far, even if a handle outlives this one.
        self.sandbox.saved().await;
        if let Ok(sandbox) = Arc::try_unwrap(self.sandbox) {
            sandbox.shutdown().await;
        }
    }
}

/// The example app's API key: reused from the file while the broker still accepts it, else
/// created (and the file rewritten).
async fn app_api_key(broker: &Broker, path: &Path) -> Result<SecretString, DemoError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let key = SecretString::from(text.trim().to_owned());
        match calconnect_broker::api_keys::verify(broker.db(), &key, calconnect::SystemClock.now())
            .await
        {
            Ok(true) => return Ok(key),
            Ok(false) => std::fs::remove_file(path).map_err(io_err(path))?,
            Err(e) => return Err(DemoError::Database(e.to_string())),
        }
    }
    let now = calconnect::SystemClock.now().unix_timestamp() * 1000;
    let created = calconnect_broker::api_keys::create(broker.db(), "demo app", now, &mut OsRng)
        .await
        .map_err(|e| DemoError::Database(e.to_string()))?;
    write_private(path, &format!("{}\n", created.key.expose_secret()))?;
    Ok(created.key)
}
