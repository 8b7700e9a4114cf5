//! `GET /auth/oauth2/authorize` (`docs/calcom.md` §2): sign-in redirect, the checks of
//! `OAuthService.getClientForAuthorization` / `generateAuthorizationCode` in their order, and
//! the two ways of failing — a page that never redirects (client, redirect URI, status, missing
//! scope) or a redirect to the client with `error`/`error_description`/`state`, using the tRPC
//! mapping the browser sees (`invalid_scope` surfaces as `invalid_request`).
//!
//! Redirects use 303 See Other (Cal.com navigates in client-side JavaScript; any redirect status
//! carries the same `Location`). Non-redirectable errors are 400 pages (Cal.com renders them with
//! 200; a status makes them visible to tools).

use super::consent;
use super::html;
use super::random_b64url;
use super::scopes::{is_known, is_legacy_client, parse_scope_param};
use super::session::SignedIn;
use crate::seed::ClientType;
use crate::state::{AccessCode, Authorization, Client, IssuedCode, Owner, Shared, push_bounded};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The query parameters the page reads (first occurrence wins, as `searchParams.get`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub show_account_selector: bool,
}

impl AuthRequest {
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        Self {
            client_id: get("client_id").unwrap_or_default(),
            redirect_uri: get("redirect_uri"),
            state: get("state"),
            scope: get("scope"),
            code_challenge: get("code_challenge").filter(|s| !s.is_empty()),
            code_challenge_method: get("code_challenge_method").filter(|s| !s.is_empty()),
            show_account_selector: get("show_account_selector").as_deref() == Some("true"),
        }
    }

    /// The fields the consent form carries back.
    pub(crate) fn hidden_fields(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("client_id", self.client_id.clone())];
        let opt = [
            ("redirect_uri", &self.redirect_uri),
            ("state", &self.state),
            ("scope", &self.scope),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
        ];
        v.extend(
            opt.into_iter()
                .filter_map(|(k, val)| val.clone().map(|val| (k, val))),
        );
        v
    }
}

/// Why an authorization request fails.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// Shown on the page; never redirected.
    Page(&'static str),
    /// Sent back to the client.
    Redirect(String),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Page(msg) => html::error_page(StatusCode::BAD_REQUEST, msg),
            Rejection::Redirect(url) => super::see_other(&url),
        }
    }
}

/// A request that passed every check.
#[derive(Debug)]
pub(crate) struct Valid {
    pub client: Client,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

const SCOPE_EXCEEDS: &str = "Requested scope exceeds the client's registered scopes";
const UNKNOWN_SCOPE: &str = "Requested scope is not a recognized scope";

/// The checks, in Cal.com's order: client, redirect URI (exact), status with owner bypass,
/// scopes (required and a subset for scoped clients; known names for legacy ones), PKCE.
pub(crate) fn validate(
    shared: &Shared,
    req: &AuthRequest,
    user_id: i64,
) -> Result<Valid, Rejection> {
    let client = shared
        .db()
        .clients
        .get(&req.client_id)
        .cloned()
        .ok_or(Rejection::Page("OAuth client with ID not found"))?;
    // [inferred] Cal.com's page renders nothing without redirect_uri; the sandbox says why.
    let redirect_uri = req
        .redirect_uri
        .clone()
        .ok_or(Rejection::Page("redirect_uri is required"))?;
    if !client.redirect_uris.contains(&redirect_uri) {
        return Err(Rejection::Page(
            "redirect_uri does not match any of the OAuth client's registered redirect URIs",
        ));
    }
    super::grants::ensure_access(&client, Some(user_id)).map_err(|reason| {
        Rejection::Page(if reason == "client_rejected" {
            "OAuth client has been rejected"
        } else {
            "OAuth client is not approved"
        })
    })?;
    let fail = |error: &str, description: &str| {
        Rejection::Redirect(error_redirect(
            &redirect_uri,
            error,
            Some(description),
            req.state.as_deref(),
        ))
    };
    let scopes = parse_scope_param(req.scope.as_deref());
    if !is_legacy_client(&client.scopes) {
        if scopes.is_empty() {
            return Err(Rejection::Page(
                "scope parameter is required for this OAuth client",
            ));
        }
        if !scopes.iter().all(|s| is_known(s)) {
            return Err(fail("invalid_request", UNKNOWN_SCOPE));
        }
        if !scopes.iter().all(|s| client.scopes.contains(s)) {
            return Err(fail("invalid_request", SCOPE_EXCEEDS));
        }
    } else if !scopes.iter().all(|s| is_known(s)) {
        return Err(fail("invalid_request", UNKNOWN_SCOPE));
    }
    let s256 = req.code_challenge_method.as_deref() == Some("S256");
    match (&req.code_challenge, client.client_type) {
        (None, ClientType::Public) => {
            return Err(fail(
                "invalid_request",
                "code_challenge required for public clients",
            ));
        }
        // The unmerged "PKCE for every client" branch (§3.7), behind a setting.
        (None, ClientType::Confidential) if shared.settings().pkce_required_for_all => {
            return Err(fail(
                "invalid_request",
                "code_challenge required (PKCE is required for all clients)",
            ));
        }
        (Some(_), _) if !s256 => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        _ => {}
    }
    Ok(Valid {
        client,
        redirect_uri,
        scopes,
    })
}

/// `buildOAuthErrorRedirectUrl`: the raw redirect URI, `?` or `&`, then `error`,
/// `error_description` (if any) and `state` (if non-empty), form-encoded.
pub(crate) fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: Option<&str>,
    state: Option<&str>,
) -> String {
    let mut params = form_urlencoded::Serializer::new(String::new());
    params.append_pair("error", error);
    if let Some(d) = description {
        params.append_pair("error_description", d);
    }
    if let Some(s) = state.filter(|s| !s.is_empty()) {
        params.append_pair("state", s);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", params.finish())
}

/// `buildRedirectUrl`: `URL.searchParams.set` for `code` and `state`, so an existing query on
/// the redirect URI is kept (and re-serialized, as URLSearchParams does).
pub(crate) fn success_redirect(redirect_uri: &str, code: &str, state: Option<&str>) -> String {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_redirect(redirect_uri, "server_error", None, state);
    };
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let mut set = |k: &str, v: &str| {
        if let Some(i) = pairs.iter().position(|(key, _)| key == k) {
            pairs[i].1 = v.to_owned();
            let mut seen = 0;
            pairs.retain(|(key, _)| {
                if key == k {
                    seen += 1;
                    seen == 1
                } else {
                    true
                }
            });
        } else {
            pairs.push((k.to_owned(), v.to_owned()));
        }
    };
    set("code", code);
    if let Some(s) = state {
        set("state", s);
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    url.set_query(Some(&query));
    url.to_string()
}

/// Creates an authorization code (40 random bytes, base64url, no padding; `code_ttl`, single
/// use) and upserts the consent record of (user, client).
pub(crate) fn issue_code(
    shared: &Shared,
    valid: &Valid,
    req: &AuthRequest,
    user_id: i64,
    team_id: Option<i64>,
) -> String {
    let code = random_b64url(40);
    let now = shared.clock.now();
    let ttl = shared.settings().code_ttl;
    let owner = team_id.map_or(Owner::User(user_id), Owner::Team);
    let mut db = shared.db();
    db.codes.insert(
        code.clone(),
        AccessCode {
            code: code.clone(),
            client_id: valid.client.client_id.clone(),
            owner,
            scopes: valid.scopes.clone(),
            code_challenge: req.code_challenge.clone(),
            code_challenge_method: req
                .code_challenge
                .as_ref()
                .and(req.code_challenge_method.clone()),
            expires_at: now + ttl,
        },
    );
    push_bounded(
        &mut db.issued_codes,
        IssuedCode {
            code: code.clone(),
            client_id: valid.client.client_id.clone(),
            user_id,
            team_id,
            scopes: valid.scopes.clone(),
            issued_at: now,
        },
    );
    let entry = db
        .authorizations
        .entry((user_id, valid.client.client_id.clone()))
        .or_insert_with(|| Authorization {
            scopes: Vec::new(),
            created_at: now,
            last_refreshed_at: None,
        });
    entry.scopes = valid.scopes.clone();
    drop(db);
    shared.changed();
    code
}

/// `/auth/login?callbackUrl=auth/oauth2/authorize?<query>` (plus `register` if given).
pub(crate) fn login_redirect(pairs: &[(String, String)]) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut login = form_urlencoded::Serializer::new(String::new());
    login.append_pair("callbackUrl", &format!("auth/oauth2/authorize?{query}"));
    if let Some((_, r)) = pairs.iter().find(|(k, _)| k == "register") {
        login.append_pair("register", r);
    }
    super::see_other(&format!("/auth/login?{}", login.finish()))
}

pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `GET /auth/oauth2/authorize`.
pub(crate) async fn get_authorize(
    State(shared): State<Arc<Shared>>,
    signed_in: Option<SignedIn>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let req = AuthRequest::from_pairs(&pairs);
    let Some(SignedIn {
        session_id: sid,
        user_id,
    }) = signed_in
    else {
        return login_redirect(&pairs);
    };
    let valid = match validate(&shared, &req, user_id) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    if valid.client.trusted {
        // Trusted clients skip consent: the personal account is authorized at once.
        let code = issue_code(&shared, &valid, &req, user_id, None);
        return super::see_other(&success_redirect(
            &valid.redirect_uri,
            &code,
            req.state.as_deref(),
        ));
    }
    consent::render(&shared, &req, &valid, &sid, user_id, &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_existing_queries() {
        assert_eq!(
            success_redirect("https://a.example/cb?x=1&code=old", "C", Some("s t")),
            "https://a.example/cb?x=1&code=C&state=s+t"
        );
        assert_eq!(
            error_redirect("https://a.example/cb?x=1", "access_denied", None, Some("s")),
            "https://a.example/cb?x=1&error=access_denied&state=s"
        );
        assert_eq!(
            error_redirect(
                "https://a.example/cb",
                "invalid_request",
                Some(SCOPE_EXCEEDS),
                None
            ),
            "https://a.example/cb?error=invalid_request&error_description=Requested+scope+exceeds+the+client%27s+registered+scopes"
        );
    }
}
