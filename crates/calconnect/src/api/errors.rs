//! [`ApiError`]: an API v2 call failed. Every variant names the method and the path (never the
//! query, never the token) and, where Cal.com answered, its error envelope.

use super::envelope::ErrorEnvelope;
use super::token_source::TokenSourceError;
use crate::http::TransportErrorKind;
use http::Method;
use std::fmt;
use std::time::Duration;

/// The request a failure belongs to: method and path (without query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLabel {
    /// The HTTP method.
    pub method: Method,
    /// The path, e.g. `/v2/schedules`.
    pub path: String,
}

impl fmt::Display for RequestLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// One failed attempt, for the "what was tried" list of the final error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailedAttempt {
    /// The request did not complete.
    Transport(TransportErrorKind),
    /// Cal.com (or a proxy) answered with this status.
    Status(u16),
}

impl fmt::Display for FailedAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(TransportErrorKind::Connect) => f.write_str("could not connect"),
            Self::Transport(TransportErrorKind::Timeout) => f.write_str("timed out"),
            Self::Transport(TransportErrorKind::Interrupted) => f.write_str("connection broke"),
            Self::Transport(TransportErrorKind::TooLarge { limit }) => {
                write!(f, "answer over {limit} bytes")
            }
            Self::Status(status) => write!(f, "HTTP {status}"),
        }
    }
}

/// The attempts as `HTTP 503, HTTP 503, timed out`.
pub(crate) struct Attempts<'a>(pub(crate) &'a [FailedAttempt]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

fn message_of(envelope: &ErrorEnvelope) -> String {
    let mut parts: Vec<String> = Vec::new();
    match (&envelope.code, &envelope.message) {
        (Some(c), Some(m)) => parts.push(format!("{c}: {m}")),
        (Some(x), None) | (None, Some(x)) => parts.push(x.clone()),
        (None, None) => {}
    }
    if let Some(r) = &envelope.request_id {
        parts.push(format!("request id {r}"));
    }
    if parts.is_empty() {
        "no details".to_owned()
    } else {
        parts.join("; ")
    }
}

/// An API v2 call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The token was rejected (401, or 403 "no oAuth client found for access token"), a fresh
    /// one was fetched and the retry was rejected too (or the source could not refresh).
    #[error("{request}: the access token was rejected{}: reconnect the account if this persists ({})", if *.after_refresh { " even after a refresh" } else { "" }, message_of(.envelope))]
    Unauthorized {
        /// The request.
        request: RequestLabel,
        /// Whether a refreshed token was tried too.
        after_refresh: bool,
        /// Cal.com's envelope of the last answer.
        envelope: Box<ErrorEnvelope>,
    },
    /// 403 `insufficient_scope`: the connection lacks a scope. Permanent: ask the user to
    /// connect again with the scopes listed in `required` (docs/calcom.md §5).
    #[error("{request}: the connection lacks the scopes {} (it has {}): connect again requesting them", .required.join(", "), if .granted.is_empty() { "none listed".to_owned() } else { .granted.join(", ") })]
    InsufficientScope {
        /// The request.
        request: RequestLabel,
        /// The missing scopes Cal.com named.
        required: Vec<String>,
        /// The scopes the token has.
        granted: Vec<String>,
        /// Cal.com's envelope.
        envelope: Box<ErrorEnvelope>,
    },
    /// 403 `insufficient_scope: this endpoint is not available for third-party OAuth tokens`.
    #[error("{request}: Cal.com does not allow OAuth tokens on this endpoint ({})", message_of(.envelope))]
    NotForOAuthTokens {
        /// The request.
        request: RequestLabel,
        /// Cal.com's envelope.
        envelope: Box<ErrorEnvelope>,
    },
    /// Any other 403 (e.g. a schedule of another user).
    #[error("{request}: forbidden ({})", message_of(.envelope))]
    Forbidden {
        /// The request.
        request: RequestLabel,
        /// Cal.com's envelope.
        envelope: Box<ErrorEnvelope>,
    },
    /// 404.
    #[error("{request}: not found ({})", message_of(.envelope))]
    NotFound {
        /// The request.
        request: RequestLabel,
        /// Cal.com's envelope.
        envelope: Box<ErrorEnvelope>,
    },
    /// 429 that was not (or no longer) retried: a non-idempotent request, the reset lies beyond
    /// the configured cap, or the retries ran out (docs/calcom.md §6).
    #[error("{request}: rate limited by the API after {attempts} attempt(s){}: try again later ({})", .reset.map(|r| format!(", the limit resets in {}s", r.as_secs())).unwrap_or_default(), message_of(.envelope))]
    RateLimited {
        /// The request.
        request: RequestLabel,
        /// Requests sent.
        attempts: u32,
        /// When the limit resets, if Cal.com said.
        reset: Option<Duration>,
        /// Cal.com's envelope of the last answer.
        envelope: Box<ErrorEnvelope>,
    },
    /// Network failures, timeouts, 5xx or HTML error pages, after the retries the policy allows
    /// (idempotent methods only).
    #[error("{request}: failed for now after {} attempt(s) ({}): try again later", .attempts.len(), Attempts(.attempts))]
    Transient {
        /// The request.
        request: RequestLabel,
        /// Every failed attempt, in order.
        attempts: Vec<FailedAttempt>,
        /// Cal.com's envelope of the last answer, when there was one.
        envelope: Option<Box<ErrorEnvelope>>,
    },
    /// Any other 4xx (e.g. 400 validation errors: `envelope.details` lists them).
    #[error("{request}: rejected with HTTP {status} ({})", message_of(.envelope))]
    Rejected {
        /// The request.
        request: RequestLabel,
        /// The status.
        status: u16,
        /// Cal.com's envelope.
        envelope: Box<ErrorEnvelope>,
    },
    /// The token source had no token.
    #[error("{request}: no access token: {source}")]
    Token {
        /// The request.
        request: RequestLabel,
        /// Why.
        #[source]
        source: TokenSourceError,
    },
    /// The answer is not what the endpoint documents (malformed JSON, a redirect, too large).
    #[error("{request}: unexpected answer (HTTP {status}): {reason}")]
    Protocol {
        /// The request.
        request: RequestLabel,
        /// The status; 0 when the body could not be read (over the size limit).
        status: u16,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be built (a path that is not a path, a header value with
    /// control characters).
    #[error("{request}: invalid request: {reason}")]
    InvalidRequest {
        /// The request.
        request: RequestLabel,
        /// What is wrong.
        reason: String,
    },
}

impl ApiError {
    /// The request that failed.
    pub fn request(&self) -> &RequestLabel {
        match self {
            Self::Unauthorized { request, .. }
            | Self::InsufficientScope { request, .. }
            | Self::NotForOAuthTokens { request, .. }
            | Self::Forbidden { request, .. }
            | Self::NotFound { request, .. }
            | Self::RateLimited { request, .. }
            | Self::Transient { request, .. }
            | Self::Rejected { request, .. }
            | Self::Token { request, .. }
            | Self::Protocol { request, .. }
            | Self::InvalidRequest { request, .. } => request,
        }
    }

    /// Cal.com's error envelope, when it answered with one.
    pub fn envelope(&self) -> Option<&ErrorEnvelope> {
        match self {
            Self::Unauthorized { envelope, .. }
            | Self::InsufficientScope { envelope, .. }
            | Self::NotForOAuthTokens { envelope, .. }
            | Self::Forbidden { envelope, .. }
            | Self::NotFound { envelope, .. }
            | Self::RateLimited { envelope, .. }
            | Self::Rejected { envelope, .. } => Some(envelope),
            Self::Transient { envelope, .. } => envelope.as_deref(),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (rate limit, network, 5xx, a transient token
    /// source failure).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transient { .. } => true,
            Self::Token { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// Whether the user must connect the account again (a dead grant, or missing scopes).
    pub fn needs_reauthorization(&self) -> bool {
        match self {
            Self::InsufficientScope { .. } => true,
            Self::Token { source, .. } => source.requires_reauthorization(),
            _ => false,
        }
    }
}
