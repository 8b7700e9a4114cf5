//! The one hardened HTTP client (docs/architecture.md §7.7, docs/architecture.md §6): rustls,
//! connect and total timeouts, never follows redirects, a response-size limit enforced while
//! streaming, and errors that never carry a URL or a secret.

mod streaming;

pub use streaming::{ProxyEnv, StreamingClient, TimedBody};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretSlice};
use std::fmt;
use std::time::Duration;
use url::Url;

/// Settings of the [`HttpClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Time to establish a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time for a whole request, from sending to the last byte of the body.
    pub total_timeout: Duration,
    /// Largest response body read; a longer one is an error, not a truncation.
    pub max_response_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_response_bytes: 64 * 1024,
        }
    }
}

impl HttpConfig {
    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the total timeout.
    #[must_use]
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = timeout;
        self
    }

    /// Sets the response size limit.
    #[must_use]
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }
}

/// A `reqwest` client with calconnect's hardening: rustls, connect and total timeouts from
/// `config`, never follows redirects, calconnect's user agent. **The one place a reqwest client
/// is built** (clippy.toml bans the others): [`HttpClient`] wraps one; code that must stream
/// bodies itself (webhook deliveries) uses this directly. The broker's API proxy uses
/// [`StreamingClient`], the same hardening on hyper's client, built in this module too. The response-size
/// limit of `config` is [`HttpClient`]'s to enforce, not this client's.
///
/// # Errors
/// [`HttpClientError`] when the TLS backend cannot be initialised.
pub fn reqwest_client(config: &HttpConfig) -> Result<reqwest::Client, HttpClientError> {
    #[allow(clippy::disallowed_methods)] // reason: this is the one place (clippy.toml)
    let builder = reqwest::Client::builder();
    builder
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .timeout(config.total_timeout)
        .pool_max_idle_per_host(256)
        .user_agent(concat!("calconnect/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpClientError {
            reason: "TLS initialisation failed",
            source: Box::new(e.without_url()),
        })
}

/// The shared HTTP client. Build it once and clone it (clones share connections).
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: HttpConfig,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client.
    ///
    /// # Errors
    /// [`HttpClientError`] when the TLS backend cannot be initialised.
    pub fn new(config: HttpConfig) -> Result<Self, HttpClientError> {
        Ok(Self {
            inner: reqwest_client(&config)?,
            config,
        })
    }

    /// The client's settings.
    pub fn config(&self) -> HttpConfig {
        self.config
    }

    /// Sends `request` and reads the body up to the size limit.
    pub(crate) async fn send(
        &self,
        request: PreparedRequest,
    ) -> Result<RawResponse, TransportError> {
        let mut builder = self
            .inner
            .request(request.method, request.url)
            .headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body.expose_secret().to_vec());
        }
        let mut response = builder.send().await.map_err(TransportError::from_reqwest)?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(TransportError::too_large(limit));
        }
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(TransportError::from_reqwest)?
        {
            if body.len() + chunk.len() > limit {
                return Err(TransportError::too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

/// A request ready to send. `Debug` shows neither the body nor sensitive headers.
pub(crate) struct PreparedRequest {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// Headers set by calconnect; credentials are marked sensitive.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<SecretSlice<u8>>,
}

impl fmt::Debug for PreparedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRequest")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .field("body", &self.body.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A response whose body was read in full (and is zeroed on drop: it may hold tokens).
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

impl RawResponse {
    /// Whether the body is an HTML page (a proxy's or load balancer's error page).
    pub(crate) fn is_html(&self) -> bool {
        let content_type = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let head = self
            .body
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .take(15)
            .copied()
            .collect::<Vec<u8>>();
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        content_type.starts_with("text/html")
            || head.starts_with("<!doctype html")
            || head.starts_with("<html")
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client ({reason})")]
pub struct HttpClientError {
    reason: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// What went wrong on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be established.
    Connect,
    /// The connect or total timeout passed.
    Timeout,
    /// The connection broke while sending or reading.
    Interrupted,
    /// The response body was longer than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// A request did not complete.
///
/// # Security
/// It keeps no source error: reqwest's and hyper's errors carry the URL or the peer address.
/// Only the kind and, when the OS reported one, the I/O error kind (`ConnectionRefused`, ...).
#[derive(Debug, thiserror::Error)]
#[error("{}{}", describe(.kind), .io.map(|k| format!(" ({k})")).unwrap_or_default())]
pub struct TransportError {
    kind: TransportErrorKind,
    io: Option<std::io::ErrorKind>,
}

fn describe(kind: &TransportErrorKind) -> String {
    match kind {
        TransportErrorKind::Connect => {
            "could not connect to the provider: check the network and the provider's URL".into()
        }
        TransportErrorKind::Timeout => {
            "the provider did not answer in time: try again later".into()
        }
        TransportErrorKind::Interrupted => "the connection to the provider broke: try again".into(),
        TransportErrorKind::TooLarge { limit } => {
            format!(
                "the provider's answer is larger than {limit} bytes: is the endpoint URL right?"
            )
        }
    }
}

impl TransportError {
    fn from_reqwest(err: reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            TransportErrorKind::Timeout
        } else if err.is_connect() {
            TransportErrorKind::Connect
        } else {
            TransportErrorKind::Interrupted
        };
        let mut io = None;
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            std::error::Error::source(&err);
        while let Some(s) = source {
            if let Some(e) = s.downcast_ref::<std::io::Error>() {
                io = Some(e.kind());
            }
            source = s.source();
        }
        Self { kind, io }
    }

    fn too_large(limit: usize) -> Self {
        Self {
            kind: TransportErrorKind::TooLarge { limit },
            io: None,
        }
    }

    /// The operating system's I/O error kind, when there was one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.io
    }

    /// What went wrong.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }
}
