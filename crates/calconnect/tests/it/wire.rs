//! The library against small in-test responders: exact wire bytes, the 404 fallback, and the
//! transport's limits (no redirects, size limit, timeouts, errors without URLs or secrets).

use crate::responder::{Reply, Responder};
use base64::Engine as _;
use calconnect::{
    AuthorizationFlow, AuthorizeOptions, BodyEncoding, Callback, ClientConfig, ClientSecret, Clock,
    ExchangeError, MockClock, ProtocolError, ProviderProfile, RefreshError, RefreshToken,
    TransientError, UrlPolicy, VerifiedCallback, http::HttpClient, http::HttpConfig,
    http::TransportErrorKind,
};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

const REDIRECT: &str = "http://127.0.0.1:1/callback";
const TOKENS: &str = r#"{"access_token":"AT-1","token_type":"bearer","refresh_token":"RT-2","expires_in":1800,"scope":"BOOKING_READ"}"#;

fn clock() -> Arc<MockClock> {
    Arc::new(MockClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ))
}

fn http() -> HttpClient {
    HttpClient::new(
        HttpConfig::default()
            .total_timeout(Duration::from_millis(500))
            .max_response_bytes(4096),
    )
    .unwrap()
}

fn sandbox_flow(base: &str, client: ClientConfig, clock: Arc<MockClock>) -> AuthorizationFlow {
    let profile =
        ProviderProfile::sandbox(base, UrlPolicy::allow_insecure_loopback_http()).unwrap();
    AuthorizationFlow::new(profile, client, http(), clock)
}

fn confidential() -> ClientConfig {
    ClientConfig::confidential("cid", ClientSecret::new("CLIENT-SECRET"), REDIRECT).unwrap()
}

/// Starts a flow and verifies a callback carrying `code`; returns the authorize URL's challenge
/// (empty when the client policy sends none).
fn verified(flow: &AuthorizationFlow, clock: &MockClock, code: &str) -> (VerifiedCallback, String) {
    let (url, pending) = flow.start(
        &AuthorizeOptions::new(["BOOKING_READ"]).unwrap(),
        &mut rand::rngs::OsRng,
    );
    let query: std::collections::HashMap<_, _> = url.as_url().query_pairs().into_owned().collect();
    let callback = Callback::parse(&format!("code={code}&state={}", query["state"])).unwrap();
    (
        pending.verify(callback, clock).unwrap(),
        query.get("code_challenge").cloned().unwrap_or_default(),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn exchange_sends_exactly_the_whitelisted_json() {
    let server = Responder::start(vec![("/v2/auth/oauth2/token", Reply::Json(200, TOKENS))]).await;
    let clock = clock();
    let flow = sandbox_flow(&server.base, confidential(), clock.clone());
    let (verified, challenge) = verified(&flow, &clock, "CODE-1");
    // A confidential client at Cal.com: no PKCE (the v2 endpoint refuses its code_verifier).
    assert_eq!(challenge, "");
    let tokens = flow.exchange(verified).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "AT-1");
    assert_eq!(
        tokens.expires_at,
        clock.now() + time::Duration::seconds(1800)
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v2/auth/oauth2/token")
    );
    assert_eq!(
        r.body,
        format!(
            r#"{{"client_id":"cid","grant_type":"authorization_code","code":"CODE-1","redirect_uri":"{REDIRECT}","client_secret":"CLIENT-SECRET"}}"#
        )
    );
    let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "accept",
            "content-length",
            "content-type",
            "host",
            "user-agent"
        ]
    );
    assert_eq!(header(&r.headers, "accept"), Some("application/json"));
    assert_eq!(header(&r.headers, "content-type"), Some("application/json"));
    assert_eq!(
        header(&r.headers, "content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(
        header(&r.headers, "user-agent")
            .unwrap()
            .starts_with("calconnect/")
    );
}

#[tokio::test]
async fn a_public_client_sends_the_verifier_of_its_challenge() {
    let server = Responder::start(vec![("/v2/auth/oauth2/token", Reply::Json(200, TOKENS))]).await;
    let clock = clock();
    let flow = sandbox_flow(
        &server.base,
        ClientConfig::public("pub", REDIRECT).unwrap(),
        clock.clone(),
    );
    let (verified, challenge) = verified(&flow, &clock, "CODE-P");
    flow.exchange(verified).await.unwrap();
    let r = &server.requests()[0];
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let verifier = body["code_verifier"].as_str().unwrap();
    let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    assert_eq!(
        derived, challenge,
        "the verifier sent matches the challenge in the authorize URL"
    );
    assert_eq!(
        r.body,
        format!(
            r#"{{"client_id":"pub","grant_type":"authorization_code","code":"CODE-P","redirect_uri":"{REDIRECT}","code_verifier":"{verifier}"}}"#
        )
    );
}

#[tokio::test]
async fn v2_404_falls_back_to_the_legacy_endpoints() {
    let server = Responder::start(vec![
        ("/api/auth/oauth/token", Reply::Json(200, r#"{"access_token":"AT-L","token_type":"bearer","refresh_token":"RT-L","expires_in":1800}"#)),
        ("/api/auth/oauth/refreshToken", Reply::Json(200, r#"{"access_token":"AT-L2","token_type":"bearer","expires_in":1800}"#)),
    ])
    .await;
    let clock = clock();
    let flow = sandbox_flow(
        &server.base,
        ClientConfig::public("pub", REDIRECT).unwrap(),
        clock.clone(),
    );
    let (verified, _) = verified(&flow, &clock, "CODE-2");
    let tokens = flow.exchange(verified).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "AT-L");
    let refreshed = flow
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(refreshed.access_token.expose_secret(), "AT-L2");
    // No refresh_token in the answer: the old one is kept and marked as not rotated.
    assert_eq!(refreshed.refresh_token.unwrap().expose_secret(), "RT-L");
    assert!(!refreshed.refresh_token_rotated);

    // The 404 is remembered: the refresh goes straight to the legacy endpoint.
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v2/auth/oauth2/token",
            "/api/auth/oauth/token",
            "/api/auth/oauth/refreshToken"
        ]
    );
    let legacy = &server.requests()[1];
    assert_eq!(
        header(&legacy.headers, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(legacy.body.starts_with("client_id=pub&grant_type=authorization_code&code=CODE-2&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcallback&code_verifier="));
    assert_eq!(
        server.requests()[2].body,
        "client_id=pub&grant_type=refresh_token&refresh_token=RT-L"
    );
}

#[tokio::test]
async fn the_v2_404_is_remembered_for_a_while_then_v2_is_tried_again() {
    let legacy_tokens =
        r#"{"access_token":"AT-L","token_type":"bearer","refresh_token":"RT-L","expires_in":1800}"#;
    let server = Responder::start(vec![(
        "/api/auth/oauth/refreshToken",
        Reply::Json(200, legacy_tokens),
    )])
    .await;
    let clock = clock();
    let profile = ProviderProfile::sandbox(&server.base, UrlPolicy::allow_insecure_loopback_http())
        .unwrap()
        .with_legacy_fallback_memory(Duration::from_secs(600));
    let flow = AuthorizationFlow::new(profile, confidential(), http(), clock.clone());
    let clone = flow.clone();
    let rt = RefreshToken::new("RT");
    flow.refresh(&rt).await.unwrap();
    clone.refresh(&rt).await.unwrap(); // clones share the memory
    clock.advance(time::Duration::seconds(599));
    flow.refresh(&rt).await.unwrap();
    clock.advance(time::Duration::seconds(2));
    flow.refresh(&rt).await.unwrap(); // memory over: v2 first again
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v2/auth/oauth2/token",
            "/api/auth/oauth/refreshToken",
            "/api/auth/oauth/refreshToken",
            "/api/auth/oauth/refreshToken",
            "/v2/auth/oauth2/token",
            "/api/auth/oauth/refreshToken",
        ]
    );

    // A memory of zero asks v2 every time.
    let server = Responder::start(vec![(
        "/api/auth/oauth/refreshToken",
        Reply::Json(200, legacy_tokens),
    )])
    .await;
    let profile = ProviderProfile::sandbox(&server.base, UrlPolicy::allow_insecure_loopback_http())
        .unwrap()
        .with_legacy_fallback_memory(Duration::ZERO);
    let flow = AuthorizationFlow::new(profile, confidential(), http(), clock);
    flow.refresh(&rt).await.unwrap();
    flow.refresh(&rt).await.unwrap();
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn without_fallback_a_404_is_endpoint_not_found() {
    let server = Responder::start(vec![]).await;
    let profile = ProviderProfile::sandbox(&server.base, UrlPolicy::allow_insecure_loopback_http())
        .unwrap()
        .without_legacy_fallback();
    let flow = AuthorizationFlow::new(profile, confidential(), http(), clock());
    let err = flow.refresh(&RefreshToken::new("RT")).await.unwrap_err();
    assert!(matches!(err, RefreshError::EndpointNotFound), "{err:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn form_encoding_profile_sends_form_to_v2() {
    let server = Responder::start(vec![("/v2/auth/oauth2/token", Reply::Json(200, TOKENS))]).await;
    let profile = ProviderProfile::sandbox(&server.base, UrlPolicy::allow_insecure_loopback_http())
        .unwrap()
        .with_token_body_encoding(BodyEncoding::Form);
    let flow = AuthorizationFlow::new(profile, confidential(), http(), clock());
    flow.refresh(&RefreshToken::new("RT")).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(
        header(&r.headers, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.body,
        "client_id=cid&grant_type=refresh_token&refresh_token=RT&client_secret=CLIENT-SECRET"
    );
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let server = Responder::start(vec![(
        "/v2/auth/oauth2/token",
        Reply::Raw {
            status: 307,
            headers: vec![("location", "/elsewhere".into())],
            body: vec![],
        },
    )])
    .await;
    let flow = sandbox_flow(&server.base, confidential(), clock());
    let err = flow.refresh(&RefreshToken::new("RT")).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::Protocol(ProtocolError::Redirected { status: 307 })
        ),
        "{err:?}"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "the redirect target was not requested"
    );
}

#[tokio::test]
async fn oversized_answers_are_protocol_errors() {
    let big = Reply::Raw {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: vec![b' '; 10_000],
    };
    let server = Responder::start(vec![("/v2/auth/oauth2/token", big)]).await;
    let flow = sandbox_flow(&server.base, confidential(), clock());
    let err = flow.refresh(&RefreshToken::new("RT")).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::Protocol(ProtocolError::Oversized { limit: 4096 })
        ),
        "{err:?}"
    );

    // Without Content-Length the limit is enforced while streaming.
    let server = Responder::start(vec![(
        "/v2/auth/oauth2/token",
        Reply::Chunked {
            chunks: 64,
            chunk_bytes: 1024,
        },
    )])
    .await;
    let flow = sandbox_flow(&server.base, confidential(), clock());
    let err = flow.refresh(&RefreshToken::new("RT")).await.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::Protocol(ProtocolError::Oversized { limit: 4096 })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn html_error_pages_are_transient() {
    let page = |status| Reply::Raw {
        status,
        headers: vec![("content-type", "text/html".into())],
        body: b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>".to_vec(),
    };
    for status in [502, 200, 403] {
        let server = Responder::start(vec![("/v2/auth/oauth2/token", page(status))]).await;
        let flow = sandbox_flow(&server.base, confidential(), clock());
        let err = flow.refresh(&RefreshToken::new("RT")).await.unwrap_err();
        assert!(
            matches!(
                err,
                RefreshError::Transient(TransientError::HtmlErrorPage { .. })
            ),
            "{status}: {err:?}"
        );
        assert!(err.is_transient() && !err.needs_reauthorization());
    }
}

/// Every rendering of an error, including its source chain.
fn all_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(" | {s} {s:?}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn timeouts_and_connect_errors_are_transient_and_carry_no_url_or_secret() {
    let server = Responder::start(vec![("/v2/auth/oauth2/token", Reply::Hang)]).await;
    let flow = sandbox_flow(&server.base, confidential(), clock());
    let err = flow
        .refresh(&RefreshToken::new("REFRESH-SECRET"))
        .await
        .unwrap_err();
    let RefreshError::Transient(TransientError::Transport(transport)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(transport.kind(), TransportErrorKind::Timeout);
    let text = all_text(&err);
    for secret in [
        "REFRESH-SECRET",
        "CLIENT-SECRET",
        "127.0.0.1",
        "oauth2/token",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let flow = sandbox_flow(&format!("http://127.0.0.1:{port}"), confidential(), clock());
    let clock = clock();
    let (verified, _) = verified(&flow, &clock, "CODE-SECRET");
    let err = flow.exchange(verified).await.unwrap_err();
    let ExchangeError::Transient(TransientError::Transport(transport)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(transport.kind(), TransportErrorKind::Connect);
    let text = all_text(&err);
    for secret in [
        "CODE-SECRET",
        "CLIENT-SECRET",
        "127.0.0.1",
        &port.to_string(),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn provider_errors_are_classified_and_never_echo_secrets() {
    let server = Responder::start(vec![(
        "/v2/auth/oauth2/token",
        Reply::Json(
            400,
            r#"{"error":"invalid_grant","error_description":"refresh_token_revoked"}"#,
        ),
    )])
    .await;
    let flow = sandbox_flow(&server.base, confidential(), clock());
    let err = flow
        .refresh(&RefreshToken::new("REFRESH-SECRET"))
        .await
        .unwrap_err();
    assert!(matches!(
        &err,
        RefreshError::InvalidGrant {
            reason: calconnect::InvalidGrantReason::RefreshTokenRevoked
        }
    ));
    assert!(err.needs_reauthorization());
    assert_eq!(
        err.to_string(),
        "the refresh token is no longer valid (refresh_token_revoked): the user must reconnect"
    );
    assert!(!all_text(&err).contains("REFRESH-SECRET"));
}

/// `/v2/me` live-docs fixture (docs/calcom.md §5).
const ME: &str = r#"{"status":"success","data":{"id":123,"username":"alice","email":"a@example.com","name":"Alice","avatarUrl":null,"bio":null,"timeFormat":12,"defaultScheduleId":456,"weekStart":"Monday","timeZone":"Europe/London","locale":"en","organizationId":null,"organization":{"isPlatform":false,"id":789}}}"#;

#[tokio::test]
async fn me_reads_the_profile_and_classifies_failures() {
    let server = Responder::start(vec![("/v2/me", Reply::Json(200, ME))]).await;
    let flow = sandbox_flow(&server.base, confidential(), clock());
    let me = flow
        .me(&calconnect::AccessToken::new("AT-SECRET"))
        .await
        .unwrap();
    assert_eq!(
        (me.id, me.username.as_deref(), me.time_zone.as_deref()),
        (123, Some("alice"), Some("Europe/London"))
    );
    let r = &server.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.body.as_str()),
        ("GET", "/v2/me", "")
    );
    assert_eq!(
        header(&r.headers, "authorization"),
        Some("Bearer AT-SECRET")
    );

    let expired = r#"{"status":"error","timestamp":"2025-01-01T00:00:00Z","path":"/v2/me","error":{"code":"UnauthorizedException","message":"Invalid Access Token."}}"#;
    let server = Responder::start(vec![("/v2/me", Reply::Json(401, expired))]).await;
    let flow = sandbox_flow(&server.base, confidential(), clock());
    let err = flow
        .me(&calconnect::AccessToken::new("AT-SECRET"))
        .await
        .unwrap_err();
    assert!(matches!(err, calconnect::MeError::Unauthorized), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("AT-SECRET"));
}
