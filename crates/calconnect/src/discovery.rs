//! Discovery of a custom provider's endpoints from its issuer identifier: OpenID Connect
//! Discovery 1.0 (`{issuer}/.well-known/openid-configuration`), then RFC 8414
//! (`/.well-known/oauth-authorization-server` inserted before the issuer's path).
//!
//! The document's `issuer` must equal the issuer asked for, character for character (RFC 8414
//! §3.3, OIDC Discovery §4.3), so a document served elsewhere cannot redirect the flow; every
//! endpoint must pass the caller's [`UrlPolicy`].

use crate::endpoint::{EndpointUrl, EndpointUrlError, UrlPolicy};
use crate::errors::TransientError;
use crate::http::{HttpClient, PreparedRequest, TransportErrorKind};
use crate::profile::{ClientAuthMethod, CustomProvider};
use http::header::ACCEPT;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;

/// What a provider says about itself (the fields calconnect uses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer identifier (equal to the one asked for).
    pub issuer: String,
    /// Where the document was found.
    pub document_url: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: EndpointUrl,
    /// `token_endpoint`.
    pub token_endpoint: EndpointUrl,
    /// `revocation_endpoint` (RFC 7009).
    pub revocation_endpoint: Option<EndpointUrl>,
    /// `introspection_endpoint` (RFC 7662).
    pub introspection_endpoint: Option<EndpointUrl>,
    /// `userinfo_endpoint` (OIDC Core §5.3).
    pub userinfo_endpoint: Option<EndpointUrl>,
    /// `token_endpoint_auth_methods_supported` (RFC 8414 §2: default `client_secret_basic`).
    pub token_endpoint_auth_methods: Vec<String>,
    /// `code_challenge_methods_supported` (RFC 8414 §2; empty: the server does not say).
    pub code_challenge_methods: Vec<String>,
    /// `scopes_supported` (empty: the server does not say).
    pub scopes: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §3).
    pub iss_in_callbacks: bool,
}

impl ProviderMetadata {
    /// The client authentication to use: `none` without a secret; with one,
    /// `client_secret_basic` (which RFC 6749 §2.3.1 obliges servers to support) unless the
    /// server lists only `client_secret_post`.
    pub fn default_auth_method(&self, has_secret: bool) -> ClientAuthMethod {
        let lists = |m: &str| self.token_endpoint_auth_methods.iter().any(|x| x == m);
        if !has_secret {
            ClientAuthMethod::None
        } else if !lists("client_secret_basic") && lists("client_secret_post") {
            ClientAuthMethod::ClientSecretPost
        } else {
            ClientAuthMethod::ClientSecretBasic
        }
    }

    /// Whether the server lists `method` (or lists nothing, RFC 8414's default being
    /// `client_secret_basic`).
    pub fn supports_auth_method(&self, method: &str) -> bool {
        if self.token_endpoint_auth_methods.is_empty() {
            return method == "client_secret_basic";
        }
        self.token_endpoint_auth_methods.iter().any(|m| m == method)
    }

    /// A custom provider with these endpoints. The issuer is checked in callbacks (RFC 9207)
    /// only when the server says it sends it.
    pub fn custom_provider(&self, client_auth: ClientAuthMethod) -> CustomProvider {
        CustomProvider {
            authorize_url: self.authorization_endpoint.as_str().to_owned(),
            token_url: self.token_endpoint.as_str().to_owned(),
            revocation_url: self
                .revocation_endpoint
                .as_ref()
                .map(|u| u.as_str().to_owned()),
            client_auth,
            issuer: self.iss_in_callbacks.then(|| self.issuer.clone()),
        }
    }
}

/// Discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer is not a usable URL.
    #[error("the issuer is not usable: {0}")]
    Issuer(#[source] EndpointUrlError),
    /// Neither well-known document exists.
    #[error(
        "the provider publishes no discovery document at /.well-known/openid-configuration or /.well-known/oauth-authorization-server (HTTP {status}): give its endpoint URLs instead"
    )]
    NotFound {
        /// The last HTTP status.
        status: u16,
    },
    /// The document is not JSON, or lacks a required field.
    #[error("the provider's discovery document at {url} is not usable: {reason}")]
    Malformed {
        /// Where it was.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The document names another issuer (RFC 8414 §3.3).
    #[error(
        "the discovery document names the issuer `{found}`, not `{expected}`: give the issuer exactly as the provider names it"
    )]
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
    /// An endpoint in the document breaks the URL policy.
    #[error("the discovery document's `{field}` is not usable: {source}")]
    Endpoint {
        /// The field.
        field: &'static str,
        /// Why.
        #[source]
        source: EndpointUrlError,
    },
    /// Network, timeout, 5xx.
    #[error("fetching the provider's discovery document failed: {0}")]
    Transient(#[source] TransientError),
}

#[derive(Deserialize)]
struct Raw {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// The two well-known URLs for `issuer` (which passed `policy`), OIDC first.
fn document_urls(issuer: &EndpointUrl, policy: UrlPolicy) -> Vec<EndpointUrl> {
    let oidc = issuer.join_path(".well-known/openid-configuration");
    let mut rfc8414 = issuer.as_url().clone();
    let path = issuer.as_url().path().trim_end_matches('/').to_owned();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    // Same scheme and host as the issuer, which passed the policy.
    let rfc8414 = EndpointUrl::from_url(rfc8414, policy).ok();
    std::iter::once(oidc).chain(rfc8414).collect()
}

/// Fetches and checks the discovery document of `issuer`.
///
/// # Errors
/// [`DiscoveryError`].
#[tracing::instrument(name = "calconnect.discover", skip_all)]
pub async fn discover(
    http: &HttpClient,
    issuer: &str,
    policy: UrlPolicy,
) -> Result<ProviderMetadata, DiscoveryError> {
    let issuer = issuer.trim().to_owned();
    let issuer_url = EndpointUrl::parse(&issuer, policy).map_err(DiscoveryError::Issuer)?;
    if issuer_url.as_url().query().is_some() {
        return Err(DiscoveryError::Issuer(EndpointUrlError::NotAUrl));
    }
    let mut last_status = 404;
    for url in document_urls(&issuer_url, policy) {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let request = PreparedRequest {
            method: Method::GET,
            url: url.as_url().clone(),
            headers,
            body: None,
        };
        let response = http.send(request).await.map_err(|e| match e.kind() {
            TransportErrorKind::TooLarge { .. } => DiscoveryError::Malformed {
                url: url.as_str().to_owned(),
                reason: "it is too large".to_owned(),
            },
            _ => DiscoveryError::Transient(TransientError::Transport(e)),
        })?;
        let status = response.status;
        if status.is_server_error() {
            return Err(DiscoveryError::Transient(TransientError::ServerError {
                status: status.as_u16(),
                error: None,
            }));
        }
        if status != StatusCode::OK || response.is_html() {
            last_status = status.as_u16();
            continue;
        }
        return parse_document(&response.body, &issuer, url.as_str(), policy);
    }
    Err(DiscoveryError::NotFound {
        status: last_status,
    })
}

fn parse_document(
    body: &[u8],
    issuer: &str,
    document_url: &str,
    policy: UrlPolicy,
) -> Result<ProviderMetadata, DiscoveryError> {
    let malformed = |reason: &str| DiscoveryError::Malformed {
        url: document_url.to_owned(),
        reason: reason.to_owned(),
    };
    let raw: Raw =
        serde_json::from_slice(body).map_err(|_| malformed("it is not a JSON object"))?;
    let found = raw.issuer.ok_or_else(|| malformed("it has no `issuer`"))?;
    if found != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: crate::callback::sanitize(&found),
        });
    }
    let endpoint = |field: &'static str, value: Option<String>| match value {
        None => Ok(None),
        Some(v) => EndpointUrl::parse(&v, policy)
            .map(Some)
            .map_err(|source| DiscoveryError::Endpoint { field, source }),
    };
    let required = |field: &'static str, value: Option<String>| {
        endpoint(field, value)?.ok_or_else(|| malformed(&format!("it has no `{field}`")))
    };
    Ok(ProviderMetadata {
        issuer: found,
        document_url: document_url.to_owned(),
        authorization_endpoint: required("authorization_endpoint", raw.authorization_endpoint)?,
        token_endpoint: required("token_endpoint", raw.token_endpoint)?,
        revocation_endpoint: endpoint("revocation_endpoint", raw.revocation_endpoint)?,
        introspection_endpoint: endpoint("introspection_endpoint", raw.introspection_endpoint)?,
        userinfo_endpoint: endpoint("userinfo_endpoint", raw.userinfo_endpoint)?,
        token_endpoint_auth_methods: raw.token_endpoint_auth_methods_supported,
        code_challenge_methods: raw.code_challenge_methods_supported,
        scopes: raw.scopes_supported,
        iss_in_callbacks: raw.authorization_response_iss_parameter_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example/tenant";

    fn doc(issuer: &str) -> String {
        format!(
            r#"{{"issuer":"{issuer}","authorization_endpoint":"https://idp.example/tenant/auth",
            "token_endpoint":"https://idp.example/tenant/token",
            "revocation_endpoint":"https://idp.example/tenant/token/revocation",
            "userinfo_endpoint":"https://idp.example/tenant/me",
            "token_endpoint_auth_methods_supported":["client_secret_post","none"],
            "code_challenge_methods_supported":["S256"],
            "authorization_response_iss_parameter_supported":true}}"#
        )
    }

    #[test]
    fn well_known_urls() {
        let issuer = EndpointUrl::parse(ISSUER, UrlPolicy::https_only()).unwrap();
        let urls = document_urls(&issuer, UrlPolicy::https_only());
        let [oidc, rfc] = urls.as_slice() else {
            panic!("{urls:?}")
        };
        assert_eq!(
            oidc.as_str(),
            "https://idp.example/tenant/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc.as_str(),
            "https://idp.example/.well-known/oauth-authorization-server/tenant"
        );
    }

    #[test]
    fn a_document_is_read_and_checked() {
        let m =
            parse_document(doc(ISSUER).as_bytes(), ISSUER, "u", UrlPolicy::https_only()).unwrap();
        assert_eq!(
            m.token_endpoint.as_str(),
            "https://idp.example/tenant/token"
        );
        assert!(m.iss_in_callbacks);
        assert_eq!(m.default_auth_method(false), ClientAuthMethod::None);
        // Only post is listed: post, not basic.
        assert_eq!(
            m.default_auth_method(true),
            ClientAuthMethod::ClientSecretPost
        );
        let provider = m.custom_provider(ClientAuthMethod::None);
        assert_eq!(provider.issuer.as_deref(), Some(ISSUER));
        assert!(provider.revocation_url.is_some());

        let err = parse_document(
            doc("https://evil.example").as_bytes(),
            ISSUER,
            "u",
            UrlPolicy::https_only(),
        )
        .unwrap_err();
        assert!(
            matches!(err, DiscoveryError::IssuerMismatch { .. }),
            "{err}"
        );
        let plain = doc(ISSUER).replace(
            "https://idp.example/tenant/token\"",
            "http://idp.example/token\"",
        );
        let err =
            parse_document(plain.as_bytes(), ISSUER, "u", UrlPolicy::https_only()).unwrap_err();
        assert!(
            matches!(
                err,
                DiscoveryError::Endpoint {
                    field: "token_endpoint",
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_document(b"[]", ISSUER, "u", UrlPolicy::https_only()).unwrap_err();
        assert!(matches!(err, DiscoveryError::Malformed { .. }), "{err}");
    }
}
