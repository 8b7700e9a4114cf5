//! Provider profiles: where the endpoints are and how to talk to them.
//!
//! Endpoints are configuration ([architecture](../../../docs/architecture.md)): Cal.com (cloud,
//! self-hosted, legacy web token endpoints, the local sandbox) and `custom`, any RFC 6749 server.
//!
//! A profile also carries the **client policy**: whether a flow uses PKCE and where a
//! confidential client exchanges its code ([`ConfidentialPkce`], decided in one place by
//! [`ProviderProfile::pkce_use`]).

use crate::endpoint::{EndpointUrl, EndpointUrlError, UrlPolicy};
use crate::identity::IdentitySource;
use std::fmt;

/// How the client authenticates at the token (and revocation) endpoint, RFC 6749 §2.3.1.
/// Only used for confidential clients; public clients send just `client_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the request body. The only method Cal.com reads
    /// (docs/calcom.md §3.2, `calcom#24964`).
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
    /// nothing else, docs/calcom.md §3.1).
    Form,
    /// `application/json`: Cal.com's v2 endpoint accepts it (docs/calcom.md §3.1); its docs use it.
    Json,
}

/// How scopes are joined in the authorize URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeDelimiter {
    /// `A,B`: some Cal.com page versions split only on commas (docs/calcom.md §2).
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

/// How long a flow goes straight to the legacy endpoints after the v2 token endpoint answered 404
/// (Cal.com issue 27685), before it tries v2 again.
pub const DEFAULT_LEGACY_FALLBACK_MEMORY: std::time::Duration =
    std::time::Duration::from_secs(15 * 60);

/// Whether a **confidential** client uses PKCE, and where it then exchanges its code. Public
/// clients always use PKCE S256 (Cal.com requires it of them; RFC 9700 §2.1.1).
///
/// Cal.com's v2 token endpoint refuses `code_verifier` from a confidential client (its input
/// class for that case has exactly `client_id, grant_type, code, redirect_uri, client_secret`,
/// validated with `forbidNonWhitelisted`), and a confidential code issued with a
/// `code_challenge` can then never be exchanged there. See
/// [docs/calcom.md, "PKCE and client types"](../../../docs/calcom.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfidentialPkce {
    /// No `code_challenge` at authorize, no `code_verifier` at the token endpoint: Cal.com's
    /// documented confidential path (the default for Cal.com, self-hosted and sandbox profiles).
    /// The client secret authenticates the exchange; `state` and the browser binding protect the
    /// flow against forged callbacks.
    Off,
    /// PKCE S256 as for public clients, at the profile's one token endpoint (the default for
    /// custom profiles, RFC 9700 §2.1.1). Refused for Cal.com profiles, whose v2 endpoint rejects it.
    On,
    /// Cal.com only, opt-in: send a `code_challenge` and exchange the code at Cal.com's legacy web
    /// token endpoint (`/api/auth/oauth/token`, form body, `client_secret` and `code_verifier`),
    /// which passes the verifier to the same service that checks it. Refreshes stay on v2. Choose
    /// it when a leaked code must be useless even to someone holding the client secret; it
    /// depends on an endpoint Cal.com calls legacy.
    ViaLegacyEndpoint,
}

impl ConfidentialPkce {
    /// The setting's name in configuration files (`confidential_pkce = "…"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::ViaLegacyEndpoint => "legacy-endpoint",
        }
    }

    /// Parses a configuration value (`off`, `on`, `legacy-endpoint`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "off" => Some(Self::Off),
            "on" => Some(Self::On),
            "legacy-endpoint" => Some(Self::ViaLegacyEndpoint),
            _ => None,
        }
    }
}

impl fmt::Display for ConfidentialPkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a flow does about PKCE, for one client type at one profile: the client policy's outcome
/// ([`ProviderProfile::pkce_use`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkceUse {
    /// No PKCE.
    None,
    /// S256 challenge at authorize, verifier at the profile's token endpoint.
    S256,
    /// S256 challenge at authorize, verifier at Cal.com's legacy web token endpoint.
    S256ViaLegacyEndpoint,
}

impl PkceUse {
    /// Whether a `code_challenge` is sent.
    pub fn sends_challenge(self) -> bool {
        !matches!(self, Self::None)
    }
}

impl fmt::Display for PkceUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "no PKCE (confidential client: the client secret authenticates the code exchange; state and the browser binding protect the flow)",
            Self::S256 => "PKCE S256 (code_challenge at authorize, code_verifier at the token endpoint)",
            Self::S256ViaLegacyEndpoint => "PKCE S256 with the code exchanged at Cal.com's legacy token endpoint (confidential_pkce = \"legacy-endpoint\")",
        })
    }
}

/// A client policy setting does not fit the profile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkcePolicyError {
    /// `legacy-endpoint` on a profile without Cal.com's legacy endpoints.
    #[error(
        "confidential_pkce = \"legacy-endpoint\" needs Cal.com's legacy token endpoint, and this provider profile has none: use \"on\" (custom providers) or \"off\""
    )]
    NoLegacyEndpoint,
    /// `on` for a Cal.com profile, whose v2 token endpoint refuses a confidential `code_verifier`.
    #[error(
        "confidential_pkce = \"on\" cannot work with Cal.com: its v2 token endpoint refuses code_verifier from confidential clients; use \"off\" (Cal.com's documented path) or \"legacy-endpoint\""
    )]
    RefusedByCalCom,
}

/// Cal.com's legacy web token endpoints (docs/calcom.md §3.1): one per grant, form only.
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
        /// Where to go when this endpoint answers 404 (docs/calcom.md §3.1, `calcom#27685`).
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
    /// Cal.com's legacy web endpoints, whatever the fallback setting (the PKCE opt-in needs them).
    pub(crate) legacy: Option<LegacyTokenEndpoints>,
    pub(crate) confidential_pkce: ConfidentialPkce,
    pub(crate) legacy_fallback_memory: std::time::Duration,
    /// Where the account of a connection is named (docs/architecture.md §3.8).
    pub(crate) identity: IdentitySource,
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
        let authorize_url = parse("authorize_url", &provider.authorize_url, policy)?;
        // No account identity unless the profile names a source: one connection per label,
        // by default the provider's host (docs/architecture.md §3.8).
        let host = provider
            .issuer
            .as_deref()
            .and_then(|i| url::Url::parse(i).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .or_else(|| authorize_url.as_url().host_str().map(str::to_owned))
            .unwrap_or_else(|| "custom".to_owned());
        Ok(Self {
            kind: ProviderKind::Custom,
            authorize_url,
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
            legacy: None,
            confidential_pkce: ConfidentialPkce::On,
            legacy_fallback_memory: DEFAULT_LEGACY_FALLBACK_MEMORY,
            identity: IdentitySource::Label(host),
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

    /// Sets whether confidential clients use PKCE ([`ConfidentialPkce`]).
    ///
    /// # Errors
    /// [`PkcePolicyError`] when the setting cannot work with this profile: `legacy-endpoint`
    /// without Cal.com's legacy endpoints, or `on` for a Cal.com profile.
    pub fn with_confidential_pkce(
        mut self,
        mode: ConfidentialPkce,
    ) -> Result<Self, PkcePolicyError> {
        match mode {
            ConfidentialPkce::ViaLegacyEndpoint if self.legacy.is_none() => {
                return Err(PkcePolicyError::NoLegacyEndpoint);
            }
            ConfidentialPkce::On if self.is_cal_com() => {
                return Err(PkcePolicyError::RefusedByCalCom);
            }
            _ => {}
        }
        self.confidential_pkce = mode;
        Ok(self)
    }

    /// The confidential-client PKCE setting.
    pub fn confidential_pkce(&self) -> ConfidentialPkce {
        self.confidential_pkce
    }

    /// **The client policy**, the one place where it is decided: what a flow of a `confidential`
    /// (or public) client does about PKCE at this profile. Public clients: S256 always.
    /// Confidential clients: per [`ConfidentialPkce`] (Cal.com default off, custom default on).
    pub fn pkce_use(&self, confidential: bool) -> PkceUse {
        if !confidential {
            return PkceUse::S256;
        }
        match self.confidential_pkce {
            ConfidentialPkce::Off => PkceUse::None,
            ConfidentialPkce::On => PkceUse::S256,
            ConfidentialPkce::ViaLegacyEndpoint => PkceUse::S256ViaLegacyEndpoint,
        }
    }

    /// After the v2 token endpoint answered 404, go straight to the legacy endpoints for `memory`
    /// (default [`DEFAULT_LEGACY_FALLBACK_MEMORY`]), then try v2 again. Zero tries v2 every time.
    #[must_use]
    pub fn with_legacy_fallback_memory(mut self, memory: std::time::Duration) -> Self {
        self.legacy_fallback_memory = memory;
        self
    }

    /// Cal.com's legacy web token endpoints, if this is a Cal.com profile.
    pub fn legacy_endpoints(&self) -> Option<&LegacyTokenEndpoints> {
        self.legacy.as_ref()
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

    /// The API root: Cal.com's API v2 for Cal.com profiles; a custom provider's only when set
    /// ([`Self::with_api_base`]).
    pub fn api_base(&self) -> Option<&EndpointUrl> {
        self.api_base.as_ref()
    }

    /// The RFC 7009 revocation endpoint, if any (Cal.com has none, docs/calcom.md §4).
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
            legacy: Some(LegacyTokenEndpoints {
                token: web.join_path("api/auth/oauth/token"),
                refresh: web.join_path("api/auth/oauth/refreshToken"),
            }),
            confidential_pkce: ConfidentialPkce::Off,
            legacy_fallback_memory: DEFAULT_LEGACY_FALLBACK_MEMORY,
            identity: IdentitySource::CalCom,
        }
    }
}

pub(crate) fn parse(
    field: &'static str,
    value: &str,
    policy: UrlPolicy,
) -> Result<EndpointUrl, ProfileError> {
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
