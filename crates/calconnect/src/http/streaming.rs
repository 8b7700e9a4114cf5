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
//! - errors carry neither URLs nor peer addresses ([`TransportError`]).

use super::{HttpClientError, HttpConfig, TransportError, TransportErrorKind};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Idle pooled connections kept per host (as the reqwest client).
const MAX_IDLE_PER_HOST: usize = 256;
/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled HTTP/1.1 client that streams request and response bodies of type `B`. Build it with
/// [`StreamingClient::new`] (the one place, with [`reqwest_client`](super::reqwest_client));
/// clones share the pool.
pub struct StreamingClient<B> {
    inner: Client<Connector, B>,
    total_timeout: Duration,
}

impl<B> Clone for StreamingClient<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            total_timeout: self.total_timeout,
        }
    }
}

impl<B> fmt::Debug for StreamingClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingClient")
            .field("total_timeout", &self.total_timeout)
            .finish_non_exhaustive()
    }
}

impl<B> StreamingClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A client with `config`'s connect and total timeouts. `config`'s response-size limit does
    /// not apply: bodies stream through and the caller decides.
    ///
    /// # Errors
    /// [`HttpClientError`] when the TLS backend cannot be initialised.
    pub fn new(config: &HttpConfig) -> Result<Self, HttpClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpClientError {
                source: Box::new(e),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1() // ALPN `http/1.1`
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(https);
        Ok(Self {
            inner,
            total_timeout: config.total_timeout,
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
        request: http::Request<B>,
    ) -> Result<http::Response<TimedBody>, TransportError> {
        // One timer for the head and the body.
        let mut deadline = Box::pin(tokio::time::sleep_until(
            Instant::now() + self.total_timeout,
        ));
        let response = tokio::select! {
            biased;
            response = self.inner.request(request) => response.map_err(|e| from_hyper(&e))?,
            () = deadline.as_mut() => return Err(TransportError::timeout()),
        };
        Ok(response.map(|body| TimedBody {
            inner: body,
            deadline,
        }))
    }
}

/// A response body that ends with a `Timeout` error at the request's deadline.
pub struct TimedBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<Sleep>>,
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
            Poll::Ready(None) => Poll::Ready(None),
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

fn from_hyper(err: &hyper_util::client::legacy::Error) -> TransportError {
    let io = io_kind(err);
    let kind = if io == Some(std::io::ErrorKind::TimedOut) {
        TransportErrorKind::Timeout
    } else if err.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Interrupted
    };
    TransportError { kind, io }
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
}
