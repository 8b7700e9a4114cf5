//! Validated endpoint URLs (docs/architecture.md §7.2): `https` only; plain `http` only for a loopback
//! host and only when the caller names the opt-in [`UrlPolicy::allow_insecure_loopback_http`]
//! (a loudly named switch, in the manner of rustls' `dangerous()` options).

use std::fmt;
use std::net::IpAddr;
use url::{Host, Url};

/// Which URLs a profile accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    insecure_loopback_http: bool,
}

impl UrlPolicy {
    /// `https` only. The default and the only sensible choice for a real deployment.
    pub fn https_only() -> Self {
        Self::default()
    }

    /// Also accepts plain `http://` to a loopback host (`127.0.0.0/8`, `::1`, `localhost`): the
    /// sandbox and local test servers. Tokens and client secrets then travel unencrypted over
    /// the loopback interface, so never use this for a provider on another machine (it is
    /// refused anyway).
    pub fn allow_insecure_loopback_http() -> Self {
        Self {
            insecure_loopback_http: true,
        }
    }
}

/// An endpoint URL that passed [`UrlPolicy`]: absolute, `https` (or loopback `http` by opt-in),
/// no user info, no fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointUrl(Url);

impl EndpointUrl {
    /// Parses and validates `input` under `policy`.
    ///
    /// # Errors
    /// [`EndpointUrlError`] says which rule the URL broke.
    pub fn parse(input: &str, policy: UrlPolicy) -> Result<Self, EndpointUrlError> {
        let url = Url::parse(input).map_err(|_| EndpointUrlError::NotAUrl)?;
        Self::from_url(url, policy)
    }

    pub(crate) fn from_url(url: Url, policy: UrlPolicy) -> Result<Self, EndpointUrlError> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EndpointUrlError::HasCredentials);
        }
        if url.fragment().is_some() {
            return Err(EndpointUrlError::HasFragment);
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {
                if !policy.insecure_loopback_http {
                    return Err(EndpointUrlError::InsecureLoopbackNotAllowed {
                        url: url.to_string(),
                    });
                }
            }
            "http" => {
                return Err(EndpointUrlError::InsecureHttp {
                    url: url.to_string(),
                });
            }
            other => {
                return Err(EndpointUrlError::UnsupportedScheme {
                    scheme: other.to_owned(),
                });
            }
        }
        if url.host().is_none() {
            return Err(EndpointUrlError::NotAUrl);
        }
        Ok(Self(url))
    }

    /// `self` with `suffix` appended to its path (`https://h/v2` + `/me` = `https://h/v2/me`).
    pub(crate) fn join_path(&self, suffix: &str) -> Self {
        let mut url = self.0.clone();
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            suffix.trim_start_matches('/')
        );
        url.set_path(&joined);
        Self(url)
    }

    /// The URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointUrl({})", self.0)
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Why an endpoint URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointUrlError {
    /// Not an absolute URL with a host.
    #[error("not an absolute URL with a host: give e.g. `https://cal.example.com`")]
    NotAUrl,
    /// Plain http to a non-loopback host.
    #[error("`{url}` uses plain http: use https (plain http is only possible for loopback hosts)")]
    InsecureHttp {
        /// The refused URL (endpoint URLs carry no secrets).
        url: String,
    },
    /// Plain http to loopback without the opt-in.
    #[error(
        "`{url}` uses plain http: for a local server (sandbox, tests) opt in with \
         `UrlPolicy::allow_insecure_loopback_http()`, otherwise use https"
    )]
    InsecureLoopbackNotAllowed {
        /// The refused URL.
        url: String,
    },
    /// Neither http nor https.
    #[error("URL scheme `{scheme}` is not supported: use https")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// `user:password@` in the URL.
    #[error(
        "the URL contains a user name or password: remove it (client credentials go in the client config)"
    )]
    HasCredentials,
    /// A `#fragment`.
    #[error("the URL has a #fragment: remove it")]
    HasFragment,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_accepted() {
        let url = EndpointUrl::parse("https://api.cal.com/v2", UrlPolicy::https_only()).unwrap();
        assert_eq!(
            url.join_path("/auth/oauth2/token").as_str(),
            "https://api.cal.com/v2/auth/oauth2/token"
        );
        let slash = EndpointUrl::parse("https://h.example/", UrlPolicy::https_only()).unwrap();
        assert_eq!(slash.join_path("v2").as_str(), "https://h.example/v2");
    }

    #[test]
    fn http_needs_loopback_and_the_opt_in() {
        let strict = UrlPolicy::https_only();
        let loopback = UrlPolicy::allow_insecure_loopback_http();
        assert!(matches!(
            EndpointUrl::parse("http://127.0.0.1:8080", strict),
            Err(EndpointUrlError::InsecureLoopbackNotAllowed { .. })
        ));
        for ok in [
            "http://127.0.0.1:8080",
            "http://[::1]:1/x",
            "http://localhost:3000",
            "http://127.1.2.3",
        ] {
            assert!(EndpointUrl::parse(ok, loopback).is_ok(), "{ok}");
        }
        for bad in [
            "http://cal.example.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
        ] {
            assert!(
                matches!(
                    EndpointUrl::parse(bad, loopback),
                    Err(EndpointUrlError::InsecureHttp { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn odd_urls_are_refused() {
        let p = UrlPolicy::https_only();
        assert_eq!(
            EndpointUrl::parse("ftp://x.example", p),
            Err(EndpointUrlError::UnsupportedScheme {
                scheme: "ftp".into()
            })
        );
        assert_eq!(
            EndpointUrl::parse("https://u:p@x.example", p),
            Err(EndpointUrlError::HasCredentials)
        );
        assert_eq!(
            EndpointUrl::parse("https://x.example/#f", p),
            Err(EndpointUrlError::HasFragment)
        );
        assert_eq!(
            EndpointUrl::parse("/relative", p),
            Err(EndpointUrlError::NotAUrl)
        );
    }
}
