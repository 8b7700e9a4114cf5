//! Sign-in for the sandbox's web pages: `GET /auth/login` lists the seeded users (no passwords),
//! `POST /auth/login` sets an `HttpOnly; SameSite=Lax` session cookie and returns to
//! `callbackUrl` — only ever a path on this sandbox, so the login cannot be an open redirect.
//! Cal.com sends the browser here as `/auth/login?callbackUrl=auth/oauth2/authorize?<query>`
//! (`docs/calcom.md` §2 "Not logged in").

use super::html::{self, LoginChoice};
use super::random_b64url;
use crate::state::Shared;
use axum::extract::{Form, OptionalFromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse as _, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "calsandbox_session";

/// Where a login without a usable callback lands.
const DEFAULT_CALLBACK: &str = "/_sandbox/";

/// The signed-in browser (an extractor, used as `Option<SignedIn>`): the session cookie names a
/// live session. The cookie holds only a random session id (256 bits), looked up in the sandbox's
/// memory, so a plain cookie jar is enough: a forged value names no session.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub(crate) session_id: String,
    pub(crate) user_id: i64,
}

impl OptionalFromRequestParts<Arc<Shared>> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Option<Self>, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(sid) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
            return Ok(None);
        };
        let user_id = shared.db().sessions.get(&sid).copied();
        Ok(user_id.map(|user_id| Self {
            session_id: sid,
            user_id,
        }))
    }
}

/// The CSRF token of a session: HMAC-SHA256(signing key, "csrf:" + session id), hex.
pub(crate) fn csrf_token(shared: &Shared, session_id: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(&shared.signing_key) {
        Ok(mut m) => {
            m.update(b"csrf:");
            m.update(session_id.as_bytes());
            hex::encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Constant-time check of a submitted CSRF token.
pub(crate) fn csrf_ok(shared: &Shared, session_id: &str, submitted: &str) -> bool {
    let expected = csrf_token(shared, session_id);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// Turns a `callbackUrl` into a path on this sandbox, or `None`. Accepts Cal.com's relative form
/// (`auth/oauth2/authorize?...`) and absolute paths; rejects schemes, `//host`, backslashes and
/// control characters.
pub(crate) fn safe_callback(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.contains('\\') || raw.chars().any(char::is_control) {
        return None;
    }
    let path = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    };
    if path.starts_with("//") {
        return None;
    }
    let base = url::Url::parse("http://sandbox.invalid/").ok()?;
    let joined = base.join(&path).ok()?;
    if joined.origin() != base.origin() {
        return None;
    }
    let mut out = joined.path().to_owned();
    if let Some(q) = joined.query() {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(rename = "callbackUrl")]
    callback_url: Option<String>,
}

/// `GET /auth/login`: the user picker.
pub(crate) async fn login_page(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let callback = q
        .callback_url
        .as_deref()
        .and_then(safe_callback)
        .unwrap_or_else(|| DEFAULT_CALLBACK.to_owned());
    let db = shared.db();
    let users: Vec<LoginChoice<'_>> = db
        .users
        .values()
        .map(|u| LoginChoice {
            id: u.id,
            name: &u.name,
            username: &u.username,
            email: &u.email,
        })
        .collect();
    html::login_page(&users, &callback)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    user_id: i64,
    #[serde(rename = "callbackUrl")]
    callback_url: Option<String>,
}

/// The session cookie: `HttpOnly; SameSite=Lax`, the whole sandbox.
fn session_cookie(value: String) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
}

/// `POST /auth/login`: signs in as the picked user and returns to the callback.
pub(crate) async fn login_submit(
    State(shared): State<Arc<Shared>>,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Response {
    let sid = random_b64url(32);
    {
        let mut db = shared.db();
        if !db.users.contains_key(&f.user_id) {
            drop(db);
            return html::error_page(
                StatusCode::BAD_REQUEST,
                "No such user in this sandbox; pick one from the sign-in page.",
            );
        }
        db.sessions.insert(sid.clone(), f.user_id);
    }
    let to = f
        .callback_url
        .as_deref()
        .and_then(safe_callback)
        .unwrap_or_else(|| DEFAULT_CALLBACK.to_owned());
    (jar.add(session_cookie(sid)), super::see_other(&to)).into_response()
}

/// `POST /auth/logout`: ends the session and shows the sign-in page again.
pub(crate) async fn logout(
    State(shared): State<Arc<Shared>>,
    jar: CookieJar,
    Form(q): Form<LoginQuery>,
) -> Response {
    if let Some(c) = jar.get(COOKIE) {
        shared.db().sessions.remove(c.value());
    }
    let mut to = String::from("/auth/login");
    if let Some(cb) = q.callback_url.as_deref().and_then(safe_callback) {
        to.push('?');
        to.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .append_pair("callbackUrl", &cb)
                .finish(),
        );
    }
    let jar = jar.remove(session_cookie(String::new()));
    (jar, super::see_other(&to)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_stay_on_the_sandbox() {
        assert_eq!(
            safe_callback("auth/oauth2/authorize?client_id=a&x=%20").as_deref(),
            Some("/auth/oauth2/authorize?client_id=a&x=%20")
        );
        assert_eq!(safe_callback("/_sandbox/").as_deref(), Some("/_sandbox/"));
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "\\\\evil",
            "javascript:alert(1)",
            "",
        ] {
            let got = safe_callback(bad);
            assert!(
                got.as_deref()
                    .is_none_or(|p| p.starts_with('/') && !p.starts_with("//")),
                "{bad} -> {got:?}"
            );
        }
        assert_eq!(
            safe_callback("https://evil.example/").as_deref(),
            Some("/https://evil.example/")
        );
    }
}
