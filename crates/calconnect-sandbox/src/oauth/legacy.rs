//! The legacy web token endpoints (`docs/calcom.md` §3.1, §3.2 end, §3.5 "Legacy web errors"):
//! `POST /api/auth/oauth/token` (authorization_code only) and `POST /api/auth/oauth/refreshToken`.
//! Both parse the raw body as `URLSearchParams` whatever the content type (the last of repeated
//! keys wins, as `Object.fromEntries` does), answer errors as `{error}` only, and share the
//! service of the v2 endpoint (same tokens, same rotation).

use super::errors::TokenError;
use super::faults;
use super::grants::{self, ExchangeRequest};
use super::token::success;
use crate::api::PeerIp;
use crate::state::{Shared, TokenEndpoint};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn non_empty<'a>(f: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    f.get(k).map(String::as_str).filter(|s| !s.is_empty())
}

fn grant_label(f: &HashMap<String, String>) -> &'static str {
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "unknown",
    }
}

fn finish(
    shared: &Shared,
    endpoint: TokenEndpoint,
    grant: &str,
    result: Result<grants::Minted, TokenError>,
) -> Response {
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.outcome(),
    };
    shared.count_token_call(endpoint, grant, &outcome);
    match result {
        Ok(m) => {
            let mut resp = success(&m, false);
            // The route sets this exact header on success (`token/route.ts@5b6d63e`).
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=UTF-8"),
            );
            resp
        }
        Err(e) => e.legacy_response(),
    }
}

/// `POST /api/auth/oauth/token`: `client_id`, `code`, `redirect_uri` required and
/// `grant_type=authorization_code`, else 400 `{"error":"invalid_request"}`; no whitelist.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let grant = grant_label(&f);
    let endpoint = TokenEndpoint::LegacyToken;
    let fault = faults::FaultRequest {
        uri: &uri,
        headers: &headers,
        peer,
    };
    if let Some(resp) = faults::apply(&shared, endpoint, grant, &fault).await {
        return resp;
    }
    let result = (|| {
        let (Some(client_id), Some(code), Some(redirect_uri)) = (
            non_empty(&f, "client_id"),
            non_empty(&f, "code"),
            non_empty(&f, "redirect_uri"),
        ) else {
            return Err(TokenError::invalid_request("missing_parameters"));
        };
        if grant != "authorization_code" {
            return Err(TokenError::invalid_request("unsupported_grant_type"));
        }
        grants::exchange(
            &shared,
            endpoint,
            &ExchangeRequest {
                client_id,
                code,
                client_secret: non_empty(&f, "client_secret"),
                redirect_uri: Some(redirect_uri),
                code_verifier: non_empty(&f, "code_verifier"),
            },
        )
    })();
    // Tokens are handed out only once they are kept (a state file, when configured).
    shared.saved().await;
    finish(&shared, endpoint, grant, result)
}

/// `POST /api/auth/oauth/refreshToken`: `client_id` required and `grant_type=refresh_token`
/// (else 400 `{"error":"invalid_request"}`); the refresh token comes from the body, else from
/// `Authorization: Bearer` (the body wins; the second space-separated word of the header is
/// taken, as `split(" ")[1]` does).
pub(crate) async fn refresh(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let grant = grant_label(&f);
    let endpoint = TokenEndpoint::LegacyRefresh;
    let fault = faults::FaultRequest {
        uri: &uri,
        headers: &headers,
        peer,
    };
    if let Some(resp) = faults::apply(&shared, endpoint, grant, &fault).await {
        return resp;
    }
    let result = (|| {
        let Some(client_id) = non_empty(&f, "client_id") else {
            return Err(TokenError::invalid_request("missing_parameters"));
        };
        if grant != "refresh_token" {
            return Err(TokenError::invalid_request("unsupported_grant_type"));
        }
        let from_header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(' ').nth(1))
            .unwrap_or("");
        let refresh_token = non_empty(&f, "refresh_token").unwrap_or(from_header);
        grants::refresh(
            &shared,
            endpoint,
            client_id,
            refresh_token,
            non_empty(&f, "client_secret"),
        )
    })();
    // Tokens are handed out only once they are kept (a state file, when configured).
    shared.saved().await;
    finish(&shared, endpoint, grant, result)
}
