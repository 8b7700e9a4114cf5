//! The demo end user's session: a cookie `calconnect_demo=<name>.<HMAC>` (HttpOnly, SameSite=Lax)
//! and a CSRF token derived from it (HMAC of the name under a second label), compared in
//! constant time on every POST.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

const COOKIE: &str = "calconnect_demo";

/// Signs session cookies and CSRF tokens with a per-process key.
pub(crate) struct Sessions {
    key: [u8; 32],
}

impl Sessions {
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self { key }
    }

    fn mac(&self, label: &str, name: &str) -> String {
        // HMAC accepts keys of any length; this cannot fail for a 32-byte key.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(name.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The `Set-Cookie` value that signs `name` in.
    pub(crate) fn cookie_for(&self, name: &str) -> String {
        format!(
            "{COOKIE}={name}.{}; Path=/; HttpOnly; SameSite=Lax",
            self.mac("session", name)
        )
    }

    /// The `Set-Cookie` value that signs out.
    pub(crate) fn clear_cookie() -> String {
        format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
    }

    /// The signed-in user, if the cookie is valid.
    pub(crate) fn user(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_owned())?;
        let (name, mac) = value.rsplit_once('.')?;
        let expected = self.mac("session", name);
        (!expected.is_empty()
            && valid_name(name)
            && bool::from(expected.as_bytes().ct_eq(mac.as_bytes())))
        .then(|| name.to_owned())
    }

    /// The CSRF token of `name`'s session.
    pub(crate) fn csrf(&self, name: &str) -> String {
        self.mac("csrf", name)
    }

    /// Whether `token` is `name`'s CSRF token.
    pub(crate) fn csrf_ok(&self, name: &str, token: &str) -> bool {
        let expected = self.csrf(name);
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// A demo user name: 1–32 of `a-z 0-9 - _`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The signed-in user, or none (an extractor that never rejects).
#[derive(Debug, Clone)]
pub(crate) struct MaybeUser(pub(crate) Option<String>);

impl FromRequestParts<super::AppCtx> for MaybeUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &super::AppCtx,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(ctx.sessions.user(&parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_csrf_tokens_are_bound_to_the_name() {
        let s = Sessions::random();
        let cookie = s.cookie_for("ann");
        let value = cookie.split(';').next().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            value
                .parse()
                .unwrap_or(header::HeaderValue::from_static("")),
        );
        assert_eq!(s.user(&headers).as_deref(), Some("ann"));
        let forged = value.replace("ann.", "bob.");
        headers.insert(
            header::COOKIE,
            forged
                .parse()
                .unwrap_or(header::HeaderValue::from_static("")),
        );
        assert_eq!(s.user(&headers), None);
        assert!(s.csrf_ok("ann", &s.csrf("ann")));
        assert!(!s.csrf_ok("bob", &s.csrf("ann")));
        assert!(!valid_name("<b>") && !valid_name("") && valid_name("ann-2"));
    }
}
