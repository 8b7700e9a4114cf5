//! Bearer authentication of API v2 requests (`docs/calcom.md` §5;
//! `apps/api/v2/src/modules/auth/strategies/api-auth/api-auth.strategy.ts@5b6d63e`).
//!
//! Cal.com first tries a bearer as a platform token; when that fails it tries it as a
//! third-party JWT (`jwt.verify` with the encryption key and `token_type === "Access Token"`);
//! when that fails too, the *platform* error is what the client sees. For a third-party token
//! that is `UnauthorizedException(INVALID_ACCESS_TOKEN)` thrown by
//! `OAuthFlowService.validateAccessToken`, i.e. the message **`Invalid Access Token.`** — for a
//! malformed, wrongly signed or expired JWT and for a refresh token alike. (Some versions prefix
//! it with `ApiAuthStrategy - access token - `; clients must key on the status, not the text.)
//! No `Authorization` header, or `Bearer ` with nothing after it, gives the "No authentication
//! method provided" message.

use super::envelope::ApiError;
use crate::jwt::{self, ACCESS_TOKEN_TYPE, Claims, JwtError};
use crate::seed::SeedUser;
use crate::state::{Owner, Shared};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// `ApiAuthStrategy - ` + `NO_AUTH_PROVIDED_MESSAGE`.
pub const NO_AUTH_MESSAGE: &str = "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers";
/// `INVALID_ACCESS_TOKEN` (`@calcom/platform-constants`).
pub const INVALID_ACCESS_TOKEN: &str = "Invalid Access Token.";
const NO_TEAM_OWNER: &str =
    "ApiAuthStrategy - third-party token - No owner found for the associated team.";
const NO_USER: &str =
    "ApiAuthStrategy - third-party token - No user or team owner associated with the token.";
/// How many characters of the token the 403 "no oAuth client found" message shows. Cal.com
/// echoes the whole token; the sandbox does not put secrets in response bodies.
const TOKEN_PREFIX_SHOWN: usize = 10;

/// The bearer as Cal.com extracts it: the `Authorization` value with the first `"Bearer "`
/// removed (`request.get("Authorization")?.replace("Bearer ", "")`). `None` when absent or
/// empty. Anything else (`Basic …`, a bare `Bearer`) stays a "token" and fails verification.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = match value.find("Bearer ") {
        Some(0) => &value["Bearer ".len()..],
        // `replace` removes the first occurrence anywhere; a token cannot contain a space, so a
        // later occurrence only matters for garbage, which fails verification either way.
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// Who is calling: the verified claims and the user the token acts as (a team token acts as the
/// team's owner, §3.7).
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
    pub user: SeedUser,
}

/// How an endpoint treats an expired token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredTokenPolicy {
    /// 401 `Invalid Access Token.` (endpoints behind `ApiAuthGuard`).
    Unauthorized,
    /// 403 `PermissionsGuard - no oAuth client found for access token=…` when
    /// `Settings::bookings_expired_token_403` is on (`GET /v2/bookings`, §5, `calcom#24840`).
    BookingsSwitch,
}

/// Authenticates `token`.
///
/// # Errors
/// 401 for a missing, malformed, wrongly signed, expired or non-access token, or one whose user
/// or team owner does not exist; 403 for an expired token under
/// [`ExpiredTokenPolicy::BookingsSwitch`] with the switch on.
pub fn authenticate(
    shared: &Shared,
    token: Option<&str>,
    policy: ExpiredTokenPolicy,
) -> Result<Caller, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::unauthorized(NO_AUTH_MESSAGE));
    };
    let claims = match jwt::verify(token, &shared.signing_key, shared.clock.now_unix()) {
        Ok(c) if c.token_type == ACCESS_TOKEN_TYPE => c,
        Err(JwtError::Expired)
            if policy == ExpiredTokenPolicy::BookingsSwitch
                && shared.settings().bookings_expired_token_403 =>
        {
            let shown: String = token.chars().take(TOKEN_PREFIX_SHOWN).collect();
            return Err(ApiError::forbidden(format!(
                "PermissionsGuard - no oAuth client found for access token={shown}…"
            )));
        }
        _ => return Err(ApiError::unauthorized(INVALID_ACCESS_TOKEN)),
    };
    let db = shared.db();
    let user = match (claims.user_id, claims.team_id) {
        (Some(id), _) => db.acting_user(Owner::User(id)).cloned(),
        (None, Some(team)) => Some(
            db.acting_user(Owner::Team(team))
                .cloned()
                .ok_or_else(|| ApiError::unauthorized(NO_TEAM_OWNER))?,
        ),
        (None, None) => None,
    };
    drop(db);
    let user = user.ok_or_else(|| ApiError::unauthorized(NO_USER))?;
    Ok(Caller { claims, user })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn bearer_extraction_follows_cal_com() {
        assert_eq!(bearer(&HeaderMap::new()), None);
        assert_eq!(bearer(&h("Bearer ")), None);
        assert_eq!(bearer(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&h("Basic abc")), Some("Basic abc"));
        assert_eq!(bearer(&h("Bearer")), Some("Bearer"));
    }
}
