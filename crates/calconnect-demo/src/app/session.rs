//! The demo end user's session and the two checks that guard the pages, each in one place:
//!
//! - [`SignedIn`]: the session is a cookie `calconnect_demo` holding the user's name, signed
//!   through axum-extra's [`SignedCookieJar`] (HttpOnly, SameSite=Lax), so it cannot be forged.
//! - [`Csrf`]: every state-changing form carries a CSRF token bound to that user (an HMAC of the
//!   name under a second per-process key), compared in constant time before the handler runs.

use super::AppCtx;
use super::html::problem;
use axum::Form;
use axum::extract::{FromRef, FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

const COOKIE: &str = "calconnect_demo";

/// A demo user name: 1–32 of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserName(String);

impl UserName {
    /// The name, if it is one.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        let valid = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        valid.then(|| Self(name.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl maud::Render for UserName {
    fn render_to(&self, buffer: &mut String) {
        self.0.render_to(buffer);
    }
}

/// The CSRF token of one user's session (64 hex digits), for the forms of its pages.
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(String);

impl CsrfToken {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The per-process keys: one signs session cookies, the other derives CSRF tokens.
pub(crate) struct Sessions {
    cookie_key: Key,
    csrf_key: [u8; 32],
}

/// The session keys could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the session keys: {0}")]
pub(crate) struct KeyError(String);

impl Sessions {
    /// Fresh random keys (sessions end when the demo restarts).
    pub(crate) fn random() -> Result<Self, KeyError> {
        let mut cookie_key = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut cookie_key);
        let mut csrf_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut csrf_key);
        Ok(Self {
            cookie_key: Key::try_from(&cookie_key[..]).map_err(|e| KeyError(e.to_string()))?,
            csrf_key,
        })
    }

    /// The session cookie that signs `user` in (signed when the jar adds it).
    pub(crate) fn cookie_for(user: &UserName) -> Cookie<'static> {
        Cookie::build((COOKIE, user.as_str().to_owned()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .build()
    }

    /// The cookie to remove to sign out.
    pub(crate) fn session_cookie() -> Cookie<'static> {
        Cookie::build(COOKIE).path("/").build()
    }

    /// The signed-in user of `jar`, if its session cookie is genuine and names a user.
    fn user(jar: &SignedCookieJar) -> Option<UserName> {
        jar.get(COOKIE).and_then(|c| UserName::parse(c.value()))
    }

    /// The CSRF token of `user`'s session.
    pub(crate) fn csrf(&self, user: &UserName) -> CsrfToken {
        // HMAC accepts keys of any length; this cannot fail for a 32-byte key.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.csrf_key) else {
            return CsrfToken(String::new());
        };
        mac.update(b"csrf\0");
        mac.update(user.as_str().as_bytes());
        CsrfToken(hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `token` is `user`'s CSRF token.
    fn csrf_ok(&self, user: &UserName, token: &str) -> bool {
        let expected = self.csrf(user);
        !expected.0.is_empty() && bool::from(expected.0.as_bytes().ct_eq(token.as_bytes()))
    }

    /// The CSRF token of the operator dashboard's forms. HTTP Basic has no session to bind a
    /// token to (and a browser sends its credentials with a forged cross-site form too), so the
    /// operator has one per process: under the same key as the users' tokens, in its own domain.
    pub(crate) fn operator_csrf(&self) -> CsrfToken {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.csrf_key) else {
            return CsrfToken(String::new());
        };
        mac.update(b"operator-csrf\0");
        CsrfToken(hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `token` is the operator's CSRF token.
    pub(crate) fn operator_csrf_ok(&self, token: &str) -> bool {
        let expected = self.operator_csrf();
        !expected.0.is_empty() && bool::from(expected.0.as_bytes().ct_eq(token.as_bytes()))
    }
}

impl FromRef<AppCtx> for Key {
    fn from_ref(ctx: &AppCtx) -> Self {
        ctx.sessions.cookie_key.clone()
    }
}

/// The signed-in demo user. As `Option<SignedIn>` for pages that signed-out visitors see too;
/// on its own it answers the "signed out" page.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn(pub(crate) UserName);

impl OptionalFromRequestParts<AppCtx> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppCtx,
    ) -> Result<Option<Self>, Self::Rejection> {
        let jar = SignedCookieJar::from_headers(&parts.headers, Key::from_ref(ctx));
        Ok(Sessions::user(&jar).map(Self))
    }
}

impl FromRequestParts<AppCtx> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppCtx) -> Result<Self, Self::Rejection> {
        let Ok(user) =
            <Self as OptionalFromRequestParts<AppCtx>>::from_request_parts(parts, ctx).await;
        user.ok_or_else(|| {
            problem(
                StatusCode::UNAUTHORIZED,
                "signed_out",
                "You are signed out",
                "This action needs a signed-in demo user.",
                "Sign in again and retry.",
            )
        })
    }
}

/// The only field of the app's state-changing forms.
#[derive(Debug, Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A state-changing form from the signed-in user's own page: the session is checked first
/// ([`SignedIn`]), then the form's CSRF token. Yields the user.
#[derive(Debug, Clone)]
pub(crate) struct Csrf(pub(crate) UserName);

impl FromRequest<AppCtx> for Csrf {
    type Rejection = Response;

    async fn from_request(req: Request, ctx: &AppCtx) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let SignedIn(user) =
            <SignedIn as FromRequestParts<AppCtx>>::from_request_parts(&mut parts, ctx).await?;
        let token =
            match Form::<CsrfField>::from_request(Request::from_parts(parts, body), ctx).await {
                Ok(Form(f)) => f.csrf,
                Err(_) => String::new(),
            };
        if !ctx.sessions.csrf_ok(&user, &token) {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "csrf",
                "This form has expired",
                "The form was not sent by this page (or the demo restarted since it was shown), so nothing was done.",
                "Go back, reload the page and try again.",
            ));
        }
        Ok(Self(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn cookies_are_signed_and_csrf_tokens_are_bound_to_the_name() {
        let s = Sessions::random().unwrap();
        let ann = UserName::parse("ann").unwrap();
        let jar = SignedCookieJar::new(s.cookie_key.clone()).add(Sessions::cookie_for(&ann));
        let response = axum::response::IntoResponse::into_response((jar, ()));
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            set_cookie.contains("; HttpOnly") && set_cookie.contains("; SameSite=Lax"),
            "{set_cookie}"
        );
        let signed = set_cookie.split(';').next().unwrap().to_owned();
        assert!(
            signed.starts_with("calconnect_demo=") && signed.ends_with("ann"),
            "{signed}"
        );
        let read = |cookie: &str| {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(cookie) {
                headers.insert(header::COOKIE, v);
            }
            Sessions::user(&SignedCookieJar::from_headers(
                &headers,
                s.cookie_key.clone(),
            ))
        };
        assert_eq!(read(&signed), Some(ann.clone()));
        assert_eq!(read(&signed.replace("ann", "bob")), None, "forged");
        assert_eq!(read("calconnect_demo=ann"), None, "unsigned");
        assert_eq!(s.csrf(&ann).as_str().len(), 64);
        assert!(s.csrf_ok(&ann, s.csrf(&ann).as_str()));
        let bob = UserName::parse("bob").unwrap();
        assert!(!s.csrf_ok(&bob, s.csrf(&ann).as_str()));
        assert!(!s.csrf_ok(&ann, ""));
        assert!(s.operator_csrf_ok(s.operator_csrf().as_str()));
        assert!(!s.operator_csrf_ok(s.csrf(&ann).as_str()));
        assert!(!s.operator_csrf_ok(""));
        assert!(
            UserName::parse("<b>").is_none()
                && UserName::parse("").is_none()
                && UserName::parse("ann-2").is_some()
        );
    }
}
