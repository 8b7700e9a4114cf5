//! The third-party scope guard (`docs/calcom.md` §5; `apps/api/v2/src/modules/auth/guards/
//! oauth-permissions/oauth-permissions.guard.ts`).
//!
//! - A token whose `scope` is empty, or none of whose scopes is a known (new-style) scope — e.g.
//!   only the legacy `READ_BOOKING`/`READ_PROFILE` — is not restricted.
//! - Otherwise every required scope must be present; `ORG_X` satisfies a required `TEAM_X`.
//! - Missing scopes give 403 `insufficient_scope: token does not have the required scopes.
//!   Required: X. Token has: A, B` — `Required` lists only the missing scopes, `Token has` all of
//!   the token's scopes in token order.

use super::envelope::ApiError;

/// Scopes known to Cal.com's `SCOPE_TO_PERMISSION` (`packages/features/oauth/constants.ts`;
/// the org membership and routing-form scopes are from newer releases, §5).
pub const KNOWN_SCOPES: &[&str] = &[
    "EVENT_TYPE_READ",
    "EVENT_TYPE_WRITE",
    "BOOKING_READ",
    "BOOKING_WRITE",
    "SCHEDULE_READ",
    "SCHEDULE_WRITE",
    "APPS_READ",
    "APPS_WRITE",
    "PROFILE_READ",
    "PROFILE_WRITE",
    "TEAM_EVENT_TYPE_READ",
    "TEAM_EVENT_TYPE_WRITE",
    "TEAM_BOOKING_READ",
    "TEAM_BOOKING_WRITE",
    "TEAM_SCHEDULE_READ",
    "TEAM_SCHEDULE_WRITE",
    "TEAM_PROFILE_READ",
    "TEAM_PROFILE_WRITE",
    "TEAM_MEMBERSHIP_READ",
    "TEAM_MEMBERSHIP_WRITE",
    "ORG_EVENT_TYPE_READ",
    "ORG_EVENT_TYPE_WRITE",
    "ORG_BOOKING_READ",
    "ORG_BOOKING_WRITE",
    "ORG_SCHEDULE_READ",
    "ORG_SCHEDULE_WRITE",
    "ORG_PROFILE_READ",
    "ORG_PROFILE_WRITE",
    "ORG_MEMBERSHIP_READ",
    "ORG_MEMBERSHIP_WRITE",
    "ORG_ROUTING_FORM_READ",
];

/// Checks `token_scopes` against the scopes an endpoint declares.
///
/// # Errors
/// 403 `ForbiddenException` with the `insufficient_scope` text when a required scope is missing.
pub fn check(token_scopes: &[String], required: &[&str]) -> Result<(), ApiError> {
    let restricted = token_scopes
        .iter()
        .any(|s| KNOWN_SCOPES.contains(&s.as_str()));
    if !restricted || required.is_empty() {
        return Ok(());
    }
    let has = |s: &str| token_scopes.iter().any(|t| t == s);
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|scope| {
            if has(scope) {
                return false;
            }
            match scope.strip_prefix("TEAM_") {
                Some(rest) => !has(&format!("ORG_{rest}")),
                None => true,
            }
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "insufficient_scope: token does not have the required scopes. Required: {}. Token has: {}",
        missing.join(", "),
        token_scopes.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn empty_and_legacy_scopes_are_unrestricted() {
        assert!(check(&[], &["PROFILE_READ"]).is_ok());
        assert!(check(&s(&["READ_BOOKING", "READ_PROFILE"]), &["PROFILE_READ"]).is_ok());
    }

    #[test]
    fn missing_scope_text() {
        let e = check(&s(&["BOOKING_READ", "READ_PROFILE"]), &["PROFILE_READ"]).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert_eq!(
            e.message,
            "insufficient_scope: token does not have the required scopes. Required: PROFILE_READ. Token has: BOOKING_READ, READ_PROFILE"
        );
    }

    #[test]
    fn org_implies_team_but_not_the_reverse() {
        assert!(check(&s(&["ORG_PROFILE_READ"]), &["TEAM_PROFILE_READ"]).is_ok());
        let e = check(&s(&["TEAM_PROFILE_READ"]), &["ORG_PROFILE_READ"]).unwrap_err();
        assert!(
            e.message.contains("Required: ORG_PROFILE_READ."),
            "{}",
            e.message
        );
    }
}
