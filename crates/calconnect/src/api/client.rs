//! [`CalClient`]: typed calls to Cal.com API v2 with OAuth access tokens (docs/calcom.md §5).

use super::errors::ApiError;
use super::models::DataEnvelope;
use super::models::booking::{BOOKINGS_API_VERSION, BookingFilters, BookingPage};
use super::models::event_type::{EVENT_TYPES_API_VERSION, EventType};
use super::models::legacy_schedule::LegacySchedule;
use super::models::me::Me;
use super::models::schedule::{SCHEDULES_API_VERSION, Schedule};
use super::ratelimit::{Governor, GovernorConfig};
use super::raw::RawRequest;
use super::retry::RetryPolicy;
use super::timer::{Timer, TokioTimer};
use super::token_source::AccessTokenSource;
use crate::clock::{Clock, SystemClock};
use crate::endpoint::EndpointUrl;
use crate::http::HttpClient;
use crate::profile::ProviderProfile;
use http::Method;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The 2024-04-15 version, sent explicitly for the legacy schedule shape (it is also what a
/// missing header falls back to, §5).
const LEGACY_API_VERSION: &str = "2024-04-15";

/// A Cal.com API v2 client for one connection (one [`AccessTokenSource`]). Cheap to clone;
/// clones share the governor.
///
/// Each typed call sends the `cal-api-version` its endpoint documents; [`CalClient::request`]
/// reaches every other endpoint with the same token handling, rate limiting and retries.
///
/// # Security
/// The access token goes only into the `Authorization` header (marked sensitive). It never
/// appears in `Debug`, errors or tracing fields; the rate governor keys on its SHA-256.
#[derive(Clone)]
pub struct CalClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) api_base: EndpointUrl,
    pub(crate) http: HttpClient,
    pub(crate) tokens: Arc<dyn AccessTokenSource>,
    pub(crate) governor: Option<Governor>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timer: Arc<dyn Timer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Mutex<StdRng>,
}

impl fmt::Debug for CalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CalClient")
            .field("api_base", &self.inner.api_base)
            .field("tokens", &self.inner.tokens)
            .field("governor", &self.inner.governor.is_some())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// Builds a [`CalClient`].
#[derive(Debug)]
pub struct CalClientBuilder {
    api_base: EndpointUrl,
    http: HttpClient,
    tokens: Arc<dyn AccessTokenSource>,
    governor: Option<GovernorConfig>,
    retry: RetryPolicy,
    timer: Option<Arc<dyn Timer>>,
    clock: Arc<dyn Clock>,
    rng_seed: Option<u64>,
}

impl CalClientBuilder {
    /// The client-side rate governor: at most `config.limit` requests per access token per
    /// `config.window` (default 120 per minute, what Cal.com gives third-party tokens, docs/calcom.md §6).
    #[must_use]
    pub fn governor(mut self, config: GovernorConfig) -> Self {
        self.governor = Some(config);
        self
    }

    /// No client-side governor (the API's 429s are still waited out per the retry policy).
    #[must_use]
    pub fn without_governor(mut self) -> Self {
        self.governor = None;
        self
    }

    /// The retry policy (default: [`RetryPolicy::default`]).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The timer for the governor, 429 waits and backoff (default: tokio's clock).
    #[must_use]
    pub fn timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = Some(timer);
        self
    }

    /// The wall clock, used to read a rate-limit reset given as an epoch (default: system).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the backoff jitter (tests); by default it is seeded from the OS.
    #[must_use]
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The client.
    pub fn build(self) -> CalClient {
        let timer = self
            .timer
            .unwrap_or_else(|| Arc::new(TokioTimer::new()) as Arc<dyn Timer>);
        let rng = match self.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => {
                StdRng::from_rng(rand::rngs::OsRng).unwrap_or_else(|_| StdRng::seed_from_u64(0))
            }
        };
        CalClient {
            inner: Arc::new(Inner {
                api_base: self.api_base,
                http: self.http,
                tokens: self.tokens,
                governor: self.governor.map(|c| Governor::new(c, timer.clone())),
                retry: self.retry,
                timer,
                clock: self.clock,
                rng: Mutex::new(rng),
            }),
        }
    }
}

/// The profile has no Cal.com API v2 (a custom provider).
#[derive(Debug, thiserror::Error)]
#[error(
    "this provider profile has no Cal.com API v2: use a Cal.com, self-hosted or sandbox profile"
)]
pub struct NoApiError;

impl CalClient {
    /// A builder for the API at `api_base` (e.g. `https://api.cal.com/v2`).
    ///
    /// `http` should allow answers as large as the lists you fetch
    /// ([`HttpConfig::max_response_bytes`](crate::http::HttpConfig::max_response_bytes)).
    pub fn builder(
        api_base: EndpointUrl,
        http: HttpClient,
        tokens: Arc<dyn AccessTokenSource>,
    ) -> CalClientBuilder {
        CalClientBuilder {
            api_base,
            http,
            tokens,
            governor: Some(GovernorConfig::default()),
            retry: RetryPolicy::default(),
            timer: None,
            clock: Arc::new(SystemClock),
            rng_seed: None,
        }
    }

    /// A builder for `profile`'s API.
    ///
    /// # Errors
    /// [`NoApiError`] for a profile without Cal.com's API (custom providers).
    pub fn for_profile(
        profile: &ProviderProfile,
        http: HttpClient,
        tokens: Arc<dyn AccessTokenSource>,
    ) -> Result<CalClientBuilder, NoApiError> {
        let api = profile.api_base().ok_or(NoApiError)?;
        Ok(Self::builder(api.clone(), http, tokens))
    }

    /// The API base URL.
    pub fn api_base(&self) -> &EndpointUrl {
        &self.inner.api_base
    }

    /// Any API v2 request: `path` is relative to the API base (`/schedules`, `/bookings/abc`).
    /// The token handling, governor and retries are those of the typed calls; set the
    /// `cal-api-version` the endpoint needs with [`RawRequest::api_version`].
    pub fn request(&self, method: Method, path: &str) -> RawRequest<'_> {
        RawRequest::new(self, method, path)
    }

    async fn get_data<T: DeserializeOwned>(
        &self,
        path: &str,
        version: &str,
    ) -> Result<T, ApiError> {
        self.request(Method::GET, path)
            .api_version(version)
            .send()
            .await?
            .json::<DataEnvelope<T>>()
            .map(|e| e.data)
    }

    /// `GET /v2/me`: the profile the token acts for (scope `PROFILE_READ`).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn me(&self) -> Result<Me, ApiError> {
        // Any version works for /v2/me (§5); 2024-06-11 is the schedules' one.
        self.get_data("/me", SCHEDULES_API_VERSION).await
    }

    /// `GET /v2/schedules` (2024-06-11 shape; scope `SCHEDULE_READ`).
    ///
    /// # Errors
    /// [`ApiError`]; [`ApiError::InsufficientScope`] without `SCHEDULE_READ`.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, ApiError> {
        self.get_data("/schedules", SCHEDULES_API_VERSION).await
    }

    /// `GET /v2/schedules/default`; `None` when the user has no default schedule.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn default_schedule(&self) -> Result<Option<Schedule>, ApiError> {
        self.get_data("/schedules/default", SCHEDULES_API_VERSION)
            .await
    }

    /// `GET /v2/schedules/{id}`.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown id, [`ApiError::Forbidden`] for someone else's.
    pub async fn schedule(&self, id: i64) -> Result<Schedule, ApiError> {
        self.get_data(&format!("/schedules/{id}"), SCHEDULES_API_VERSION)
            .await
    }

    /// `GET /v2/schedules` in the old 2024-04-15 shape (for code written against it).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn schedules_legacy(&self) -> Result<Vec<LegacySchedule>, ApiError> {
        self.get_data("/schedules", LEGACY_API_VERSION).await
    }

    /// `GET /v2/event-types` (2024-06-14 shape; scope `EVENT_TYPE_READ`).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn event_types(&self) -> Result<Vec<EventType>, ApiError> {
        self.get_data("/event-types", EVENT_TYPES_API_VERSION).await
    }

    /// `GET /v2/bookings` (2024-08-13 shape; scope `BOOKING_READ`), one page.
    ///
    /// # Errors
    /// [`ApiError`]; [`ApiError::Rejected`] (400) for filters Cal.com refuses.
    pub async fn bookings(&self, filters: &BookingFilters) -> Result<BookingPage, ApiError> {
        let mut request = self
            .request(Method::GET, "/bookings")
            .api_version(BOOKINGS_API_VERSION);
        for (k, v) in filters.query() {
            request = request.query(k, &v);
        }
        request.send().await?.json::<BookingPage>()
    }
}
