//! The API v2 error envelope (`docs/calcom.md` §5), as `HttpExceptionFilter` writes it
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
//!
//! [`ApiError::render`] writes the keys in the order Cal.com's filter writes them (`status`,
//! `timestamp`, `path`, `error{code, message, details}`, and Nest's `{message, error,
//! statusCode}` inside `details`), so a body can be compared byte for byte.
//!
//! A plain `Error` thrown by a handler is no `HttpException`: none of Cal.com's own filters catch
//! it, and Nest's `BaseExceptionFilter` (via Sentry's global filter, `app.module.ts`) answers
//! 500 `{"statusCode":500,"message":"Internal server error"}` without the envelope
//! ([`ApiError::unhandled`]).

use axum::http::StatusCode;
use serde::Serialize;
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
    /// `true` for an error no Cal.com filter catches: Nest's own body instead of the envelope.
    pub unhandled: bool,
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
            unhandled: false,
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
            unhandled: false,
        }
    }

    /// 429 `ThrottlerException` (§6). `details` is the bare string, because the exception is
    /// built from a string and `getResponse()` returns it unchanged.
    pub fn throttled() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "ThrottlerException",
            message: THROTTLED_MESSAGE.to_owned(),
            details: Value::String(THROTTLED_MESSAGE.to_owned()),
            unhandled: false,
        }
    }

    /// A plain `Error` (e.g. `new Error("Schedules not found")`) escaping a handler: 500 with
    /// Nest's `{"statusCode":500,"message":"Internal server error"}`.
    pub fn unhandled() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "Error",
            message: "Internal server error".to_owned(),
            details: Value::Null,
            unhandled: true,
        }
    }

    /// The envelope for a request to `path` (path and query) at `now` (for an unhandled error,
    /// Nest's own body).
    pub fn body(&self, path: &str, now: OffsetDateTime) -> Value {
        if self.unhandled {
            return json!({"statusCode": self.status.as_u16(), "message": self.message});
        }
        json!({
            "status": "error",
            "timestamp": iso_millis(now),
            "path": path,
            "error": {"code": self.code, "message": self.message, "details": self.details},
        })
    }

    /// [`ApiError::body`] as the bytes Cal.com sends, keys in Cal.com's order.
    pub fn render(&self, path: &str, now: OffsetDateTime) -> String {
        #[derive(Serialize)]
        struct Envelope<'a> {
            status: &'static str,
            timestamp: String,
            path: &'a str,
            error: ErrorBody<'a>,
        }
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            code: &'a str,
            message: &'a str,
            details: Details<'a>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Unhandled<'a> {
            status_code: u16,
            message: &'a str,
        }
        let text = if self.unhandled {
            serde_json::to_string(&Unhandled {
                status_code: self.status.as_u16(),
                message: &self.message,
            })
        } else {
            serde_json::to_string(&Envelope {
                status: "error",
                timestamp: iso_millis(now),
                path,
                error: ErrorBody {
                    code: self.code,
                    message: &self.message,
                    details: Details(&self.details),
                },
            })
        };
        text.unwrap_or_default()
    }
}

/// `details` with the keys of Nest's exception bodies in Nest's order (`message`, `error`,
/// `statusCode`), any others after them; non-objects as they are.
struct Details<'a>(&'a Value);

impl Serialize for Details<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const FIRST: [&str; 3] = ["message", "error", "statusCode"];
        let Value::Object(map) = self.0 else {
            return self.0.serialize(s);
        };
        let mut m = s.serialize_map(Some(map.len()))?;
        for k in FIRST {
            if let Some(v) = map.get(k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in map.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())) {
            m.serialize_entry(k, v)?;
        }
        m.end()
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
    fn rendered_in_cal_com_key_order() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            ApiError::throttled().render("/v2/me?x=1", t),
            r#"{"status":"error","timestamp":"2027-01-15T08:00:00.000Z","path":"/v2/me?x=1","error":{"code":"ThrottlerException","message":"Too many requests. Please try again later.","details":"Too many requests. Please try again later."}}"#
        );
        assert_eq!(
            ApiError::unauthorized("No").render("/v2/me", t),
            r#"{"status":"error","timestamp":"2027-01-15T08:00:00.000Z","path":"/v2/me","error":{"code":"UnauthorizedException","message":"No","details":{"message":"No","error":"Unauthorized","statusCode":401}}}"#
        );
        assert_eq!(
            ApiError::unhandled().render("/v2/schedules", t),
            r#"{"statusCode":500,"message":"Internal server error"}"#
        );
        for e in [
            ApiError::throttled(),
            ApiError::forbidden("f"),
            ApiError::validation(vec!["a".into()]),
            ApiError::unhandled(),
        ] {
            let rendered: Value = serde_json::from_str(&e.render("/p", t)).unwrap();
            assert_eq!(rendered, e.body("/p", t));
        }
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
