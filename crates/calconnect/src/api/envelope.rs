//! Cal.com's API v2 error envelope in structured form, and what a rejection means
//! (docs/calcom.md §5):
//!
//! ```json
//! {"status":"error","timestamp":"2025-…Z","path":"/v2/me",
//!  "error":{"code":"UnauthorizedException","message":"…","details":{…}}}
//! ```
//! plus the `X-Request-Id` header.
//!
//! # Security
//! Cal.com echoes the whole access token in the 403 "no oAuth client found for access
//! token=eyJ…" message (`calcom#24840`). Every string taken from an error body is redacted: the
//! token we sent is replaced, and so is anything after `access token=`.

use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

/// Longest text kept from an error body (characters).
const MAX_TEXT: usize = 1000;
/// The marker of the expired-token 403 (docs/calcom.md §5).
const NO_OAUTH_CLIENT: &str = "no oAuth client found for access token";
const REDACTED: &str = "[redacted]";

/// The error envelope of an API v2 answer, with secrets removed.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ErrorEnvelope {
    /// `error.code`: the Nest exception class, e.g. `UnauthorizedException`, `ThrottlerException`.
    pub code: Option<String>,
    /// `error.message`.
    pub message: Option<String>,
    /// `error.details` (for built-in exceptions `{message, error, statusCode}`).
    pub details: Option<Value>,
    /// The `X-Request-Id` header: quote it when asking Cal.com's support.
    pub request_id: Option<String>,
    /// `timestamp`, as sent.
    pub timestamp: Option<String>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    error: Option<RawError>,
    /// Bodies that are not the envelope (API v1, proxies) often carry a top-level message.
    #[serde(default)]
    message: Option<Value>,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    details: Option<Value>,
}

impl ErrorEnvelope {
    /// Reads the envelope from an error answer. Never fails: what is missing stays `None`.
    /// `token` is the access token that was sent, to be redacted wherever it appears.
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8], token: &str) -> Self {
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| clean(v, token));
        let raw: Option<RawEnvelope> = serde_json::from_slice(body).ok();
        let Some(raw) = raw else {
            return Self {
                request_id,
                ..Self::default()
            };
        };
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(clean(&s, token)),
            Some(Value::Null) | None => None,
            Some(other) => Some(clean(&other.to_string(), token)),
        };
        let (code, message, details) = match raw.error {
            Some(e) => (
                text(e.code),
                text(e.message),
                e.details.map(|d| redact_value(d, token)),
            ),
            None => (None, text(raw.message), None),
        };
        Self {
            code,
            message,
            details,
            request_id,
            timestamp: raw.timestamp.map(|t| clean(&t, token)),
        }
    }

    /// The message, or an empty string.
    pub fn message_or_empty(&self) -> &str {
        self.message.as_deref().unwrap_or("")
    }
}

/// Removes control characters, caps the length, redacts the token.
fn clean(text: &str, token: &str) -> String {
    let mut s: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect();
    if !token.is_empty() && s.contains(token) {
        s = s.replace(token, REDACTED);
    }
    // "…access token=eyJ…": the marker may be followed by any token, also a truncated one.
    if let Some(at) = s.find("access token=") {
        let keep = at + "access token=".len();
        if s[keep..] != *REDACTED {
            s.truncate(keep);
            s.push_str(REDACTED);
        }
    }
    s
}

fn redact_value(value: Value, token: &str) -> Value {
    match value {
        Value::String(s) => Value::String(clean(&s, token)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| redact_value(v, token)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, redact_value(v, token)))
                .collect(),
        ),
        other => other,
    }
}

/// What a 401/403 answer of API v2 means for the caller (docs/calcom.md §5, §8). The one rule
/// for "refresh and retry": [`CalClient`](crate::api::CalClient) and the broker's proxy both use
/// [`Rejection::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// 401, or 403 "no oAuth client found for access token": refresh and retry once.
    TokenUnusable,
    /// 403 `insufficient_scope: token does not have the required scopes. Required: X. Token has: A, B`.
    InsufficientScope {
        /// The scopes Cal.com says are missing.
        required: Vec<String>,
        /// The token's scopes.
        granted: Vec<String>,
    },
    /// 403 `insufficient_scope: this endpoint is not available for third-party OAuth tokens`.
    NotForOAuthTokens,
    /// Any other 403 (e.g. someone else's schedule).
    Forbidden,
}

impl Rejection {
    /// Classifies an answer of API v2: `None` unless the status is 401 or 403.
    pub fn of(status: http::StatusCode, body: &[u8]) -> Option<Self> {
        let code = status.as_u16();
        if code != 401 && code != 403 {
            return None;
        }
        let envelope = ErrorEnvelope::parse(&HeaderMap::new(), body, "");
        Some(classify_rejection(code, &envelope))
    }

    /// Whether the access token itself was refused: refresh once and retry once.
    pub fn refresh_and_retry(&self) -> bool {
        matches!(self, Self::TokenUnusable)
    }
}

/// Classifies a 401 or 403 answer.
pub(crate) fn classify_rejection(status: u16, envelope: &ErrorEnvelope) -> Rejection {
    let message = envelope.message_or_empty();
    if status == 401 || message.contains(NO_OAUTH_CLIENT) {
        return Rejection::TokenUnusable;
    }
    let Some(rest) = message.trim().strip_prefix("insufficient_scope") else {
        return Rejection::Forbidden;
    };
    let rest = rest.trim_start_matches(':').trim();
    if rest.contains("not available for third-party OAuth tokens") {
        return Rejection::NotForOAuthTokens;
    }
    let list = |s: &str| -> Vec<String> {
        s.trim()
            .trim_end_matches('.')
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (required, granted) = match rest.split_once("Required:") {
        Some((_, after)) => match after.split_once("Token has:") {
            Some((req, has)) => (list(req), list(has)),
            None => (list(after), Vec::new()),
        },
        None => (Vec::new(), Vec::new()),
    };
    Rejection::InsufficientScope { required, granted }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_public_rejection_rule_is_the_clients() {
        use http::StatusCode;
        assert_eq!(Rejection::of(StatusCode::OK, b""), None);
        assert_eq!(Rejection::of(StatusCode::TOO_MANY_REQUESTS, b""), None);
        assert!(
            Rejection::of(StatusCode::UNAUTHORIZED, b"")
                .unwrap()
                .refresh_and_retry()
        );
        let expired = br#"{"status":"error","error":{"code":"ForbiddenException","message":"PermissionsGuard - no oAuth client found for access token=eyJ"}}"#;
        assert!(
            Rejection::of(StatusCode::FORBIDDEN, expired)
                .unwrap()
                .refresh_and_retry()
        );
        let scope = br#"{"status":"error","error":{"code":"ForbiddenException","message":"insufficient_scope: token does not have the required scopes. Required: SCHEDULE_READ. Token has: PROFILE_READ"}}"#;
        let r = Rejection::of(StatusCode::FORBIDDEN, scope).unwrap();
        assert!(!r.refresh_and_retry());
        assert_eq!(
            r,
            Rejection::InsufficientScope {
                required: vec!["SCHEDULE_READ".into()],
                granted: vec!["PROFILE_READ".into()]
            }
        );
        assert_eq!(
            Rejection::of(StatusCode::FORBIDDEN, b"<html>nope</html>"),
            Some(Rejection::Forbidden)
        );
    }

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("req-42"));
        h
    }

    #[test]
    fn parses_the_documented_envelope() {
        let body = br#"{"status":"error","timestamp":"2025-01-01T00:00:00.000Z","path":"/v2/me",
            "error":{"code":"UnauthorizedException","message":"Invalid Access Token.",
            "details":{"message":"Invalid Access Token.","error":"Unauthorized","statusCode":401}}}"#;
        let e = ErrorEnvelope::parse(&headers(), body, "eyJtok");
        assert_eq!(e.code.as_deref(), Some("UnauthorizedException"));
        assert_eq!(e.message.as_deref(), Some("Invalid Access Token."));
        assert_eq!(e.request_id.as_deref(), Some("req-42"));
        assert_eq!(e.details.unwrap()["statusCode"], 401);
        assert_eq!(
            classify_rejection(401, &ErrorEnvelope::default()),
            Rejection::TokenUnusable
        );
    }

    #[test]
    fn the_echoed_token_is_redacted_everywhere() {
        let body = br#"{"status":"error","error":{"code":"ForbiddenException",
            "message":"PermissionsGuard - no oAuth client found for access token=eyJhbGciOi.secret.sig",
            "details":{"message":"PermissionsGuard - no oAuth client found for access token=eyJhbGciOi.secret.sig","error":"Forbidden"}}}"#;
        let e = ErrorEnvelope::parse(&headers(), body, "eyJhbGciOi.secret.sig");
        let shown = format!("{e:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(
            e.message.as_deref(),
            Some("PermissionsGuard - no oAuth client found for access token=[redacted]")
        );
        assert_eq!(classify_rejection(403, &e), Rejection::TokenUnusable);
        // A truncated echo of some other token is cut too.
        let e = ErrorEnvelope::parse(
            &HeaderMap::new(),
            br#"{"error":{"message":"no oAuth client found for access token=eyJabc"}}"#,
            "other",
        );
        assert!(!e.message.unwrap().contains("eyJabc"));
    }

    #[test]
    fn insufficient_scope_names_required_and_granted() {
        let e = ErrorEnvelope {
            message: Some("insufficient_scope: token does not have the required scopes. Required: SCHEDULE_READ. Token has: PROFILE_READ, BOOKING_READ".into()),
            ..ErrorEnvelope::default()
        };
        assert_eq!(
            classify_rejection(403, &e),
            Rejection::InsufficientScope {
                required: vec!["SCHEDULE_READ".into()],
                granted: vec!["PROFILE_READ".into(), "BOOKING_READ".into()],
            }
        );
        let e = ErrorEnvelope {
            message: Some(
                "insufficient_scope: this endpoint is not available for third-party OAuth tokens"
                    .into(),
            ),
            ..ErrorEnvelope::default()
        };
        assert_eq!(classify_rejection(403, &e), Rejection::NotForOAuthTokens);
        let e = ErrorEnvelope {
            message: Some("User with ID=1 does not own schedule with ID=201".into()),
            ..ErrorEnvelope::default()
        };
        assert_eq!(classify_rejection(403, &e), Rejection::Forbidden);
    }

    #[test]
    fn non_envelope_bodies_keep_the_request_id() {
        let e = ErrorEnvelope::parse(&headers(), b"<html>bad gateway</html>", "t");
        assert_eq!(e.request_id.as_deref(), Some("req-42"));
        assert_eq!(e.message, None);
        let e = ErrorEnvelope::parse(&headers(), br#"{"message":"No apiKey provided"}"#, "t");
        assert_eq!(e.message.as_deref(), Some("No apiKey provided"));
    }
}
