//! Every token-response variant of docs/calcom.md §3.5 and the awkward ones of §8.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, StatusCode};
use secrecy::zeroize::Zeroizing;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn parse(body: &str) -> Result<TokenSet, ProtocolError> {
    parse_token_response(body.as_bytes(), now())
}

fn jwt(payload: &str) -> String {
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(payload)
    )
}

#[test]
fn cal_com_v2_success() {
    let t = parse(r#"{ "access_token": "eyJ.a.b", "token_type": "bearer", "refresh_token": "eyJ.r.t", "expires_in": 1800, "scope": "BOOKING_READ BOOKING_WRITE" }"#)
        .unwrap();
    assert_eq!(t.access_token.expose_secret(), "eyJ.a.b");
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "eyJ.r.t");
    assert!(t.refresh_token_rotated);
    assert_eq!(t.expires_at, now() + Duration::seconds(1800));
    assert_eq!(t.expiry_source, ExpirySource::ExpiresIn);
    assert_eq!(t.scopes.unwrap(), vec!["BOOKING_READ", "BOOKING_WRITE"]);
}

#[test]
fn cal_com_identity_comes_from_claims() {
    let access = jwt(
        r#"{"userId":null,"teamId":9,"scope":["TEAM_PROFILE_READ"],"token_type":"Access Token","clientId":"cid","exp":1800001800}"#,
    );
    let t = parse(&format!(r#"{{"access_token":"{access}","token_type":"bearer","refresh_token":"r","expires_in":1800}}"#)).unwrap();
    assert_eq!(t.identity, Some(CalOwner::Team(9)));
    // `scope` missing from the body (older DTO): the claims say.
    assert_eq!(t.scopes.unwrap(), vec!["TEAM_PROFILE_READ"]);
}

#[test]
fn legacy_success_without_scope() {
    let t = parse(
        r#"{"access_token":"a","token_type":"bearer","refresh_token":"r","expires_in":1800}"#,
    )
    .unwrap();
    assert_eq!(t.scopes, None);
    assert_eq!(t.identity, None);
    assert_eq!(t.expiry_source, ExpirySource::ExpiresIn);
}

#[test]
fn historical_bodies_without_expires_in() {
    // `{access_token, refresh_token}` with a JWT: the unverified `exp` claim.
    let access = jwt(r#"{"userId":5,"exp":1800000900}"#);
    let t = parse(&format!(
        r#"{{"access_token":"{access}","refresh_token":"r"}}"#
    ))
    .unwrap();
    assert_eq!(t.expiry_source, ExpirySource::TokenClaim);
    assert_eq!(t.expires_at.unix_timestamp(), 1_800_000_900);
    assert_eq!(t.identity, Some(CalOwner::User(5)));
    // `{access_token}` only, opaque: already expired (docs/calcom.md §8).
    let t = parse(r#"{"access_token":"a"}"#).unwrap();
    assert_eq!(t.expiry_source, ExpirySource::Unknown);
    assert_eq!(t.expires_at, now());
    assert!(t.refresh_token.is_none() && !t.refresh_token_rotated);
}

#[test]
fn expires_in_variants() {
    let at = |v: &str| {
        let t = parse(&format!(r#"{{"access_token":"a","expires_in":{v}}}"#)).unwrap();
        (
            t.expires_at.unix_timestamp() - now().unix_timestamp(),
            t.expiry_source,
        )
    };
    assert_eq!(at("1800"), (1800, ExpirySource::ExpiresIn));
    assert_eq!(at(r#""1800""#), (1800, ExpirySource::ExpiresIn));
    assert_eq!(at(r#"" 3600 ""#), (3600, ExpirySource::ExpiresIn));
    assert_eq!(at("1800.9"), (1800, ExpirySource::ExpiresIn));
    assert_eq!(at("0"), (0, ExpirySource::ExpiresIn));
    assert_eq!(at("1800001800"), (1800, ExpirySource::Epoch));
    assert_eq!(at(r#""1800001800""#), (1800, ExpirySource::Epoch));
    assert_eq!(at("1800001800000"), (1800, ExpirySource::Epoch));
    assert_eq!(at("null"), (0, ExpirySource::Unknown));
    assert_eq!(at(r#""soon""#), (0, ExpirySource::Unknown));
    assert_eq!(at("-5"), (0, ExpirySource::Unknown));
    assert_eq!(at("1e300"), (0, ExpirySource::Unknown));
    assert_eq!(at("true"), (0, ExpirySource::Unknown));
}

#[test]
fn token_type_any_case_or_missing() {
    for tt in [r#""bearer""#, r#""Bearer""#, r#""BEARER""#, "null"] {
        assert!(
            parse(&format!(r#"{{"access_token":"a","token_type":{tt}}}"#)).is_ok(),
            "{tt}"
        );
    }
    assert_eq!(
        parse(r#"{"access_token":"a","token_type":"mac"}"#).unwrap_err(),
        ProtocolError::UnsupportedTokenType {
            token_type: "mac".into()
        }
    );
}

#[test]
fn scope_as_array_or_commas() {
    let t = parse(r#"{"access_token":"a","scope":["A","B"]}"#).unwrap();
    assert_eq!(t.scopes.unwrap(), vec!["A", "B"]);
    let t = parse(r#"{"access_token":"a","scope":"A,B C"}"#).unwrap();
    assert_eq!(t.scopes.unwrap(), vec!["A", "B", "C"]);
}

#[test]
fn malformed_success_bodies() {
    assert_eq!(
        parse("not json").unwrap_err(),
        ProtocolError::MalformedBody { status: 200 }
    );
    assert_eq!(
        parse("[]").unwrap_err(),
        ProtocolError::MalformedBody { status: 200 }
    );
    assert_eq!(
        parse(r#"{"access_token":5}"#).unwrap_err(),
        ProtocolError::MalformedBody { status: 200 }
    );
    assert_eq!(
        parse(r#"{"refresh_token":"r"}"#).unwrap_err(),
        ProtocolError::MissingAccessToken
    );
    assert_eq!(
        parse(r#"{"access_token":""}"#).unwrap_err(),
        ProtocolError::MissingAccessToken
    );
}

#[test]
fn debug_of_a_token_set_shows_no_token() {
    let t = parse(r#"{"access_token":"ACCESS-SECRET","refresh_token":"REFRESH-SECRET"}"#).unwrap();
    let shown = format!("{t:?}");
    assert!(
        !shown.contains("ACCESS-SECRET") && !shown.contains("REFRESH-SECRET"),
        "{shown}"
    );
}

fn response(status: u16, content_type: &str, body: &str) -> RawResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap(),
    );
    RawResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body: Zeroizing::new(body.as_bytes().to_vec()),
    }
}

fn classify(status: u16, body: &str) -> Failure {
    classify_failure(&response(status, "application/json", body), now())
}

fn oauth(status: u16, error: &str, description: &str) -> Failure {
    classify(
        status,
        &format!(r#"{{"error":"{error}","error_description":"{description}"}}"#),
    )
}

#[test]
fn every_cal_com_v2_error_row() {
    use InvalidGrantReason as G;
    for (reason, want) in [
        ("code_invalid_or_expired", G::CodeInvalidOrExpired),
        ("redirect_uri_mismatch", G::RedirectUriMismatch),
        ("pkce_verification_failed", G::PkceVerificationFailed),
        ("invalid_refresh_token", G::InvalidRefreshToken),
        ("refresh_token_revoked", G::RefreshTokenRevoked),
        ("client_id_mismatch", G::ClientIdMismatch),
        ("something_new", G::Other("something_new".into())),
    ] {
        assert!(
            matches!(oauth(400, "invalid_grant", reason), Failure::InvalidGrant(r) if r == want),
            "{reason}"
        );
    }
    assert!(matches!(
        oauth(401, "invalid_client", "client_not_found"),
        Failure::InvalidClient(InvalidClientReason::ClientNotFound)
    ));
    assert!(matches!(
        oauth(401, "invalid_client", "invalid_client_credentials"),
        Failure::InvalidClient(InvalidClientReason::InvalidClientCredentials)
    ));
    assert!(matches!(
        oauth(401, "unauthorized_client", "client_not_approved"),
        Failure::UnauthorizedClient(UnauthorizedClientReason::ClientNotApproved)
    ));
    assert!(matches!(
        oauth(401, "unauthorized_client", "client_rejected"),
        Failure::UnauthorizedClient(UnauthorizedClientReason::ClientRejected)
    ));
    for description in [
        "client_id is required",
        "grant_type must be 'authorization_code' or 'refresh_token'",
        "scope property is wrong,property scope should not exist ",
        "pkce_missing_parameters_or_invalid_method",
    ] {
        assert!(
            matches!(oauth(400, "invalid_request", description), Failure::InvalidRequest(Some(d)) if d == description.trim()),
            "{description}"
        );
    }
    for description in ["encryption_key_missing", "An unexpected error occurred"] {
        assert!(matches!(
            oauth(500, "server_error", description),
            Failure::Transient(TransientError::ServerError { status: 500, error: Some(e) }) if e == "server_error"
        ));
    }
}

#[test]
fn legacy_error_bodies() {
    assert!(matches!(
        classify(400, r#"{"error":"invalid_grant"}"#),
        Failure::InvalidGrant(InvalidGrantReason::Unspecified)
    ));
    assert!(matches!(
        classify(400, r#"{"error":"invalid_request"}"#),
        Failure::InvalidRequest(None)
    ));
    assert!(matches!(
        classify(401, r#"{"error":"invalid_client"}"#),
        Failure::InvalidClient(InvalidClientReason::Unspecified)
    ));
    assert!(matches!(
        classify(500, r#"{"message":"CALENDSO_ENCRYPTION_KEY is not set"}"#),
        Failure::Transient(TransientError::ServerError {
            status: 500,
            error: None
        })
    ));
    assert!(matches!(
        classify(500, r#"{"error":"error_code_exchange"}"#),
        Failure::Transient(TransientError::ServerError { .. })
    ));
    assert!(matches!(
        classify(401, r#"{"message":"Unauthorized"}"#),
        Failure::Unauthorized
    ));
}

#[test]
fn transport_level_answers() {
    let mut limited = response(429, "application/json", r#"{"status":"error"}"#);
    limited
        .headers
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("30"));
    assert!(
        matches!(classify_failure(&limited, now()), Failure::RateLimited(Some(d)) if d.as_secs() == 30)
    );
    assert!(matches!(classify(429, ""), Failure::RateLimited(None)));
    // Cal.com's token endpoint: no Retry-After, only the throttler's reset (seconds remaining).
    let mut throttled = response(429, "application/json", r#"{"status":"error"}"#);
    throttled
        .headers
        .insert("x-ratelimit-reset-default", HeaderValue::from_static("42"));
    assert!(
        matches!(classify_failure(&throttled, now()), Failure::RateLimited(Some(d)) if d.as_secs() == 42)
    );
    let html = classify_failure(
        &response(
            502,
            "text/html; charset=utf-8",
            "<html><body>Bad gateway</body></html>",
        ),
        now(),
    );
    assert!(matches!(
        html,
        Failure::Transient(TransientError::HtmlErrorPage { status: 502 })
    ));
    let sniffed = classify_failure(
        &response(
            403,
            "text/plain",
            "  <!DOCTYPE html><html>Cloudflare</html>",
        ),
        now(),
    );
    assert!(matches!(
        sniffed,
        Failure::Transient(TransientError::HtmlErrorPage { status: 403 })
    ));
    assert!(matches!(
        classify(503, ""),
        Failure::Transient(TransientError::ServerError {
            status: 503,
            error: None
        })
    ));
    assert!(matches!(
        classify(
            404,
            r#"{"message":"Cannot POST /v2/auth/oauth2/token","statusCode":404}"#
        ),
        Failure::NotFound
    ));
    assert!(matches!(
        classify(302, ""),
        Failure::Protocol(ProtocolError::Redirected { status: 302 })
    ));
    assert!(matches!(
        classify(400, "garbage"),
        Failure::Protocol(ProtocolError::MalformedBody { status: 400 })
    ));
    assert!(matches!(
        classify(418, "{}"),
        Failure::Protocol(ProtocolError::UnexpectedStatus { status: 418 })
    ));
    assert!(matches!(
        classify(400, r#"{"error":"unsupported_grant_type"}"#),
        Failure::OtherOAuthError { code, description: None } if code == "unsupported_grant_type"
    ));
    assert!(matches!(
        classify(503, r#"{"error":"temporarily_unavailable"}"#),
        Failure::Transient(_)
    ));
}
