//! `--profile custom`: any standard OAuth 2.0 server (docs/architecture.md §3.8).
//!
//! [`CustomSpec`] is what the command line keeps about such a provider (in `connections.json`
//! for each connection, and in `profiles.json` under a name given with `--save-as`): endpoints,
//! client authentication, PKCE, scope delimiter, identity source, API base, and the client
//! secret **sealed** with the key file, never in clear. [`args`] turns the flags (or the issuer's
//! discovery document) into a spec; [`secret`] reads and seals the client secret; [`saved`]
//! keeps named profiles; [`wording`] says what went wrong without Cal.com's words.

pub mod args;
pub mod saved;
pub mod secret;
pub mod wording;

use crate::exit::CliError;
use calconnect::{
    ClientAuthMethod, ConfidentialPkce, CustomProvider, EndpointUrl, IdentitySource, JsonPointer,
    ProviderProfile, ScopeDelimiter, UrlPolicy,
};
use serde::{Deserialize, Serialize};

/// Client authentication at the token, revocation and introspection endpoints (RFC 6749
/// §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: `client_id` only (PKCE protects the code).
    #[default]
    None,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic with the form-urlencoded id and secret.
    ClientSecretBasic,
}

impl AuthMethod {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            _ => Err(format!(
                "unknown authentication method `{s}`: use none, client_secret_post or client_secret_basic"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }

    pub fn library(self) -> ClientAuthMethod {
        match self {
            Self::None => ClientAuthMethod::None,
            Self::ClientSecretPost => ClientAuthMethod::ClientSecretPost,
            Self::ClientSecretBasic => ClientAuthMethod::ClientSecretBasic,
        }
    }
}

/// How scopes are joined (RFC 6749 §3.3: spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delimiter {
    #[default]
    Space,
    Comma,
}

impl Delimiter {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "space" => Ok(Self::Space),
            "comma" => Ok(Self::Comma),
            _ => Err(format!("unknown scope delimiter `{s}`: use space or comma")),
        }
    }

    pub fn library(self) -> ScopeDelimiter {
        match self {
            Self::Space => ScopeDelimiter::Space,
            Self::Comma => ScopeDelimiter::Comma,
        }
    }

    pub fn join(self) -> &'static str {
        match self {
            Self::Space => " ",
            Self::Comma => ",",
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A custom provider as the command line keeps it. No secret in clear: the client secret is
/// sealed with the key file ([`secret::SealedSecret`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomSpec {
    pub authorize_url: String,
    pub token_url: String,
    /// The issuer identifier; callbacks must carry it as `iss` (RFC 9207).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_url: Option<String>,
    /// Where the account's name is: a JSON pointer into the userinfo or introspection answer,
    /// or the token claim to read when neither endpoint is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_claim: Option<String>,
    /// The API root `calconnect api` calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// PKCE S256 (on unless switched off; public clients always use it).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub pkce: bool,
    #[serde(default)]
    pub scope_delimiter: Delimiter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<secret::SealedSecret>,
}

/// Plain http only for loopback hosts (the URLs come from a person or a discovery document).
pub fn url_policy() -> UrlPolicy {
    UrlPolicy::allow_insecure_loopback_http()
}

fn bad_url(e: &dyn std::fmt::Display) -> CliError {
    CliError::usage(format!(
        "{e}: use an https URL (http only for 127.0.0.1/localhost)"
    ))
}

fn endpoint(flag: &str, url: &str) -> Result<EndpointUrl, CliError> {
    EndpointUrl::parse(url, url_policy()).map_err(|e| bad_url(&format!("--{flag} {url}: {e}")))
}

impl CustomSpec {
    /// The provider's host, for messages and the default connection name.
    pub fn host(&self) -> String {
        let from = self.issuer.as_deref().unwrap_or(&self.authorize_url);
        url::Url::parse(from)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_owned(), |p| format!("{h}:{p}")))
            })
            .unwrap_or_else(|| from.to_owned())
    }

    /// Where the account's name comes from, in the order of docs/architecture.md §3.8:
    /// userinfo, introspection, a named claim, else the label `name`.
    pub fn identity(&self, name: &str) -> Result<IdentitySource, CliError> {
        let pointer = || match &self.identity_claim {
            Some(claim) => JsonPointer::parse(claim)
                .map_err(|e| CliError::usage(format!("--identity-claim: {e}"))),
            None => Ok(JsonPointer::sub()),
        };
        if let Some(url) = &self.userinfo_url {
            return Ok(IdentitySource::Userinfo {
                url: endpoint("userinfo-url", url)?,
                pointer: pointer()?,
            });
        }
        if let Some(url) = &self.introspection_url {
            return Ok(IdentitySource::Introspection {
                url: endpoint("introspection-url", url)?,
                pointer: pointer()?,
            });
        }
        if self.identity_claim.is_some() {
            return Ok(IdentitySource::Claims {
                pointer: pointer()?,
            });
        }
        IdentitySource::label(name).map_err(|e| CliError::usage(format!("--name: {e}")))
    }

    /// The library's profile; `name` is the connection's label (used as its identity when the
    /// spec names no identity source).
    pub fn profile(&self, name: Option<&str>) -> Result<ProviderProfile, CliError> {
        let provider = CustomProvider {
            authorize_url: self.authorize_url.clone(),
            token_url: self.token_url.clone(),
            revocation_url: self.revocation_url.clone(),
            client_auth: self.auth_method.library(),
            issuer: self.issuer.clone(),
        };
        let mut profile =
            ProviderProfile::custom(provider, url_policy()).map_err(|e| bad_url(&e))?;
        if let Some(api) = &self.api_base {
            profile = profile
                .with_api_base(api, url_policy())
                .map_err(|e| bad_url(&e))?;
        }
        if !self.pkce {
            profile = profile
                .with_confidential_pkce(ConfidentialPkce::Off)
                .map_err(|e| CliError::usage(e.to_string()))?;
        }
        let name = name.map_or_else(|| self.host(), str::to_owned);
        Ok(profile
            .with_scope_delimiter(self.scope_delimiter.library())
            .with_identity(self.identity(&name)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{ProviderSpec, Record};

    #[test]
    fn records_from_before_custom_settings_still_load() {
        // connections.json as earlier versions wrote it for a custom provider.
        let old = r#"{"profile":"custom","authorize_url":"https://idp.example/auth","token_url":"https://idp.example/token","client_id":"c","redirect_uri":"http://127.0.0.1:8976/callback","username":null,"email":null}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        let ProviderSpec::Custom(spec) = &record.provider else {
            panic!("{record:?}")
        };
        assert_eq!(spec.auth_method, AuthMethod::None);
        assert!(spec.pkce);
        assert_eq!(spec.scope_delimiter, Delimiter::Space);
        let profile = spec.profile(None).unwrap();
        assert_eq!(
            profile.identity(),
            &IdentitySource::Label("idp.example".into())
        );
        // And it round-trips.
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
    }

    #[test]
    fn identity_sources_in_order() {
        let mut spec = CustomSpec {
            authorize_url: "https://idp.example/auth".into(),
            token_url: "https://idp.example/token".into(),
            issuer: None,
            revocation_url: None,
            userinfo_url: Some("https://idp.example/me".into()),
            introspection_url: Some("https://idp.example/introspect".into()),
            identity_claim: Some("email".into()),
            api_base: None,
            auth_method: AuthMethod::None,
            pkce: true,
            scope_delimiter: Delimiter::Space,
            client_secret: None,
        };
        assert!(
            matches!(spec.identity("n").unwrap(), IdentitySource::Userinfo { pointer, .. } if pointer.as_str() == "/email")
        );
        spec.userinfo_url = None;
        assert!(matches!(
            spec.identity("n").unwrap(),
            IdentitySource::Introspection { .. }
        ));
        spec.introspection_url = None;
        assert!(matches!(
            spec.identity("n").unwrap(),
            IdentitySource::Claims { .. }
        ));
        spec.identity_claim = None;
        assert_eq!(
            spec.identity("work").unwrap(),
            IdentitySource::Label("work".into())
        );
        assert_eq!(spec.host(), "idp.example");
    }
}
