//! The API v2 subset (`docs/calcom.md` §5, §6): `/v2/me`, `/v2/schedules` (both response
//! shapes), `/v2/event-types`, `/v2/bookings`, with Cal.com's bearer authentication, scope guard,
//! error envelope, `X-Request-Id` and rate limiting (per bearer token, else per client IP; see
//! [`ratelimit`]).
//!
//! Every endpoint goes through `respond`, which runs the steps in Cal.com's order: the global
//! throttler guard (so 401s and 403s carry rate-limit headers too), the auth guard, the scope
//! guard, then the handler. Unknown `/v2/*` paths, and known paths with another method, get
//! Nest's 404 `Cannot <METHOD> <url>` in the envelope.

pub mod auth;
mod bookings;
pub mod envelope;
mod event_types;
pub mod guard;
mod handle;
mod me;
pub mod ratelimit;
mod schedules;
mod schedules_old;
pub mod stats;

use crate::state::Shared;
use auth::{Caller, ExpiredTokenPolicy};
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use envelope::ApiError;
use ratelimit::{RateLimiter, RateOutcome};
use serde_json::Value;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// API state kept in [`Shared`]: the rate-limit counters and request statistics.
#[derive(Debug, Default)]
pub struct ApiState {
    pub(crate) limiter: RateLimiter,
    pub(crate) stats: stats::ApiStats,
}

/// `cal-api-version` values (`packages/platform/constants/api.ts`). A missing or unknown value
/// falls back to 2024-04-15 (`apps/api/v2/src/app.ts`, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V2024_04_15,
    V2024_06_11,
    V2024_06_14,
    V2024_08_13,
    V2024_09_04,
}

impl ApiVersion {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match headers.get("cal-api-version").and_then(|v| v.to_str().ok()) {
            Some("2024-06-11") => Self::V2024_06_11,
            Some("2024-06-14") => Self::V2024_06_14,
            Some("2024-08-13") => Self::V2024_08_13,
            Some("2024-09-04") => Self::V2024_09_04,
            _ => Self::V2024_04_15,
        }
    }
}

/// The routes of API v2 (and `/_sandbox/api/stats`).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/me", get(me::get).fallback(not_found))
        .route("/v2/schedules", get(schedules::list).fallback(not_found))
        .route(
            "/v2/schedules/default",
            get(schedules::default).fallback(not_found),
        )
        .route(
            "/v2/schedules/{id}",
            get(schedules::by_id).fallback(not_found),
        )
        .route(
            "/v2/event-types",
            get(event_types::list).fallback(not_found),
        )
        .route("/v2/bookings", get(bookings::list).fallback(not_found))
        .route("/v2", any(not_found))
        .route("/v2/", any(not_found))
        .route("/v2/{*rest}", any(not_found))
        .route("/_sandbox/api/stats", get(stats::get))
}

/// What an endpoint needs from the request.
pub(crate) struct ApiRequest<'a> {
    pub shared: &'a Shared,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// The client's IP (the throttler's tracker for requests without a bearer).
    pub peer: Option<IpAddr>,
}

/// The TCP peer's address, Express's `req.ip` as Cal.com sees it (neither `main.ts` nor
/// `app.ts` sets `trust proxy`). `None` when the router runs without connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Runs throttler → auth → scope guard → `handler`, and renders the answer.
pub(crate) fn respond(
    req: &ApiRequest<'_>,
    required_scopes: &[&str],
    policy: ExpiredTokenPolicy,
    handler: impl FnOnce(&Caller) -> Result<Value, ApiError>,
) -> Response {
    let shared = req.shared;
    let rate = ratelimit::check(shared, req.headers, req.peer);
    let result = if rate.blocked {
        Err(ApiError::throttled())
    } else {
        auth::authenticate(shared, auth::bearer(req.headers), policy).and_then(|caller| {
            guard::check(&caller.claims.scope, required_scopes)?;
            handler(&caller)
        })
    };
    finish(shared, req.uri, result, Some(rate))
}

/// Renders a success (`200`, the value as is) or the error envelope, adds `X-Request-Id` and the
/// rate-limit headers, and counts the answer.
pub(crate) fn finish(
    shared: &Shared,
    uri: &Uri,
    result: Result<Value, ApiError>,
    rate: Option<RateOutcome>,
) -> Response {
    let resp = render(shared, uri, result, rate);
    shared.api.stats.record(uri.path(), resp.status().as_u16());
    resp
}

/// [`finish`] without counting the answer in the API statistics (for the token endpoint).
pub(crate) fn render(
    shared: &Shared,
    uri: &Uri,
    result: Result<Value, ApiError>,
    rate: Option<RateOutcome>,
) -> Response {
    let url = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let (status, body) = match result {
        Ok(v) => (StatusCode::OK, v.to_string()),
        Err(e) => (e.status, e.render(&url, shared.clock.now())),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    if let Some(r) = rate {
        rate_headers(h, r);
    }
    resp
}

/// Sets `X-RateLimit-{Limit,Remaining,Reset}-Default` as the throttler guard does.
pub(crate) fn rate_headers(h: &mut HeaderMap, r: RateOutcome) {
    h.insert(
        HeaderName::from_static("x-ratelimit-limit-default"),
        HeaderValue::from(r.limit),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-remaining-default"),
        HeaderValue::from(r.remaining),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-reset-default"),
        HeaderValue::from(r.reset_secs),
    );
}

/// Nest's unmatched-route answer: 404 `Cannot GET /v2/foo` (no guards run, so no rate limit).
async fn not_found(
    State(shared): State<Arc<Shared>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let url = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let err = ApiError::not_found(format!("Cannot {method} {url}"));
    finish(&shared, &uri, Err(err), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::post;
    use tower::ServiceExt as _;

    /// The `/v2/{*rest}` catch-all must not shadow (or conflict with) the OAuth half's routes.
    #[tokio::test]
    async fn catch_all_leaves_other_v2_routes_alone() {
        let sandbox = crate::Sandbox::builder().start().await.unwrap();
        let shared = sandbox.shared.clone();
        let app = Router::new()
            .route("/v2/auth/oauth2/token", post(|| async { "token" }))
            .merge(router())
            .with_state(shared);
        let req = |m: &str, p: &str| Request::builder().method(m).uri(p).body(Body::empty());
        let resp = app
            .clone()
            .oneshot(req("POST", "/v2/auth/oauth2/token").unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = app
            .oneshot(req("GET", "/v2/auth/oauth2/other").unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
}
