//! `/api/v1/connections/{id}/proxy/{path}`: forwards any method to Cal.com API v2 with the
//! connection's token (docs/calcom.md §5).
//!
//! - Headers are allow-listed both ways: the app's API key, cookies and hop-by-hop headers never
//!   reach Cal.com; Cal.com's rate-limit headers (`X-RateLimit-*-Default`, §6) come back.
//! - Response bodies stream. Request bodies up to [`REPLAYABLE_BODY_BYTES`] are buffered so the
//!   request can be replayed once after a refresh; larger ones stream and are not replayed.
//! - On 401, or 403 "no oAuth client found for access token" (§5) — the library's rule,
//!   [`calconnect::api::Rejection`], as [`calconnect::api::CalClient`] applies it — the keeper
//!   refreshes (once per connection, whatever the number of callers) and the request is retried
//!   once.
//! - Requests go through the library's per-token rate governor ([`calconnect::api::RateGovernor`],
//!   120 per minute as at Cal.com, narrowed by Cal.com's `X-RateLimit-*` answers): a burst waits
//!   for a slot up to [`MAX_GOVERNOR_WAIT`]. When the token is blocked for longer, the request
//!   goes to Cal.com anyway, so the 429 the app sees is Cal.com's own, never the broker's.
//! - Status codes pass through, 429 included.

use crate::api_keys::Authenticated;
use crate::error::ApiError;
use crate::extract::ConnectionPath;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use calconnect::AccessToken;
use calconnect::api::Rejection;
use futures::TryStreamExt as _;

/// Largest request body buffered (and so replayable after a refresh).
pub const REPLAYABLE_BODY_BYTES: usize = 256 * 1024;
/// Largest request body forwarded at all.
pub const MAX_PROXY_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Longest a proxied request waits for a slot of its token's rate budget.
pub const MAX_GOVERNOR_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

const REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "cal-api-version",
    "if-none-match",
    "if-modified-since",
    "idempotency-key",
    "x-request-id",
];

const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-language",
    "cache-control",
    "etag",
    "last-modified",
    "retry-after",
    "x-request-id",
];

fn response_header_allowed(name: &HeaderName) -> bool {
    RESPONSE_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("x-ratelimit-")
}

/// The streaming HTTP client of the proxy and webhooks: the library's one client builder
/// (no redirects, rustls), 5 s to connect, 60 s per request.
///
/// # Errors
/// When the TLS backend cannot start.
pub fn client() -> Result<reqwest::Client, calconnect::http::HttpClientError> {
    calconnect::http::reqwest_client(
        &calconnect::http::HttpConfig::default()
            .connect_timeout(std::time::Duration::from_secs(5))
            .total_timeout(std::time::Duration::from_secs(60)),
    )
}

/// The methods Cal.com's API v2 uses; anything else is 405.
const METHODS: &[http::Method] = &[
    http::Method::GET,
    http::Method::POST,
    http::Method::PUT,
    http::Method::PATCH,
    http::Method::DELETE,
];
const ALLOW: &str = "GET, POST, PUT, PATCH, DELETE";

/// The API path after `/proxy/` (an optional leading `v2/` is dropped), checked: no `..`,
/// `..;` or `;` path parameters, no empty segments, no encoded dot, slash or backslash, and
/// never Cal.com's own OAuth routes (`auth/…`): the proxy carries API calls, not token requests.
fn upstream_path(uri_path: &str) -> Result<&str, ApiError> {
    let (_, rest) = uri_path
        .split_once("/proxy/")
        .ok_or_else(|| ApiError::not_found("no such API route"))?;
    let rest = rest.strip_prefix("v2/").unwrap_or(rest);
    let lower = rest.to_ascii_lowercase();
    let bad = rest.is_empty()
        || rest.contains(['\\', ';'])
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%3b")
        || lower == "auth"
        || lower.starts_with("auth/")
        || lower.starts_with("v2/")
        || rest
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        return Err(ApiError::invalid(
            "the proxied path must be a plain Cal.com API v2 path such as `me` or `schedules/12` (Cal.com's auth routes are not proxied)",
        ));
    }
    Ok(rest)
}

enum OutBody {
    Empty,
    Buffered(bytes::Bytes),
    Stream(Body),
}

/// Forwards the request to Cal.com API v2 `/{path}` with the connection's token (any method;
/// GET shown). Cal.com's status, body and allow-listed headers come back as they are.
#[utoipa::path(get, path = "/api/v1/connections/{id}/proxy/{path}", tag = "proxy",
    params(("id" = String, Path, description = "Connection id"),
           ("path" = String, Path, description = "Cal.com API v2 path, e.g. `me` or `schedules`")),
    responses((status = 200, description = "Cal.com's answer (any status)"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such connection", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The user must reconnect", body = crate::openapi::ErrorResponse),
        (status = 502, description = "Cal.com unreachable", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Cal.com or the store unavailable", body = crate::openapi::ErrorResponse)),
    security(("api_key" = [])))]
pub(crate) async fn proxy(
    State(state): State<AppState>,
    _auth: Authenticated,
    ConnectionPath(id): ConnectionPath,
    request: Request,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    if !METHODS.contains(request.method()) {
        return Ok(method_not_allowed());
    }
    let path = upstream_path(request.uri().path())?;
    let api = state
        .flow
        .profile()
        .api_base()
        .ok_or_else(|| ApiError::not_found("this provider has no Cal.com API to proxy to"))?;
    let mut url = format!("{}/{path}", api.as_str().trim_end_matches('/'));
    if let Some(q) = request.uri().query() {
        url.push('?');
        url.push_str(q);
    }
    let method = request.method().clone();
    let mut headers = HeaderMap::new();
    for (name, value) in request.headers() {
        if REQUEST_HEADERS.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    let length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > MAX_PROXY_BODY_BYTES) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "proxied request bodies are limited to 10 MiB",
        ));
    }
    let body = request.into_body();
    let mut out = match length {
        Some(0) => OutBody::Empty,
        Some(l) if l <= REPLAYABLE_BODY_BYTES => {
            let bytes = axum::body::to_bytes(body, REPLAYABLE_BODY_BYTES)
                .await
                .map_err(|_| ApiError::invalid("the request body could not be read"))?;
            OutBody::Buffered(bytes)
        }
        None if matches!(method, http::Method::GET | http::Method::HEAD) => OutBody::Empty,
        _ => OutBody::Stream(body),
    };

    let fresh = state.keeper.access_token(id).await?;
    let mut token = fresh.access_token;
    let mut retried = false;
    loop {
        let body = match &mut out {
            OutBody::Empty => None,
            OutBody::Buffered(b) => Some(reqwest::Body::from(b.clone())),
            OutBody::Stream(b) => {
                let stream = std::mem::take(b)
                    .into_data_stream()
                    .map_err(std::io::Error::other);
                Some(reqwest::Body::wrap_stream(stream))
            }
        };
        let replayable = !matches!(out, OutBody::Stream(_));
        let permit = state
            .governor
            .acquire_within(&token, MAX_GOVERNOR_WAIT)
            .await;
        let mut upstream = state
            .proxy_http
            .request(method.clone(), &url)
            .headers(headers.clone())
            .bearer_auth(token.expose_secret());
        if let Some(b) = body {
            upstream = upstream.body(b);
        }
        let response = match upstream.send().await {
            Ok(r) => r,
            Err(e) => {
                // reqwest errors may name the URL (no secret in it: the token is a header).
                tracing::warn!(error = %e.without_url(), "proxy: Cal.com unreachable");
                state.metrics.proxy("error", started.elapsed());
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    "Cal.com could not be reached; retry later",
                ));
            }
        };
        let status = response.status();
        if let Some(permit) = permit {
            permit.observe(
                status,
                response.headers(),
                state.clock.now().unix_timestamp(),
            );
        }
        let rejected = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
        if rejected && !retried && replayable {
            let resp_headers = response.headers().clone();
            let text = response.bytes().await.unwrap_or_default();
            if Rejection::of(status, &text).is_some_and(|r| r.refresh_and_retry()) {
                retried = true;
                let rejected_token: AccessToken = token.clone();
                token = state
                    .keeper
                    .refresh_rejected(id, &rejected_token)
                    .await?
                    .access_token;
                continue;
            }
            state.metrics.proxy(class(status), started.elapsed());
            return Ok(build(status, &resp_headers, Body::from(text)));
        }
        state.metrics.proxy(class(status), started.elapsed());
        let resp_headers = response.headers().clone();
        let stream = response.bytes_stream();
        return Ok(build(status, &resp_headers, Body::from_stream(stream)));
    }
}

fn method_not_allowed() -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("the proxy forwards {ALLOW}, the methods of Cal.com's API v2"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(ALLOW));
    response
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        429 => "429",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn build(status: StatusCode, upstream: &HeaderMap, body: Body) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in upstream {
        if response_header_allowed(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        let ok =
            |p: &str| upstream_path(&format!("/api/v1/connections/x/proxy/{p}")).map(str::to_owned);
        assert_eq!(ok("me").unwrap(), "me");
        assert_eq!(ok("schedules/12").unwrap(), "schedules/12");
        assert_eq!(ok("v2/schedules/12").unwrap(), "schedules/12");
        for bad in [
            "",
            "v2/",
            "../auth/oauth2/token",
            "a//b",
            "%2e%2e/x",
            "a%2Fb",
            "a\\b",
            "a%5cb",
            "..;/me",
            "me;jsessionid=1",
            "me%3b",
            "./me",
            "auth/oauth2/token",
            "AUTH/oauth2/token",
            "v2/auth/oauth2/token",
            "v2/v2/me",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }
}
