//! Provider profiles: where the endpoints are and how to talk to them.
//!
//! Endpoints are configuration (DESIGN.md "Not in scope"): Cal.com (cloud, self-hosted, legacy
//! web token endpoints, the local sandbox) and `custom`, any RFC 6749 server.

use crate::endpoint::{EndpointUrl, EndpointUrlError, UrlPolicy};

/// How the client authenticates at the token (and revocation) endpoint, RFC 6749 §2.3.1.
/// Only used for confidential clients; public clients send just `client_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the request body. The only method Cal.com reads
    /// (calcom-facts.md §3.2, `calcom#24964`).
    ClientSecretPost,
    /// `Authorization: Basic base64(urlencode(id):urlencode(secret))`, no `client_id` in the body.
    ClientSecretBasic,
    /// No client authentication: `client_id` in the body only.
    None,
}

/// How a token request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyEncoding {
    /// `application/x-www-form-urlencoded` (RFC 6749 §4.1.3; the legacy Cal.com endpoints accept
    /// nothing else, calcom-facts.md §3.1).
    Form,
    /// `application/json`: Cal.com's v2 endpoint accepts it (calcom-facts.md §3.1); its docs use it.
    Json,
}

/// How scopes are joined in the authorize URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeDelimiter {
    /// `A,B`: some Cal.com page versions split only on commas (calcom-facts.md §2).
    Comma,
    /// `A B`: RFC 6749 §3.3.
    Space,
}

/// Which kind of provider a profile describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderKind {
    /// app.cal.com / api.cal.com.
    CalCom,
    /// A self-hosted Cal.com.
    CalComSelfHosted,
    /// The local Cal.com sandbox.
    Sandbox,
    /// Any RFC 6749 server.
    Custom,
}

/// Cal.com's legacy web token endpoints (calcom-facts.md §3.1): one per grant, form only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTokenEndpoints {
    /// `POST /api/auth/oauth/token` (authorization_code).
    pub token: EndpointUrl,
    /// `POST /api/auth/oauth/refreshToken` (refresh_token).
    pub refresh: EndpointUrl,
}

/// Where token requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEndpoints {
    /// One endpoint for both grants (Cal.com v2, RFC 6749).
    Unified {
        /// The token endpoint.
        url: EndpointUrl,
        /// Its body encoding.
        encoding: BodyEncoding,
        /// Where to go when this endpoint answers 404 (calcom-facts.md §3.1, `calcom#27685`).
        legacy_fallback: Option<LegacyTokenEndpoints>,
    },
    /// Cal.com's legacy web endpoints only.
    Legacy(LegacyTokenEndpoints),
}

/// A custom RFC 6749 provider.
#[derive(Debug, Clone)]
pub struct CustomProvider {
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint (form bodies, RFC 6749 §4.1.3).
    pub token_url: String,
    /// RFC 7009 revocation endpoint, if any.
    pub revocation_url: Option<String>,
    /// Client authentication for confidential clients.
    pub client_auth: ClientAuthMethod,
    /// The issuer identifier; when set, callbacks must carry `iss` equal to it (RFC 9207).
    pub issuer: Option<String>,
}

/// Everything the flow needs to know about a provider.
#[derive(Debug, Clone)]
pub struct ProviderProfile {
    pub(crate) kind: ProviderKind,
    pub(crate) authorize_url: EndpointUrl,
    pub(crate) token: TokenEndpoints,
    pub(crate) api_base: Option<EndpointUrl>,
    pub(crate) revocation_url: Option<EndpointUrl>,
    pub(crate) client_auth: ClientAuthMethod,
    pub(crate) scope_delimiter: ScopeDelimiter,
    pub(crate) issuer: Option<String>,
}

impl ProviderProfile {
    /// Cal.com cloud: authorize on `https://app.cal.com/auth/oauth2/authorize`, tokens on
    /// `https://api.cal.com/v2/auth/oauth2/token` (JSON, `client_secret_post`) with fallback to
    /// the legacy web endpoints on 404, API at `https://api.cal.com/v2`.
    pub fn cal_com() -> Self {
        #[allow(clippy::expect_used)]
        // reason: constant https URLs, covered by test `cal_com_profile_urls`
        let mut profile = Self::cal_com_self_hosted(
            "https://app.cal.com",
            "https://api.cal.com/v2",
            UrlPolicy::https_only(),
        )
        .expect("the Cal.com cloud URLs are valid");
        profile.kind = ProviderKind::CalCom;
        profile
    }

    /// A self-hosted Cal.com: `web_base` is the web app (`https://cal.example.com`), `api_v2_base`
    /// the API v2 root (`https://api.cal.example.com/v2`).
    ///
    /// # Errors
    /// [`ProfileError`] names the URL that broke [`UrlPolicy`].
    pub fn cal_com_self_hosted(
        web_base: &str,
        api_v2_base: &str,
        policy: UrlPolicy,
    ) -> Result<Self, ProfileError> {
        let web = parse("web_base", web_base, policy)?;
        let api = parse("api_v2_base", api_v2_base, policy)?;
        Ok(Self::cal_com_shaped(
            ProviderKind::CalComSelfHosted,
            &web,
            api,
        ))
    }

    /// The local Cal.com sandbox at `base` (`http://127.0.0.1:PORT`, which needs
    /// [`UrlPolicy::allow_insecure_loopback_http`]): the same paths as Cal.com on one host,
    /// API at `base/v2`.
    ///
    /// # Errors
    /// [`ProfileError`] when `base` breaks `policy`.
    pub fn sandbox(base: &str, policy: UrlPolicy) -> Result<Self, ProfileError> {
        let web = parse("base", base, policy)?;
        let api = web.join_path("v2");
        Ok(Self::cal_com_shaped(ProviderKind::Sandbox, &web, api))
    }

    /// Any RFC 6749 server.
    ///
    /// # Errors
    /// [`ProfileError`] names the URL that broke `policy`.
    pub fn custom(provider: CustomProvider, policy: UrlPolicy) -> Result<Self, ProfileError> {
        let revocation_url = match &provider.revocation_url {
            Some(url) => Some(parse("revocation_url", url, policy)?),
            None => None,
        };
        Ok(Self {
            kind: ProviderKind::Custom,
            authorize_url: parse("authorize_url", &provider.authorize_url, policy)?,
            token: TokenEndpoints::Unified {
                url: parse("token_url", &provider.token_url, policy)?,
                encoding: BodyEncoding::Form,
                legacy_fallback: None,
            },
            api_base: None,
            revocation_url,
            client_auth: provider.client_auth,
            scope_delimiter: ScopeDelimiter::Space,
            issuer: provider.issuer,
        })
    }

    /// Uses only the legacy web token endpoints (`/api/auth/oauth/token` and
    /// `/api/auth/oauth/refreshToken`, form bodies), for Cal.com versions without the v2 endpoint.
    /// No effect on a profile without legacy endpoints.
    #[must_use]
    pub fn legacy_token_endpoints_only(mut self) -> Self {
        if let TokenEndpoints::Unified {
            legacy_fallback: Some(legacy),
            ..
        } = &self.token
        {
            self.token = TokenEndpoints::Legacy(legacy.clone());
        }
        self
    }

    /// Never falls back to the legacy endpoints when the v2 token endpoint answers 404.
    #[must_use]
    pub fn without_legacy_fallback(mut self) -> Self {
        if let TokenEndpoints::Unified {
            legacy_fallback, ..
        } = &mut self.token
        {
            *legacy_fallback = None;
        }
        self
    }

    /// Sends v2 token requests with this body encoding (Cal.com accepts both).
    #[must_use]
    pub fn with_token_body_encoding(mut self, body: BodyEncoding) -> Self {
        if let TokenEndpoints::Unified { encoding, .. } = &mut self.token {
            *encoding = body;
        }
        self
    }

    /// The kind of provider.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The authorization endpoint.
    pub fn authorize_url(&self) -> &EndpointUrl {
        &self.authorize_url
    }

    /// The token endpoints.
    pub fn token_endpoints(&self) -> &TokenEndpoints {
        &self.token
    }

    /// The Cal.com API v2 root, if this is a Cal.com profile.
    pub fn api_base(&self) -> Option<&EndpointUrl> {
        self.api_base.as_ref()
    }

    /// The RFC 7009 revocation endpoint, if any (Cal.com has none, calcom-facts.md §4).
    pub fn revocation_url(&self) -> Option<&EndpointUrl> {
        self.revocation_url.as_ref()
    }

    /// Whether this profile speaks Cal.com (account selector, JWT claims, error reasons).
    pub fn is_cal_com(&self) -> bool {
        !matches!(self.kind, ProviderKind::Custom)
    }

    fn cal_com_shaped(kind: ProviderKind, web: &EndpointUrl, api: EndpointUrl) -> Self {
        Self {
            kind,
            authorize_url: web.join_path("auth/oauth2/authorize"),
            token: TokenEndpoints::Unified {
                url: api.join_path("auth/oauth2/token"),
                encoding: BodyEncoding::Json,
                legacy_fallback: Some(LegacyTokenEndpoints {
                    token: web.join_path("api/auth/oauth/token"),
                    refresh: web.join_path("api/auth/oauth/refreshToken"),
                }),
            },
            api_base: Some(api),
            revocation_url: None,
            client_auth: ClientAuthMethod::ClientSecretPost,
            scope_delimiter: ScopeDelimiter::Comma,
            issuer: None,
        }
    }
}

fn parse(field: &'static str, value: &str, policy: UrlPolicy) -> Result<EndpointUrl, ProfileError> {
    EndpointUrl::parse(value, policy).map_err(|source| ProfileError { field, source })
}

/// A provider profile could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("provider profile: `{field}` is not usable: {source}")]
pub struct ProfileError {
    /// The setting at fault.
    pub field: &'static str,
    /// What is wrong with it.
    #[source]
    pub source: EndpointUrlError,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy_of(p: &ProviderProfile) -> &LegacyTokenEndpoints {
        match &p.token {
            TokenEndpoints::Unified {
                legacy_fallback: Some(l),
                ..
            }
            | TokenEndpoints::Legacy(l) => l,
            other => panic!("no legacy endpoints: {other:?}"),
        }
    }

    #[test]
    fn cal_com_profile_urls() {
        let p = ProviderProfile::cal_com();
        assert_eq!(p.kind(), ProviderKind::CalCom);
        assert_eq!(
            p.authorize_url().as_str(),
            "https://app.cal.com/auth/oauth2/authorize"
        );
        let TokenEndpoints::Unified { url, encoding, .. } = p.token_endpoints() else {
            panic!()
        };
        assert_eq!(url.as_str(), "https://api.cal.com/v2/auth/oauth2/token");
        assert_eq!(*encoding, BodyEncoding::Json);
        assert_eq!(
            legacy_of(&p).token.as_str(),
            "https://app.cal.com/api/auth/oauth/token"
        );
        assert_eq!(
            legacy_of(&p).refresh.as_str(),
            "https://app.cal.com/api/auth/oauth/refreshToken"
        );
        assert_eq!(p.api_base().unwrap().as_str(), "https://api.cal.com/v2");
        assert!(p.revocation_url().is_none());
    }

    #[test]
    fn sandbox_profile_needs_the_opt_in() {
        let err =
            ProviderProfile::sandbox("http://127.0.0.1:4000", UrlPolicy::https_only()).unwrap_err();
        assert_eq!(err.field, "base");
        assert!(
            err.to_string().contains("allow_insecure_loopback_http"),
            "{err}"
        );
        let p = ProviderProfile::sandbox(
            "http://127.0.0.1:4000",
            UrlPolicy::allow_insecure_loopback_http(),
        )
        .unwrap();
        assert_eq!(
            p.authorize_url().as_str(),
            "http://127.0.0.1:4000/auth/oauth2/authorize"
        );
        assert_eq!(p.api_base().unwrap().as_str(), "http://127.0.0.1:4000/v2");
        assert_eq!(
            legacy_of(&p).refresh.as_str(),
            "http://127.0.0.1:4000/api/auth/oauth/refreshToken"
        );
    }

    #[test]
    fn legacy_only_and_no_fallback() {
        let legacy = ProviderProfile::cal_com().legacy_token_endpoints_only();
        assert!(matches!(
            legacy.token_endpoints(),
            TokenEndpoints::Legacy(_)
        ));
        let strict = ProviderProfile::cal_com().without_legacy_fallback();
        assert!(matches!(
            strict.token_endpoints(),
            TokenEndpoints::Unified {
                legacy_fallback: None,
                ..
            }
        ));
    }

    #[test]
    fn self_hosted_refuses_plain_http() {
        let err = ProviderProfile::cal_com_self_hosted(
            "http://cal.example.com",
            "https://api.example.com/v2",
            UrlPolicy::allow_insecure_loopback_http(),
        )
        .unwrap_err();
        assert_eq!(err.field, "web_base");
    }
}
