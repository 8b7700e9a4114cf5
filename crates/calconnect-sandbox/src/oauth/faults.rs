//! Fault injection for the token endpoints (v2 and legacy), and the per-call counters.
//!
//! A [`FaultRule`] hits the next `count` matching calls, or every matching call until a sandbox
//! time (a "fail for D seconds" mode for demos; a frozen clock only moves when advanced). The first
//! matching rule wins; at most one fault applies per call.
//!
//! Shapes (the real service was not observed failing like this, so these are choices):
//! - `server_error {status}`: that 5xx status with the endpoint's unexpected-error body — v2
//!   `{"error":"server_error","error_description":"An unexpected error occurred"}` (§3.4), legacy
//!   token `{"error":"error_code_exchange"}`, legacy refresh `{"error":"server_error"}`.
//! - `rate_limited`: 429 with a bare OAuth-style body
//!   `{"error":"too_many_requests","error_description":"Too many requests. Please try again later."}`
//!   (legacy: `{"error":"too_many_requests"}`) and `X-RateLimit-*-Default` headers, no
//!   `Retry-After` (§5.3 says Cal.com's guard sets none). Not the API v2 envelope: the token
//!   endpoint answers bare JSON everywhere else.
//! - `drop`: the connection is closed without a complete response.
//! - `not_found`: the v2 endpoint answers 404 in the API v2 error envelope, as a missing Nest
//!   route does (calcom#27685). Applies to the v2 endpoint only, whatever the target.
//! - `encryption_key_missing`: the §3.4 500 answers of a server without its signing key.
//! - `delay {ms}`: the call waits, then is processed normally (and counted by its real outcome).

use super::errors::no_store;
use crate::state::{Shared, TokenEndpoint};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
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
    /// 429 Too Many Requests.
    RateLimited,
    /// Close the connection without a complete response.
    Drop,
    /// 404 on the v2 endpoint (calcom#27685).
    NotFound,
    /// The server lost `CALENDSO_ENCRYPTION_KEY` (§3.4): v2 500
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

/// Takes the fault (if any) for this call, consuming one use of its rule.
fn take(shared: &Shared, endpoint: TokenEndpoint) -> Option<FaultKind> {
    let now = shared.clock.now();
    let mut db = shared.db();
    db.faults.retain(|r| r.until.is_none_or(|u| u > now));
    let idx = db.faults.iter().position(|r| {
        r.target.matches(endpoint)
            && (r.kind != FaultKind::NotFound || endpoint == TokenEndpoint::V2)
    })?;
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

/// Applies the pending fault for this call, if any. `Some(response)` ends the call (already
/// counted); `None` means "process normally" (after any injected delay).
pub(crate) async fn apply(
    shared: &Shared,
    endpoint: TokenEndpoint,
    grant: &str,
    path: &str,
) -> Option<Response> {
    let kind = take(shared, endpoint)?;
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
            let body = if endpoint.is_legacy() {
                json!({"error":"too_many_requests"})
            } else {
                json!({"error":"too_many_requests",
                    "error_description":"Too many requests. Please try again later."})
            };
            let mut r = no_store(StatusCode::TOO_MANY_REQUESTS, body);
            let h = r.headers_mut();
            let limit = shared.settings().rate_limit;
            h.insert("x-ratelimit-limit-default", HeaderValue::from(limit));
            h.insert("x-ratelimit-remaining-default", HeaderValue::from(0u32));
            h.insert("x-ratelimit-reset-default", HeaderValue::from(60u32));
            r
        }
        FaultKind::NotFound => {
            let message = format!("Cannot POST {path}");
            let now = shared
                .clock
                .now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let body = json!({"status":"error","timestamp":now,"path":path,
                "error":{"code":"NotFoundException","message":message,
                    "details":{"message":message,"error":"Not Found","statusCode":404}}});
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
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
    shared
        .db()
        .count_token_call(endpoint, grant, kind.outcome());
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
