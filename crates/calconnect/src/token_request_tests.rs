//! The exact bytes of every token request each profile sends (docs/architecture.md §7 anchor: oauth2-rs tests).

use super::*;
use crate::ClientSecret;
use crate::endpoint::UrlPolicy;
use crate::profile::{CustomProvider, ProviderProfile, TokenEndpoints};
use secrecy::{ExposeSecret, SecretString};

const REDIRECT: &str = "https://app.example/cb";

fn confidential() -> ClientConfig {
    ClientConfig::confidential("cid", ClientSecret::new("SECRET"), REDIRECT).unwrap()
}

fn public() -> ClientConfig {
    ClientConfig::public("cid", REDIRECT).unwrap()
}

fn body(r: &PreparedRequest) -> String {
    String::from_utf8(r.body.as_ref().unwrap().expose_secret().to_vec()).unwrap()
}

fn headers(r: &PreparedRequest) -> Vec<(String, String)> {
    r.headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A code grant with a PKCE verifier (public clients, custom profiles, the legacy opt-in).
fn code_grant<R>(f: impl FnOnce(&Grant<'_>) -> R) -> R {
    let code = AuthorizationCode(SecretString::from("CODE"));
    let verifier = PkceVerifier::from_persisted("VERIFIER".into());
    f(&Grant::AuthorizationCode {
        code: &code,
        redirect_uri: REDIRECT,
        verifier: Some(&verifier),
    })
}

/// A code grant without PKCE (a confidential client at Cal.com by default).
fn code_grant_without_pkce<R>(f: impl FnOnce(&Grant<'_>) -> R) -> R {
    let code = AuthorizationCode(SecretString::from("CODE"));
    f(&Grant::AuthorizationCode {
        code: &code,
        redirect_uri: REDIRECT,
        verifier: None,
    })
}

fn refresh_grant<R>(f: impl FnOnce(&Grant<'_>) -> R) -> R {
    let token = RefreshToken::new("RT");
    f(&Grant::RefreshToken(&token))
}

fn v2(profile: &ProviderProfile) -> (&EndpointUrl, BodyEncoding) {
    match profile.token_endpoints() {
        TokenEndpoints::Unified { url, encoding, .. } => (url, *encoding),
        TokenEndpoints::Legacy(_) => panic!("not unified"),
    }
}

const JSON_HEADERS: &[(&str, &str)] = &[
    ("accept", "application/json"),
    ("content-type", "application/json"),
];
const FORM_HEADERS: &[(&str, &str)] = &[
    ("accept", "application/json"),
    ("content-type", "application/x-www-form-urlencoded"),
];

#[test]
fn cal_com_v2_confidential_code_exchange_is_json_with_the_whitelisted_fields() {
    let p = ProviderProfile::cal_com();
    let (url, enc) = v2(&p);
    let r = code_grant_without_pkce(|g| {
        token_request(
            url,
            enc,
            ClientAuthMethod::ClientSecretPost,
            &confidential(),
            g,
        )
    });
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.url.as_str(), "https://api.cal.com/v2/auth/oauth2/token");
    assert_eq!(headers(&r), h(JSON_HEADERS));
    assert_eq!(
        body(&r),
        r#"{"client_id":"cid","grant_type":"authorization_code","code":"CODE","redirect_uri":"https://app.example/cb","client_secret":"SECRET"}"#
    );
}

#[test]
fn cal_com_v2_public_code_exchange() {
    let p = ProviderProfile::cal_com();
    let (url, enc) = v2(&p);
    let r =
        code_grant(|g| token_request(url, enc, ClientAuthMethod::ClientSecretPost, &public(), g));
    assert_eq!(headers(&r), h(JSON_HEADERS));
    assert_eq!(
        body(&r),
        r#"{"client_id":"cid","grant_type":"authorization_code","code":"CODE","redirect_uri":"https://app.example/cb","code_verifier":"VERIFIER"}"#
    );
}

#[test]
fn cal_com_v2_refresh_confidential_and_public() {
    let p = ProviderProfile::cal_com();
    let (url, enc) = v2(&p);
    let r = refresh_grant(|g| {
        token_request(
            url,
            enc,
            ClientAuthMethod::ClientSecretPost,
            &confidential(),
            g,
        )
    });
    assert_eq!(headers(&r), h(JSON_HEADERS));
    assert_eq!(
        body(&r),
        r#"{"client_id":"cid","grant_type":"refresh_token","refresh_token":"RT","client_secret":"SECRET"}"#
    );
    let r = refresh_grant(|g| {
        token_request(url, enc, ClientAuthMethod::ClientSecretPost, &public(), g)
    });
    assert_eq!(
        body(&r),
        r#"{"client_id":"cid","grant_type":"refresh_token","refresh_token":"RT"}"#
    );
}

#[test]
fn cal_com_v2_form_encoding_option() {
    let p = ProviderProfile::cal_com().with_token_body_encoding(BodyEncoding::Form);
    let (url, enc) = v2(&p);
    let r = code_grant_without_pkce(|g| {
        token_request(
            url,
            enc,
            ClientAuthMethod::ClientSecretPost,
            &confidential(),
            g,
        )
    });
    assert_eq!(headers(&r), h(FORM_HEADERS));
    assert_eq!(
        body(&r),
        "client_id=cid&grant_type=authorization_code&code=CODE&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&client_secret=SECRET"
    );
}

#[test]
fn cal_com_legacy_endpoints_are_form() {
    let p = ProviderProfile::cal_com().legacy_token_endpoints_only();
    let TokenEndpoints::Legacy(legacy) = p.token_endpoints() else {
        panic!()
    };
    let r = code_grant(|g| {
        token_request(
            &legacy.token,
            BodyEncoding::Form,
            ClientAuthMethod::ClientSecretPost,
            &confidential(),
            g,
        )
    });
    assert_eq!(r.url.as_str(), "https://app.cal.com/api/auth/oauth/token");
    assert_eq!(headers(&r), h(FORM_HEADERS));
    assert_eq!(
        body(&r),
        "client_id=cid&grant_type=authorization_code&code=CODE&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&client_secret=SECRET&code_verifier=VERIFIER"
    );
    let r = refresh_grant(|g| {
        token_request(
            &legacy.refresh,
            BodyEncoding::Form,
            ClientAuthMethod::ClientSecretPost,
            &confidential(),
            g,
        )
    });
    assert_eq!(
        r.url.as_str(),
        "https://app.cal.com/api/auth/oauth/refreshToken"
    );
    assert_eq!(
        body(&r),
        "client_id=cid&grant_type=refresh_token&refresh_token=RT&client_secret=SECRET"
    );
}

fn custom(auth: ClientAuthMethod) -> ProviderProfile {
    ProviderProfile::custom(
        CustomProvider {
            authorize_url: "https://as.example/authorize".into(),
            token_url: "https://as.example/token".into(),
            revocation_url: Some("https://as.example/revoke".into()),
            client_auth: auth,
            issuer: Some("https://as.example".into()),
        },
        UrlPolicy::https_only(),
    )
    .unwrap()
}

#[test]
fn custom_client_secret_basic_url_encodes_then_base64s() {
    let p = custom(ClientAuthMethod::ClientSecretBasic);
    let (url, enc) = v2(&p);
    let client =
        ClientConfig::confidential("c id", ClientSecret::new("s:e/cret"), REDIRECT).unwrap();
    let r =
        code_grant(|g| token_request(url, enc, ClientAuthMethod::ClientSecretBasic, &client, g));
    // base64("c+id:s%3Ae%2Fcret")
    assert_eq!(
        headers(&r),
        h(&[
            ("accept", "application/json"),
            ("authorization", "Basic YytpZDpzJTNBZSUyRmNyZXQ="),
            ("content-type", "application/x-www-form-urlencoded"),
        ])
    );
    assert!(r.headers.get(AUTHORIZATION).unwrap().is_sensitive());
    assert_eq!(
        body(&r),
        "grant_type=authorization_code&code=CODE&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=VERIFIER"
    );
    let r =
        refresh_grant(|g| token_request(url, enc, ClientAuthMethod::ClientSecretBasic, &client, g));
    assert_eq!(body(&r), "grant_type=refresh_token&refresh_token=RT");
}

#[test]
fn custom_client_secret_post_and_none() {
    let p = custom(ClientAuthMethod::ClientSecretPost);
    let (url, enc) = v2(&p);
    let r = refresh_grant(|g| {
        token_request(
            url,
            enc,
            ClientAuthMethod::ClientSecretPost,
            &confidential(),
            g,
        )
    });
    assert_eq!(headers(&r), h(FORM_HEADERS));
    assert_eq!(
        body(&r),
        "client_id=cid&grant_type=refresh_token&refresh_token=RT&client_secret=SECRET"
    );
    // `none` never sends a secret, even if one is configured.
    let r = refresh_grant(|g| token_request(url, enc, ClientAuthMethod::None, &confidential(), g));
    assert_eq!(
        body(&r),
        "client_id=cid&grant_type=refresh_token&refresh_token=RT"
    );
    let r =
        code_grant(|g| token_request(url, enc, ClientAuthMethod::ClientSecretBasic, &public(), g));
    assert_eq!(headers(&r), h(FORM_HEADERS));
    assert_eq!(
        body(&r),
        "client_id=cid&grant_type=authorization_code&code=CODE&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=VERIFIER"
    );
}

#[test]
fn revocation_requests() {
    let p = custom(ClientAuthMethod::ClientSecretPost);
    let url = p.revocation_url().unwrap();
    let r = revocation_request(
        url,
        ClientAuthMethod::ClientSecretPost,
        &confidential(),
        &Revocation {
            token: "AT",
            hint: "access_token",
        },
    );
    assert_eq!(r.url.as_str(), "https://as.example/revoke");
    assert_eq!(headers(&r), h(FORM_HEADERS));
    assert_eq!(
        body(&r),
        "client_id=cid&token=AT&token_type_hint=access_token&client_secret=SECRET"
    );
    let r = revocation_request(
        url,
        ClientAuthMethod::ClientSecretBasic,
        &confidential(),
        &Revocation {
            token: "RT",
            hint: "refresh_token",
        },
    );
    assert_eq!(body(&r), "token=RT&token_type_hint=refresh_token");
    assert_eq!(
        r.headers.get(AUTHORIZATION).unwrap(),
        "Basic Y2lkOlNFQ1JFVA=="
    );
}

#[test]
fn debug_of_a_request_shows_no_secret() {
    let p = custom(ClientAuthMethod::ClientSecretBasic);
    let (url, enc) = v2(&p);
    let r = code_grant(|g| {
        token_request(
            url,
            enc,
            ClientAuthMethod::ClientSecretBasic,
            &confidential(),
            g,
        )
    });
    let shown = format!("{r:?}");
    for secret in ["CODE", "VERIFIER", "SECRET", "Y2lkOlNFQ1JFVA"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
