//! One API call from start to end: token → governor → send → classify → refresh-and-retry once,
//! wait out a 429, back off on transient failures (docs/calcom.md §5, §6, §8).

use super::client::Inner;
use super::envelope::{ErrorEnvelope, Rejection, classify_rejection};
use super::errors::{ApiError, FailedAttempt, RequestLabel};
use super::ratelimit::{RateLimitHeaders, TokenKey};
use super::token_source::TokenSourceError;
use crate::http::{PreparedRequest, RawResponse, TransportErrorKind};
use crate::secret::AccessToken;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use secrecy::SecretSlice;
use url::Url;

/// Everything needed to (re)send a request.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) label: RequestLabel,
    pub(crate) api_version: Option<HeaderValue>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<(Vec<u8>, HeaderValue)>,
    pub(crate) idempotent: bool,
}

/// A successful answer.
pub(crate) struct Success {
    pub(crate) response: RawResponse,
    pub(crate) rate_limit: RateLimitHeaders,
}

fn prepare(spec: &Spec, token: &AccessToken) -> Result<PreparedRequest, ApiError> {
    let mut headers = spec.headers.clone();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(v) = &spec.api_version {
        headers.insert(HeaderName::from_static("cal-api-version"), v.clone());
    }
    let mut bearer =
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
            ApiError::InvalidRequest {
                request: spec.label.clone(),
                reason: "the access token holds characters a header cannot carry".to_owned(),
            }
        })?;
    bearer.set_sensitive(true);
    headers.insert(AUTHORIZATION, bearer);
    let body = spec.body.as_ref().map(|(bytes, content_type)| {
        headers.insert(CONTENT_TYPE, content_type.clone());
        SecretSlice::from(bytes.clone())
    });
    Ok(PreparedRequest {
        method: spec.method.clone(),
        url: spec.url.clone(),
        headers,
        body,
    })
}

impl Inner {
    /// Whether another transient attempt is allowed, after `failures` failed ones; waits the
    /// backoff if so.
    async fn retry_transient(&self, spec: &Spec, failures: &[FailedAttempt]) -> bool {
        let tried = u32::try_from(failures.len()).unwrap_or(u32::MAX);
        if !spec.idempotent || tried >= self.retry.max_attempts {
            return false;
        }
        let delay = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.retry.backoff_delay(tried, &mut *rng)
        };
        tracing::info!(
            method = %spec.label.method, path = %spec.label.path, attempt = tried,
            backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "Cal.com API call failed transiently; retrying"
        );
        self.timer.sleep(delay).await;
        true
    }

    /// Runs `spec` to a success or a final [`ApiError`].
    #[tracing::instrument(name = "calconnect.api", skip_all, fields(method = %spec.label.method, path = %spec.label.path))]
    pub(crate) async fn execute(&self, spec: &Spec) -> Result<Success, ApiError> {
        let request = || spec.label.clone();
        let token_error = |source| ApiError::Token {
            request: request(),
            source,
        };
        let mut token = self.tokens.access_token().await.map_err(token_error)?;
        let mut refreshed = false;
        let mut failures: Vec<FailedAttempt> = Vec::new();
        let mut rate_limit_retries = 0u32;
        let mut sent = 0u32;
        loop {
            let permit = match &self.governor {
                Some(g) => Some(g.acquire(TokenKey::of(token.expose_secret())).await),
                None => None,
            };
            let prepared = prepare(spec, &token)?;
            sent += 1;
            let response = match self.http.send(prepared).await {
                Ok(r) => r,
                Err(e) => {
                    drop(permit);
                    if let TransportErrorKind::TooLarge { limit } = e.kind() {
                        return Err(ApiError::Protocol {
                            request: request(),
                            status: 0,
                            reason: format!(
                                "the answer is larger than {limit} bytes: raise HttpConfig::max_response_bytes"
                            ),
                        });
                    }
                    failures.push(FailedAttempt::Transport(e.kind()));
                    if self.retry_transient(spec, &failures).await {
                        continue;
                    }
                    return Err(ApiError::Transient {
                        request: request(),
                        attempts: failures,
                        envelope: None,
                    });
                }
            };
            let status = response.status;
            let rate_limit =
                RateLimitHeaders::parse(&response.headers, self.clock.now().unix_timestamp());
            if let Some(p) = &permit {
                let throttled = (status == StatusCode::TOO_MANY_REQUESTS)
                    .then_some(self.retry.default_rate_limit_wait);
                p.observe(&rate_limit, throttled);
            }
            drop(permit);
            if status.is_success() {
                return Ok(Success {
                    response,
                    rate_limit,
                });
            }
            let envelope = Box::new(ErrorEnvelope::parse(
                &response.headers,
                &response.body,
                token.expose_secret(),
            ));
            let code = status.as_u16();
            match code {
                401 | 403 if code == 401 || !response.is_html() => {
                    match classify_rejection(code, &envelope) {
                        Rejection::TokenUnusable if !refreshed => {
                            tracing::info!(status = code, "access token rejected; refreshing once");
                            token = match self.tokens.refresh_after_rejection(&token).await {
                                Ok(t) => t,
                                Err(TokenSourceError::NotRefreshable) => {
                                    return Err(ApiError::Unauthorized {
                                        request: request(),
                                        after_refresh: false,
                                        envelope,
                                    });
                                }
                                Err(e) => return Err(token_error(e)),
                            };
                            refreshed = true;
                        }
                        Rejection::TokenUnusable => {
                            return Err(ApiError::Unauthorized {
                                request: request(),
                                after_refresh: true,
                                envelope,
                            });
                        }
                        Rejection::InsufficientScope { required, granted } => {
                            return Err(ApiError::InsufficientScope {
                                request: request(),
                                required,
                                granted,
                                envelope,
                            });
                        }
                        Rejection::NotForOAuthTokens => {
                            return Err(ApiError::NotForOAuthTokens {
                                request: request(),
                                envelope,
                            });
                        }
                        Rejection::Forbidden => {
                            return Err(ApiError::Forbidden {
                                request: request(),
                                envelope,
                            });
                        }
                    }
                }
                404 => {
                    return Err(ApiError::NotFound {
                        request: request(),
                        envelope,
                    });
                }
                429 => {
                    let wait = rate_limit
                        .reset
                        .unwrap_or(self.retry.default_rate_limit_wait);
                    if spec.idempotent
                        && rate_limit_retries < self.retry.max_rate_limit_retries
                        && wait <= self.retry.max_rate_limit_wait
                    {
                        rate_limit_retries += 1;
                        tracing::warn!(
                            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "rate limited by Cal.com (429); waiting for the reset"
                        );
                        self.timer.sleep(wait).await;
                        continue;
                    }
                    return Err(ApiError::RateLimited {
                        request: request(),
                        attempts: sent,
                        reset: rate_limit.reset,
                        envelope,
                    });
                }
                300..=399 => {
                    return Err(ApiError::Protocol {
                        request: request(),
                        status: code,
                        reason: "the API redirected (never followed): check the API base URL"
                            .to_owned(),
                    });
                }
                _ if status.is_server_error() || response.is_html() => {
                    failures.push(FailedAttempt::Status(code));
                    if self.retry_transient(spec, &failures).await {
                        continue;
                    }
                    return Err(ApiError::Transient {
                        request: request(),
                        attempts: failures,
                        envelope: Some(envelope),
                    });
                }
                _ => {
                    return Err(ApiError::Rejected {
                        request: request(),
                        status: code,
                        envelope,
                    });
                }
            }
        }
    }
}
