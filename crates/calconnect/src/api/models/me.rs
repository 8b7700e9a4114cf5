//! `GET /v2/me` (any `cal-api-version`; scope `PROFILE_READ`; docs/calcom.md §5).
//!
//! For a team token Cal.com answers with the team *owner's* profile (§3.7).

use serde::Deserialize;
use time::Weekday;

/// The profile behind an access token (`/v2/me` `data`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Me {
    /// The user id.
    pub id: i64,
    /// The username.
    #[serde(default)]
    pub username: Option<String>,
    /// The e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// The bio.
    #[serde(default)]
    pub bio: Option<String>,
    /// 12 or 24.
    #[serde(default)]
    pub time_format: Option<u8>,
    /// The id of the default schedule.
    #[serde(default)]
    pub default_schedule_id: Option<i64>,
    /// The first day of the week (an unknown name reads as `None`).
    #[serde(default, deserialize_with = "super::de_weekday_opt")]
    pub week_start: Option<Weekday>,
    /// The IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The locale, e.g. `en`.
    #[serde(default)]
    pub locale: Option<String>,
    /// The organization id, for org members.
    #[serde(default)]
    pub organization_id: Option<i64>,
    /// The organization, for org members.
    #[serde(default)]
    pub organization: Option<Organization>,
}

/// `organization` of `/v2/me`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Organization {
    /// The organization id.
    pub id: i64,
    /// Whether it is a platform organization.
    #[serde(default)]
    pub is_platform: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::DataEnvelope;

    #[test]
    fn parses_the_documented_example() {
        // docs/calcom.md §5, plus an unknown field.
        let body = r#"{"status":"success","data":{"id":123,"username":"…","email":"…","name":"…","avatarUrl":null,"bio":null,"timeFormat":12,
 "defaultScheduleId":456,"weekStart":"Monday","timeZone":"Europe/London","locale":"en","organizationId":null,
 "organization":{"isPlatform":false,"id":789},"brandNew":true}}"#;
        let me = serde_json::from_str::<DataEnvelope<Me>>(body).unwrap().data;
        assert_eq!(me.id, 123);
        assert_eq!(me.week_start, Some(Weekday::Monday));
        assert_eq!(me.time_format, Some(12));
        assert_eq!(me.default_schedule_id, Some(456));
        assert_eq!(me.organization.unwrap().id, 789);
    }
}
