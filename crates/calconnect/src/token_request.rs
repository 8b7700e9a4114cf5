//! Token-endpoint requests, built byte for byte.
//!
//! Written by hand instead of `oauth2`'s `exchange_code`/`exchange_refresh_token` because Cal.com
//! differs from what that API can express: the v2 endpoint rejects any field outside the input
//! class of the case ([docs/calcom.md](../../../docs/calcom.md), request fields), so the exact
//! field set must be pinned by tests (`tests/it/contract.rs`); it is also sent as JSON; the
//! legacy web endpoints are separate URLs per grant; and the response side needs tolerant
//! parsing, Cal.com's `error_description` reasons and a size limit (see `token_response`).

use crate::callback::AuthorizationCode;
use crate::client::ClientConfig;
use crate::endpoint::EndpointUrl;
use crate::http::PreparedRequest;
use crate::pkce::PkceVerifier;
use crate::profile::{BodyEncoding, ClientAuthMethod};
use crate::secret::RefreshToken;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method};
use secrecy::SecretSlice;
use secrecy::zeroize::Zeroize;
use serde::Serialize;

/// The grant being requested.
pub(crate) enum Grant<'a> {
    AuthorizationCode {
        code: &'a AuthorizationCode,
        redirect_uri: &'a str,
        /// Sent only when the client policy uses PKCE: Cal.com's v2 endpoint refuses a
        /// confidential client's `code_verifier`.
        verifier: Option<&'a PkceVerifier>,
    },
    RefreshToken(&'a RefreshToken),
}

/// An RFC 7009 revocation request.
pub(crate) struct Revocation<'a> {
    pub(crate) token: &'a str,
    pub(crate) hint: &'static str,
}

/// The body fields, in the order they are sent. JSON and form use the same order, that of
/// Cal.com's input classes (`exchange.input.ts`, `refresh.input.ts`).
#[derive(Serialize, Default)]
struct Fields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type_hint: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_verifier: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn pairs(&self) -> Vec<(&'static str, &'a str)> {
        [
            ("client_id", self.client_id),
            ("grant_type", self.grant_type),
            ("code", self.code),
            ("redirect_uri", self.redirect_uri),
            ("refresh_token", self.refresh_token),
            ("token", self.token),
            ("token_type_hint", self.token_type_hint),
            ("client_secret", self.client_secret),
            ("code_verifier", self.code_verifier),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// Builds a token request for `grant`.
///
/// Cal.com's input classes hold exactly: code grant `client_id, grant_type, code, redirect_uri`
/// plus `client_secret` (confidential) **or** `code_verifier` (public; a confidential client
/// sends one only to the legacy endpoint); refresh grant `client_id, grant_type, refresh_token,
/// [client_secret]`. Nothing else is ever sent: no `scope`, no `state`.
pub(crate) fn token_request(
    url: &EndpointUrl,
    encoding: BodyEncoding,
    auth: ClientAuthMethod,
    client: &ClientConfig,
    grant: &Grant<'_>,
) -> PreparedRequest {
    let mut fields = Fields::default();
    match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            verifier,
        } => {
            fields.grant_type = Some("authorization_code");
            fields.code = Some(code.expose());
            fields.redirect_uri = Some(redirect_uri);
            fields.code_verifier = verifier.map(PkceVerifier::expose);
        }
        Grant::RefreshToken(token) => {
            fields.grant_type = Some("refresh_token");
            fields.refresh_token = Some(token.expose_secret());
        }
    }
    build(url, encoding, auth, client, fields)
}

/// Builds an RFC 7009 revocation request (form, same client authentication as the token endpoint).
pub(crate) fn revocation_request(
    url: &EndpointUrl,
    auth: ClientAuthMethod,
    client: &ClientConfig,
    revocation: &Revocation<'_>,
) -> PreparedRequest {
    let fields = Fields {
        token: Some(revocation.token),
        token_type_hint: Some(revocation.hint),
        ..Fields::default()
    };
    build(url, BodyEncoding::Form, auth, client, fields)
}

fn build<'a>(
    url: &EndpointUrl,
    encoding: BodyEncoding,
    auth: ClientAuthMethod,
    client: &'a ClientConfig,
    mut fields: Fields<'a>,
) -> PreparedRequest {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let secret = client.secret.as_ref().map(|s| s.expose_secret());
    match (secret, auth) {
        (Some(secret), ClientAuthMethod::ClientSecretBasic) => {
            headers.insert(AUTHORIZATION, basic_auth(&client.client_id, secret));
        }
        (Some(secret), ClientAuthMethod::ClientSecretPost) => {
            fields.client_id = Some(&client.client_id);
            fields.client_secret = Some(secret);
        }
        // Public clients, and `none`: identify by `client_id` only (RFC 6749 §4.1.3).
        _ => fields.client_id = Some(&client.client_id),
    }
    let mut body = match encoding {
        BodyEncoding::Form => {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.pairs())
                .finish()
                .into_bytes()
        }
        BodyEncoding::Json => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            serde_json::to_vec(&fields).unwrap_or_default()
        }
    };
    let exact = body.as_slice().to_vec();
    body.zeroize();
    PreparedRequest {
        method: Method::POST,
        url: url.as_url().clone(),
        headers,
        body: Some(SecretSlice::from(exact)),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1, marked sensitive.
fn basic_auth(client_id: &str, secret: &str) -> HeaderValue {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut credentials = format!("{}:{}", encode(client_id), encode(secret));
    let mut header = format!("Basic {}", STANDARD.encode(credentials.as_bytes()));
    credentials.zeroize();
    let value = HeaderValue::from_str(&header).map(|mut v| {
        v.set_sensitive(true);
        v
    });
    header.zeroize();
    // Base64 output is always a valid header value; fall back to an empty (rejected) one.
    value.unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
#[path = "token_request_tests.rs"]
mod tests;
