//! The [`Connector`] against the sandbox: start and finish a connection through the store, and
//! every way a finish can fail, with the outcome a web adapter needs.

use calconnect::connect::{CompleteError, ConnectOutcome, ConnectRequest, Connector, FinishError};
use calconnect::crypto::{KeyId, Keyring, SealingKey};
use calconnect::store::{CalOwner, ConnectionStore, EndUserId, MemoryStore};
use calconnect::{
    AuthorizationFlow, AuthorizeOptions, Callback, CallbackError, ClientConfig, ClientSecret,
    Clock, ExchangeError, MockClock, ProviderProfile, UrlPolicy, http::HttpClient,
    http::HttpConfig,
};
use calconnect_sandbox::browser::{Decision, SandboxBrowser};
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, FaultKind, Sandbox,
};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const ALICE: i64 = 1;

struct Env {
    sandbox: Sandbox,
    clock: Arc<MockClock>,
    store: Arc<MemoryStore>,
    connector: Connector,
}

fn keyring(id: &str) -> Arc<Keyring> {
    Arc::new(
        Keyring::new(vec![SealingKey::generate(
            KeyId::new(id).unwrap(),
            &mut OsRng,
        )])
        .unwrap(),
    )
}

async fn env() -> Env {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let clock = Arc::new(MockClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ));
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let base = sandbox.base_url().as_str().trim_end_matches('/').to_owned();
    let profile =
        ProviderProfile::sandbox(&base, UrlPolicy::allow_insecure_loopback_http()).unwrap();
    let client = ClientConfig::confidential(
        CONFIDENTIAL_CLIENT_ID,
        ClientSecret::new(CONFIDENTIAL_CLIENT_SECRET),
        DEFAULT_REDIRECT_URI,
    )
    .unwrap();
    let flow = AuthorizationFlow::new(
        profile,
        client,
        HttpClient::new(HttpConfig::default()).unwrap(),
        clock.clone(),
    );
    let connector = Connector::new(flow, store.clone(), keyring("k1"), clock.clone());
    Env {
        sandbox,
        clock,
        store,
        connector,
    }
}

fn request(user: &str) -> ConnectRequest {
    ConnectRequest::new(
        EndUserId::new(user).unwrap(),
        AuthorizeOptions::new(["PROFILE_READ", "SCHEDULE_READ"]).unwrap(),
    )
    .return_to("https://app.example/done")
}

impl Env {
    /// Starts for `user`, plays Alice at the consent page with `decision`; returns the callback
    /// and the browser binding.
    async fn consent(&self, user: &str, decision: Decision) -> (Callback, SecretString) {
        let (redirect, binding) = self.redirect(user, decision).await;
        (Callback::from_redirect_url(&redirect).unwrap(), binding)
    }

    /// As [`Env::consent`], with the redirect URL itself.
    async fn redirect(&self, user: &str, decision: Decision) -> (String, SecretString) {
        let started = self
            .connector
            .start(request(user), &mut OsRng)
            .await
            .unwrap();
        let browser = SandboxBrowser::new(self.sandbox.base_url()).unwrap();
        browser.sign_in(ALICE).await.unwrap();
        let redirect = browser
            .authorize(started.authorize_url.as_str(), decision, None)
            .await
            .unwrap();
        (redirect, started.browser_binding)
    }
}

#[tokio::test]
async fn start_then_finish_creates_then_updates_one_connection() {
    let env = env().await;
    let (callback, binding) = env.consent("user-1", Decision::Allow).await;
    let finished = env
        .connector
        .finish(callback, &binding, &mut OsRng)
        .await
        .unwrap();
    assert_eq!(finished.connected.outcome, ConnectOutcome::Created);
    assert_eq!(
        finished.return_to.as_deref(),
        Some("https://app.example/done")
    );
    let c = &finished.connected.connection;
    assert_eq!(c.end_user.as_str(), "user-1");
    assert_eq!(c.identity.owner, CalOwner::User(ALICE));
    assert_eq!(c.identity.client_id, CONFIDENTIAL_CLIENT_ID);
    assert_eq!(c.scopes, ["PROFILE_READ", "SCHEDULE_READ"]);
    // One refresh-window rule: 30 days from when the tokens were obtained.
    assert_eq!(
        c.refresh_expires_at_estimate,
        Some(env.clock.now() + Duration::days(30))
    );
    // The claims named the user: no /v2/me call.
    assert!(finished.connected.user.is_none());

    // The same Cal.com user again: the same connection, updated.
    let (callback, binding) = env.consent("user-1", Decision::Allow).await;
    let again = env
        .connector
        .finish(callback, &binding, &mut OsRng)
        .await
        .unwrap();
    assert_eq!(again.connected.outcome, ConnectOutcome::Updated);
    assert_eq!(again.connected.connection.id, c.id);
    let all = env
        .store
        .list_for_end_user(&EndUserId::new("user-1").unwrap())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn another_browser_cannot_finish_and_does_not_burn_the_flow() {
    let env = env().await;
    let (redirect, binding) = env.redirect("user-1", Decision::Allow).await;
    let callback = || Callback::from_redirect_url(&redirect).unwrap();
    let err = env
        .connector
        .finish(
            callback(),
            &SecretString::from("another-browser"),
            &mut OsRng,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FinishError::UnknownState), "{err:?}");
    assert_eq!(err.return_to(), None);
    // The right browser still finishes; a replay then finds nothing.
    env.connector
        .finish(callback(), &binding, &mut OsRng)
        .await
        .unwrap();
    let err = env
        .connector
        .finish(callback(), &binding, &mut OsRng)
        .await
        .unwrap_err();
    assert!(matches!(err, FinishError::UnknownState), "{err:?}");
}

#[tokio::test]
async fn a_declined_consent_comes_back_with_return_to() {
    let env = env().await;
    let (callback, binding) = env.consent("user-1", Decision::Deny).await;
    let err = env
        .connector
        .finish(callback, &binding, &mut OsRng)
        .await
        .unwrap_err();
    assert_eq!(err.return_to(), Some("https://app.example/done"));
    assert!(
        matches!(
            err,
            FinishError::Failed {
                error: CompleteError::Callback(CallbackError::AccessDenied { .. }),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_state_expiry_and_exchange_failures_are_distinct() {
    let env = env().await;
    let err = env
        .connector
        .finish(
            Callback::parse("code=c").unwrap(),
            &SecretString::from("b"),
            &mut OsRng,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FinishError::MissingState), "{err:?}");

    let (callback, binding) = env.consent("user-1", Decision::Allow).await;
    env.clock.advance(Duration::minutes(11));
    let err = env
        .connector
        .finish(callback, &binding, &mut OsRng)
        .await
        .unwrap_err();
    assert!(matches!(err, FinishError::Expired), "{err:?}");

    let (callback, binding) = env.consent("user-1", Decision::Allow).await;
    env.sandbox
        .inject_fault(FaultKind::ServerError { status: 503 }, 1)
        .unwrap();
    let err = env
        .connector
        .finish(callback, &binding, &mut OsRng)
        .await
        .unwrap_err();
    assert_eq!(err.return_to(), Some("https://app.example/done"));
    assert!(
        matches!(
            err,
            FinishError::Failed {
                error: CompleteError::Exchange(ExchangeError::Transient(_)),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_flow_started_under_a_lost_key_is_unreadable_not_a_panic() {
    let env = env().await;
    let (callback, binding) = env.consent("user-1", Decision::Allow).await;
    // The same store, another keyring: the pending authorization cannot be opened.
    let other = Connector::new(
        env.connector.flow().clone(),
        env.store.clone(),
        keyring("k2"),
        env.clock.clone(),
    );
    let err = other
        .finish(callback, &binding, &mut OsRng)
        .await
        .unwrap_err();
    assert!(matches!(err, FinishError::Unreadable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains(binding.expose_secret()), "{text}");
}

#[tokio::test]
async fn nothing_secret_reaches_the_store_or_debug() {
    let env = env().await;
    let started = env
        .connector
        .start(request("user-1"), &mut OsRng)
        .await
        .unwrap();
    let state = started
        .authorize_url
        .as_url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let shown = format!("{started:?} {:?} {:?}", env.connector, env.store);
    for secret in [state.as_str(), started.browser_binding.expose_secret()] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
