//! Failures the sandbox does not fake, from an in-test responder: 5xx and network errors
//! (retried with backoff for idempotent methods only, the final error says what was tried), 429
//! on a non-idempotent request, and Cal.com echoing the access token in an error message.

use crate::helpers::{ManualTimer, quick_retries};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use calconnect::api::{
    ApiError, BookingFilters, CalClient, FailedAttempt, StaticToken, StatusFilter,
};
use calconnect::{
    AccessToken, EndpointUrl, UrlPolicy, http::HttpClient, http::HttpConfig,
    http::TransportErrorKind,
};
use http::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl";

/// (path and query, `cal-api-version`, `accept`).
type Seen = (String, Option<String>, Option<String>);

/// Answers scripted (status, body) pairs in order, then 200 `{"status":"success","data":{"id":1}}`.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<Vec<(u16, serde_json::Value)>>>,
    hits: Arc<AtomicUsize>,
    authorizations: Arc<Mutex<Vec<String>>>,
    /// (path and query, `cal-api-version`, `accept`) of each request.
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn responder(script: Script) -> SocketAddr {
    let app = Router::new().fallback(any(move |uri: Uri, headers: HeaderMap| {
        let script = script.clone();
        async move {
            script.hits.fetch_add(1, Ordering::SeqCst);
            let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
            script.seen.lock().unwrap().push((
                uri.to_string(),
                header("cal-api-version"),
                header("accept"),
            ));
            if let Some(v) = headers.get("authorization") {
                script
                    .authorizations
                    .lock()
                    .unwrap()
                    .push(v.to_str().unwrap().to_owned());
            }
            let next = {
                let mut answers = script.answers.lock().unwrap();
                (!answers.is_empty()).then(|| answers.remove(0))
            };
            let (status, body) =
                next.unwrap_or((200, json!({"status": "success", "data": {"id": 1}})));
            let mut resp =
                (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
            resp.headers_mut()
                .insert("x-request-id", "req-from-responder".parse().unwrap());
            resp
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client(addr: SocketAddr, timer: Arc<ManualTimer>) -> CalClient {
    let base = EndpointUrl::parse(
        &format!("http://{addr}/v2"),
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap();
    CalClient::builder(
        base,
        HttpClient::new(HttpConfig::default()).unwrap(),
        Arc::new(StaticToken::new(AccessToken::new(TOKEN))),
    )
    .timer(timer)
    .retry(quick_retries())
    .rng_seed(7)
    .build()
}

fn envelope(code: &str, message: &str) -> serde_json::Value {
    json!({"status": "error", "timestamp": "2027-01-15T08:00:00.000Z", "path": "/v2/x",
        "error": {"code": code, "message": message, "details": {"message": message}}})
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_for_get() {
    let script = Script::default();
    script.answers.lock().unwrap().extend([
        (503, envelope("ServiceUnavailableException", "down")),
        (502, json!({"message": "bad gateway"})),
    ]);
    let timer = Arc::new(ManualTimer::default());
    let api = client(responder(script.clone()).await, timer.clone());
    let response = api.request(Method::GET, "/anything").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(script.hits.load(Ordering::SeqCst), 3);
    let sleeps = timer.sleeps();
    assert_eq!(sleeps.len(), 2);
    assert!(
        sleeps[0] <= std::time::Duration::from_millis(100),
        "{sleeps:?}"
    );
    assert!(
        sleeps[1] <= std::time::Duration::from_millis(200),
        "{sleeps:?}"
    );
    // The bearer was sent on every attempt.
    assert!(
        script
            .authorizations
            .lock()
            .unwrap()
            .iter()
            .all(|a| a == &format!("Bearer {TOKEN}"))
    );
}

#[tokio::test]
async fn the_final_error_lists_what_was_tried() {
    let script = Script::default();
    script
        .answers
        .lock()
        .unwrap()
        .extend((0..3).map(|_| (500, envelope("InternalServerErrorException", "boom"))));
    let timer = Arc::new(ManualTimer::default());
    let api = client(responder(script.clone()).await, timer.clone());
    let err = api.request(Method::GET, "/me").send().await.unwrap_err();
    match &err {
        ApiError::Transient {
            attempts, envelope, ..
        } => {
            assert_eq!(attempts, &vec![FailedAttempt::Status(500); 3]);
            let envelope = envelope.as_ref().unwrap();
            assert_eq!(envelope.request_id.as_deref(), Some("req-from-responder"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "GET /v2/me: failed for now after 3 attempt(s) (HTTP 500, HTTP 500, HTTP 500): try again later"
    );
    assert_eq!(timer.sleeps().len(), 2);
}

#[tokio::test]
async fn non_idempotent_requests_are_not_retried() {
    let script = Script::default();
    script.answers.lock().unwrap().extend([
        (503, envelope("ServiceUnavailableException", "down")),
        (
            429,
            envelope(
                "ThrottlerException",
                "Too many requests. Please try again later.",
            ),
        ),
    ]);
    let timer = Arc::new(ManualTimer::default());
    let api = client(responder(script.clone()).await, timer.clone());
    let err = api
        .request(Method::POST, "/bookings")
        .json(&json!({"start": "2027-01-20T10:00:00Z"}))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Transient { attempts, .. } if attempts.len() == 1),
        "{err:?}"
    );
    let err = api
        .request(Method::POST, "/bookings")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::RateLimited { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(script.hits.load(Ordering::SeqCst), 2);
    assert!(timer.sleeps().is_empty());
    // Marked idempotent (e.g. with an idempotency key), a POST is retried.
    script
        .answers
        .lock()
        .unwrap()
        .push((503, envelope("ServiceUnavailableException", "down")));
    api.request(Method::POST, "/bookings")
        .idempotent(true)
        .send()
        .await
        .unwrap();
    assert_eq!(script.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn network_failures_are_retried_then_reported() {
    // A port that was free a moment ago: connections are refused.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let timer = Arc::new(ManualTimer::default());
    let err = client(addr, timer.clone()).me().await.unwrap_err();
    match &err {
        ApiError::Transient { attempts, .. } => assert_eq!(
            attempts,
            &vec![FailedAttempt::Transport(TransportErrorKind::Connect); 3]
        ),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("could not connect"), "{err}");
    assert!(!err.to_string().contains(&addr.port().to_string()), "{err}");
    assert_eq!(timer.sleeps().len(), 2);
}

#[tokio::test]
async fn the_token_never_shows_even_when_cal_com_echoes_it() {
    let script = Script::default();
    let echoed = format!("PermissionsGuard - no oAuth client found for access token={TOKEN}");
    script
        .answers
        .lock()
        .unwrap()
        .push((403, envelope("ForbiddenException", &echoed)));
    let timer = Arc::new(ManualTimer::default());
    let api = client(responder(script.clone()).await, timer);
    let err = api
        .request(Method::GET, "/bookings")
        .send()
        .await
        .unwrap_err();
    // StaticToken cannot refresh: Unauthorized, with the envelope redacted.
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    for shown in [format!("{err}"), format!("{err:?}"), format!("{api:?}")] {
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(!shown.contains(TOKEN), "{shown}");
    }
    assert_eq!(
        err.envelope().unwrap().message.as_deref(),
        Some("PermissionsGuard - no oAuth client found for access token=[redacted]")
    );
}

#[tokio::test]
async fn each_typed_call_sends_its_api_version() {
    let script = Script::default();
    let timer = Arc::new(ManualTimer::default());
    let api = client(responder(script.clone()).await, timer);
    api.me().await.unwrap();
    // The responder's `data` is an object, not a list: the typed calls fail to parse, which
    // is a protocol error naming the request.
    let err = api.schedules().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Protocol { status: 200, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("GET /v2/schedules: unexpected answer"),
        "{err}"
    );
    let _ = api.default_schedule().await;
    let _ = api.schedule(7).await;
    let _ = api.schedules_legacy().await;
    let _ = api.event_types().await;
    let _ = api
        .bookings(
            &BookingFilters::new()
                .status(StatusFilter::Upcoming)
                .page(5, 10),
        )
        .await;
    let version = |v: &str| Some(v.to_owned());
    let json = Some("application/json".to_owned());
    assert_eq!(
        *script.seen.lock().unwrap(),
        vec![
            ("/v2/me".into(), version("2024-06-11"), json.clone()),
            ("/v2/schedules".into(), version("2024-06-11"), json.clone()),
            (
                "/v2/schedules/default".into(),
                version("2024-06-11"),
                json.clone()
            ),
            (
                "/v2/schedules/7".into(),
                version("2024-06-11"),
                json.clone()
            ),
            ("/v2/schedules".into(), version("2024-04-15"), json.clone()),
            (
                "/v2/event-types".into(),
                version("2024-06-14"),
                json.clone()
            ),
            (
                "/v2/bookings?status=upcoming&take=5&skip=10".into(),
                version("2024-08-13"),
                json.clone()
            ),
        ]
    );
}
