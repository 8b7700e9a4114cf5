//! The API v2 error envelope (`calcom-facts.md` §5.2), as `HttpExceptionFilter` writes it
//! (`apps/api/v2/src/filters/http-exception.filter.ts@a557978`):
//!
//! ```json
//! {"status":"error","timestamp":"…","path":"/v2/me",
//!  "error":{"code":"UnauthorizedException","message":"…","details":{…}}}
//! ```
//!
//! `code` is the Nest exception class name, `message` its message and `details` is
//! `exception.getResponse()`: `{message, error, statusCode}` for the built-in exceptions, and the
//! bare message string for `ThrottlerException` (constructed from a string). `path` is Express's
//! `request.url`, i.e. path *and* query.

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An API v2 error: rendered into the envelope by [`ApiError::body`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Nest exception class name, e.g. `UnauthorizedException`.
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

/// The message `ThrottlerException` carries in Cal.com's guard (`throttler-guard.ts`).
pub const THROTTLED_MESSAGE: &str = "Too many requests. Please try again later.";

impl ApiError {
    fn http(status: StatusCode, code: &'static str, error: &str, message: String) -> Self {
        let details = json!({"message": message, "error": error, "statusCode": status.as_u16()});
        Self {
            status,
            code,
            message,
            details,
        }
    }

    /// 401 `UnauthorizedException`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::http(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedException",
            "Unauthorized",
            message.into(),
        )
    }

    /// 403 `ForbiddenException`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::http(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            "Forbidden",
            message.into(),
        )
    }

    /// 404 `NotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::http(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            "Not Found",
            message.into(),
        )
    }

    /// 400 from Nest's `ValidationPipe`: the exception message is the generic
    /// "Bad Request Exception" and the validator texts are an array in `details.message`.
    pub fn validation(messages: Vec<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequestException",
            message: "Bad Request Exception".to_owned(),
            details: json!({"message": messages, "error": "Bad Request", "statusCode": 400}),
        }
    }

    /// 429 `ThrottlerException` (§5.3). `details` is the bare string, because the exception is
    /// built from a string and `getResponse()` returns it unchanged.
    pub fn throttled() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "ThrottlerException",
            message: THROTTLED_MESSAGE.to_owned(),
            details: Value::String(THROTTLED_MESSAGE.to_owned()),
        }
    }

    /// The envelope for a request to `path` (path and query) at `now`.
    pub fn body(&self, path: &str, now: OffsetDateTime) -> Value {
        json!({
            "status": "error",
            "timestamp": iso_millis(now),
            "path": path,
            "error": {"code": self.code, "message": self.message, "details": self.details},
        })
    }
}

/// JavaScript's `Date.prototype.toISOString()`: UTC, milliseconds, `Z`.
pub fn iso_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ms = t.millisecond();
    let whole = t.replace_millisecond(0).unwrap_or(t);
    let s = whole.format(&Rfc3339).unwrap_or_default();
    // Rfc3339 prints `…:SSZ` for a whole second; splice the milliseconds in.
    match s.strip_suffix('Z') {
        Some(head) => format!("{head}.{ms:03}Z"),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_millis_matches_javascript() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_000_000).unwrap();
        assert_eq!(iso_millis(t), "2027-01-15T08:00:00.123Z");
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(iso_millis(t), "2027-01-15T08:00:00.000Z");
    }

    #[test]
    fn throttled_envelope() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            ApiError::throttled().body("/v2/me", t),
            json!({"status":"error","timestamp":"2027-01-15T08:00:00.000Z","path":"/v2/me",
                "error":{"code":"ThrottlerException","message":"Too many requests. Please try again later.",
                "details":"Too many requests. Please try again later."}})
        );
    }
}
