//! Tokens stay out of traces. A unit test (not in `tests/api`): tracing's per-callsite interest
//! cache is process-wide, and integration tests hitting the same callsites concurrently without
//! a subscriber made a thread-local test subscriber miss events now and then. Here no other test
//! runs these callsites.

use super::{CalClient, RetryPolicy, Timer};
use crate::api::token_source::{AccessTokenSource, TokenSourceError};
use crate::endpoint::{EndpointUrl, UrlPolicy};
use crate::http::{HttpClient, HttpConfig};
use crate::secret::AccessToken;
use async_trait::async_trait;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl";
const NEXT: &str = "eyJuZXh0LXRva2Vu.bmV4dA.c2ln";

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[derive(Debug, Default)]
struct InstantTimer(Mutex<Duration>);

#[async_trait]
impl Timer for InstantTimer {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }

    async fn sleep(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

/// Serves TOKEN, refreshes to NEXT once.
#[derive(Debug, Default)]
struct TwoTokens(Mutex<bool>);

#[async_trait]
impl AccessTokenSource for TwoTokens {
    async fn access_token(&self) -> Result<AccessToken, TokenSourceError> {
        Ok(AccessToken::new(if *self.0.lock().unwrap() {
            NEXT
        } else {
            TOKEN
        }))
    }

    async fn refresh_after_rejection(
        &self,
        _rejected: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        *self.0.lock().unwrap() = true;
        Ok(AccessToken::new(NEXT))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_stay_out_of_traces() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("calconnect=trace")
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // 401 (with the token echoed), 429, 503, then 200.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(any(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let error = |status: u16, code: &str, message: String| {
                let body = json!({"status": "error", "error": {"code": code, "message": message}});
                (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response()
            };
            match n {
                0 => error(
                    401,
                    "UnauthorizedException",
                    format!("Invalid Access Token {TOKEN}"),
                ),
                1 => error(429, "ThrottlerException", "Too many requests.".into()),
                2 => error(503, "ServiceUnavailableException", "down".into()),
                _ => json!({"status": "success", "data": {"id": 1}})
                    .to_string()
                    .into_response(),
            }
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let base = EndpointUrl::parse(
        &format!("http://{addr}/v2"),
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap();
    let api = CalClient::builder(
        base,
        HttpClient::new(HttpConfig::default()).unwrap(),
        Arc::new(TwoTokens::default()),
    )
    .timer(Arc::new(InstantTimer::default()))
    .retry(RetryPolicy::default().default_rate_limit_wait(Duration::from_secs(1)))
    .build();
    api.me().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("refreshing once"), "{logs}");
    assert!(logs.contains("(429)"), "{logs}");
    assert!(logs.contains("retrying"), "{logs}");
    assert!(logs.contains("path=/v2/me"), "{logs}");
    for secret in [TOKEN, NEXT, "c2VjcmV0", "bmV4dA"] {
        assert!(!logs.contains(secret), "{logs}");
    }
}
