//! The escape hatch: [`RawRequest`] for any API v2 endpoint, answered by an [`ApiResponse`].

use super::client::CalClient;
use super::errors::{ApiError, RequestLabel};
use super::models::DataEnvelope;
use super::ratelimit::RateLimitHeaders;
use super::request::Spec;
use super::retry::is_idempotent;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// A request being built; [`RawRequest::send`] runs it.
#[must_use = "a request does nothing until sent"]
pub struct RawRequest<'a> {
    client: &'a CalClient,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    api_version: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<Result<Vec<u8>, String>>,
    idempotent: Option<bool>,
}

impl fmt::Debug for RawRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("api_version", &self.api_version)
            .field("body", &self.body.as_ref().map(|_| "[not shown]"))
            .finish_non_exhaustive()
    }
}

impl<'a> RawRequest<'a> {
    pub(crate) fn new(client: &'a CalClient, method: Method, path: &str) -> Self {
        Self {
            client,
            method,
            path: path.to_owned(),
            query: Vec::new(),
            api_version: None,
            headers: Vec::new(),
            body: None,
            idempotent: None,
        }
    }

    /// Sends `cal-api-version: version` (without it Cal.com falls back to 2024-04-15, §5).
    pub fn api_version(mut self, version: &str) -> Self {
        self.api_version = Some(version.to_owned());
        self
    }

    /// Appends a query parameter.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header (`Authorization` and `Host` are calconnect's and are refused at send).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = Some(serde_json::to_vec(body).map_err(|e| e.to_string()));
        self
    }

    /// Overrides whether the request may be repeated after a transient failure or a 429
    /// (default: by method, RFC 9110 §9.2.2 — GET, HEAD, OPTIONS, PUT, DELETE are).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    fn spec(self) -> Result<Spec, ApiError> {
        let base = &self.client.inner.api_base;
        let relative = self.path.split(['?', '#']).next().unwrap_or("");
        let mut url = base.join_path(relative).as_url().clone();
        let label = RequestLabel {
            method: self.method.clone(),
            path: url.path().to_owned(),
        };
        let invalid = |reason: String| ApiError::InvalidRequest {
            request: label.clone(),
            reason,
        };
        if relative != self.path
            || relative.contains("://")
            || relative.split('/').any(|s| s == "..")
        {
            return Err(invalid(
                "the path must be a plain path relative to the API base, without query or `..`; add query parameters with .query()"
                    .to_owned(),
            ));
        }
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("`{name}` is not a header name")))?;
            if name == AUTHORIZATION || name == HOST {
                return Err(invalid(format!("the `{name}` header is set by calconnect")));
            }
            let value = HeaderValue::from_str(value).map_err(|_| {
                invalid(format!("the value of `{name}` is not a valid header value"))
            })?;
            headers.append(name, value);
        }
        let api_version = self
            .api_version
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| invalid("the cal-api-version is not a valid header value".to_owned()))?;
        let body = match self.body {
            Some(Ok(bytes)) => Some((bytes, HeaderValue::from_static("application/json"))),
            Some(Err(e)) => return Err(invalid(format!("the JSON body does not serialize: {e}"))),
            None => None,
        };
        Ok(Spec {
            idempotent: self
                .idempotent
                .unwrap_or_else(|| is_idempotent(&self.method)),
            method: self.method,
            url,
            label,
            api_version,
            headers,
            body,
        })
    }

    /// Sends the request: a 2xx answer, or an [`ApiError`] for everything else.
    ///
    /// # Errors
    /// [`ApiError`], after the refresh-and-retry, 429 waits and backoff of the client's policy.
    pub async fn send(self) -> Result<ApiResponse, ApiError> {
        let client = self.client.clone();
        let spec = self.spec()?;
        let success = client.inner.execute(&spec).await?;
        Ok(ApiResponse {
            request: spec.label,
            status: success.response.status,
            headers: success.response.headers.clone(),
            body: success.response.body.to_vec(),
            rate_limit: success.rate_limit,
        })
    }
}

/// A successful (2xx) answer.
#[derive(Clone)]
pub struct ApiResponse {
    request: RequestLabel,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    rate_limit: RateLimitHeaders,
}

impl fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiResponse")
            .field("request", &self.request)
            .field("status", &self.status)
            .field("rate_limit", &self.rate_limit)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ApiResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The `X-RateLimit-*-Default` headers of this answer.
    pub fn rate_limit(&self) -> RateLimitHeaders {
        self.rate_limit
    }

    /// The `X-Request-Id` header.
    pub fn request_id(&self) -> Option<&str> {
        self.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`ApiError::Protocol`] when it is not the JSON `T` expects.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Protocol {
            request: self.request.clone(),
            status: self.status.as_u16(),
            // serde_json's message names the field and position and may quote a value of the
            // body; API bodies carry no tokens.
            reason: format!("the body is not the documented shape: {e}"),
        })
    }

    /// The `data` of a `{"status":"success","data":…}` body.
    ///
    /// # Errors
    /// [`ApiError::Protocol`] when it is not that envelope around a `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json::<DataEnvelope<T>>().map(|e| e.data)
    }
}
