//! The library against the local Cal.com sandbox: the full flow for confidential and public
//! clients, team selection, deny, the authorize and token errors of docs/calcom.md §2 and §3.5
//! as typed errors, refresh with rotation, and the fallback when v2 answers 404.

use calconnect::store::CalOwner;
use calconnect::{
    AuthorizationFlow, AuthorizeOptions, Callback, CallbackError, ClientConfig, ClientSecret,
    Clock, ExchangeError, InvalidClientReason, InvalidGrantReason, MockClock, PendingAuthorization,
    ProviderProfile, RefreshError, RefreshToken, TokenEndpoints, TransientError,
    UnauthorizedClientReason, UrlPolicy, VerifiedCallback, http::HttpClient, http::HttpConfig,
};
use calconnect_sandbox::browser::{Decision, SandboxBrowser};
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientStatus, DEFAULT_PUBLIC_REDIRECT_URI,
    DEFAULT_REDIRECT_URI, FaultKind, FaultSpec, FaultTarget, Owner, PUBLIC_CLIENT_ID, Sandbox,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const ALICE: i64 = 1;
const BOB: i64 = 2;

struct Env {
    sandbox: Sandbox,
    clock: Arc<MockClock>,
}

async fn env() -> Env {
    Env {
        sandbox: Sandbox::builder().start().await.unwrap(),
        clock: Arc::new(MockClock::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        )),
    }
}

impl Env {
    fn profile(&self) -> ProviderProfile {
        let base = self
            .sandbox
            .base_url()
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        ProviderProfile::sandbox(&base, UrlPolicy::allow_insecure_loopback_http()).unwrap()
    }

    fn flow_with(&self, profile: ProviderProfile, client: ClientConfig) -> AuthorizationFlow {
        AuthorizationFlow::new(
            profile,
            client,
            HttpClient::new(HttpConfig::default()).unwrap(),
            self.clock.clone(),
        )
    }

    fn confidential(&self) -> AuthorizationFlow {
        self.flow_with(
            self.profile(),
            confidential_client(CONFIDENTIAL_CLIENT_SECRET),
        )
    }

    /// A confidential client that keeps PKCE by exchanging at the legacy endpoint.
    fn confidential_with_legacy_pkce(&self) -> AuthorizationFlow {
        self.flow_with(
            self.profile()
                .with_confidential_pkce(calconnect::ConfidentialPkce::ViaLegacyEndpoint)
                .unwrap(),
            confidential_client(CONFIDENTIAL_CLIENT_SECRET),
        )
    }

    fn public(&self) -> AuthorizationFlow {
        self.flow_with(
            self.profile(),
            ClientConfig::public(PUBLIC_CLIENT_ID, DEFAULT_PUBLIC_REDIRECT_URI).unwrap(),
        )
    }

    /// Signs in as `user`, opens the authorize URL, answers the consent page with `action`
    /// (`allow`/`deny`) and `account`; returns the redirect to the client.
    async fn consent(
        &self,
        authorize_url: &str,
        user: i64,
        action: &str,
        account: Option<&str>,
    ) -> String {
        let browser = SandboxBrowser::new(self.sandbox.base_url()).unwrap();
        browser.sign_in(user).await.unwrap();
        let decision = if action == "allow" {
            Decision::Allow
        } else {
            Decision::Deny
        };
        browser
            .authorize(authorize_url, decision, account)
            .await
            .unwrap()
    }

    /// The full browser part: start, sign in as `user`, allow, verify the callback.
    async fn authorize(
        &self,
        flow: &AuthorizationFlow,
        user: i64,
        options: &AuthorizeOptions,
    ) -> VerifiedCallback {
        let (url, pending) = flow.start(options, &mut rand::rngs::OsRng);
        let redirect = self.consent(url.as_str(), user, "allow", None).await;
        pending
            .verify(
                Callback::from_redirect_url(&redirect).unwrap(),
                self.clock.as_ref(),
            )
            .unwrap()
    }
}

fn confidential_client(secret: &str) -> ClientConfig {
    ClientConfig::confidential(
        CONFIDENTIAL_CLIENT_ID,
        ClientSecret::new(secret),
        DEFAULT_REDIRECT_URI,
    )
    .unwrap()
}

fn scopes() -> AuthorizeOptions {
    AuthorizeOptions::new(["PROFILE_READ", "SCHEDULE_READ"]).unwrap()
}

#[tokio::test]
async fn confidential_client_full_flow_with_refresh_rotation() {
    let env = env().await;
    let flow = env.confidential();
    let tokens = flow
        .exchange(env.authorize(&flow, ALICE, &scopes()).await)
        .await
        .unwrap();
    assert_eq!(tokens.identity, Some(CalOwner::User(ALICE)));
    assert_eq!(tokens.expires_at, env.clock.now() + Duration::seconds(1800));
    assert_eq!(
        tokens.scopes.as_deref(),
        Some(&["PROFILE_READ".to_owned(), "SCHEDULE_READ".to_owned()][..])
    );
    let first = tokens.refresh_token.unwrap();

    let refreshed = flow.refresh(&first).await.unwrap();
    assert!(refreshed.refresh_token_rotated);
    let second = refreshed.refresh_token.unwrap();
    assert!(!second.ct_eq(&first));
    assert_eq!(refreshed.identity, Some(CalOwner::User(ALICE)));

    // The rotated-out refresh token is dead (docs/calcom.md §3.4); the new one works.
    let err = flow.refresh(&first).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::InvalidGrant {
                reason: InvalidGrantReason::RefreshTokenRevoked
            }
        ),
        "{err:?}"
    );
    assert!(err.needs_reauthorization());
    flow.refresh(&second).await.unwrap();
}

#[tokio::test]
async fn confidential_client_with_the_legacy_pkce_opt_in_full_flow() {
    let env = env().await;
    let flow = env.confidential_with_legacy_pkce();
    let (url, pending) = flow.start(&scopes(), &mut rand::rngs::OsRng);
    assert!(url.as_str().contains("code_challenge_method=S256"));
    let redirect = env.consent(url.as_str(), ALICE, "allow", None).await;
    let verified = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap();
    let tokens = flow.exchange(verified).await.unwrap();
    assert_eq!(tokens.identity, Some(CalOwner::User(ALICE)));
    // Refreshes stay on v2, without PKCE.
    let refreshed = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert!(refreshed.refresh_token_rotated);
}

#[tokio::test]
async fn public_client_full_flow() {
    let env = env().await;
    let flow = env.public();
    let tokens = flow
        .exchange(env.authorize(&flow, BOB, &scopes()).await)
        .await
        .unwrap();
    assert_eq!(tokens.identity, Some(CalOwner::User(BOB)));
    let refreshed = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert!(refreshed.refresh_token_rotated);
}

#[tokio::test]
async fn team_selection_gives_team_tokens() {
    let env = env().await;
    let flow = env.confidential();
    let options = AuthorizeOptions::new(["TEAM_PROFILE_READ"])
        .unwrap()
        .show_account_selector(true);
    let (url, pending) = flow.start(&options, &mut rand::rngs::OsRng);
    assert!(url.as_str().contains("show_account_selector=true"));
    let redirect = env
        .consent(url.as_str(), ALICE, "allow", Some("team/acme"))
        .await;
    let verified = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap();
    let tokens = flow.exchange(verified).await.unwrap();
    assert_eq!(tokens.identity, Some(CalOwner::Team(10)));
}

#[tokio::test]
async fn authorize_errors_surface_as_typed_callback_errors() {
    let env = env().await;
    let flow = env.confidential();
    // Deny: `error=access_denied&state=…`, no description.
    let (url, pending) = flow.start(&scopes(), &mut rand::rngs::OsRng);
    let redirect = env.consent(url.as_str(), ALICE, "deny", None).await;
    let err = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap_err();
    assert_eq!(err, CallbackError::AccessDenied { description: None });

    // A team the user does not administer: the web page's `unauthorized_client` with Cal.com's
    // prose, its own typed error (not "client not approved").
    let options = scopes().show_account_selector(true);
    let (url, pending) = flow.start(&options, &mut rand::rngs::OsRng);
    let redirect = env
        .consent(url.as_str(), BOB, "allow", Some("team/acme"))
        .await;
    let err = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap_err();
    assert!(
        matches!(err, CallbackError::TeamNotAllowed { .. }),
        "{err:?}"
    );

    // A scope the client did not register: Cal.com's browser sees invalid_request (§2).
    let (url, pending) = flow.start(
        &AuthorizeOptions::new(["ORG_BOOKING_WRITE"]).unwrap(),
        &mut rand::rngs::OsRng,
    );
    // The sandbox redirects at once (no consent page): SandboxBrowser returns the redirect.
    let browser = SandboxBrowser::new(env.sandbox.base_url()).unwrap();
    browser.sign_in(ALICE).await.unwrap();
    let redirect = browser
        .authorize(url.as_str(), Decision::Allow, None)
        .await
        .unwrap();
    let err = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallbackError::InvalidRequest {
                description: Some(_)
            }
        ),
        "{err:?}"
    );

    // A callback replayed against a fresh attempt, and an expired attempt.
    let (_, other) = flow.start(&scopes(), &mut rand::rngs::OsRng);
    assert_eq!(
        other
            .verify(
                Callback::from_redirect_url(&redirect).unwrap(),
                env.clock.as_ref()
            )
            .unwrap_err(),
        CallbackError::StateMismatch
    );
    let (url, pending) = flow.start(&scopes(), &mut rand::rngs::OsRng);
    let redirect = env.consent(url.as_str(), ALICE, "allow", None).await;
    env.clock.advance(Duration::minutes(10));
    let err = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap_err();
    assert!(matches!(err, CallbackError::Expired { .. }), "{err:?}");
}

/// Starts two attempts and returns (pending of the first, redirect of the second): presenting the
/// second code with the first verifier fails PKCE.
async fn crossed(env: &Env, flow: &AuthorizationFlow) -> VerifiedCallback {
    let (url_a, pending_a): (_, PendingAuthorization) =
        flow.start(&scopes(), &mut rand::rngs::OsRng);
    let (url_b, _pending_b) = flow.start(&scopes(), &mut rand::rngs::OsRng);
    let redirect = env.consent(url_b.as_str(), ALICE, "allow", None).await;
    let code = url::Url::parse(&redirect)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let state = url_a
        .as_url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    pending_a
        .verify(
            Callback::parse(&format!("code={code}&state={state}")).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap()
}

#[tokio::test]
async fn exchange_errors_are_classified() {
    let env = env().await;
    // PKCE is checked for a public client at v2 …
    let public = env.public();
    let err = public
        .exchange(crossed(&env, &public).await)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExchangeError::InvalidGrant {
                reason: InvalidGrantReason::PkceVerificationFailed
            }
        ),
        "{err:?}"
    );
    // … and for a confidential client with the legacy-endpoint opt-in, at the legacy endpoint
    // (which answers `{"error": …}` without a description).
    let legacy_pkce = env.confidential_with_legacy_pkce();
    let err = legacy_pkce
        .exchange(crossed(&env, &legacy_pkce).await)
        .await
        .unwrap_err();
    assert!(matches!(err, ExchangeError::InvalidGrant { .. }), "{err:?}");
    let flow = env.confidential();

    // The code expires after 10 minutes of sandbox time.
    let verified = env.authorize(&flow, ALICE, &scopes()).await;
    env.sandbox.advance_clock(Duration::minutes(11));
    let err = flow.exchange(verified).await.unwrap_err();
    assert!(
        matches!(
            err,
            ExchangeError::InvalidGrant {
                reason: InvalidGrantReason::CodeInvalidOrExpired
            }
        ),
        "{err:?}"
    );

    let wrong = env.flow_with(env.profile(), confidential_client("0000"));
    let err = wrong
        .exchange(env.authorize(&wrong, ALICE, &scopes()).await)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExchangeError::InvalidClient {
                reason: InvalidClientReason::InvalidClientCredentials
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(CONFIDENTIAL_CLIENT_SECRET));
}

#[tokio::test]
async fn refresh_errors_are_classified() {
    let env = env().await;
    let flow = env.confidential();
    let tokens = flow
        .exchange(env.authorize(&flow, ALICE, &scopes()).await)
        .await
        .unwrap();
    let refresh = tokens.refresh_token.unwrap();

    let err = flow
        .refresh(&RefreshToken::new("not-a-jwt"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::InvalidGrant {
                reason: InvalidGrantReason::InvalidRefreshToken
            }
        ),
        "{err:?}"
    );

    // Another client presenting this client's refresh token.
    let public = env.public();
    let err = public.refresh(&refresh).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::InvalidGrant {
                reason: InvalidGrantReason::ClientIdMismatch
            }
        ),
        "{err:?}"
    );

    let unknown = env.flow_with(
        env.profile(),
        ClientConfig::confidential(
            "no-such-client",
            ClientSecret::new("x"),
            DEFAULT_REDIRECT_URI,
        )
        .unwrap(),
    );
    let err = unknown.refresh(&refresh).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::InvalidClient {
                reason: InvalidClientReason::ClientNotFound
            }
        ),
        "{err:?}"
    );

    env.sandbox
        .set_client_status(CONFIDENTIAL_CLIENT_ID, ClientStatus::Rejected)
        .unwrap();
    let err = flow.refresh(&refresh).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::UnauthorizedClient {
                reason: UnauthorizedClientReason::ClientRejected
            }
        ),
        "{err:?}"
    );
    env.sandbox
        .set_client_status(CONFIDENTIAL_CLIENT_ID, ClientStatus::Approved)
        .unwrap();

    // Transient faults keep the grant alive.
    env.sandbox
        .inject_fault(FaultKind::ServerError { status: 503 }, 1)
        .unwrap();
    let err = flow.refresh(&refresh).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::Transient(TransientError::ServerError { status: 503, .. })
        ),
        "{err:?}"
    );
    env.sandbox.inject_fault(FaultKind::RateLimited, 1).unwrap();
    let err = flow.refresh(&refresh).await.unwrap_err();
    assert!(
        // Like Cal.com's throttler: no Retry-After, only `X-RateLimit-Reset-Default`.
        matches!(
            err,
            RefreshError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{err:?}"
    );
    env.sandbox.inject_fault(FaultKind::Drop, 1).unwrap();
    let err = flow.refresh(&refresh).await.unwrap_err();
    assert!(
        matches!(err, RefreshError::Transient(TransientError::Transport(_))),
        "{err:?}"
    );
    assert!(err.is_transient() && !err.needs_reauthorization());
    let refreshed = flow.refresh(&refresh).await.unwrap();

    // Revoked server-side (all rows of the grant deleted).
    env.sandbox
        .revoke_grant(CONFIDENTIAL_CLIENT_ID, Owner::User(ALICE));
    let err = flow
        .refresh(refreshed.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::InvalidGrant {
                reason: InvalidGrantReason::RefreshTokenRevoked
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn expired_refresh_token_is_invalid_refresh_token() {
    let env = env().await;
    let flow = env.public();
    let tokens = flow
        .exchange(env.authorize(&flow, ALICE, &scopes()).await)
        .await
        .unwrap();
    env.sandbox.advance_clock(Duration::days(31));
    let err = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::InvalidGrant {
                reason: InvalidGrantReason::InvalidRefreshToken
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn v2_404_falls_back_to_legacy_endpoints() {
    let env = env().await;
    let flow = env.confidential();
    let verified = env.authorize(&flow, ALICE, &scopes()).await;
    env.sandbox
        .arm_fault(FaultSpec {
            kind: FaultKind::NotFound,
            target: FaultTarget::V2,
            count: Some(2),
            for_seconds: None,
        })
        .unwrap();
    let tokens = flow.exchange(verified).await.unwrap();
    assert_eq!(tokens.identity, Some(CalOwner::User(ALICE)));
    let refreshed = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert!(refreshed.refresh_token.is_some());

    // Without the fallback the 404 is reported as such.
    let strict = env.flow_with(
        env.profile().without_legacy_fallback(),
        confidential_client(CONFIDENTIAL_CLIENT_SECRET),
    );
    env.sandbox.inject_fault(FaultKind::NotFound, 1).unwrap();
    let err = strict
        .refresh(refreshed.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::EndpointNotFound), "{err:?}");
}

#[tokio::test]
async fn legacy_only_profile_full_flow() {
    let env = env().await;
    let profile = env.profile().legacy_token_endpoints_only();
    assert!(matches!(
        profile.token_endpoints(),
        TokenEndpoints::Legacy(_)
    ));
    let flow = env.flow_with(profile, confidential_client(CONFIDENTIAL_CLIENT_SECRET));
    let tokens = flow
        .exchange(env.authorize(&flow, ALICE, &scopes()).await)
        .await
        .unwrap();
    let refreshed = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    let err = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::InvalidGrant { .. }), "{err:?}");
    flow.refresh(refreshed.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn client_review_status_and_legacy_error_shapes() {
    let env = env().await;
    let flow = env.confidential();
    // Bob is not the client's owner: a client back under review refuses his refresh.
    let tokens = flow
        .exchange(env.authorize(&flow, BOB, &scopes()).await)
        .await
        .unwrap();
    env.sandbox
        .set_client_status(CONFIDENTIAL_CLIENT_ID, ClientStatus::Pending)
        .unwrap();
    let err = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::UnauthorizedClient {
                reason: UnauthorizedClientReason::ClientNotApproved
            }
        ),
        "{err:?}"
    );
    assert!(err.needs_reauthorization());
    env.sandbox
        .set_client_status(CONFIDENTIAL_CLIENT_ID, ClientStatus::Approved)
        .unwrap();

    // The legacy endpoints answer `{"error": …}` only: the reason is unspecified.
    let legacy = env.flow_with(
        env.profile().legacy_token_endpoints_only(),
        confidential_client("0000"),
    );
    let err = legacy
        .exchange(env.authorize(&legacy, ALICE, &scopes()).await)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExchangeError::InvalidClient {
                reason: InvalidClientReason::Unspecified
            }
        ),
        "{err:?}"
    );

    // A 5xx at exchange time is transient.
    let verified = env.authorize(&flow, ALICE, &scopes()).await;
    env.sandbox
        .inject_fault(FaultKind::ServerError { status: 500 }, 1)
        .unwrap();
    let err = flow.exchange(verified).await.unwrap_err();
    assert!(
        matches!(
            err,
            ExchangeError::Transient(TransientError::ServerError { status: 500, .. })
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn works_when_pkce_is_required_for_every_client() {
    // The unmerged "PKCE for all" branch (docs/calcom.md, PKCE and client types): the default
    // confidential policy sends no challenge and is refused at authorize with a clear error; the
    // legacy-endpoint opt-in keeps working.
    let env = env().await;
    env.sandbox
        .update_settings(|s| s.pkce_required_for_all = true);
    let (url, pending) = env.confidential().start(&scopes(), &mut rand::rngs::OsRng);
    let redirect = env.consent(url.as_str(), ALICE, "allow", None).await;
    let err = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            env.clock.as_ref(),
        )
        .unwrap_err();
    assert!(
        matches!(err, CallbackError::InvalidRequest { .. }),
        "{err:?}"
    );
    let flow = env.confidential_with_legacy_pkce();
    let tokens = flow
        .exchange(env.authorize(&flow, ALICE, &scopes()).await)
        .await
        .unwrap();
    flow.refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
}
