//! The consent page and its form (`docs/calcom.md` §2 "Consent page", "Teams are selectable",
//! "Allow", "Deny"). The form posts back to `/auth/oauth2/authorize` with a CSRF token bound to
//! the session; every check of the authorization request runs again on submit.

use super::authorize::{
    AuthRequest, Valid, error_redirect, issue_code, login_redirect, success_redirect, validate,
};
use super::html::{self, Consent};
use super::scopes::display_groups;
use super::session::{SignedIn, csrf_ok, csrf_token};
use crate::seed::TeamRole;
use crate::state::Shared;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Renders the consent page for a validated request.
pub(crate) fn render(
    shared: &Shared,
    req: &AuthRequest,
    valid: &Valid,
    session_id: &str,
    user_id: i64,
    pairs: &[(String, String)],
) -> Response {
    let (user_name, user_email, accounts) = {
        let db = shared.db();
        let Some(user) = db.users.get(&user_id) else {
            return html::error_page(StatusCode::BAD_REQUEST, "Signed-in user no longer exists");
        };
        let accounts = req.show_account_selector.then(|| {
            let mut options = vec![("user".to_owned(), user.name.clone())];
            // teamsAndUserProfilesQuery filtered to !readOnly: teams the user owns or administers.
            options.extend(
                db.teams
                    .iter()
                    .filter(|t| {
                        t.members
                            .iter()
                            .any(|m| m.user_id == user_id && m.role != TeamRole::Member)
                    })
                    .map(|t| (format!("team/{}", t.slug), t.name.clone())),
            );
            options
        });
        (user.name.clone(), user.email.clone(), accounts)
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let switch_url = format!(
        "/auth/login?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("callbackUrl", &format!("auth/oauth2/authorize?{query}"))
            .finish()
    );
    html::consent_page(&Consent {
        client_name: &valid.client.name,
        logo_url: valid.client.logo_url.as_deref(),
        groups: display_groups(&valid.scopes, &valid.client.name),
        user_name: &user_name,
        user_email: &user_email,
        accounts,
        hidden: req.hidden_fields(),
        csrf: csrf_token(shared, session_id),
        switch_url,
    })
}

/// `POST /auth/oauth2/authorize`: "Allow" or "Go back".
pub(crate) async fn post_consent(
    State(shared): State<Arc<Shared>>,
    signed_in: Option<SignedIn>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let req = AuthRequest::from_pairs(&fields);
    let Some(SignedIn {
        session_id: sid,
        user_id,
    }) = signed_in
    else {
        let pairs: Vec<(String, String)> = req
            .hidden_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        return login_redirect(&pairs);
    };
    if !csrf_ok(&shared, &sid, get("csrf_token").unwrap_or("")) {
        return html::error_page(
            StatusCode::FORBIDDEN,
            "The consent form expired or did not come from this sandbox (CSRF check failed). \
             Go back to the application and start again.",
        );
    }
    let valid = match validate(&shared, &req, user_id) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    match get("action") {
        // "Go back": error=access_denied and state, no description.
        Some("deny") => super::see_other(&error_redirect(
            &valid.redirect_uri,
            "access_denied",
            None,
            req.state.as_deref(),
        )),
        Some("allow") => allow(&shared, &req, &valid, user_id, get("account")),
        _ => html::error_page(
            StatusCode::BAD_REQUEST,
            "Choose Allow or Go back on the consent page.",
        ),
    }
}

fn allow(
    shared: &Shared,
    req: &AuthRequest,
    valid: &Valid,
    user_id: i64,
    account: Option<&str>,
) -> Response {
    let team_id = match account.and_then(|a| a.strip_prefix("team/")) {
        None => None,
        // findTeamBySlugWithAdminRole: only OWNER or ADMIN may authorize for a team. The web
        // page (what third parties use) gets tRPC UNAUTHORIZED with this prose from
        // `generateAuthCode.handler.ts`, which `authorize-view.tsx` maps to `unauthorized_client`
        // (docs/calcom.md, authorize page errors). API v2's own authorize endpoint would say
        // access_denied/team_not_found_or_no_access; the sandbox serves the web page.
        Some(slug) => {
            let found = shared
                .db()
                .teams
                .iter()
                .find(|t| {
                    t.slug == slug
                        && t.members.iter().any(|m| {
                            m.user_id == user_id
                                && matches!(m.role, TeamRole::Owner | TeamRole::Admin)
                        })
                })
                .map(|t| t.id);
            match found {
                Some(id) => Some(id),
                None => {
                    return super::see_other(&error_redirect(
                        &valid.redirect_uri,
                        "unauthorized_client",
                        Some("Team not found or user is not an admin/owner"),
                        req.state.as_deref(),
                    ));
                }
            }
        }
    };
    let code = issue_code(shared, valid, req, user_id, team_id);
    super::see_other(&success_redirect(
        &valid.redirect_uri,
        &code,
        req.state.as_deref(),
    ))
}
