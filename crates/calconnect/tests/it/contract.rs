//! The request contract with Cal.com, and the client policy.
//!
//! 1. For every request the client can send to Cal.com's token endpoints, the body's field set
//!    equals the input Cal.com reads for that case. The inputs are listed below as data, each
//!    with the Cal.com source it is copied from, so a field added by mistake fails here without
//!    the sandbox's help (the sandbox was written from the same notes as the client).
//! 2. The client policy (PKCE or not, and where the code goes) for every profile × client type,
//!    asserted on the exact bytes of the authorize URL and of the exchange request.
//!
//! See docs/calcom.md, "Token endpoints" and "PKCE and client types".

use crate::responder::{Captured, Reply, Responder};
use calconnect::{
    AuthorizationFlow, AuthorizeOptions, Callback, ClientAuthMethod, ClientConfig, ClientSecret,
    ConfidentialPkce, CustomProvider, ExchangeError, MockClock, PkcePolicyError, PkceUse,
    ProviderProfile, RefreshToken, UrlPolicy, http::HttpClient, http::HttpConfig,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use time::OffsetDateTime;

const REDIRECT: &str = "http://127.0.0.1:1/callback";
const TOKENS: &str =
    r#"{"access_token":"AT","token_type":"bearer","refresh_token":"RT2","expires_in":1800}"#;
const V2: &str = "/v2/auth/oauth2/token";
const LEGACY_TOKEN: &str = "/api/auth/oauth/token";
const LEGACY_REFRESH: &str = "/api/auth/oauth/refreshToken";

/// One input Cal.com reads, copied from its source.
struct Input {
    case: &'static str,
    source: &'static str,
    path: &'static str,
    fields: &'static [&'static str],
}

/// Cal.com's inputs. The v2 endpoint validates with `whitelist + forbidNonWhitelisted`
/// (`apps/api/v2/src/modules/auth/oauth2/inputs/token.input.pipe.ts`): any other field is a 400.
/// The legacy routes read only the fields they destructure.
const INPUTS: &[Input] = &[
    Input {
        case: "v2 exchange, confidential",
        source: "apps/api/v2/src/modules/auth/oauth2/inputs/exchange.input.ts: OAuth2ExchangeConfidentialInput",
        path: V2,
        fields: &[
            "client_id",
            "grant_type",
            "code",
            "redirect_uri",
            "client_secret",
        ],
    },
    Input {
        case: "v2 exchange, public",
        source: "apps/api/v2/src/modules/auth/oauth2/inputs/exchange.input.ts: OAuth2ExchangePublicInput",
        path: V2,
        fields: &[
            "client_id",
            "grant_type",
            "code",
            "redirect_uri",
            "code_verifier",
        ],
    },
    Input {
        case: "v2 refresh, confidential",
        source: "apps/api/v2/src/modules/auth/oauth2/inputs/refresh.input.ts: OAuth2RefreshConfidentialInput",
        path: V2,
        fields: &["client_id", "grant_type", "refresh_token", "client_secret"],
    },
    Input {
        case: "v2 refresh, public",
        source: "apps/api/v2/src/modules/auth/oauth2/inputs/refresh.input.ts: OAuth2RefreshPublicInput",
        path: V2,
        fields: &["client_id", "grant_type", "refresh_token"],
    },
    Input {
        case: "legacy exchange, confidential",
        source: "apps/web/app/api/auth/oauth/token/route.ts@503bbcc: parseUrlFormData → { code, client_id, client_secret, grant_type, redirect_uri, code_verifier }",
        path: LEGACY_TOKEN,
        fields: &[
            "client_id",
            "grant_type",
            "code",
            "redirect_uri",
            "client_secret",
        ],
    },
    Input {
        case: "legacy exchange, confidential with PKCE (confidential_pkce = legacy-endpoint)",
        source: "apps/web/app/api/auth/oauth/token/route.ts@503bbcc: code_verifier is passed to OAuthService.exchangeCodeForTokens",
        path: LEGACY_TOKEN,
        fields: &[
            "client_id",
            "grant_type",
            "code",
            "redirect_uri",
            "client_secret",
            "code_verifier",
        ],
    },
    Input {
        case: "legacy exchange, public",
        source: "apps/web/app/api/auth/oauth/token/route.ts@503bbcc",
        path: LEGACY_TOKEN,
        fields: &[
            "client_id",
            "grant_type",
            "code",
            "redirect_uri",
            "code_verifier",
        ],
    },
    Input {
        case: "legacy refresh, confidential",
        source: "apps/web/app/api/auth/oauth/refreshToken/route.ts@93c75b5: parseUrlFormData → { client_id, client_secret, grant_type, refresh_token }",
        path: LEGACY_REFRESH,
        fields: &["client_id", "grant_type", "refresh_token", "client_secret"],
    },
    Input {
        case: "legacy refresh, public",
        source: "apps/web/app/api/auth/oauth/refreshToken/route.ts@93c75b5",
        path: LEGACY_REFRESH,
        fields: &["client_id", "grant_type", "refresh_token"],
    },
];

fn input(case: &str) -> &'static Input {
    INPUTS
        .iter()
        .find(|i| i.case == case)
        .unwrap_or_else(|| panic!("no input {case}"))
}

fn clock() -> Arc<MockClock> {
    Arc::new(MockClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ))
}

fn http() -> HttpClient {
    HttpClient::new(HttpConfig::default()).unwrap()
}

fn confidential() -> ClientConfig {
    ClientConfig::confidential("cid", ClientSecret::new("SECRET"), REDIRECT).unwrap()
}

fn public() -> ClientConfig {
    ClientConfig::public("cid", REDIRECT).unwrap()
}

fn sandbox_profile(base: &str) -> ProviderProfile {
    ProviderProfile::sandbox(base, UrlPolicy::allow_insecure_loopback_http()).unwrap()
}

/// The field names of a JSON or form body, in body order.
fn field_names(r: &Captured) -> Vec<String> {
    if r.body.starts_with('{') {
        let mut names = Vec::new();
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r.body).unwrap();
        // serde_json's map is sorted; recover body order from the text.
        let mut keys: Vec<(usize, String)> = map
            .keys()
            .map(|k| (r.body.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        keys.sort();
        names.extend(keys.into_iter().map(|(_, k)| k));
        names
    } else {
        url::form_urlencoded::parse(r.body.as_bytes())
            .map(|(k, _)| k.into_owned())
            .collect()
    }
}

fn assert_contract(case: &str, r: &Captured) {
    let input = input(case);
    assert_eq!(r.path, input.path, "{case}: wrong endpoint");
    let sent: BTreeSet<String> = field_names(r).into_iter().collect();
    let allowed: BTreeSet<String> = input.fields.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(
        sent, allowed,
        "{case}: the body's fields differ from Cal.com's input ({})",
        input.source
    );
    assert_eq!(
        field_names(r).len(),
        sent.len(),
        "{case}: a field is repeated"
    );
}

/// Starts a flow, plays a callback with `code`; returns the authorize URL's query.
async fn exchange(
    flow: &AuthorizationFlow,
    clock: &MockClock,
) -> (HashMap<String, String>, Result<(), ExchangeError>) {
    let (url, pending) = flow.start(
        &AuthorizeOptions::new(["BOOKING_READ"]).unwrap(),
        &mut rand::rngs::OsRng,
    );
    let query: HashMap<String, String> = url.as_url().query_pairs().into_owned().collect();
    let callback = Callback::parse(&format!("code=CODE&state={}", query["state"])).unwrap();
    let verified = pending.verify(callback, clock).unwrap();
    let result = flow.exchange(verified).await.map(|_| ());
    (query, result)
}

#[tokio::test]
async fn every_request_to_cal_com_has_exactly_the_fields_of_its_input() {
    let routes = || {
        vec![
            (V2, Reply::Json(200, TOKENS)),
            (LEGACY_TOKEN, Reply::Json(200, TOKENS)),
            (LEGACY_REFRESH, Reply::Json(200, TOKENS)),
        ]
    };
    let rt = RefreshToken::new("RT");
    let legacy_pkce = |base: &str| {
        sandbox_profile(base)
            .with_confidential_pkce(ConfidentialPkce::ViaLegacyEndpoint)
            .unwrap()
    };
    let legacy_only = |base: &str| sandbox_profile(base).legacy_token_endpoints_only();
    type MakeProfile = fn(&str) -> ProviderProfile;
    type Case = (&'static str, MakeProfile, fn() -> ClientConfig, bool);
    let cases: Vec<Case> = vec![
        (
            "v2 exchange, confidential",
            sandbox_profile,
            confidential,
            true,
        ),
        ("v2 exchange, public", sandbox_profile, public, true),
        (
            "v2 refresh, confidential",
            sandbox_profile,
            confidential,
            false,
        ),
        ("v2 refresh, public", sandbox_profile, public, false),
        (
            "legacy exchange, confidential",
            legacy_only,
            confidential,
            true,
        ),
        (
            "legacy exchange, confidential with PKCE (confidential_pkce = legacy-endpoint)",
            legacy_pkce,
            confidential,
            true,
        ),
        ("legacy exchange, public", legacy_only, public, true),
        (
            "legacy refresh, confidential",
            legacy_only,
            confidential,
            false,
        ),
        ("legacy refresh, public", legacy_only, public, false),
    ];
    for (case, profile, client, is_exchange) in cases {
        let server = Responder::start(routes()).await;
        let clock = clock();
        let flow = AuthorizationFlow::new(profile(&server.base), client(), http(), clock.clone());
        if is_exchange {
            exchange(&flow, &clock).await.1.unwrap();
        } else {
            flow.refresh(&rt).await.unwrap();
        }
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "{case}");
        assert_contract(case, &requests[0]);
    }
    // Every listed input was exercised.
    assert_eq!(INPUTS.len(), 9);
}

#[tokio::test]
async fn the_legacy_fallback_after_a_v2_404_keeps_the_contract() {
    // v2 answers 404 (Cal.com issue 27685): the same grant goes to the legacy endpoint.
    let server = Responder::start(vec![
        (LEGACY_TOKEN, Reply::Json(200, TOKENS)),
        (LEGACY_REFRESH, Reply::Json(200, TOKENS)),
    ])
    .await;
    let clock = clock();
    let flow = AuthorizationFlow::new(
        sandbox_profile(&server.base),
        confidential(),
        http(),
        clock.clone(),
    );
    exchange(&flow, &clock).await.1.unwrap();
    flow.refresh(&RefreshToken::new("RT")).await.unwrap();
    let r = server.requests();
    assert_eq!(r.len(), 3);
    assert_contract("v2 exchange, confidential", &r[0]);
    assert_contract("legacy exchange, confidential", &r[1]);
    assert_contract("legacy refresh, confidential", &r[2]);
}

/// What one cell of the policy must do.
struct Cell {
    name: &'static str,
    profile: fn(&str) -> ProviderProfile,
    client: fn() -> ClientConfig,
    pkce: PkceUse,
    /// The exchange request: path and exact body (`{V}` stands for the verifier sent).
    path: &'static str,
    body: &'static str,
}

fn self_hosted(base: &str) -> ProviderProfile {
    ProviderProfile::cal_com_self_hosted(
        base,
        &format!("{base}/v2"),
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap()
}

fn custom(base: &str) -> ProviderProfile {
    ProviderProfile::custom(
        CustomProvider {
            authorize_url: format!("{base}/authorize"),
            token_url: format!("{base}/token"),
            revocation_url: None,
            client_auth: ClientAuthMethod::ClientSecretPost,
            issuer: None,
        },
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap()
}

const CONF_JSON: &str = r#"{"client_id":"cid","grant_type":"authorization_code","code":"CODE","redirect_uri":"http://127.0.0.1:1/callback","client_secret":"SECRET"}"#;
const PUB_JSON: &str = r#"{"client_id":"cid","grant_type":"authorization_code","code":"CODE","redirect_uri":"http://127.0.0.1:1/callback","code_verifier":"{V}"}"#;
const CONF_PKCE_FORM: &str = "client_id=cid&grant_type=authorization_code&code=CODE&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcallback&client_secret=SECRET&code_verifier={V}";
const CONF_FORM: &str = "client_id=cid&grant_type=authorization_code&code=CODE&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcallback&client_secret=SECRET";
const PUB_FORM: &str = "client_id=cid&grant_type=authorization_code&code=CODE&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcallback&code_verifier={V}";

#[tokio::test]
async fn the_client_policy_for_every_profile_and_client_type() {
    let cells = [
        Cell {
            name: "sandbox × confidential",
            profile: sandbox_profile,
            client: confidential,
            pkce: PkceUse::None,
            path: V2,
            body: CONF_JSON,
        },
        Cell {
            name: "sandbox × public",
            profile: sandbox_profile,
            client: public,
            pkce: PkceUse::S256,
            path: V2,
            body: PUB_JSON,
        },
        Cell {
            name: "self-hosted × confidential",
            profile: self_hosted,
            client: confidential,
            pkce: PkceUse::None,
            path: V2,
            body: CONF_JSON,
        },
        Cell {
            name: "self-hosted × public",
            profile: self_hosted,
            client: public,
            pkce: PkceUse::S256,
            path: V2,
            body: PUB_JSON,
        },
        Cell {
            name: "self-hosted + legacy-endpoint opt-in × confidential",
            profile: |b| {
                self_hosted(b)
                    .with_confidential_pkce(ConfidentialPkce::ViaLegacyEndpoint)
                    .unwrap()
            },
            client: confidential,
            pkce: PkceUse::S256ViaLegacyEndpoint,
            path: LEGACY_TOKEN,
            body: CONF_PKCE_FORM,
        },
        Cell {
            name: "self-hosted + legacy-endpoint opt-in × public (no effect)",
            profile: |b| {
                self_hosted(b)
                    .with_confidential_pkce(ConfidentialPkce::ViaLegacyEndpoint)
                    .unwrap()
            },
            client: public,
            pkce: PkceUse::S256,
            path: V2,
            body: PUB_JSON,
        },
        Cell {
            name: "custom × confidential (PKCE on by default)",
            profile: custom,
            client: confidential,
            pkce: PkceUse::S256,
            path: "/token",
            body: CONF_PKCE_FORM,
        },
        Cell {
            name: "custom + PKCE off × confidential",
            profile: |b| {
                custom(b)
                    .with_confidential_pkce(ConfidentialPkce::Off)
                    .unwrap()
            },
            client: confidential,
            pkce: PkceUse::None,
            path: "/token",
            body: CONF_FORM,
        },
        Cell {
            name: "custom × public",
            profile: custom,
            client: public,
            pkce: PkceUse::S256,
            path: "/token",
            body: PUB_FORM,
        },
        Cell {
            name: "custom + PKCE off × public (public clients always use PKCE)",
            profile: |b| {
                custom(b)
                    .with_confidential_pkce(ConfidentialPkce::Off)
                    .unwrap()
            },
            client: public,
            pkce: PkceUse::S256,
            path: "/token",
            body: PUB_FORM,
        },
    ];
    for cell in cells {
        let server = Responder::start(vec![
            (V2, Reply::Json(200, TOKENS)),
            (LEGACY_TOKEN, Reply::Json(200, TOKENS)),
            ("/token", Reply::Json(200, TOKENS)),
        ])
        .await;
        let clock = clock();
        let flow = AuthorizationFlow::new(
            (cell.profile)(&server.base),
            (cell.client)(),
            http(),
            clock.clone(),
        );
        assert_eq!(flow.pkce_use(), cell.pkce, "{}", cell.name);
        let (query, result) = exchange(&flow, &clock).await;
        result.unwrap_or_else(|e| panic!("{}: {e}", cell.name));
        let r = &server.requests()[0];
        assert_eq!(r.path, cell.path, "{}", cell.name);
        match query.get("code_challenge") {
            Some(challenge) => {
                assert!(
                    cell.pkce.sends_challenge(),
                    "{}: unexpected challenge",
                    cell.name
                );
                assert_eq!(query["code_challenge_method"], "S256", "{}", cell.name);
                let verifier = if r.body.starts_with('{') {
                    serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["code_verifier"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                } else {
                    url::form_urlencoded::parse(r.body.as_bytes())
                        .find(|(k, _)| k == "code_verifier")
                        .unwrap()
                        .1
                        .into_owned()
                };
                use base64::Engine as _;
                use sha2::Digest as _;
                assert_eq!(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes())),
                    challenge,
                    "{}",
                    cell.name
                );
                assert_eq!(r.body, cell.body.replace("{V}", &verifier), "{}", cell.name);
            }
            None => {
                assert!(!cell.pkce.sends_challenge(), "{}: no challenge", cell.name);
                assert!(!query.contains_key("code_challenge_method"));
                assert_eq!(r.body, cell.body, "{}", cell.name);
            }
        }
    }
}

#[test]
fn cal_com_cloud_follows_the_same_policy() {
    let profile = ProviderProfile::cal_com();
    assert_eq!(profile.confidential_pkce(), ConfidentialPkce::Off);
    assert_eq!(profile.pkce_use(true), PkceUse::None);
    assert_eq!(profile.pkce_use(false), PkceUse::S256);
    let clock = clock();
    let flow = AuthorizationFlow::new(profile.clone(), confidential(), http(), clock.clone());
    let (url, _) = flow.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    assert!(!url.as_str().contains("code_challenge"), "{url:?}");
    let flow = AuthorizationFlow::new(profile, public(), http(), clock);
    let (url, _) = flow.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    assert!(
        url.as_str().contains("&code_challenge_method=S256"),
        "{url:?}"
    );
}

#[test]
fn settings_that_cannot_work_are_refused_by_name() {
    let err = ProviderProfile::cal_com()
        .with_confidential_pkce(ConfidentialPkce::On)
        .unwrap_err();
    assert_eq!(err, PkcePolicyError::RefusedByCalCom);
    assert!(err.to_string().contains("confidential_pkce"), "{err}");
    let err = custom("http://127.0.0.1:9")
        .with_confidential_pkce(ConfidentialPkce::ViaLegacyEndpoint)
        .unwrap_err();
    assert_eq!(err, PkcePolicyError::NoLegacyEndpoint);
    assert!(err.to_string().contains("legacy-endpoint"), "{err}");
    // The legacy endpoints stay known even without the 404 fallback.
    assert!(
        ProviderProfile::cal_com()
            .without_legacy_fallback()
            .with_confidential_pkce(ConfidentialPkce::ViaLegacyEndpoint)
            .is_ok()
    );
}

#[tokio::test]
async fn the_legacy_opt_in_against_a_server_without_it_names_the_setting() {
    let server = Responder::start(vec![(V2, Reply::Json(200, TOKENS))]).await;
    let clock = clock();
    let profile = sandbox_profile(&server.base)
        .with_confidential_pkce(ConfidentialPkce::ViaLegacyEndpoint)
        .unwrap();
    let flow = AuthorizationFlow::new(profile, confidential(), http(), clock.clone());
    let (_, result) = exchange(&flow, &clock).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, ExchangeError::LegacyEndpointMissing),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("confidential_pkce")
            && text.contains("legacy-endpoint")
            && !text.contains("SECRET"),
        "{text}"
    );
    // The code went to the legacy endpoint only, never to v2 with a verifier.
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, [LEGACY_TOKEN]);
}

#[tokio::test]
async fn a_callback_started_under_another_pkce_setting_is_refused_without_a_call() {
    let server = Responder::start(vec![(V2, Reply::Json(200, TOKENS))]).await;
    let clock = clock();
    let without = AuthorizationFlow::new(
        sandbox_profile(&server.base),
        confidential(),
        http(),
        clock.clone(),
    );
    let with = AuthorizationFlow::new(
        sandbox_profile(&server.base)
            .with_confidential_pkce(ConfidentialPkce::ViaLegacyEndpoint)
            .unwrap(),
        confidential(),
        http(),
        clock.clone(),
    );
    let (url, pending) = without.start(&AuthorizeOptions::default(), &mut rand::rngs::OsRng);
    let query: HashMap<String, String> = url.as_url().query_pairs().into_owned().collect();
    let verified = pending
        .verify(
            Callback::parse(&format!("code=CODE&state={}", query["state"])).unwrap(),
            &*clock,
        )
        .unwrap();
    let err = with.exchange(verified).await.unwrap_err();
    assert!(matches!(err, ExchangeError::PkceSettingChanged), "{err:?}");
    assert!(server.requests().is_empty());
}
