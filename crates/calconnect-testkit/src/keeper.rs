//! The token keeper's test environment: a sandbox signing with a known key, connections with
//! real rotating refresh tokens (no browser needed), and the sandbox counters that prove how
//! many refreshes happened.

use calconnect::connect::Connector;
use calconnect::crypto::{Keyring, SealContext, SealedField};
use calconnect::store::{
    CalIdentity, CalOwner, ConnectionId, ConnectionStore, EndUserId, TokenWrite, TokensToSave,
    UpsertOutcome, save_connection,
};
use calconnect::{
    AccessToken, AuthorizationFlow, ClientConfig, ClientSecret, Clock, ProviderProfile,
    RefreshToken, UrlPolicy, api::StaticToken, http::HttpClient, http::HttpConfig,
    keeper::KeeperConfig, keeper::TokenKeeper,
};
use calconnect_sandbox::jwt::{self, Claims, REFRESH_TOKEN_TYPE};
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, Owner, Sandbox,
};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::OffsetDateTime;

/// The sandbox's signing key in keeper tests (lets tests mint a first refresh token).
pub const SIGNING_KEY: &[u8] = b"calconnect-keeper-tests-signing-key";
/// Scopes of test connections.
pub const SCOPES: &[&str] = &["PROFILE_READ", "SCHEDULE_READ"];

/// A sandbox for keeper tests; `frozen` pins its clock (in-process tests with a mock clock).
pub async fn sandbox(frozen: Option<OffsetDateTime>) -> Sandbox {
    let mut builder = Sandbox::builder().signing_key(SIGNING_KEY);
    if let Some(at) = frozen {
        builder = builder.frozen_clock(at);
    }
    builder.start().await.unwrap()
}

/// The sandbox as a provider profile.
pub fn profile(sandbox_url: &str) -> ProviderProfile {
    ProviderProfile::sandbox(
        sandbox_url.trim_end_matches('/'),
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap()
}

/// The hardened HTTP client with a short total timeout (for the delay-fault tests).
pub fn http(total_timeout: StdDuration) -> HttpClient {
    HttpClient::new(HttpConfig::default().total_timeout(total_timeout)).unwrap()
}

/// The seeded confidential client's flow against `sandbox_url`.
pub fn flow(sandbox_url: &str, http: HttpClient, clock: Arc<dyn Clock>) -> AuthorizationFlow {
    let client = ClientConfig::confidential(
        CONFIDENTIAL_CLIENT_ID,
        ClientSecret::new(CONFIDENTIAL_CLIENT_SECRET),
        DEFAULT_REDIRECT_URI,
    )
    .unwrap();
    AuthorizationFlow::new(profile(sandbox_url), client, http, clock)
}

/// Everything a keeper needs, sharing one clock.
#[derive(Debug, Clone)]
pub struct KeeperParts {
    /// The store.
    pub store: Arc<dyn ConnectionStore>,
    /// The keyring.
    pub keyring: Arc<Keyring>,
    /// The flow.
    pub flow: Arc<AuthorizationFlow>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl KeeperParts {
    /// A keeper over these parts.
    pub fn keeper(&self, config: KeeperConfig) -> TokenKeeper {
        TokenKeeper::new(
            self.store.clone(),
            self.keyring.clone(),
            self.flow.clone(),
            self.clock.clone(),
            config,
        )
    }

    /// Connects Cal.com user `user` of the seeded confidential client: mints a legacy refresh
    /// token (Cal.com accepts it until it expires, docs/calcom.md §3.4 step 5), trades it for a real rotating pair
    /// and saves that pair. The sandbox's counters are not reset.
    pub async fn connect(&self, sandbox: &Sandbox, user: i64) -> ConnectionId {
        let now = sandbox.now().unix_timestamp();
        let legacy = Claims {
            user_id: Some(user),
            team_id: None,
            scope: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            token_type: REFRESH_TOKEN_TYPE.to_owned(),
            client_id: CONFIDENTIAL_CLIENT_ID.to_owned(),
            secret: None,
            code_challenge: None,
            code_challenge_method: None,
            iat: now - 1,
            exp: now + 30 * 24 * 3600,
        };
        let legacy = RefreshToken::new(jwt::sign(&legacy, SIGNING_KEY));
        let tokens = self.flow.refresh(&legacy).await.unwrap();
        // Saved as every connection is: the library's connector (identify, seal, save).
        let saved = Connector::new(
            (*self.flow).clone(),
            self.store.clone(),
            self.keyring.clone(),
            self.clock.clone(),
        )
        .save(
            tokens,
            EndUserId::new(&format!("app-user-{user}")).unwrap(),
            &[],
            &mut OsRng,
        )
        .await
        .unwrap();
        assert_eq!(saved.connection.identity.owner, CalOwner::User(user));
        saved.connection.id
    }

    /// Connects Cal.com users `users` of the seeded confidential client in bulk: the sandbox
    /// mints each pair directly ([`Sandbox::issue_tokens`], no HTTP, no token call counted) and
    /// the library's `save_connection` seals and saves it, `concurrency` at a time. For
    /// simulations with many connections; the ids come back in the order of `users`.
    ///
    /// # Panics
    /// When the sandbox or the store fails.
    pub async fn connect_many(
        &self,
        sandbox: &Sandbox,
        users: impl IntoIterator<Item = i64>,
        concurrency: usize,
    ) -> Vec<ConnectionId> {
        use futures::StreamExt as _;
        let scopes: Vec<String> = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let saves = futures::stream::iter(users).map(|user| {
            let issued = sandbox
                .issue_tokens(CONFIDENTIAL_CLIENT_ID, Owner::User(user), &scopes)
                .unwrap();
            let now = self.clock.now();
            let tokens = TokensToSave {
                end_user: EndUserId::new(&format!("app-user-{user}")).unwrap(),
                identity: CalIdentity {
                    client_id: CONFIDENTIAL_CLIENT_ID.to_owned(),
                    owner: CalOwner::User(user),
                },
                scopes: scopes.clone(),
                access_token: SecretString::from(issued.access_token),
                refresh_token: Some(SecretString::from(issued.refresh_token)),
                access_expires_at: Some(now + sandbox.settings().access_token_ttl),
                refresh_expires_at_estimate: Some(now + time::Duration::days(30)),
                profile: None,
            };
            async move {
                let saved = save_connection(&*self.store, &self.keyring, &mut OsRng, tokens)
                    .await
                    .unwrap();
                match saved {
                    UpsertOutcome::Created(c) => c.id,
                    other => panic!("user {user} was connected already: {other:?}"),
                }
            }
        });
        saves.buffered(concurrency.max(1)).collect().await
    }

    /// Marks the stored access token of `id` as expired at `at` (same sealed token).
    pub async fn expire_at(&self, id: ConnectionId, at: OffsetDateTime) {
        let c = self.store.get_connection(id).await.unwrap();
        self.store
            .write_tokens(
                id,
                TokenWrite {
                    expected_version: c.version,
                    access_token: c.access_token.clone(),
                    refresh_token: None,
                    access_expires_at: Some(at),
                    refresh_expires_at_estimate: c.refresh_expires_at_estimate,
                    scopes: None,
                },
            )
            .await
            .unwrap();
    }

    /// The stored access and refresh tokens of `id`, opened (panics on a corrupt row).
    pub async fn open_tokens(&self, id: ConnectionId) -> (AccessToken, Option<RefreshToken>) {
        let c = self.store.get_connection(id).await.unwrap();
        let access = self
            .keyring
            .open_string(
                &c.access_token,
                SealContext::connection(id.as_uuid(), SealedField::AccessToken),
            )
            .unwrap();
        let refresh = c.refresh_token.as_ref().map(|r| {
            let t = self
                .keyring
                .open_string(
                    r,
                    SealContext::connection(id.as_uuid(), SealedField::RefreshToken),
                )
                .unwrap();
            RefreshToken::new(t.expose_secret())
        });
        (AccessToken::new(access.expose_secret()), refresh)
    }
}

/// Successful refreshes the sandbox answered.
pub fn refreshes(sandbox: &Sandbox) -> u64 {
    sandbox.token_calls("refresh_token", "ok")
}

/// `invalid_grant` answers of any reason.
pub fn invalid_grants(sandbox: &Sandbox) -> u64 {
    sandbox
        .token_call_counts()
        .iter()
        .filter(|c| c.outcome.starts_with("invalid_grant"))
        .map(|c| c.count)
        .sum()
}

/// Whether the sandbox's API accepts `token` (`GET /v2/me`).
pub async fn usable(sandbox_url: &str, token: &AccessToken) -> bool {
    let client = calconnect::api::CalClient::for_profile(
        &profile(sandbox_url),
        http(StdDuration::from_secs(10)),
        Arc::new(StaticToken::new(token.clone())),
    )
    .unwrap()
    .build();
    match client.me().await {
        Ok(_) => true,
        Err(e) => {
            eprintln!("the sandbox API refused the token: {e}");
            false
        }
    }
}

/// A timer for simulations on a mock clock: sleeping moves the clock (and the sandbox's, so
/// its rate windows and token lifetimes follow) forward by the duration, at once. Callers
/// that wait for a budget permit therefore see simulated time pass, deterministically.
#[derive(Debug, Clone)]
pub struct SimTimer {
    clock: Arc<calconnect::MockClock>,
    sandbox: Option<Arc<Sandbox>>,
    origin: OffsetDateTime,
}

impl SimTimer {
    /// A timer over `clock`, also moving `sandbox`'s clock when there is one.
    pub fn new(clock: Arc<calconnect::MockClock>, sandbox: Option<Arc<Sandbox>>) -> Self {
        let origin = clock.now();
        Self {
            clock,
            sandbox,
            origin,
        }
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
        if let Some(sandbox) = &self.sandbox {
            sandbox.advance_clock(by);
        }
    }
}

#[async_trait::async_trait]
impl calconnect::api::Timer for SimTimer {
    fn now(&self) -> StdDuration {
        StdDuration::try_from(self.clock.now() - self.origin).unwrap_or(StdDuration::ZERO)
    }

    async fn sleep(&self, duration: StdDuration) {
        self.advance(time::Duration::try_from(duration).unwrap_or(time::Duration::ZERO));
        tokio::task::yield_now().await;
    }
}
