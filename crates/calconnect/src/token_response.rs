//! Token-endpoint responses: tolerant parsing of success bodies and exact classification of
//! failures (docs/calcom.md §3.5, §8).
//!
//! Hand-written rather than `oauth2`'s `StandardTokenResponse`, which rejects `expires_in` given
//! as a string, cannot tell an epoch from a duration, and does not expose Cal.com's
//! `error_description` reasons as types.

use crate::claims::read_unverified_claims;
use crate::errors::{
    InvalidClientReason, InvalidGrantReason, ProtocolError, TransientError,
    UnauthorizedClientReason,
};
use crate::http::RawResponse;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::store::CalOwner;
use serde::Deserialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// Tokens received from the token endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token. On refresh, the old one when the server sent none (docs/calcom.md §8
    /// "merge on refresh"); `None` only when the server never issued one.
    pub refresh_token: Option<RefreshToken>,
    /// Whether this response carried a new refresh token (Cal.com rotates on every refresh: the
    /// old one is dead from now on, docs/calcom.md §3.4).
    pub refresh_token_rotated: bool,
    /// Absolute expiry of the access token, computed from the injected clock.
    pub expires_at: OffsetDateTime,
    /// Where `expires_at` came from.
    pub expiry_source: ExpirySource,
    /// Granted scopes: the response's `scope`, else the token's claims; `None` when neither says.
    pub scopes: Option<Vec<String>>,
    /// The Cal.com user or team, read from the access token's claims **without verification**
    /// (see [`crate::read_unverified_claims`]); `None` for opaque tokens.
    pub identity: Option<CalOwner>,
    /// The OpenID Connect ID token, when the answer has one (`openid` scope at an OIDC
    /// provider). Its claims can name the account of a custom provider's connection
    /// ([`crate::identity::IdentitySource::Claims`]).
    pub id_token: Option<IdToken>,
}

/// How the expiry of an access token was determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpirySource {
    /// `expires_in` seconds from receipt.
    ExpiresIn,
    /// `expires_in` held an epoch timestamp (a value above 10⁹, docs/calcom.md §8).
    Epoch,
    /// No usable `expires_in`: the token's unverified `exp` claim.
    TokenClaim,
    /// Nothing said: treated as already expired (docs/calcom.md §8), so it is refreshed at once.
    Unknown,
}

#[derive(Deserialize)]
struct RawTokens {
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    scope: Option<Value>,
    #[serde(default)]
    id_token: Option<String>,
}

/// Splits a scope string on commas and spaces (Cal.com's `split(/[, ]+/)`, docs/calcom.md §2).
pub(crate) fn split_scopes(scope: &str) -> Vec<String> {
    scope
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a 2xx token response body.
///
/// Tolerates: `expires_in` missing, `null`, a number, a float, a numeric string, or an epoch
/// (seconds above 10⁹ or milliseconds above 10¹²); `scope` missing, a string or an array;
/// `token_type` missing or `bearer` in any case; `refresh_token` missing.
///
/// # Errors
/// [`ProtocolError`] when the body is not a JSON object with a string `access_token`, or the
/// `token_type` is not bearer.
pub fn parse_token_response(body: &[u8], now: OffsetDateTime) -> Result<TokenSet, ProtocolError> {
    let raw: RawTokens =
        serde_json::from_slice(body).map_err(|_| ProtocolError::MalformedBody { status: 200 })?;
    let Some(access) = raw.access_token.filter(|t| !t.is_empty()) else {
        return Err(ProtocolError::MissingAccessToken);
    };
    match raw.token_type {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(other) => {
            let shown = match other {
                Value::String(s) => s,
                v => v.to_string(),
            };
            return Err(ProtocolError::UnsupportedTokenType {
                token_type: crate::callback::sanitize(&shown).chars().take(40).collect(),
            });
        }
    }
    let claims = read_unverified_claims(&access);
    let (expires_at, expiry_source) = match raw.expires_in.as_ref().and_then(expiry_number) {
        Some(n) if n > 1e12 => (epoch(n / 1000.0), ExpirySource::Epoch),
        Some(n) if n > 1e9 => (epoch(n), ExpirySource::Epoch),
        Some(n) => (
            Some(now + Duration::seconds(n as i64)),
            ExpirySource::ExpiresIn,
        ),
        None => match claims.as_ref().and_then(|c| c.expires_at) {
            Some(exp) => (Some(exp), ExpirySource::TokenClaim),
            None => (Some(now), ExpirySource::Unknown),
        },
    };
    let scopes = match raw.scope {
        Some(Value::String(s)) => Some(split_scopes(&s)),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => claims.as_ref().and_then(|c| c.scopes.clone()),
    };
    let identity = claims.and_then(|c| c.identity);
    let refresh_token = raw
        .refresh_token
        .filter(|t| !t.is_empty())
        .map(RefreshToken::new);
    Ok(TokenSet {
        access_token: AccessToken::new(access),
        refresh_token_rotated: refresh_token.is_some(),
        refresh_token,
        expires_at: expires_at.unwrap_or(now),
        expiry_source,
        scopes,
        identity,
        id_token: raw.id_token.filter(|t| !t.is_empty()).map(IdToken::new),
    })
}

/// A non-negative, finite number from a JSON number or numeric string.
fn expiry_number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (n.is_finite() && (0.0..1e15).contains(&n)).then_some(n)
}

fn epoch(seconds: f64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds as i64).ok()
}

/// The classified outcome of a non-successful token-endpoint answer.
#[derive(Debug)]
pub(crate) enum Failure {
    InvalidGrant(InvalidGrantReason),
    InvalidClient(InvalidClientReason),
    UnauthorizedClient(UnauthorizedClientReason),
    InvalidRequest(Option<String>),
    OtherOAuthError {
        code: String,
        description: Option<String>,
    },
    /// 401 without an OAuth error body (very old Cal.com legacy routes, docs/calcom.md §3.5).
    Unauthorized,
    RateLimited(Option<std::time::Duration>),
    NotFound,
    Transient(TransientError),
    Protocol(ProtocolError),
}

#[derive(Deserialize)]
struct RawError {
    error: Option<Value>,
    #[serde(default)]
    error_description: Option<Value>,
}

/// Classifies a token-endpoint answer that is not a 2xx JSON success. `now` converts a rate-limit
/// reset given as an epoch into a wait.
pub(crate) fn classify_failure(response: &RawResponse, now: OffsetDateTime) -> Failure {
    let status = response.status;
    if status.is_redirection() {
        return Failure::Protocol(ProtocolError::Redirected {
            status: status.as_u16(),
        });
    }
    if status == http::StatusCode::NOT_FOUND {
        return Failure::NotFound;
    }
    if status == http::StatusCode::TOO_MANY_REQUESTS {
        return Failure::RateLimited(rate_limit_wait(response, now));
    }
    if response.is_html() {
        return Failure::Transient(TransientError::HtmlErrorPage {
            status: status.as_u16(),
        });
    }
    let parsed: Option<RawError> = serde_json::from_slice(&response.body).ok();
    let code = parsed
        .as_ref()
        .and_then(|p| p.error.as_ref())
        .and_then(Value::as_str)
        .map(crate::callback::sanitize);
    let description = parsed
        .as_ref()
        .and_then(|p| p.error_description.as_ref())
        .and_then(Value::as_str)
        .map(|d| crate::callback::sanitize(d.trim()))
        .filter(|d| !d.is_empty());
    if status.is_server_error() {
        return Failure::Transient(TransientError::ServerError {
            status: status.as_u16(),
            error: code,
        });
    }
    match code.as_deref() {
        Some("invalid_grant") => {
            Failure::InvalidGrant(InvalidGrantReason::from_description(description))
        }
        Some("invalid_client") => {
            Failure::InvalidClient(InvalidClientReason::from_description(description))
        }
        Some("unauthorized_client") => {
            Failure::UnauthorizedClient(UnauthorizedClientReason::from_description(description))
        }
        Some("invalid_request") => Failure::InvalidRequest(description),
        Some("server_error" | "temporarily_unavailable") => {
            Failure::Transient(TransientError::ServerError {
                status: status.as_u16(),
                error: code,
            })
        }
        Some(other) => Failure::OtherOAuthError {
            code: other.to_owned(),
            description,
        },
        None if status == http::StatusCode::UNAUTHORIZED => Failure::Unauthorized,
        None if parsed.is_none() && !status.is_success() => {
            Failure::Protocol(ProtocolError::MalformedBody {
                status: status.as_u16(),
            })
        }
        None => Failure::Protocol(ProtocolError::UnexpectedStatus {
            status: status.as_u16(),
        }),
    }
}

/// Classifies an arbitrary answer; for the fuzz targets (`fuzz/`), not part of the API.
#[doc(hidden)]
pub fn fuzz_classify(status: u16, content_type: &str, body: &[u8]) {
    let Ok(status) = http::StatusCode::from_u16(status) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, value.clone());
        headers.insert(http::header::RETRY_AFTER, value);
    }
    let response = RawResponse {
        status,
        headers,
        body: secrecy::zeroize::Zeroizing::new(body.to_vec()),
    };
    let _ = classify_failure(&response, OffsetDateTime::UNIX_EPOCH);
}

/// How long a 429 asks us to wait: `Retry-After` in seconds (the HTTP-date form is ignored),
/// else the throttler's `X-RateLimit-Reset-*` header. Cal.com's token endpoint sends no
/// `Retry-After`, only the reset ([docs/calcom.md](../../../docs/calcom.md), rate limits); the
/// caller applies a bounded default when neither is present.
fn rate_limit_wait(response: &RawResponse, now: OffsetDateTime) -> Option<std::time::Duration> {
    crate::api::RateLimitHeaders::parse(&response.headers, now.unix_timestamp()).reset
}

#[cfg(test)]
#[path = "token_response_tests.rs"]
mod tests;
