use super::*;
use crate::endpoint::UrlPolicy;
use crate::profile::CustomProvider;
use crate::{
    Callback, CallbackError, ClientSecret, MockClock, PendingAuthorizations, http::HttpConfig,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use time::{Duration, OffsetDateTime};

fn clock() -> Arc<MockClock> {
    Arc::new(MockClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ))
}

fn flow(profile: ProviderProfile, clock: Arc<MockClock>) -> AuthorizationFlow {
    let client =
        ClientConfig::confidential("cid", ClientSecret::new("SECRET"), "https://app.example/cb")
            .unwrap();
    AuthorizationFlow::new(
        profile,
        client,
        HttpClient::new(HttpConfig::default()).unwrap(),
        clock,
    )
}

#[test]
fn cal_com_authorize_url_is_exact() {
    let clock = clock();
    let flow = flow(ProviderProfile::cal_com(), clock.clone());
    let options = AuthorizeOptions::new(["BOOKING_READ", "PROFILE_READ"])
        .unwrap()
        .show_account_selector(true);
    let (url, pending) = flow.start(&options, &mut StdRng::seed_from_u64(7));
    let state = pending.state.expose().to_owned();
    assert_eq!(state.len(), 43);
    // A confidential client at Cal.com: no PKCE (its v2 token endpoint refuses the verifier).
    assert!(pending.verifier.is_none());
    assert_eq!(
        url.as_str(),
        format!(
            "https://app.cal.com/auth/oauth2/authorize?response_type=code&client_id=cid&state={state}\
             &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=BOOKING_READ%2CPROFILE_READ&show_account_selector=true"
        )
    );
    assert_eq!(pending.expires_at(), clock.now() + Duration::minutes(10));
    let shown = format!("{url:?}");
    assert!(
        !shown.contains(&state) && shown.contains("state=%5Bredacted%5D"),
        "{shown}"
    );
}

#[test]
fn custom_authorize_url_uses_spaces_and_no_cal_com_extras() {
    let profile = ProviderProfile::custom(
        CustomProvider {
            authorize_url: "http://127.0.0.1:9/auth?tenant=a".into(),
            token_url: "http://127.0.0.1:9/token".into(),
            revocation_url: None,
            client_auth: ClientAuthMethod::ClientSecretBasic,
            issuer: Some("http://127.0.0.1:9".into()),
        },
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap();
    let flow = flow(profile, clock());
    let options = AuthorizeOptions::new(["openid", "offline_access"])
        .unwrap()
        .show_account_selector(true);
    let (url, pending) = flow.start(&options, &mut StdRng::seed_from_u64(1));
    let state = pending.state.expose().to_owned();
    let challenge = pending
        .verifier
        .as_ref()
        .unwrap()
        .s256_challenge()
        .as_str()
        .to_owned();
    assert_eq!(
        url.as_str(),
        format!(
            "http://127.0.0.1:9/auth?tenant=a&response_type=code&client_id=cid&state={state}\
             &code_challenge={challenge}&code_challenge_method=S256\
             &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid+offline_access"
        )
    );
    assert_eq!(pending.issuer.as_deref(), Some("http://127.0.0.1:9"));
}

#[test]
fn every_start_is_fresh() {
    let flow = flow(ProviderProfile::cal_com(), clock());
    let mut rng = rand::rngs::OsRng;
    let (a, pa) = flow.start(&AuthorizeOptions::default(), &mut rng);
    let (b, pb) = flow.start(&AuthorizeOptions::default(), &mut rng);
    assert_ne!(a, b);
    assert_ne!(pa.state_key(), pb.state_key());
    assert!(!a.as_str().contains("scope="));
}

#[test]
fn scopes_are_validated() {
    for bad in ["", "A B", "A,B", "A\"", "Ä"] {
        assert!(AuthorizeOptions::new([bad]).is_err(), "{bad:?}");
    }
    assert!(AuthorizeOptions::new(["BOOKING_READ", "openid"]).is_ok());
}

#[test]
fn registry_detects_reuse_and_unknown_states() {
    let clock = clock();
    let flow = flow(ProviderProfile::cal_com(), clock.clone());
    let registry = PendingAuthorizations::new(clock.clone());
    let (_, pending) = flow.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    let query = format!("code=c&state={}", pending.state.expose());
    registry.insert(pending);
    assert!(
        registry
            .take_and_verify(Callback::parse(&query).unwrap())
            .is_ok()
    );
    assert_eq!(
        registry
            .take_and_verify(Callback::parse(&query).unwrap())
            .unwrap_err(),
        CallbackError::StateAlreadyUsed
    );
    assert_eq!(
        registry
            .take_and_verify(Callback::parse("code=c&state=nope").unwrap())
            .unwrap_err(),
        CallbackError::UnknownState
    );
    assert_eq!(
        registry
            .take_and_verify(Callback::parse("code=c").unwrap())
            .unwrap_err(),
        CallbackError::MissingState
    );
    // Used markers are forgotten once the pending authorization would have expired.
    clock.advance(Duration::minutes(11));
    let (_, other) = flow.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    registry.insert(other);
    assert_eq!(registry.len(), 1);
}

#[tokio::test]
async fn exchange_refuses_a_callback_of_another_client() {
    let clock = clock();
    let ours = flow(ProviderProfile::cal_com(), clock.clone());
    let other_client = ClientConfig::public("other", "https://app.example/cb").unwrap();
    let theirs = AuthorizationFlow::new(
        ProviderProfile::cal_com(),
        other_client,
        HttpClient::new(HttpConfig::default()).unwrap(),
        clock.clone(),
    );
    let (_, pending) = theirs.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    let cb = Callback::parse(&format!("code=c&state={}", pending.state.expose())).unwrap();
    let verified = pending.verify(cb, clock.as_ref()).unwrap();
    assert!(matches!(
        ours.exchange(verified).await,
        Err(ExchangeError::WrongClient)
    ));
}

#[tokio::test]
async fn revoke_without_endpoint_is_not_supported() {
    let flow = flow(ProviderProfile::cal_com(), clock());
    let token = AccessToken::new("a");
    assert!(matches!(
        flow.revoke(RevocableToken::Access(&token)).await,
        Err(RevokeError::NotSupported)
    ));
}

fn assert_send_sync<T: Send + Sync>(_: &T) {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn flow_and_its_futures_can_cross_threads() {
    let flow = flow(ProviderProfile::cal_com(), clock());
    assert_send_sync(&flow);
    let token = RefreshToken::new("x");
    assert_send(&flow.refresh(&token));
    let access = AccessToken::new("x");
    assert_send(&flow.revoke(RevocableToken::Access(&access)));
    assert_send(&flow.me(&access));
    let clock = self::clock();
    let (_, pending) = flow.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    let cb = Callback::parse(&format!("code=c&state={}", pending.state.expose())).unwrap();
    let verified = pending.verify(cb, clock.as_ref()).unwrap();
    assert_send(&flow.exchange(verified));
}

#[test]
fn verified_callback_debug_is_redacted() {
    let clock = clock();
    let flow = flow(
        ProviderProfile::cal_com()
            .with_confidential_pkce(crate::ConfidentialPkce::ViaLegacyEndpoint)
            .unwrap(),
        clock.clone(),
    );
    let (_, pending) = flow.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    let verifier = pending.verifier.as_ref().unwrap().expose().to_owned();
    let cb = Callback::parse(&format!("code=THE-CODE&state={}", pending.state.expose())).unwrap();
    let verified = pending.verify(cb, clock.as_ref()).unwrap();
    let shown = format!("{verified:?} {flow:?}");
    for secret in ["THE-CODE", verifier.as_str(), "SECRET"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
