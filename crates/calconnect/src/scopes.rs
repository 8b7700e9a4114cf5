//! Cal.com's scope names (docs/calcom.md §5.4), to catch a misspelt scope in a configuration
//! before Cal.com refuses the authorization with `unknown_scope` (docs/calcom.md §2.1).
//!
//! The list is the union of every version read: `OAUTH_SCOPES` of
//! `packages/features/oauth/constants.ts` (user, team and organization scopes) and the scope
//! tables of the published OAuth page (`docs/api-reference/v2/oauth.mdx`), which add webhook,
//! verified-resource, routing-form, workflow, app and membership scopes. A name in none of them
//! is refused by every Cal.com version; a name only newer versions know may still be refused
//! by an older self-hosted instance.

/// Every scope name Cal.com knows, in the order of its documentation (user, team,
/// organization).
pub const CAL_COM_SCOPES: &[&str] = &[
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
    "WEBHOOK_READ",
    "WEBHOOK_WRITE",
    "VERIFIED_RESOURCES_READ",
    "VERIFIED_RESOURCES_WRITE",
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
    "TEAM_APPS_READ",
    "TEAM_APPS_WRITE",
    "TEAM_ROUTING_FORM_READ",
    "TEAM_ROUTING_FORM_WRITE",
    "TEAM_WORKFLOW_READ",
    "TEAM_WORKFLOW_WRITE",
    "TEAM_VERIFIED_RESOURCES_READ",
    "TEAM_VERIFIED_RESOURCES_WRITE",
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
    "ORG_ROUTING_FORM_WRITE",
    "ORG_WEBHOOK_READ",
    "ORG_WEBHOOK_WRITE",
];

/// The scopes of clients registered before scopes existed, with the scope that replaces each.
/// They are not in `OAUTH_SCOPES`, so Cal.com refuses them as unknown from a client registered
/// with legacy scopes only (`validateScopesAreKnown`, docs/calcom.md §2.1): ask for the
/// replacement.
pub const CAL_COM_LEGACY_SCOPES: &[(&str, &str)] = &[
    ("READ_BOOKING", "BOOKING_READ"),
    ("READ_PROFILE", "PROFILE_READ"),
];

/// What Cal.com makes of one scope name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CalComScope {
    /// A scope Cal.com knows.
    Known,
    /// A legacy name; `replacement` is the scope to use instead.
    Legacy {
        /// The current name.
        replacement: &'static str,
    },
    /// No Cal.com version knows it; `suggestion` is the closest known name, if one is close.
    Unknown {
        /// A known name within a few typing mistakes (or differing only in case).
        suggestion: Option<&'static str>,
    },
}

/// Classifies `scope` against [`CAL_COM_SCOPES`] and [`CAL_COM_LEGACY_SCOPES`].
pub fn classify_cal_com_scope(scope: &str) -> CalComScope {
    if CAL_COM_SCOPES.contains(&scope) {
        return CalComScope::Known;
    }
    if let Some((_, replacement)) = CAL_COM_LEGACY_SCOPES.iter().find(|(old, _)| *old == scope) {
        return CalComScope::Legacy { replacement };
    }
    let upper = scope.to_ascii_uppercase().replace(['-', ' '], "_");
    let suggestion = CAL_COM_SCOPES
        .iter()
        .map(|known| (edit_distance(&upper, known), *known))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known);
    CalComScope::Unknown { suggestion }
}

/// Levenshtein distance over bytes (scope names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_legacy_and_unknown_scopes() {
        assert_eq!(classify_cal_com_scope("PROFILE_READ"), CalComScope::Known);
        assert_eq!(
            classify_cal_com_scope("ORG_ROUTING_FORM_READ"),
            CalComScope::Known
        );
        assert_eq!(
            classify_cal_com_scope("READ_BOOKING"),
            CalComScope::Legacy {
                replacement: "BOOKING_READ"
            }
        );
        assert_eq!(
            classify_cal_com_scope("PROFILE_RAED"),
            CalComScope::Unknown {
                suggestion: Some("PROFILE_READ")
            }
        );
        assert_eq!(
            classify_cal_com_scope("schedule_read"),
            CalComScope::Unknown {
                suggestion: Some("SCHEDULE_READ")
            }
        );
        assert_eq!(
            classify_cal_com_scope("openid"),
            CalComScope::Unknown { suggestion: None }
        );
    }

    #[test]
    fn names_are_unique_and_well_formed() {
        for (i, s) in CAL_COM_SCOPES.iter().enumerate() {
            assert!(!CAL_COM_SCOPES[..i].contains(s), "{s} listed twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{s}"
            );
            assert!(s.ends_with("_READ") || s.ends_with("_WRITE"), "{s}");
        }
    }
}
