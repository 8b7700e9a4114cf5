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
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use calconnect::AccessToken;
use calconnect::api::{RateGovernor, RateKey, Rejection};
use calconnect::http::{HttpClientError, HttpConfig, StreamingClient};
use calconnect::store::ConnectionId;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Largest request body buffered (and so replayable after a refresh).
pub const REPLAYABLE_BODY_BYTES: usize = 256 * 1024;
/// Largest request body forwarded at all.
pub const MAX_PROXY_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Longest a proxied request waits for a slot of its token's rate budget.
pub const MAX_GOVERNOR_WAIT: Duration = Duration::from_secs(5);
/// Largest 401/403 body read to classify it (Cal.com's error envelopes are a few hundred bytes).
const REJECTION_BODY_BYTES: usize = 64 * 1024;

/// Request headers forwarded to Cal.com (plus the bearer, the user agent and `Accept`).
fn request_header_allowed(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "accept"
            | "accept-language"
            | "content-type"
            | "cal-api-version"
            | "if-none-match"
            | "if-modified-since"
            | "idempotency-key"
            | "x-request-id"
    )
}

/// Response headers passed back to the app, with Cal.com's `x-ratelimit-*`.
fn response_header_allowed(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type"
            | "content-encoding"
            | "content-language"
            | "cache-control"
            | "etag"
            | "last-modified"
            | "retry-after"
            | "x-request-id"
    ) || name.as_str().starts_with("x-ratelimit-")
}

/// 5 s to connect, 60 s per request (head and body); webhook deliveries use the same.
pub(crate) fn upstream_http_config() -> HttpConfig {
    HttpConfig::default()
        .connect_timeout(Duration::from_secs(5))
        .total_timeout(Duration::from_secs(60))
}

/// What the proxy keeps between requests: the streaming client (the library's
/// [`StreamingClient`], pooled, hardened as the reqwest client), the API base split once, and
/// per connection the `Authorization` header and rate-governor key of the token last used, so a
/// request neither formats the header nor hashes the token again (issue 15).
pub(crate) struct Upstream {
    client: StreamingClient<Body>,
    base: Option<Base>,
    bearers: Mutex<HashMap<ConnectionId, Bearer>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The API base (`https://api.cal.com/v2`) as URI parts, a path prefix without the final `/`,
/// and the `Host` header (made once: the client would format it for every request).
struct Base {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    prefix: String,
    host: HeaderValue,
}

/// The `Authorization` header for one access token (marked sensitive: hyper never logs it) and
/// the token's rate bucket.
#[derive(Clone)]
struct Bearer {
    header: HeaderValue,
    key: RateKey,
}

impl Bearer {
    const SCHEME: &'static str = "Bearer ";

    fn new(token: &AccessToken) -> Result<Self, ApiError> {
        let mut header =
            HeaderValue::try_from(format!("{}{}", Self::SCHEME, token.expose_secret()))
                .map_err(|e| ApiError::internal(&e))?;
        header.set_sensitive(true);
        Ok(Self {
            header,
            key: RateGovernor::key(token),
        })
    }

    /// Whether this is the header of `token`. Not constant time, and need not be: both sides are
    /// the broker's own values (the keeper's token and one it handed out before), nothing a
    /// client sends.
    fn is_for(&self, token: &AccessToken) -> bool {
        self.header.as_bytes().get(Self::SCHEME.len()..) == Some(token.expose_secret().as_bytes())
    }
}

impl Upstream {
    /// Bearers kept at most (one per connection proxied recently); beyond, the memo starts over.
    const MAX_BEARERS: usize = 10_000;

    /// The proxy's upstream for the profile's API base (`None`: the profile has no Cal.com API,
    /// and the proxy answers 404).
    ///
    /// # Errors
    /// When the TLS backend cannot start.
    pub(crate) fn new(
        api_base: Option<&calconnect::EndpointUrl>,
        proxy: &calconnect::http::ProxyEnv,
    ) -> Result<Self, HttpClientError> {
        let base = api_base.and_then(|url| {
            let Ok(uri) = url.as_str().parse::<Uri>() else {
                tracing::warn!(
                    "the provider's API base is not a URI the proxy can use: the proxy answers 404"
                );
                return None;
            };
            let parts = uri.into_parts();
            let scheme = parts.scheme?;
            let authority = parts.authority?;
            // As hyper-util writes it: the port only when it is not the scheme's default.
            let default_port = if scheme == http::uri::Scheme::HTTPS {
                443
            } else {
                80
            };
            let host = match authority.port_u16() {
                Some(port) if port != default_port => format!("{}:{port}", authority.host()),
                _ => authority.host().to_owned(),
            };
            Some(Base {
                scheme,
                prefix: parts
                    .path_and_query
                    .map(|p| p.path().trim_end_matches('/').to_owned())
                    .unwrap_or_default(),
                authority,
                host: HeaderValue::try_from(host).ok()?,
            })
        });
        Ok(Self {
            client: StreamingClient::with_proxy(&upstream_http_config(), proxy)?,
            base,
            bearers: Mutex::default(),
        })
    }

    /// The `Host` header of the API base.
    fn host(&self) -> Option<&HeaderValue> {
        self.base.as_ref().map(|b| &b.host)
    }

    /// `{base}/{path}?{query}`.
    fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, ApiError> {
        let base = self
            .base
            .as_ref()
            .ok_or_else(|| ApiError::not_found("this provider has no Cal.com API to proxy to"))?;
        let mut target = String::with_capacity(
            base.prefix.len() + 1 + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        target.push_str(&base.prefix);
        target.push('/');
        target.push_str(path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(base.scheme.clone());
        parts.authority = Some(base.authority.clone());
        parts.path_and_query = Some(
            target
                .try_into()
                .map_err(|_| ApiError::invalid("the proxied path is not a valid URI path"))?,
        );
        Uri::from_parts(parts)
            .map_err(|_| ApiError::invalid("the proxied path is not a valid URI path"))
    }

    /// The bearer of `token` for connection `id`, from the memo when the token did not change.
    fn bearer(&self, id: ConnectionId, token: &AccessToken) -> Result<Bearer, ApiError> {
        let mut bearers = self.bearers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = bearers.get(&id).filter(|b| b.is_for(token)) {
            return Ok(b.clone());
        }
        let bearer = Bearer::new(token)?;
        if bearers.len() >= Self::MAX_BEARERS {
            bearers.clear();
        }
        bearers.insert(id, bearer.clone());
        Ok(bearer)
    }
}

/// The proxy path parameter, in the OpenAPI document.
const PATH_DOC: &str = "Cal.com API v2 path, e.g. `me`, `schedules/default` or `bookings/{uid}/cancel`; its slashes may be sent as they are or encoded as `%2F` (an optional leading `v2/` is dropped; Cal.com's `auth/` routes are refused)";
/// The `cal-api-version` parameter, in the OpenAPI document.
const VERSION_DOC: &str = "Cal.com's API version for this call. When absent the proxy sends the route's documented version, as `calconnect api` does: 2024-06-11 for `schedules`, 2024-06-14 for `event-types`, 2024-08-13 for `bookings`, 2024-09-04 for `slots`, none otherwise";
/// The proxied answer, in the OpenAPI document.
const ANSWER_DOC: &str =
    "Cal.com's answer, with its body and allow-listed headers (`X-RateLimit-*` among them)";
/// Cal.com's answers of other statuses, in the OpenAPI document.
const OTHER_DOC: &str = "Cal.com's answer of another status (its error envelope, a 429, …), passed through as it is; the statuses listed here are the broker's own";

/// The proxy's other methods, as their own operations of the OpenAPI document (one operation
/// id each, so that generated clients have a method per HTTP method). Never routed: the
/// router sends every method to [`proxy`].
#[allow(dead_code)] // reason: only their `#[utoipa::path]` is used, by crate::openapi
pub(crate) mod doc {
    use super::{ANSWER_DOC, OTHER_DOC, PATH_DOC, VERSION_DOC};

    macro_rules! proxied {
        ($method:ident, $id:literal, $what:literal) => {
            #[doc = $what]
            #[utoipa::path($method, path = "/api/v1/connections/{id}/proxy/{path}", operation_id = $id, tag = "proxy",
                params(("id" = String, Path, description = "Connection id"),
                       ("path" = String, Path, description = PATH_DOC),
                       ("cal-api-version" = Option<String>, Header, description = VERSION_DOC)),
                request_body(content = Option<serde_json::Value>, content_type = "application/json",
                    description = "The JSON body for Cal.com, forwarded as it is (up to 10 MiB; bodies up to 256 KiB are replayed once after a refresh)"),
                responses((status = 200, description = ANSWER_DOC, body = serde_json::Value),
                    (status = 400, description = "Invalid path or unreadable body", body = crate::openapi::ErrorResponse),
                    (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
                    (status = 404, description = "No such connection", body = crate::openapi::ErrorResponse),
                    (status = 409, description = "The user must reconnect", body = crate::openapi::ErrorResponse),
                    (status = 413, description = "Body over 10 MiB", body = crate::openapi::ErrorResponse),
                    (status = 502, description = "Cal.com unreachable", body = crate::openapi::ErrorResponse),
                    (status = 503, description = "Cal.com or the store unavailable", body = crate::openapi::ErrorResponse),
                    (status = "default", description = OTHER_DOC, body = serde_json::Value)),
                security(("api_key" = [])))]
            pub(crate) fn $method() {}
        };
    }

    proxied!(
        post,
        "proxyPost",
        "Forwards a POST to Cal.com API v2 `/{path}` with the connection's token (e.g. `bookings` to book)."
    );
    proxied!(
        put,
        "proxyPut",
        "Forwards a PUT to Cal.com API v2 `/{path}` with the connection's token."
    );
    proxied!(
        patch,
        "proxyPatch",
        "Forwards a PATCH to Cal.com API v2 `/{path}` with the connection's token (e.g. `schedules/{id}`)."
    );
    proxied!(
        delete,
        "proxyDelete",
        "Forwards a DELETE to Cal.com API v2 `/{path}` with the connection's token."
    );
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
const USER_AGENT: &str = concat!("calconnect/", env!("CARGO_PKG_VERSION"));

/// The API path after `/proxy/` (an optional leading `v2/` is dropped), checked: no `..`,
/// `..;` or `;` path parameters, no empty segments, no encoded dot or backslash, and never
/// Cal.com's own OAuth routes (`auth/…`): the proxy carries API calls, not token requests.
///
/// A slash may come encoded (`schedules%2F12`), as generated clients encode a path parameter:
/// it is decoded to `/` first, and the checks apply to the decoded path, which is what goes to
/// Cal.com.
fn upstream_path(uri_path: &str) -> Result<Cow<'_, str>, ApiError> {
    let (_, rest) = uri_path
        .split_once("/proxy/")
        .ok_or_else(|| ApiError::not_found("no such API route"))?;
    let rest: Cow<'_, str> = if contains_ignore_case(rest, "%2f") {
        Cow::Owned(rest.replace("%2F", "/").replace("%2f", "/"))
    } else {
        Cow::Borrowed(rest)
    };
    let rest = match rest {
        Cow::Borrowed(b) => Cow::Borrowed(b.strip_prefix("v2/").unwrap_or(b)),
        Cow::Owned(o) => match o.strip_prefix("v2/") {
            Some(r) => Cow::Owned(r.to_owned()),
            None => Cow::Owned(o),
        },
    };
    let bad = rest.is_empty()
        || rest.contains(['\\', ';'])
        || contains_ignore_case(&rest, "%2e")
        || contains_ignore_case(&rest, "%5c")
        || contains_ignore_case(&rest, "%3b")
        || rest.eq_ignore_ascii_case("auth")
        || starts_with_ignore_case(&rest, "auth/")
        || starts_with_ignore_case(&rest, "v2/")
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

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether `s` contains `needle` (ASCII, any case), without lowering a copy of `s`.
fn contains_ignore_case(s: &str, needle: &str) -> bool {
    s.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

const CAL_API_VERSION: HeaderName = HeaderName::from_static("cal-api-version");

/// The API base's `Host`, the allow-listed request headers, the route's documented
/// `cal-api-version` when the app sent none ([`calconnect::api::default_api_version`], as
/// `calconnect api` sends it), calconnect's user agent,
/// `Accept: */*` when the app sent none (as the reqwest client did) and the bearer. Nothing else: not the app's API key, cookies
/// or hop-by-hop headers.
fn upstream_headers(
    from: &HeaderMap,
    bearer: &Bearer,
    host: Option<&HeaderValue>,
    api_version: Option<&'static str>,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    if let Some(host) = host {
        headers.insert(header::HOST, host.clone());
    }
    for (name, value) in from {
        if request_header_allowed(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(version) = api_version
        && !headers.contains_key(CAL_API_VERSION)
    {
        headers.insert(CAL_API_VERSION, HeaderValue::from_static(version));
    }
    if !headers.contains_key(header::ACCEPT) {
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert(header::AUTHORIZATION, bearer.header.clone());
    headers
}

enum OutBody {
    Empty,
    Buffered(bytes::Bytes),
    Stream(Body),
}

/// Forwards a GET to Cal.com API v2 `/{path}` with the connection's token. Cal.com's status,
/// body and allow-listed headers come back as they are. The other methods are documented as
/// their own operations ([`doc`]); all go through this handler.
#[utoipa::path(get, path = "/api/v1/connections/{id}/proxy/{path}", operation_id = "proxyGet", tag = "proxy",
    params(("id" = String, Path, description = "Connection id"),
           ("path" = String, Path, description = PATH_DOC),
           ("cal-api-version" = Option<String>, Header, description = VERSION_DOC)),
    responses((status = 200, description = ANSWER_DOC, body = serde_json::Value),
        (status = 400, description = "Invalid path", body = crate::openapi::ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorResponse),
        (status = 404, description = "No such connection", body = crate::openapi::ErrorResponse),
        (status = 409, description = "The user must reconnect", body = crate::openapi::ErrorResponse),
        (status = 502, description = "Cal.com unreachable", body = crate::openapi::ErrorResponse),
        (status = 503, description = "Cal.com or the store unavailable", body = crate::openapi::ErrorResponse),
        (status = "default", description = OTHER_DOC, body = serde_json::Value)),
    security(("api_key" = [])))]
pub(crate) async fn proxy(
    State(state): State<AppState>,
    _auth: Authenticated,
    ConnectionPath(id): ConnectionPath,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    forward(&state, id, parts, body).await
}

/// The proxy's work once the API key is checked and the connection id read: [`proxy`] on the
/// router's path, [`crate::front`] before the router (issue 15). `body` is the app's request
/// body as it came (axum's [`Body`] or hyper's own).
pub(crate) async fn forward<B>(
    state: &AppState,
    id: ConnectionId,
    parts: http::request::Parts,
    body: B,
) -> Result<Response, ApiError>
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let started = std::time::Instant::now();
    if !METHODS.contains(&parts.method) {
        return Ok(method_not_allowed());
    }
    let path = upstream_path(parts.uri.path())?;
    let path = path.as_ref();
    let upstream = &state.upstream;
    let uri = upstream.uri(path, parts.uri.query())?;
    // Only for Cal.com: another provider's API has no such header.
    let api_version = state
        .config
        .profile
        .is_cal_com()
        .then(|| calconnect::api::default_api_version(path))
        .flatten();
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > MAX_PROXY_BODY_BYTES) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "proxied request bodies are limited to 10 MiB",
        ));
    }
    let mut out = match length {
        Some(0) => OutBody::Empty,
        Some(l) if l <= REPLAYABLE_BODY_BYTES => {
            // As `axum::body::to_bytes`, for any body type.
            let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                body,
                REPLAYABLE_BODY_BYTES,
            ))
            .await
            .map_err(|_| ApiError::invalid("the request body could not be read"))?
            .to_bytes();
            OutBody::Buffered(bytes)
        }
        None if matches!(parts.method, http::Method::GET | http::Method::HEAD) => OutBody::Empty,
        // Streamed (chunked or long): cut at the limit, which fails the upstream request.
        _ => OutBody::Stream(Body::new(http_body_util::Limited::new(
            body,
            MAX_PROXY_BODY_BYTES,
        ))),
    };

    let mut token = state.keeper.access_token(id).await?.access_token;
    let mut bearer = upstream.bearer(id, &token)?;
    let mut retried = false;
    loop {
        let replayable = !matches!(out, OutBody::Stream(_));
        let body = match &mut out {
            OutBody::Empty => Body::empty(),
            OutBody::Buffered(b) => Body::from(b.clone()),
            OutBody::Stream(b) => std::mem::take(b),
        };
        let permit = state
            .governor
            .acquire_key_within(bearer.key, MAX_GOVERNOR_WAIT)
            .await;
        let mut outgoing = http::Request::new(body);
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = uri.clone();
        *outgoing.headers_mut() =
            upstream_headers(&parts.headers, &bearer, upstream.host(), api_version);
        let response = match upstream.client.send(outgoing).await {
            Ok(r) => r,
            Err(e) => {
                // The library's transport errors name neither the URL nor the peer.
                tracing::warn!(error = %e, "proxy: Cal.com unreachable");
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
            let (head, body) = response.into_parts();
            let text = axum::body::to_bytes(Body::new(body), REJECTION_BODY_BYTES)
                .await
                .unwrap_or_default();
            if Rejection::of(status, &text).is_some_and(|r| r.refresh_and_retry()) {
                retried = true;
                token = state
                    .keeper
                    .refresh_rejected(id, &token)
                    .await?
                    .access_token;
                bearer = upstream.bearer(id, &token)?;
                continue;
            }
            state.metrics.proxy(class(status), started.elapsed());
            return Ok(build(status, head.headers, Body::from(text)));
        }
        state.metrics.proxy(class(status), started.elapsed());
        let (head, body) = response.into_parts();
        return Ok(build(status, head.headers, Body::new(body)));
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

/// The app's response: Cal.com's status and body, and only the allow-listed headers. The
/// others are removed from Cal.com's own map, in place: a new map cost an allocation and a hash
/// per kept header (issue 15, BENCHMARKS.md round 3). A removed name goes with all its values;
/// names of different fields may change places, which HTTP does not give a meaning (RFC 9110
/// §5.3); the values of one name keep their order.
fn build(status: StatusCode, mut headers: HeaderMap, body: Body) -> Response {
    // The names to remove, found in one pass (no allocation when every name is allowed).
    let refused: Vec<HeaderName> = headers
        .keys()
        .filter(|name| !response_header_allowed(name))
        .cloned()
        .collect();
    for name in refused {
        headers.remove(name);
    }
    // Room for the security headers added on the way out.
    headers.reserve(3);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_response_headers_come_back() {
        let mut upstream = HeaderMap::new();
        for (name, value) in [
            ("date", "Tue, 01 Dec 2026 20:00:00 GMT"),
            ("content-type", "application/json"),
            ("set-cookie", "a=1"),
            ("x-ratelimit-limit-default", "120"),
            ("set-cookie", "b=2"),
            ("etag", "\"1\""),
            ("content-length", "12"),
            ("x-ratelimit-remaining-default", "119"),
            ("connection", "keep-alive"),
            ("x-request-id", "r1"),
            ("x-request-id", "r2"),
            ("access-control-allow-origin", "*"),
            ("vary", "accept"),
        ] {
            upstream.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let response = build(StatusCode::CREATED, upstream, Body::empty());
        assert_eq!(response.status(), StatusCode::CREATED);
        let headers = response.headers();
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-type",
                "etag",
                "x-ratelimit-limit-default",
                "x-ratelimit-remaining-default",
                "x-request-id",
            ]
        );
        assert_eq!(headers.len(), 6, "every value of a kept name");
        let ids: Vec<&str> = headers
            .get_all("x-request-id")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(ids, ["r1", "r2"], "in their order");
        assert_eq!(headers["x-ratelimit-limit-default"], "120");
    }

    #[test]
    fn paths_are_checked() {
        let ok = |p: &str| {
            upstream_path(&format!("/api/v1/connections/x/proxy/{p}")).map(|p| p.into_owned())
        };
        assert_eq!(ok("me").unwrap(), "me");
        assert_eq!(ok("schedules/12").unwrap(), "schedules/12");
        assert_eq!(ok("v2/schedules/12").unwrap(), "schedules/12");
        // Encoded slashes, as generated clients send a path parameter.
        assert_eq!(ok("schedules%2F12").unwrap(), "schedules/12");
        assert_eq!(ok("v2%2fschedules%2Fdefault").unwrap(), "schedules/default");
        for bad in [
            "",
            "v2/",
            "../auth/oauth2/token",
            "a//b",
            "%2e%2e/x",
            "auth%2Foauth2%2Ftoken",
            "v2%2Fauth%2Foauth2%2Ftoken",
            "me%2F..%2Fauth",
            "a%2F%2Fb",
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
