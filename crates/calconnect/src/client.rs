//! The OAuth client's own settings: id, secret (confidential clients) and redirect URI.

use crate::secret::ClientSecret;
use std::fmt;
use url::{Host, Url};

/// A redirect URI as Cal.com accepts it (docs/calcom.md §1, `validateRedirectUris.ts`): `https`,
/// or `http` only for `localhost`, `127.0.0.1`, `[::1]` or `*.local`; no `#fragment`. It must
/// equal a registered URI exactly, so it is kept byte for byte as given.
///
/// Kept as `oauth2::RedirectUrl`, which preserves the original text (no URL normalisation).
#[derive(Clone)]
pub struct RedirectUri(oauth2::RedirectUrl);

impl PartialEq for RedirectUri {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RedirectUri {}

impl RedirectUri {
    /// Validates `uri`.
    ///
    /// # Errors
    /// [`ClientConfigError::RedirectUri`] says which rule broke.
    pub fn parse(uri: &str) -> Result<Self, ClientConfigError> {
        let bad = |reason: &'static str| ClientConfigError::RedirectUri { reason };
        let url = Url::parse(uri).map_err(|_| bad("not an absolute URL"))?;
        if url.fragment().is_some() || uri.contains('#') {
            return Err(bad("it has a #fragment"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_local_host(&url) => {}
            "http" => {
                return Err(bad(
                    "plain http is only allowed for localhost, 127.0.0.1, [::1] and *.local",
                ));
            }
            _ => {
                return Err(bad(
                    "the scheme must be https (or http for a loopback host)",
                ));
            }
        }
        oauth2::RedirectUrl::new(uri.to_owned())
            .map(Self)
            .map_err(|_| bad("not an absolute URL"))
    }

    /// The URI exactly as given.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub(crate) fn as_oauth2(&self) -> &oauth2::RedirectUrl {
        &self.0
    }
}

fn is_local_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".local")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.as_str())
    }
}

/// A client registered at the provider.
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) client_id: String,
    pub(crate) secret: Option<ClientSecret>,
    pub(crate) redirect_uri: RedirectUri,
}

impl ClientConfig {
    /// A confidential client (has a secret; Cal.com `CONFIDENTIAL`, docs/calcom.md §1).
    ///
    /// # Errors
    /// [`ClientConfigError`] for an empty id or an unusable redirect URI.
    pub fn confidential(
        client_id: impl Into<String>,
        secret: ClientSecret,
        redirect_uri: &str,
    ) -> Result<Self, ClientConfigError> {
        Self::build(client_id.into(), Some(secret), redirect_uri)
    }

    /// A public client (no secret, PKCE only; Cal.com `PUBLIC`, docs/calcom.md §3.7).
    ///
    /// # Errors
    /// [`ClientConfigError`] for an empty id or an unusable redirect URI.
    pub fn public(
        client_id: impl Into<String>,
        redirect_uri: &str,
    ) -> Result<Self, ClientConfigError> {
        Self::build(client_id.into(), None, redirect_uri)
    }

    fn build(
        client_id: String,
        secret: Option<ClientSecret>,
        redirect_uri: &str,
    ) -> Result<Self, ClientConfigError> {
        if client_id.trim().is_empty() {
            return Err(ClientConfigError::EmptyClientId);
        }
        if secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().is_empty())
        {
            return Err(ClientConfigError::EmptySecret);
        }
        Ok(Self {
            client_id,
            secret,
            redirect_uri: RedirectUri::parse(redirect_uri)?,
        })
    }

    /// The client id (public).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The redirect URI.
    pub fn redirect_uri(&self) -> &RedirectUri {
        &self.redirect_uri
    }

    /// Whether this is a confidential client.
    pub fn is_confidential(&self) -> bool {
        self.secret.is_some()
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// A client configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientConfigError {
    /// Empty client id.
    #[error("the client id is empty: copy it from the provider's client settings")]
    EmptyClientId,
    /// Empty secret.
    #[error("the client secret is empty: copy it from the provider, or configure a public client")]
    EmptySecret,
    /// Unusable redirect URI.
    #[error("the redirect URI is not usable: {reason}")]
    RedirectUri {
        /// The rule it broke.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules_follow_cal_com() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://localhost:3000/cb",
            "http://127.0.0.1:9/cb",
            "http://[::1]:9/cb",
            "http://myhost.local/cb",
        ] {
            assert_eq!(RedirectUri::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "http://example.com/cb",
            "https://x.example/cb#frag",
            "cb",
            "ftp://x.example/",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = ClientConfig::confidential(
            "cid",
            ClientSecret::new("very-secret"),
            "https://a.example/cb",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("cid"));
        assert_eq!(
            ClientConfig::public(" ", "https://a.example/cb").unwrap_err(),
            ClientConfigError::EmptyClientId
        );
    }
}
