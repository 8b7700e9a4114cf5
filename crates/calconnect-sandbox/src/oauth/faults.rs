//! Fault injection for the token endpoints (v2 and legacy), and the per-call counters.
//!
//! A [`FaultRule`] hits the next `count` matching calls, or every matching call until a sandbox
//! time (a "fail for D seconds" mode for demos; a frozen clock only moves when advanced). The first
//! matching rule wins; at most one fault applies per call.
//!
//! Shapes:
//! - `server_error {status}`: that 5xx status with the endpoint's unexpected-error body — v2
//!   `{"error":"server_error","error_description":"An unexpected error occurred"}` (§3.5), legacy
//!   token `{"error":"error_code_exchange"}`, legacy refresh `{"error":"server_error"}`.
//! - `rate_limited`: on the v2 endpoint, exactly the 429 of Cal.com's throttler guard there
//!   (`apps/api/v2/src/lib/throttler/throttler-guard.ts` throws `ThrottlerException("Too many
//!   requests. Please try again later.")`, which the global `apps/api/v2/src/filters/
//!   http-exception.filter.ts` renders; the route's own `OAuth2HttpExceptionFilter` only catches
//!   `OAuth2HttpException`): the API v2 error envelope
//!   `{"status":"error","timestamp":…,"path":"/v2/auth/oauth2/token","error":{"code":
//!   "ThrottlerException","message":"Too many requests. Please try again later.","details":"Too
//!   many requests. Please try again later."}}`, `X-RateLimit-Limit-Default` (the tracker's
//!   limit), `X-RateLimit-Remaining-Default: 0`, `X-RateLimit-Reset-Default` (the block, in
//!   seconds), `X-Request-Id`; no `Retry-After`, no `Cache-Control` (the guard throws before the
//!   route's `@Header`s apply). See `docs/calcom.md` §6.3 "The 429 answer". The legacy web
//!   endpoints have no throttler at Cal.com, so their 429 is the sandbox's own choice:
//!   `{"error":"too_many_requests"}` with the same rate-limit headers.
//! - `drop`: the connection is closed without a complete response.
//! - `not_found`: the v2 endpoint answers 404 in the API v2 error envelope, as a missing Nest
//!   route does (calcom#27685). Applies to the v2 endpoint only, whatever the target.
//! - `encryption_key_missing`: the §3.5 500 answers of a server without its signing key.
//! - `delay {ms}`: the call waits, then is processed normally (and counted by its real outcome).
//!
//! On the v2 endpoint the throttler guard counts every call except those answered by `drop`,
//! `not_found` (no route, no guard) and `rate_limited` (the fault stands for the guard).

use super::errors::no_store;
use crate::api::envelope::ApiError;
use crate::api::ratelimit;
use crate::state::{Shared, TokenEndpoint};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::IpAddr;
use time::OffsetDateTime;

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// A 5xx answer with the given status (default 500).
    ServerError {
        #[serde(default = "default_status")]
        status: u16,
    },
    /// Wait this long, then answer normally.
    Delay { ms: u64 },
    /// 429 Too Many Requests: on the v2 endpoint the throttler guard's answer (module docs).
    RateLimited,
    /// Close the connection without a complete response.
    Drop,
    /// 404 on the v2 endpoint (calcom#27685).
    NotFound,
    /// The server lost `CALENDSO_ENCRYPTION_KEY` (§3.5): v2 500
    /// `{"error":"server_error","error_description":"encryption_key_missing"}`, legacy 500
    /// `{"message":"CALENDSO_ENCRYPTION_KEY is not set"}`.
    EncryptionKeyMissing,
}

fn default_status() -> u16 {
    500
}

/// Which token endpoints a rule hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// The v2 and the legacy endpoints.
    #[default]
    Any,
    /// `POST /v2/auth/oauth2/token` only.
    V2,
    /// The two legacy web endpoints only.
    Legacy,
}

impl FaultTarget {
    fn matches(self, endpoint: TokenEndpoint) -> bool {
        match self {
            FaultTarget::Any => true,
            FaultTarget::V2 => endpoint == TokenEndpoint::V2,
            FaultTarget::Legacy => endpoint.is_legacy(),
        }
    }
}

/// An armed fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultRule {
    #[serde(flatten)]
    pub kind: FaultKind,
    pub target: FaultTarget,
    /// Calls still to hit (count mode).
    pub remaining: Option<u32>,
    /// Hit every call until this sandbox time (time-boxed mode).
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

impl FaultKind {
    /// Checks parameters (a server error must be 5xx).
    ///
    /// # Errors
    /// A message naming the bad parameter.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            FaultKind::ServerError { status } if !(500..=599).contains(status) => Err(format!(
                "server_error status must be 500..=599, got {status}"
            )),
            _ => Ok(()),
        }
    }

    /// The counter outcome of a call this fault answered.
    fn outcome(&self) -> &'static str {
        match self {
            FaultKind::ServerError { .. } => "fault:server_error",
            FaultKind::Delay { .. } => "fault:delay",
            FaultKind::RateLimited => "fault:rate_limited",
            FaultKind::Drop => "fault:dropped",
            FaultKind::NotFound => "fault:not_found",
            FaultKind::EncryptionKeyMissing => "server_error:encryption_key_missing",
        }
    }
}

fn hits(rule: &FaultRule, endpoint: TokenEndpoint) -> bool {
    rule.target.matches(endpoint)
        && (rule.kind != FaultKind::NotFound || endpoint == TokenEndpoint::V2)
}

/// The fault the next call of `endpoint` would get, without using it up.
pub(crate) fn pending(shared: &Shared, endpoint: TokenEndpoint) -> Option<FaultKind> {
    let now = shared.clock.now();
    shared
        .db()
        .faults
        .iter()
        .find(|r| r.until.is_none_or(|u| u > now) && hits(r, endpoint))
        .map(|r| r.kind.clone())
}

/// Whether the throttler guard runs for a call that gets `fault` (see the module docs).
pub(crate) fn guarded(fault: Option<&FaultKind>) -> bool {
    !matches!(
        fault,
        Some(FaultKind::NotFound | FaultKind::Drop | FaultKind::RateLimited)
    )
}

/// Takes the fault (if any) for this call, consuming one use of its rule.
fn take(shared: &Shared, endpoint: TokenEndpoint) -> Option<FaultKind> {
    let now = shared.clock.now();
    let mut db = shared.db();
    db.faults.retain(|r| r.until.is_none_or(|u| u > now));
    let idx = db.faults.iter().position(|r| hits(r, endpoint))?;
    let rule = &mut db.faults[idx];
    let kind = rule.kind.clone();
    if let Some(n) = rule.remaining.as_mut() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            db.faults.remove(idx);
        }
    }
    Some(kind)
}

/// The request a fault answers.
pub(crate) struct FaultRequest<'a> {
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub peer: Option<IpAddr>,
}

/// Applies the pending fault for this call, if any. `Some(response)` ends the call (already
/// counted); `None` means "process normally" (after any injected delay).
pub(crate) async fn apply(
    shared: &Shared,
    endpoint: TokenEndpoint,
    grant: &str,
    req: &FaultRequest<'_>,
) -> Option<Response> {
    let kind = take(shared, endpoint)?;
    let url = req
        .uri
        .path_and_query()
        .map_or_else(|| req.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let resp = match &kind {
        FaultKind::Delay { ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
            return None;
        }
        FaultKind::ServerError { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match endpoint {
                TokenEndpoint::V2 => {
                    json!({"error":"server_error","error_description":"An unexpected error occurred"})
                }
                TokenEndpoint::LegacyToken => json!({"error":"error_code_exchange"}),
                TokenEndpoint::LegacyRefresh => json!({"error":"server_error"}),
            };
            no_store(status, body)
        }
        FaultKind::RateLimited => {
            let settings = shared.settings();
            let rate = ratelimit::blocked_outcome(&settings, req.headers, req.peer);
            if endpoint.is_legacy() {
                let mut r = no_store(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"error":"too_many_requests"}),
                );
                crate::api::rate_headers(r.headers_mut(), rate);
                r
            } else {
                crate::api::render(shared, req.uri, Err(ApiError::throttled()), Some(rate))
            }
        }
        FaultKind::NotFound => crate::api::render(
            shared,
            req.uri,
            Err(ApiError::not_found(format!("Cannot POST {url}"))),
            None,
        ),
        FaultKind::Drop => dropped_connection(),
        FaultKind::EncryptionKeyMissing => {
            if endpoint.is_legacy() {
                no_store(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"message":"CALENDSO_ENCRYPTION_KEY is not set"}),
                )
            } else {
                no_store(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error":"server_error","error_description":"encryption_key_missing"}),
                )
            }
        }
    };
    shared.count_token_call(endpoint, grant, kind.outcome());
    Some(resp)
}

/// A response whose body fails at once: hyper then closes the connection without finishing the
/// response, so the client sees a reset or an incomplete message.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "sandbox fault: connection dropped",
        ))
    });
    Response::new(Body::from_stream(stream))
}
