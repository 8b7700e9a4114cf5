//! The test environment: a sandbox with a frozen clock and a known signing key, a timer that
//! moves the sandbox clock instead of sleeping, token sources that count their calls, and the
//! browser part of the authorization flow.

use async_trait::async_trait;
use calconnect::api::{
    AccessTokenSource, CalClient, CalClientBuilder, GovernorConfig, RetryPolicy, Timer,
    TokenSourceError,
};
use calconnect::{
    AccessToken, AuthorizationFlow, AuthorizeOptions, Callback, ClientConfig, ClientSecret,
    ProviderProfile, RefreshToken, SystemClock, TokenSet, UrlPolicy, http::HttpClient,
    http::HttpConfig,
};
use calconnect_sandbox::browser::SandboxBrowser;
use calconnect_sandbox::jwt::{self, ACCESS_TOKEN_TYPE, Claims};
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, Sandbox,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

pub const KEY: &[u8] = b"calconnect-api-client-tests-signing-key";
pub const ALICE: i64 = 1;
pub const DANA: i64 = 3;
pub const ALL_READ: &[&str] = &[
    "PROFILE_READ",
    "SCHEDULE_READ",
    "EVENT_TYPE_READ",
    "BOOKING_READ",
];

pub struct Env {
    pub sandbox: Arc<Sandbox>,
    pub timer: Arc<SandboxTimer>,
}

pub async fn env() -> Env {
    env_with(|b| b).await
}

pub async fn env_with(
    f: impl FnOnce(calconnect_sandbox::SandboxBuilder) -> calconnect_sandbox::SandboxBuilder,
) -> Env {
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let builder = Sandbox::builder().signing_key(KEY).frozen_clock(start);
    let sandbox = Arc::new(f(builder).start().await.unwrap());
    Env {
        timer: Arc::new(SandboxTimer::new(sandbox.clone())),
        sandbox,
    }
}

impl Env {
    pub fn profile(&self) -> ProviderProfile {
        let base = self.sandbox.base_url().as_str().trim_end_matches('/');
        ProviderProfile::sandbox(base, UrlPolicy::allow_insecure_loopback_http()).unwrap()
    }

    /// A client builder with the sandbox timer and a seeded rng.
    pub fn client(&self, tokens: Arc<dyn AccessTokenSource>) -> CalClientBuilder {
        CalClient::for_profile(&self.profile(), http(), tokens)
            .unwrap()
            .timer(self.timer.clone())
            .rng_seed(1)
    }

    /// A client with a fixed token for `user` with `scopes`.
    pub fn client_for(&self, user: i64, scopes: &[&str]) -> CalClient {
        self.client(CountingSource::fixed(self.mint(user, scopes, 1800)))
            .build()
    }

    /// An access token signed like the sandbox's own, valid for `ttl_secs` from the sandbox's
    /// now (negative: already expired).
    pub fn mint(&self, user: i64, scopes: &[&str], ttl_secs: i64) -> AccessToken {
        let now = self.sandbox.now().unix_timestamp();
        let claims = Claims {
            user_id: Some(user),
            team_id: None,
            scope: scopes.iter().map(|s| (*s).to_owned()).collect(),
            token_type: ACCESS_TOKEN_TYPE.to_owned(),
            client_id: CONFIDENTIAL_CLIENT_ID.to_owned(),
            secret: None,
            code_challenge: None,
            code_challenge_method: None,
            iat: now - 1,
            exp: now + ttl_secs,
        };
        AccessToken::new(jwt::sign(&claims, KEY))
    }

    pub fn flow(&self) -> AuthorizationFlow {
        let client = ClientConfig::confidential(
            CONFIDENTIAL_CLIENT_ID,
            ClientSecret::new(CONFIDENTIAL_CLIENT_SECRET),
            DEFAULT_REDIRECT_URI,
        )
        .unwrap();
        AuthorizationFlow::new(self.profile(), client, http(), Arc::new(SystemClock))
    }

    /// The whole flow for alice: authorize → sign in → allow → callback → exchange.
    pub async fn connect(&self, flow: &AuthorizationFlow, scopes: &[&str]) -> TokenSet {
        let options = AuthorizeOptions::new(scopes.iter().copied()).unwrap();
        let (url, pending) = flow.start(&options, &mut rand::rngs::OsRng);
        let browser = SandboxBrowser::new(self.sandbox.base_url()).unwrap();
        let redirect = browser
            .sign_in_and_allow(ALICE, url.as_str())
            .await
            .unwrap();
        let verified = pending
            .verify(
                Callback::from_redirect_url(&redirect).unwrap(),
                &SystemClock,
            )
            .unwrap();
        flow.exchange(verified).await.unwrap()
    }
}

pub fn http() -> HttpClient {
    HttpClient::new(HttpConfig::default().max_response_bytes(1024 * 1024)).unwrap()
}

/// Retry policy with small backoff (waits go through the timer anyway).
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_secs(1))
}

pub fn governor(limit: u32, window: Duration) -> GovernorConfig {
    GovernorConfig::new(limit, window)
}

/// Time is the sandbox's (frozen) clock; sleeping moves it forward. Records every sleep.
#[derive(Debug)]
pub struct SandboxTimer {
    sandbox: Arc<Sandbox>,
    origin: OffsetDateTime,
    pub sleeps: Mutex<Vec<Duration>>,
}

impl SandboxTimer {
    fn new(sandbox: Arc<Sandbox>) -> Self {
        Self {
            origin: sandbox.now(),
            sandbox,
            sleeps: Mutex::new(Vec::new()),
        }
    }

    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

#[async_trait]
impl Timer for SandboxTimer {
    fn now(&self) -> Duration {
        (self.sandbox.now() - self.origin).try_into().unwrap()
    }

    async fn sleep(&self, duration: Duration) {
        self.sleeps.lock().unwrap().push(duration);
        self.sandbox
            .advance_clock(time::Duration::try_from(duration).unwrap());
        tokio::task::yield_now().await;
    }
}

/// A timer for tests without a sandbox: a counter that sleeping advances.
#[derive(Debug, Default)]
pub struct ManualTimer {
    now: Mutex<Duration>,
    pub sleeps: Mutex<Vec<Duration>>,
}

impl ManualTimer {
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

#[async_trait]
impl Timer for ManualTimer {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap()
    }

    async fn sleep(&self, duration: Duration) {
        self.sleeps.lock().unwrap().push(duration);
        *self.now.lock().unwrap() += duration;
        tokio::task::yield_now().await;
    }
}

/// Serves a token and hands out the next one of a list on each refresh; counts both.
#[derive(Debug)]
pub struct CountingSource {
    current: Mutex<AccessToken>,
    next: Mutex<Vec<AccessToken>>,
    pub gets: AtomicU32,
    pub refreshes: AtomicU32,
}

impl CountingSource {
    pub fn fixed(token: AccessToken) -> Arc<Self> {
        Self::with_refreshes(token, vec![])
    }

    pub fn with_refreshes(token: AccessToken, next: Vec<AccessToken>) -> Arc<Self> {
        Arc::new(Self {
            current: Mutex::new(token),
            next: Mutex::new(next),
            gets: AtomicU32::new(0),
            refreshes: AtomicU32::new(0),
        })
    }

    pub fn refreshes(&self) -> u32 {
        self.refreshes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl AccessTokenSource for CountingSource {
    async fn access_token(&self) -> Result<AccessToken, TokenSourceError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.current.lock().unwrap().clone())
    }

    async fn refresh_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        let mut current = self.current.lock().unwrap();
        if !current.ct_eq(rejected) {
            return Ok(current.clone());
        }
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let mut next = self.next.lock().unwrap();
        if next.is_empty() {
            return Err(TokenSourceError::NotRefreshable);
        }
        *current = next.remove(0);
        Ok(current.clone())
    }
}

/// Refreshes through [`AuthorizationFlow::refresh`] against the sandbox (single-flight under a
/// lock, rotation kept), counting refreshes.
#[derive(Debug)]
pub struct FlowSource {
    flow: AuthorizationFlow,
    tokens: tokio::sync::Mutex<(AccessToken, RefreshToken)>,
    pub refreshes: AtomicU32,
}

impl FlowSource {
    pub fn new(flow: AuthorizationFlow, tokens: TokenSet) -> Arc<Self> {
        Arc::new(Self {
            flow,
            tokens: tokio::sync::Mutex::new((
                tokens.access_token,
                tokens.refresh_token.expect("a refresh token"),
            )),
            refreshes: AtomicU32::new(0),
        })
    }

    pub fn refreshes(&self) -> u32 {
        self.refreshes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl AccessTokenSource for FlowSource {
    async fn access_token(&self) -> Result<AccessToken, TokenSourceError> {
        Ok(self.tokens.lock().await.0.clone())
    }

    async fn refresh_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        let mut tokens = self.tokens.lock().await;
        if !tokens.0.ct_eq(rejected) {
            return Ok(tokens.0.clone());
        }
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let fresh = self.flow.refresh(&tokens.1).await?;
        let refresh = fresh.refresh_token.unwrap_or_else(|| tokens.1.clone());
        *tokens = (fresh.access_token, refresh);
        Ok(tokens.0.clone())
    }
}
