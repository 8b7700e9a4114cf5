//! Interop with an independent, OpenID-certified authorization server: npm `oidc-provider`
//! (docs/interop.md), started from `tests/interop/server.mjs` on a free loopback port and
//! killed when the test ends. Skipped when Node.js or `npm ci` output is missing, unless
//! `CALCONNECT_REQUIRE_ALL=1` (CI), which makes that a failure.

use calconnect::{
    AccessToken, AuthorizationFlow, AuthorizeOptions, Callback, CallbackError, ClientAuthMethod,
    ClientConfig, ClientSecret, CustomProvider, ExchangeError, InvalidGrantReason, ProviderProfile,
    RefreshError, RevocableToken, SystemClock, UrlPolicy, VerifiedCallback, http::HttpClient,
    http::HttpConfig,
};
#[path = "../interop/launcher.rs"]
pub(crate) mod launcher;

use std::sync::Arc;

use launcher::{OidcProvider, interop_dir, start_provider_in};

pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// Starts the server, or returns `None` (after saying why) when it cannot run here.
pub(crate) async fn start_provider() -> Option<OidcProvider> {
    start_provider_in(&interop_dir(env!("CARGO_MANIFEST_DIR")), &[]).await
}

pub(crate) fn flow_for(
    provider: &OidcProvider,
    client: ClientConfig,
    auth: ClientAuthMethod,
) -> AuthorizationFlow {
    let profile = ProviderProfile::custom(
        CustomProvider {
            authorize_url: format!("{}/auth", provider.issuer),
            token_url: format!("{}/token", provider.issuer),
            revocation_url: Some(format!("{}/token/revocation", provider.issuer)),
            client_auth: auth,
            issuer: Some(provider.issuer.clone()),
        },
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap();
    let http = HttpClient::new(HttpConfig::default()).unwrap();
    AuthorizationFlow::new(profile, client, http, Arc::new(SystemClock))
}

pub(crate) fn clients() -> Vec<(&'static str, ClientConfig, ClientAuthMethod)> {
    vec![
        (
            "client_secret_post",
            ClientConfig::confidential(
                "conf-post",
                ClientSecret::new("conf-post-secret-0123456789abcdef"),
                REDIRECT_URI,
            )
            .unwrap(),
            ClientAuthMethod::ClientSecretPost,
        ),
        (
            "client_secret_basic",
            ClientConfig::confidential(
                "conf-basic",
                ClientSecret::new("conf basic:secret/0123456789abcdef"),
                REDIRECT_URI,
            )
            .unwrap(),
            ClientAuthMethod::ClientSecretBasic,
        ),
        (
            "public",
            ClientConfig::public("public", REDIRECT_URI).unwrap(),
            ClientAuthMethod::None,
        ),
    ]
}

/// Plays the browser up to the redirect to [`REDIRECT_URI`].
pub(crate) async fn browse(authorize_url: &str) -> String {
    launcher::browse(authorize_url, REDIRECT_URI).await
}

async fn authorize(flow: &AuthorizationFlow) -> VerifiedCallback {
    let options = AuthorizeOptions::new(["openid", "offline_access"]).unwrap();
    let (url, pending) = flow.start(&options, &mut rand::rngs::OsRng);
    let redirect = browse(url.as_str()).await;
    let callback = Callback::from_redirect_url(&redirect).unwrap();
    pending.verify(callback, &SystemClock).unwrap()
}

#[tokio::test]
async fn code_pkce_refresh_rotation_and_reuse_for_each_client_type() {
    let Some(provider) = start_provider().await else {
        return;
    };
    for (name, client, auth) in clients() {
        let flow = flow_for(&provider, client, auth);
        let verified = authorize(&flow).await;
        let tokens = flow
            .exchange(verified)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            tokens.identity, None,
            "opaque tokens carry no Cal.com identity"
        );
        let first = tokens
            .refresh_token
            .expect("a refresh token is always issued");

        let refreshed = flow
            .refresh(&first)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(refreshed.refresh_token_rotated, "{name}: rotated");
        let second = refreshed.refresh_token.unwrap();
        assert!(!second.ct_eq(&first));

        // The rotated-out token is refused, and its reuse revokes the whole grant.
        let reused = flow.refresh(&first).await.unwrap_err();
        assert!(
            matches!(
                reused,
                RefreshError::InvalidGrant {
                    reason: InvalidGrantReason::Other(_) | InvalidGrantReason::Unspecified
                }
            ),
            "{name}: {reused:?}"
        );
        assert!(reused.needs_reauthorization());
        let after = flow.refresh(&second).await.unwrap_err();
        assert!(
            matches!(after, RefreshError::InvalidGrant { .. }),
            "{name}: {after:?}"
        );
    }
}

#[tokio::test]
async fn revocation_for_each_client_type() {
    let Some(provider) = start_provider().await else {
        return;
    };
    for (name, client, auth) in clients() {
        let flow = flow_for(&provider, client, auth);
        let tokens = flow.exchange(authorize(&flow).await).await.unwrap();
        let refresh = tokens.refresh_token.unwrap();
        flow.revoke(RevocableToken::Access(&tokens.access_token))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        flow.revoke(RevocableToken::Refresh(&refresh))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = flow.refresh(&refresh).await.unwrap_err();
        assert!(
            matches!(err, RefreshError::InvalidGrant { .. }),
            "{name}: {err:?}"
        );
        // RFC 7009 §2.2: revoking an unknown token is still a success.
        flow.revoke(RevocableToken::Access(&AccessToken::new("not-a-token")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn wrong_verifier_and_wrong_secret_are_rejected() {
    let Some(provider) = start_provider().await else {
        return;
    };
    for (name, client, auth) in clients() {
        let flow = flow_for(&provider, client, auth);
        let options = AuthorizeOptions::new(["openid", "offline_access"]).unwrap();
        // Two flows: the code of the second is presented with the verifier of the first.
        let (url_a, pending_a) = flow.start(&options, &mut rand::rngs::OsRng);
        let (url_b, _pending_b) = flow.start(&options, &mut rand::rngs::OsRng);
        let redirect = browse(url_b.as_str()).await;
        let code = url::Url::parse(&redirect)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let state_a = url_a
            .as_url()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let iss =
            url::form_urlencoded::byte_serialize(provider.issuer.as_bytes()).collect::<String>();
        let crossed = Callback::parse(&format!("code={code}&state={state_a}&iss={iss}")).unwrap();
        let verified = pending_a.verify(crossed, &SystemClock).unwrap();
        let err = flow.exchange(verified).await.unwrap_err();
        assert!(
            matches!(err, ExchangeError::InvalidGrant { .. }),
            "{name}: {err:?}"
        );
    }
    let wrong =
        ClientConfig::confidential("conf-post", ClientSecret::new("wrong-secret"), REDIRECT_URI)
            .unwrap();
    let flow = flow_for(&provider, wrong, ClientAuthMethod::ClientSecretPost);
    let err = flow.exchange(authorize(&flow).await).await.unwrap_err();
    assert!(
        matches!(err, ExchangeError::InvalidClient { .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-secret"));
}

#[tokio::test]
async fn callbacks_carry_and_need_the_issuer() {
    let Some(provider) = start_provider().await else {
        return;
    };
    let (_, client, auth) = clients().remove(2);
    let flow = flow_for(&provider, client, auth);
    let (url, pending) = flow.start(
        &AuthorizeOptions::new(["openid"]).unwrap(),
        &mut rand::rngs::OsRng,
    );
    let redirect = browse(url.as_str()).await;
    assert!(
        redirect.contains("iss="),
        "RFC 9207 iss is sent: {redirect}"
    );
    // Strip `iss`: a profile that names an issuer refuses the callback.
    let mut stripped = url::Url::parse(&redirect).unwrap();
    let kept: Vec<(String, String)> = stripped
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "iss")
        .collect();
    stripped.query_pairs_mut().clear().extend_pairs(kept);
    let err = pending
        .verify(
            Callback::from_redirect_url(stripped.as_str()).unwrap(),
            &SystemClock,
        )
        .unwrap_err();
    assert_eq!(err, CallbackError::MissingIssuer);
}
