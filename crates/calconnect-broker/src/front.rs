//! The proxy route served before the router (issue 15, `BENCHMARKS.md`).
//!
//! [`Front`] is what the broker's listener serves: a request for
//! `/api/v1/connections/{id}/proxy/{*rest}` with one of the methods the proxy forwards goes
//! straight to [`proxy::forward`], every other request to the [`router`](crate::router)
//! unchanged. On its way, the router gave the proxy route: its outer `Router`, the path lookup
//! with the `MatchedPath`, `OriginalUri` and path-parameter extensions, the method router, the
//! boxed route and handler, and a boxing of the request and response bodies; all per request.
//!
//! The security headers and the 503 timeout wrap the front and the router alike
//! ([`outer_layers`](crate::server::outer_layers)). What the proxy route had from the router
//! itself is applied here: the request span at DEBUG with the route's pattern, then the
//! handler's extractors in the handler's order: the API key ([`Authenticated`], 401 first),
//! then the connection id (404).
//! The proxy limits its request bodies itself, as on the router's path.
//!
//! Anything the router would send elsewhere stays with the router: other methods (`HEAD`,
//! `OPTIONS`, …, which the proxy route answers 405 after the API key, and `CONNECT`), an empty
//! id segment or an empty proxied path (the router's own 404s).

use crate::api_keys::Authenticated;
use crate::error::ApiError;
use crate::proxy;
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts as _;
use axum::http::{Method, Request};
use axum::response::{IntoResponse as _, Response};
use calconnect::store::ConnectionId;
use futures::future::{BoxFuture, Either};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::{Service, ServiceExt as _};

/// The proxy route's pattern, as the router names it in the request span.
const PROXY_ROUTE: &str = "/api/v1/connections/{id}/proxy/{*rest}";

/// The router, with the proxy route served before it.
#[derive(Clone)]
pub(crate) struct Front {
    router: Router,
    state: AppState,
}

impl Front {
    pub(crate) fn new(router: Router, state: AppState) -> Self {
        Self { router, state }
    }
}

impl Service<Request<Incoming>> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        BoxFuture<'static, Result<Response, Infallible>>,
        axum::routing::future::RouteFuture<Infallible>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both are always ready (the router says so too).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        if proxied(request.method(), request.uri().path()).is_some() {
            Either::Left(Box::pin(serve_proxy(self.state.clone(), request)))
        } else {
            Either::Right(self.router.call(request))
        }
    }
}

/// The id segment of a request the router would route to the proxy and whose method the proxy
/// forwards; `None` for anything else.
fn proxied<'a>(method: &Method, path: &'a str) -> Option<&'a str> {
    if !matches!(
        *method,
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return None;
    }
    let rest = path.strip_prefix("/api/v1/connections/")?;
    let (id, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("proxy/")?;
    // The router's path parameter and catch-all: the id one non-empty segment, the rest not
    // empty (the router answers those two cases itself).
    (!id.is_empty() && !rest.is_empty()).then_some(id)
}

/// The proxy route's own layer, as the router applied it (the outer layers wrap [`Front`]),
/// around [`handle`].
async fn serve_proxy(state: AppState, request: Request<Incoming>) -> Result<Response, Infallible> {
    let route = tower::ServiceBuilder::new()
        // The router's routes answer with axum's body.
        .map_response(|response: Response<_>| response.map(Body::new))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &Request<Incoming>| {
                    // As the router's span (server.rs): the method and the route, at DEBUG.
                    tracing::debug_span!("request", method = %request.method(), route = PROXY_ROUTE)
                },
            ),
        )
        .service_fn(move |request| handle(state.clone(), request));
    route.oneshot(request).await
}

/// The proxy handler's extractors, in its order, then [`proxy::forward`].
async fn handle(state: AppState, request: Request<Incoming>) -> Result<Response, Infallible> {
    let (mut parts, body) = request.into_parts();
    let answer = async {
        Authenticated::from_request_parts(&mut parts, &state).await?;
        let id = proxied(&parts.method, parts.uri.path())
            .ok_or_else(|| ApiError::not_found("no such connection"))
            .and_then(connection_id)?;
        proxy::forward(&state, id, parts, body).await
    };
    Ok(answer.await.unwrap_or_else(|e| e.into_response()))
}

/// The `{id}` segment as the router's path parameter reads it (percent-decoded, UTF-8), then as
/// [`crate::extract::ConnectionPath`] does: anything but a UUID is 404 `not_found`.
fn connection_id(segment: &str) -> Result<ConnectionId, ApiError> {
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::not_found("no such connection"))?;
    crate::extract::connection_id(&decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_proxy_route_and_its_methods_are_taken() {
        let id = "/api/v1/connections/5f0c6a3e-8d1e-4c4e-9a55-0d6f0e4b1a11";
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            assert_eq!(
                proxied(&method, &format!("{id}/proxy/me")),
                Some("5f0c6a3e-8d1e-4c4e-9a55-0d6f0e4b1a11")
            );
        }
        assert_eq!(
            proxied(&Method::GET, "/api/v1/connections/x/proxy/a/b"),
            Some("x")
        );
        for method in [
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::CONNECT,
        ] {
            assert_eq!(proxied(&method, &format!("{id}/proxy/me")), None);
        }
        for path in [
            "/api/v1/connections//proxy/me",
            "/api/v1/connections/x/proxy/",
            "/api/v1/connections/x/proxy",
            "/api/v1/connections/x/access-token",
            "/api/v1/connections/x",
            "/api/v1/connections/x/y/proxy/me",
            "/api/v1/%63onnections/x/proxy/me",
            "/api/v2/connections/x/proxy/me",
            "/healthz",
        ] {
            assert_eq!(proxied(&Method::GET, path), None, "{path}");
        }
    }

    #[test]
    fn the_id_is_read_as_the_router_reads_it() {
        let id = "5f0c6a3e-8d1e-4c4e-9a55-0d6f0e4b1a11";
        assert!(connection_id(id).is_ok());
        // Percent-decoded first, as axum's path parameters.
        assert!(connection_id("5f0c6a3e-8d1e-4c4e-9a55-0d6f0e4b1a1%31").is_ok());
        assert!(connection_id(&format!("%7B{id}%7D")).is_ok());
        for bad in ["not-a-uuid", "%ff", "%", &format!("{id}x")] {
            assert!(connection_id(bad).is_err(), "{bad}");
        }
    }
}
