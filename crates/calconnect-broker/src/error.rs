//! Errors of the JSON API: `{"error": {"code", "message"}}` with the right status. Internal
//! causes are logged once (without secrets) and replaced by a generic message (docs/architecture.md §7.5).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<std::time::Duration>,
}

/// Every API error's body, `{"error": {"code", "message"}}`: what [`ApiError`] sends and what the
/// OpenAPI document describes (one type for both).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code (stable, for programs) and message (for people).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// e.g. `invalid_request`, `unauthorized`, `not_found`, `connection_needs_reauth`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error with a status, a stable machine code and a message for the developer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header (whole seconds, rounded up, at least 1).
    #[must_use]
    pub fn with_retry_after(mut self, after: Option<std::time::Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API key as `Authorization: Bearer <key>` (create one with `calconnect api-keys create`)",
        )
    }

    /// 500 `internal_error`: logs `cause` (it must not hold secrets) and hides it from the client.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the broker failed to handle the request; see its logs",
        )
    }

    /// 503 `unavailable`: logs `cause`.
    pub fn unavailable(cause: &dyn std::error::Error) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency (database or Cal.com) is unavailable; retry later",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let seconds = after.as_millis().div_ceil(1000).max(1);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(u64::try_from(seconds).unwrap_or(u64::MAX)),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_request",
        };
        // The rejection text describes the JSON problem (field, line, column), never a secret.
        Self::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::invalid(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::invalid(r.body_text())
    }
}

impl From<calconnect::store::StoreError> for ApiError {
    fn from(e: calconnect::store::StoreError) -> Self {
        match e {
            calconnect::store::StoreError::NotFound { .. } => Self::not_found("no such connection"),
            calconnect::store::StoreError::Unavailable { .. } => Self::unavailable(&e),
            other => Self::internal(&other),
        }
    }
}

/// The keeper's answer when it has no token to give (docs/architecture.md §3.5–§3.7).
impl From<calconnect::keeper::KeeperError> for ApiError {
    fn from(e: calconnect::keeper::KeeperError) -> Self {
        use calconnect::keeper::KeeperError as K;
        let reauth = |status: &str, reason: &str| {
            Self::new(
                StatusCode::CONFLICT,
                "connection_needs_reauth",
                format!(
                    "the connection is {status} ({reason}): create a connect session and send the user through it again"
                ),
            )
        };
        match e {
            K::NotFound { .. } => Self::not_found("no such connection"),
            K::NeedsReauth { ref reason, .. } => reauth("needs_reauth", reason),
            K::RefreshLost { ref reason, .. } => reauth("refresh_lost", reason),
            K::BudgetExhausted { retry_after, .. } => {
                tracing::warn!(error = %e, "no token for now: the refresh budget is spent");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "budget_exhausted",
                    "too many token refreshes are due at once for Cal.com's rate limit; the connection is still active, retry after the Retry-After seconds",
                )
                .with_retry_after(Some(retry_after))
            }
            ref transient
                if transient.is_transient()
                    || matches!(transient, K::Store { source, .. }
                        if matches!(**source, calconnect::store::StoreError::Unavailable { .. })) =>
            {
                tracing::warn!(error = %transient, "no token for now");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "Cal.com or the store is unavailable for now; the connection is still active, retry shortly",
                )
                .with_retry_after(transient.retry_after())
            }
            other => {
                tracing::error!(error = %other, "token failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the broker failed to get a token; see its logs",
                )
            }
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        Self::unavailable(&e)
    }
}
