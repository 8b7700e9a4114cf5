//! The settings of a `custom` provider profile beyond its endpoints (docs/architecture.md §3.8):
//! its API base, identity strategy and scope delimiter. Cal.com profiles ignore them.

use crate::endpoint::UrlPolicy;
use crate::identity::IdentitySource;
use crate::profile::{
    ClientAuthMethod, ProfileError, ProviderProfile, ScopeDelimiter, TokenEndpoints, parse,
};

impl ProviderProfile {
    /// A custom provider's API root, for [`crate::api::CalClient`]'s bearer-token requests with
    /// refresh-and-retry (`calconnect api --api-base`). Cal.com profiles keep their API v2 root.
    ///
    /// # Errors
    /// [`ProfileError`] when `url` breaks `policy`.
    pub fn with_api_base(mut self, url: &str, policy: UrlPolicy) -> Result<Self, ProfileError> {
        if !self.is_cal_com() {
            self.api_base = Some(parse("api_base", url, policy)?);
        }
        Ok(self)
    }

    /// How a custom provider's connections are identified ([`IdentitySource`]; default: a
    /// label, the provider's host). Ignored by Cal.com profiles, which are identified by
    /// Cal.com's claims or `/v2/me`.
    #[must_use]
    pub fn with_identity(mut self, identity: IdentitySource) -> Self {
        if !self.is_cal_com() && identity != IdentitySource::CalCom {
            self.identity = identity;
        }
        self
    }

    /// How a custom provider joins scopes in the authorize URL (default: space, RFC 6749 §3.3).
    /// Cal.com profiles keep commas.
    #[must_use]
    pub fn with_scope_delimiter(mut self, delimiter: ScopeDelimiter) -> Self {
        if !self.is_cal_com() {
            self.scope_delimiter = delimiter;
        }
        self
    }

    /// How scopes are joined in the authorize URL.
    pub fn scope_delimiter(&self) -> ScopeDelimiter {
        self.scope_delimiter
    }

    /// The client authentication at the token, revocation and introspection endpoints.
    pub fn client_auth(&self) -> ClientAuthMethod {
        self.client_auth
    }

    /// The issuer identifier callbacks must carry (RFC 9207), if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The identity strategy ([`IdentitySource`]).
    pub fn identity(&self) -> &IdentitySource {
        &self.identity
    }

    /// What names this provider in an account's store key
    /// ([`crate::identity::AccountIdentity::store_owner`]): the issuer when known, else the
    /// token endpoint.
    pub fn identity_namespace(&self) -> String {
        if let Some(issuer) = &self.issuer {
            return issuer.clone();
        }
        match &self.token {
            TokenEndpoints::Unified { url, .. } => url.as_str().to_owned(),
            TokenEndpoints::Legacy(legacy) => legacy.token.as_str().to_owned(),
        }
    }
}
