//! Cal.com's scope catalogue (`packages/features/oauth/constants.ts`), the `scope` parameter
//! parser, and the plain-words permission list of the consent page
//! (`apps/web/modules/auth/oauth2/scopes.ts getGroupedScopeDisplayItems`). `docs/calcom.md` §2, §5.

/// User-level scopes (`INDIVIDUAL_SCOPES`).
pub const USER_SCOPES: [&str; 10] = crate::seed::USER_SCOPES;

/// Team-level scopes (`TEAM_SCOPES`).
pub const TEAM_SCOPES: [&str; 10] = [
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
];

/// Organization-level scopes (`ORG_SCOPES`).
pub const ORG_SCOPES: [&str; 8] = [
    "ORG_EVENT_TYPE_READ",
    "ORG_EVENT_TYPE_WRITE",
    "ORG_BOOKING_READ",
    "ORG_BOOKING_WRITE",
    "ORG_SCHEDULE_READ",
    "ORG_SCHEDULE_WRITE",
    "ORG_PROFILE_READ",
    "ORG_PROFILE_WRITE",
];

/// The scopes of clients registered before scopes existed.
pub const LEGACY_SCOPES: [&str; 2] = ["READ_BOOKING", "READ_PROFILE"];

/// Every scope name the sandbox accepts (`ALL_KNOWN_SCOPES`).
pub fn is_known(scope: &str) -> bool {
    USER_SCOPES
        .iter()
        .chain(TEAM_SCOPES.iter())
        .chain(ORG_SCOPES.iter())
        .chain(LEGACY_SCOPES.iter())
        .any(|s| *s == scope)
}

/// A client with no scopes, or only `READ_BOOKING`/`READ_PROFILE` (`isLegacyClient`).
pub fn is_legacy_client(client_scopes: &[String]) -> bool {
    client_scopes
        .iter()
        .all(|s| LEGACY_SCOPES.contains(&s.as_str()))
}

/// `parseScopeParam`: `split(/[, ]+/).filter(Boolean)`.
pub fn parse_scope_param(param: Option<&str>) -> Vec<String> {
    param
        .unwrap_or("")
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

const USER_RESOURCES: [(&str, &str); 5] = [
    ("PROFILE", "your profile (name, email, time zone)"),
    ("EVENT_TYPE", "your event types"),
    ("BOOKING", "your bookings"),
    ("SCHEDULE", "your availability schedules"),
    ("APPS", "your installed apps"),
];
const TEAM_RESOURCES: [(&str, &str); 5] = [
    ("TEAM_PROFILE", "your teams' profiles"),
    ("TEAM_EVENT_TYPE", "your teams' event types"),
    ("TEAM_BOOKING", "your teams' bookings"),
    ("TEAM_SCHEDULE", "your teams' schedules"),
    ("TEAM_MEMBERSHIP", "your teams' memberships"),
];
const ORG_RESOURCES: [(&str, &str); 4] = [
    ("ORG_PROFILE", "your organization's profile"),
    ("ORG_EVENT_TYPE", "your organization's event types"),
    ("ORG_BOOKING", "your organization's bookings"),
    ("ORG_SCHEDULE", "your organization's schedules"),
];

/// One heading of the consent page's permission list (`None`: a single, unheaded list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeGroup {
    pub heading: Option<&'static str>,
    pub items: Vec<String>,
}

fn items(resources: &[(&str, &str)], scopes: &[String]) -> Vec<String> {
    let has = |s: String| scopes.contains(&s);
    resources
        .iter()
        .filter_map(|(prefix, what)| {
            let read = has(format!("{prefix}_READ"));
            let write = has(format!("{prefix}_WRITE"));
            match (read, write) {
                (true, true) => Some(format!("View and change {what}")),
                (true, false) => Some(format!("View {what}")),
                (false, true) => Some(format!("Change {what}")),
                (false, false) => None,
            }
        })
        .collect()
}

/// The requested scopes in plain words, grouped by category as Cal.com does: one unheaded list
/// when only one category is present, else one list per category.
pub fn display_groups(scopes: &[String], client_name: &str) -> Vec<ScopeGroup> {
    let mut user = items(&USER_RESOURCES, scopes);
    if scopes.iter().any(|s| s == "READ_PROFILE") && user.is_empty() {
        user.push("View your profile (name, email, time zone)".to_owned());
    }
    if scopes.iter().any(|s| s == "READ_BOOKING") {
        user.push("View your bookings".to_owned());
    }
    let team = items(&TEAM_RESOURCES, scopes);
    let org = items(&ORG_RESOURCES, scopes);
    let categories = [
        ("Your account", user),
        ("Your teams", team),
        ("Your organization", org),
    ];
    let non_empty: Vec<_> = categories
        .into_iter()
        .filter(|(_, i)| !i.is_empty())
        .collect();
    match non_empty.len() {
        // A legacy client asking for nothing: Cal.com's older, static list.
        0 => vec![ScopeGroup {
            heading: None,
            items: vec![
                format!("Associate {client_name} with your Cal.com account"),
                "See your personal info, including any personal info you've made publicly available"
                    .to_owned(),
                "See your primary email address".to_owned(),
                "Connect to your installed apps".to_owned(),
                "Read, edit, delete your event-types".to_owned(),
                "Read, edit, delete your availability".to_owned(),
                "Read, edit, delete your bookings".to_owned(),
            ],
        }],
        1 => non_empty
            .into_iter()
            .map(|(_, items)| ScopeGroup {
                heading: None,
                items,
            })
            .collect(),
        _ => non_empty
            .into_iter()
            .map(|(h, items)| ScopeGroup {
                heading: Some(h),
                items,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commas_and_spaces() {
        assert_eq!(
            parse_scope_param(Some("A, B  C,,D")),
            vec!["A", "B", "C", "D"]
        );
        assert!(parse_scope_param(None).is_empty());
        assert!(parse_scope_param(Some(" , ")).is_empty());
    }

    #[test]
    fn legacy_clients() {
        assert!(is_legacy_client(&[]));
        assert!(is_legacy_client(&["READ_BOOKING".to_owned()]));
        assert!(!is_legacy_client(&["BOOKING_READ".to_owned()]));
    }

    #[test]
    fn groups_by_category() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let one = display_groups(&s(&["PROFILE_READ", "BOOKING_READ", "BOOKING_WRITE"]), "X");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].heading, None);
        assert_eq!(
            one[0].items,
            vec![
                "View your profile (name, email, time zone)",
                "View and change your bookings"
            ]
        );
        let two = display_groups(&s(&["PROFILE_READ", "TEAM_BOOKING_READ"]), "X");
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].heading, Some("Your teams"));
    }
}
