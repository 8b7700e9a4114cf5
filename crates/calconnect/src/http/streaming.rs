//! The streaming client: hyper's pooled HTTP/1.1 client with the same hardening as
//! [`reqwest_client`](super::reqwest_client) (docs/architecture.md §6.1, §7.7), for code that
//! forwards bodies as they come and sends many small requests to one host: the broker's API v2
//! proxy. It exists because reqwest's per-request work (URL parsing with IDNA, cookie, redirect
//! and retry layers, boxed futures) cost the proxy more than the rest of it together
//! (`crates/calconnect-broker/BENCHMARKS.md`, issue 15).
//!
//! Hardening, as for the reqwest client:
//! - rustls (ring, the web PKI roots, TLS 1.2 and 1.3, ALPN `http/1.1`); `http` only when the
//!   caller's URL says so (the caller's URLs are already checked, docs/architecture.md §7.2);
//! - never follows redirects (hyper's client has no redirect support at all);
//! - a connect timeout, and a **total** timeout that covers the response head and its body:
//!   a body still streaming at the deadline ends with a [`TransportError`] of kind `Timeout`;
//! - errors carry neither URLs nor peer addresses ([`TransportError`]);
//! - an egress proxy from `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` as reqwest
//!   and curl read them ([`ProxyEnv`]): `http` URLs are sent to the proxy in absolute form,
//!   `https` URLs through a `CONNECT` tunnel with TLS to the upstream end to end.

use super::{HttpClientError, HttpConfig, TransportError, TransportErrorKind};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower_service::Service as _;

type Direct = hyper_rustls::HttpsConnector<HttpConnector>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle pooled connections kept per host (as the reqwest client).
const MAX_IDLE_PER_HOST: usize = 256;
/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled HTTP/1.1 client that streams request and response bodies of type `B`. Build it with
/// [`StreamingClient::new`] (the one place, with [`reqwest_client`](super::reqwest_client));
/// clones share the pool.
pub struct StreamingClient<B> {
    connector: Connector,
    pool: Arc<Pool<B>>,
    total_timeout: Duration,
    /// `None` when no proxy variable is set: the request path does no proxy work at all.
    proxy: Option<Arc<Matcher>>,
}

impl<B> Clone for StreamingClient<B> {
    fn clone(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            pool: Arc::clone(&self.pool),
            total_timeout: self.total_timeout,
            proxy: self.proxy.clone(),
        }
    }
}

impl<B> fmt::Debug for StreamingClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the proxy's URL: it may carry a user and password.
        f.debug_struct("StreamingClient")
            .field("total_timeout", &self.total_timeout)
            .field("proxy", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

/// The egress proxy settings of a [`StreamingClient`], read from the variables reqwest and curl
/// read: `HTTP_PROXY` (`http` URLs), `HTTPS_PROXY` (`https` URLs), `ALL_PROXY` (both, when the
/// specific one is unset), `NO_PROXY` (hosts, domains with their subdomains, IP addresses or
/// networks, `*`, comma-separated, that are reached directly), each upper case first, then
/// lower case. As hyper-util (and against the httpoxy attack), none applies in a CGI process
/// (`REQUEST_METHOD` set). A proxy URL may carry `user:password@`: it is sent as
/// `Proxy-Authorization: Basic` and appears in no log, error or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    all: String,
    http: String,
    https: String,
    no: String,
    cgi: bool,
}

impl fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyEnv")
            .field("all", &!self.all.is_empty())
            .field("http", &!self.http.is_empty())
            .field("https", &!self.https.is_empty())
            .field("no_proxy", &self.no)
            .finish_non_exhaustive()
    }
}

impl ProxyEnv {
    /// No proxy: every request connects directly.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// The process environment's settings.
    #[must_use]
    pub fn from_process_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings `lookup` gives for the variable names above (the broker passes its
    /// configuration environment; tests a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&str; 2]| names.into_iter().find_map(&lookup).unwrap_or_default();
        Self {
            all: first(["ALL_PROXY", "all_proxy"]),
            http: first(["HTTP_PROXY", "http_proxy"]),
            https: first(["HTTPS_PROXY", "https_proxy"]),
            no: first(["NO_PROXY", "no_proxy"]),
            cgi: lookup("REQUEST_METHOD").is_some(),
        }
    }

    /// The matcher, `None` when no proxy is set.
    fn matcher(&self) -> Result<Option<Matcher>, HttpClientError> {
        if self.cgi || (self.all.is_empty() && self.http.is_empty() && self.https.is_empty()) {
            return Ok(None);
        }
        let https = if self.https.is_empty() {
            &self.all
        } else {
            &self.https
        };
        if https
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("https://")
        {
            return Err(HttpClientError {
                reason: "HTTPS_PROXY (or ALL_PROXY) names an https:// proxy; the API client \
                         tunnels https through an http:// proxy only: write the proxy's URL \
                         with http://",
                source: "unsupported proxy scheme".into(),
            });
        }
        Ok(Some(
            Matcher::builder()
                .all(self.all.as_str())
                .http(self.http.as_str())
                .https(self.https.as_str())
                .no(self.no.as_str())
                .build(),
        ))
    }
}

impl<B> StreamingClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A client with `config`'s connect and total timeouts and the process environment's proxy
    /// settings ([`ProxyEnv::from_process_env`]). `config`'s response-size limit does not
    /// apply: bodies stream through and the caller decides.
    ///
    /// # Errors
    /// [`HttpClientError`] when the TLS backend cannot be initialised or the proxy settings
    /// cannot be used.
    pub fn new(config: &HttpConfig) -> Result<Self, HttpClientError> {
        Self::with_proxy(config, &ProxyEnv::from_process_env())
    }

    /// As [`Self::new`], with the proxy settings `proxy`.
    ///
    /// # Errors
    /// [`HttpClientError`] when the TLS backend cannot be initialised, or when `HTTPS_PROXY`
    /// (or `ALL_PROXY`) names an `https://` proxy (not supported: tunnel through `http://`).
    pub fn with_proxy(config: &HttpConfig, proxy: &ProxyEnv) -> Result<Self, HttpClientError> {
        let matcher = proxy.matcher()?.map(Arc::new);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpClientError {
                reason: "TLS initialisation failed",
                source: Box::new(e),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The tunnel's TLS config gets the ALPN the builder adds to the direct one.
        let mut tunnel_tls = tls.clone();
        tunnel_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let direct = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1() // ALPN `http/1.1`
            .wrap_connector(http.clone());
        let connector = Connector {
            direct,
            tcp: http,
            tls: Arc::new(tunnel_tls),
            proxy: matcher.clone(),
        };
        Ok(Self {
            connector,
            pool: Arc::new(Pool {
                idle: Mutex::default(),
            }),
            total_timeout: config.total_timeout,
            proxy: matcher,
        })
    }

    /// Sends `request` (an absolute URI; the `Host` header is set from it) and returns the
    /// response once its head arrived. Its body streams until the total timeout, counted from
    /// now.
    ///
    /// # Errors
    /// [`TransportError`]: could not connect, the connection broke, or the total timeout passed
    /// before the head arrived.
    pub async fn send(
        &self,
        mut request: http::Request<B>,
    ) -> Result<http::Response<TimedBody>, TransportError> {
        let key = PoolKey::of(request.uri()).ok_or(TransportError {
            kind: TransportErrorKind::Connect,
            io: None,
        })?;
        if !request.headers().contains_key(http::header::HOST) {
            let host = host_header(&key).ok_or(TransportError {
                kind: TransportErrorKind::Connect,
                io: None,
            })?;
            request.headers_mut().insert(http::header::HOST, host);
        }
        let mut forward = false;
        if let Some(matcher) = &self.proxy {
            // An `http` URL goes to the proxy in absolute form: its credentials go with it.
            // (`https` ones tunnel; the tunnel's `CONNECT` carries them.)
            if !key.https {
                if let Some(intercept) = matcher.intercept(request.uri()) {
                    forward = true;
                    if let Some(auth) = intercept.basic_auth() {
                        let mut auth = auth.clone();
                        auth.set_sensitive(true);
                        request
                            .headers_mut()
                            .insert(http::header::PROXY_AUTHORIZATION, auth);
                    }
                }
            }
        }
        let target = request.uri().clone();
        if !forward {
            // Origin form (`/path?query`) on a direct connection.
            let origin = request
                .uri()
                .path_and_query()
                .map_or_else(|| http::uri::PathAndQuery::from_static("/"), Clone::clone);
            *request.uri_mut() = http::Uri::from(origin);
        }
        // One timer for the head and the body.
        let mut deadline = Box::pin(tokio::time::sleep_until(
            Instant::now() + self.total_timeout,
        ));
        let exchange = self.exchange(&key, &target, request);
        let (response, sender) = tokio::select! {
            biased;
            exchanged = exchange => exchanged?,
            () = deadline.as_mut() => return Err(TransportError::timeout()),
        };
        let pool = Arc::clone(&self.pool);
        let reuse: Reuse = Box::new(move || pool.put(key, sender));
        Ok(response.map(|body| TimedBody {
            inner: body,
            deadline,
            reuse: Some(reuse),
            ended: false,
        }))
    }

    /// Sends `request` on an idle pooled connection to `key`, or a new one to `target`; a
    /// request a reused connection did not take (it closed meanwhile) goes on a new one.
    async fn exchange(
        &self,
        key: &PoolKey,
        target: &http::Uri,
        mut request: http::Request<B>,
    ) -> Result<(http::Response<hyper::body::Incoming>, SendRequest<B>), TransportError> {
        loop {
            let (mut sender, reused) = match self.pool.checkout(key).await {
                Some(sender) => (sender, true),
                None => (self.connect(target).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(from_hyper_body(e.error())),
                },
            }
        }
    }

    /// A new connection to `target` (through the proxy when one applies), driven by a task of
    /// its own until it closes.
    async fn connect(&self, target: &http::Uri) -> Result<SendRequest<B>, TransportError> {
        let io = self.connector.open(target.clone()).await.map_err(|e| {
            let io = io_kind(e.as_ref());
            TransportError {
                kind: if io == Some(std::io::ErrorKind::TimedOut) {
                    TransportErrorKind::Timeout
                } else {
                    TransportErrorKind::Connect
                },
                io,
            }
        })?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| TransportError {
                    kind: TransportErrorKind::Connect,
                    io: io_kind(&e),
                })?;
        tokio::spawn(async move {
            // Its errors reach the request that was on it.
            let _closed = connection.await;
        });
        Ok(sender)
    }
}

/// Where a connection goes: scheme and authority of the destination.
#[derive(Clone, PartialEq, Eq)]
struct PoolKey {
    https: bool,
    authority: http::uri::Authority,
}

impl PoolKey {
    fn of(uri: &http::Uri) -> Option<Self> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return None,
        };
        Some(Self {
            https,
            authority: uri.authority()?.clone(),
        })
    }
}

/// `Host` as hyper-util writes it: the port only when it is not the scheme's default.
fn host_header(key: &PoolKey) -> Option<http::HeaderValue> {
    let default = if key.https { 443 } else { 80 };
    let host = key.authority.host();
    match key.authority.port_u16() {
        Some(port) if port != default => http::HeaderValue::try_from(format!("{host}:{port}")).ok(),
        _ => http::HeaderValue::try_from(host).ok(),
    }
}

/// Hands a connection back to the pool once its response body ended.
type Reuse = Box<dyn FnOnce() + Send>;

/// The idle connections, per destination, most recently used last. No task watches them: a
/// connection goes back when its response body ended (no idle task and oneshot per request, as
/// hyper-util's pool has: about 10,000 instructions of a proxied request, BENCHMARKS.md), and
/// closed or stale ones are dropped when a checkout meets them. A list per destination, searched
/// in order: a client talks to a few hosts (the proxy to one), and comparing an authority costs
/// less than hashing it.
struct Pool<B> {
    idle: Mutex<Vec<(PoolKey, Vec<Idle<B>>)>>,
}

struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

impl<B> Pool<B>
where
    B: Body + 'static,
{
    fn put(&self, key: PoolKey, sender: SendRequest<B>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = match idle.iter().position(|(k, _)| *k == key) {
            Some(at) => &mut idle[at].1,
            None => {
                idle.push((key, Vec::new()));
                let last = idle.len() - 1;
                &mut idle[last].1
            }
        };
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// The most recently used idle connection to `key` that is still open, once it is ready
    /// for a request (its previous response may still be finishing).
    async fn checkout(&self, key: &PoolKey) -> Option<SendRequest<B>> {
        loop {
            let mut sender = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let (_, list) = idle.iter_mut().find(|(k, _)| k == key)?;
                let now = Instant::now();
                // The oldest first: drop the stale and closed ones at the front.
                let stale = list
                    .iter()
                    .take_while(|i| i.sender.is_closed() || now - i.since > IDLE_TIMEOUT)
                    .count();
                list.drain(..stale);
                list.pop()?.sender
            };
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }
}

/// The client's connector: direct (TCP, TLS for `https`), or through the proxy the
/// [`ProxyEnv`] names for the destination.
#[derive(Clone)]
struct Connector {
    direct: Direct,
    tcp: HttpConnector,
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<Arc<Matcher>>,
}

/// A connection's byte stream: TCP, with TLS for `https`.
type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

impl Connector {
    /// A connection for requests to `dst`. The request's form is [`StreamingClient::send`]'s
    /// business: absolute on a connection to a forward proxy, origin form otherwise.
    async fn open(&self, dst: http::Uri) -> Result<Stream, BoxError> {
        match self.proxy.as_ref().and_then(|m| m.intercept(&dst)) {
            None => self.direct.clone().call(dst).await,
            // Plain HTTP: a connection to the proxy.
            Some(proxy) if dst.scheme() == Some(&http::uri::Scheme::HTTP) => {
                self.direct.clone().call(proxy.uri().clone()).await
            }
            // HTTPS: a `CONNECT` tunnel through the proxy, TLS to the upstream inside it.
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.tcp.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let mut https = hyper_rustls::HttpsConnector::from((tunnel, Arc::clone(&self.tls)));
                match https.call(dst).await? {
                    MaybeHttpsStream::Https(tls) => Ok(MaybeHttpsStream::Https(tls)),
                    MaybeHttpsStream::Http(_) => {
                        Err("the tunnel to an https upstream was not encrypted".into())
                    }
                }
            }
        }
    }
}

/// A response body that ends with a `Timeout` error at the request's deadline.
pub struct TimedBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<Sleep>>,
    /// Returns the connection to the pool when the body ended.
    reuse: Option<Reuse>,
    ended: bool,
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        if self.ended || self.inner.is_end_stream() {
            if let Some(reuse) = self.reuse.take() {
                reuse();
            }
        }
    }
}

impl fmt::Debug for TimedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedBody").finish_non_exhaustive()
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(from_hyper_body(&e)))),
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(TransportError::timeout()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl TransportError {
    fn timeout() -> Self {
        Self {
            kind: TransportErrorKind::Timeout,
            io: None,
        }
    }
}

/// The first I/O error kind in `err`'s sources (no message: messages may name addresses).
fn io_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = Some(err);
    let mut kind = None;
    while let Some(s) = source {
        if let Some(e) = s.downcast_ref::<std::io::Error>() {
            kind = Some(e.kind());
        }
        source = s.source();
    }
    kind
}

fn from_hyper_body(err: &hyper::Error) -> TransportError {
    TransportError {
        kind: if err.is_timeout() {
            TransportErrorKind::Timeout
        } else {
            TransportErrorKind::Interrupted
        },
        io: io_kind(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;
    use axum::extract::ConnectInfo;
    use axum::routing::{get, post};
    use http::{Request, Response};
    use std::future::poll_fn;
    use std::net::SocketAddr;

    /// A local server: `/peer` answers the client's port, `/close` closes the connection after
    /// answering, `/redirect` redirects, `/echo` streams the request body back, `/stall` sends a
    /// head and a first chunk, then nothing.
    async fn server() -> String {
        let app =
            axum::Router::new()
                .route(
                    "/peer",
                    get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.port().to_string()
                    }),
                )
                .route(
                    "/close",
                    get(|| async { ([(http::header::CONNECTION, "close")], "bye") }),
                )
                .route(
                    "/redirect",
                    get(|| async {
                        (http::StatusCode::FOUND, [(http::header::LOCATION, "/peer")])
                    }),
                )
                .route("/echo", post(|body: AxumBody| async move { body }))
                .route(
                    "/stall",
                    get(|| async {
                        let first = futures::stream::once(async {
                            Ok::<_, std::io::Error>(Bytes::from_static(b"first"))
                        });
                        AxumBody::from_stream(futures::StreamExt::chain(
                            first,
                            futures::stream::pending(),
                        ))
                    }),
                );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        base
    }

    fn client(total: Duration) -> StreamingClient<AxumBody> {
        StreamingClient::new(&HttpConfig::default().total_timeout(total)).unwrap()
    }

    /// `GET {base}{path}`, answered.
    async fn fetch(
        http: &StreamingClient<AxumBody>,
        base: &str,
        path: &str,
    ) -> Response<TimedBody> {
        let request = Request::get(format!("{base}{path}"))
            .body(AxumBody::empty())
            .unwrap();
        http.send(request).await.unwrap()
    }

    async fn text(response: Response<TimedBody>) -> Result<String, TransportError> {
        let mut body = response.into_body();
        let mut out = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(data) = frame?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok(String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_reused() {
        let base = server().await;
        let http = client(Duration::from_secs(30));
        let first = text(fetch(&http, &base, "/peer").await).await.unwrap();
        let second = text(fetch(&http, &base, "/peer").await).await.unwrap();
        assert_eq!(first, second, "the same client port: one connection");
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_reused_and_redirects_are_not_followed() {
        let base = server().await;
        let http = client(Duration::from_secs(30));
        let r = fetch(&http, &base, "/close").await;
        assert_eq!(text(r).await.unwrap(), "bye");
        let r = fetch(&http, &base, "/redirect").await;
        assert_eq!(r.status(), http::StatusCode::FOUND);
        assert_eq!(r.headers()[http::header::LOCATION], "/peer");
    }

    #[tokio::test]
    async fn bodies_stream_both_ways() {
        let base = server().await;
        let http = client(Duration::from_secs(30));
        let chunks =
            (0..64).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + (i % 26); 16 * 1024])));
        let request = Request::post(format!("{base}/echo"))
            .body(AxumBody::from_stream(futures::stream::iter(chunks)))
            .unwrap();
        let echoed = text(http.send(request).await.unwrap()).await.unwrap();
        assert_eq!(echoed.len(), 64 * 16 * 1024);
        assert!(echoed.starts_with("aaaa") && echoed.ends_with("llll"));
    }

    #[tokio::test]
    async fn the_total_timeout_cuts_a_stalled_body() {
        let base = server().await;
        let http = client(Duration::from_millis(300));
        let r = fetch(&http, &base, "/stall").await;
        let e = text(r).await.unwrap_err();
        assert_eq!(e.kind(), TransportErrorKind::Timeout);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_without_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        drop(listener);
        let request = Request::get(url).body(AxumBody::empty()).unwrap();
        let e = client(Duration::from_secs(30))
            .send(request)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), TransportErrorKind::Connect);
        assert!(!e.to_string().contains("127.0.0.1"), "{e}");
    }

    #[test]
    fn proxy_settings_read_like_reqwest_and_never_show_the_password() {
        let vars = [
            ("http_proxy", "http://lower:x@127.0.0.1:1"),
            ("HTTP_PROXY", "http://user:s3cret@127.0.0.1:2"),
            ("no_proxy", "localhost"),
        ];
        let env = ProxyEnv::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        });
        assert_eq!(
            env.http, "http://user:s3cret@127.0.0.1:2",
            "upper case first"
        );
        assert_eq!(env.no, "localhost");
        let shown = format!("{env:?} {:?}", client_with(&env));
        assert!(
            !shown.contains("s3cret") && !shown.contains("user"),
            "{shown}"
        );
        // A CGI process ignores them (httpoxy).
        let cgi = ProxyEnv::from_lookup(|name| {
            (name == "REQUEST_METHOD" || name == "HTTP_PROXY").then(|| "http://p:1".to_owned())
        });
        assert!(cgi.matcher().unwrap().is_none());
        // An https:// proxy for https URLs is refused, naming the variable.
        let https = ProxyEnv::from_lookup(|name| {
            (name == "HTTPS_PROXY").then(|| "https://p.example:443".to_owned())
        });
        let e =
            StreamingClient::<AxumBody>::with_proxy(&HttpConfig::default(), &https).unwrap_err();
        assert!(e.to_string().contains("HTTPS_PROXY"), "{e}");
    }

    fn client_with(env: &ProxyEnv) -> StreamingClient<AxumBody> {
        StreamingClient::with_proxy(&HttpConfig::default(), env).unwrap()
    }
}
