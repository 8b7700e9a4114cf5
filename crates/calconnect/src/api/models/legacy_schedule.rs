//! The old, undocumented 2024-04-15 schedule shape: what `/v2/schedules` answers without a
//! `cal-api-version` header (docs/calcom.md §5; `schedules_2024_04_15/outputs/
//! schedule.output.ts`):
//! `{id,name,isManaged,workingHours[{days:[int],startTime:int,endTime:int}],schedule[…],
//! availability[[{start,end}]],timeZone,dateOverrides,isDefault,isLastSchedule,readOnly}`.
//!
//! Day numbers are 0 = Sunday … 6 = Saturday; `workingHours` times are minutes since midnight;
//! `availability` holds seven lists (index 0 = Sunday) of instants on one reference day.

use super::schedule::Schedule;
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time, Weekday};

/// A schedule in the 2024-04-15 shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LegacySchedule {
    /// The schedule id.
    pub id: i64,
    /// The name.
    pub name: String,
    /// The IANA time zone.
    pub time_zone: String,
    /// Managed by a team.
    #[serde(default)]
    pub is_managed: bool,
    /// Weekly hours merged per range (required: it tells this shape from the new one).
    pub working_hours: Vec<WorkingHours>,
    /// The raw availability rows.
    #[serde(default)]
    pub schedule: Vec<AvailabilityRow>,
    /// Seven lists, index 0 = Sunday, of ranges on a reference day.
    #[serde(default)]
    pub availability: Vec<Vec<TimeRange>>,
    /// Date overrides from today on, grouped by date.
    #[serde(default)]
    pub date_overrides: Vec<LegacyDateOverride>,
    /// Whether it is the owner's default schedule.
    #[serde(default)]
    pub is_default: bool,
    /// Whether it is the owner's only schedule.
    #[serde(default)]
    pub is_last_schedule: bool,
    /// Whether the caller may not edit it.
    #[serde(default)]
    pub read_only: bool,
}

/// `{"days":[1,2],"startTime":540,"endTime":1020}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WorkingHours {
    /// The days (empty for rows that came from date overrides).
    #[serde(deserialize_with = "super::de_weekday_numbers")]
    pub days: Vec<Weekday>,
    /// Start (from minutes since midnight).
    #[serde(deserialize_with = "super::de_minutes")]
    pub start_time: Time,
    /// End (from minutes since midnight; 1440 reads as 23:59:59.999999999).
    #[serde(deserialize_with = "super::de_minutes")]
    pub end_time: Time,
}

/// A raw `Availability` row: `{id,userId,eventTypeId,days:[int],startTime:"1970-01-01T09:00:00.000Z",
/// endTime,date,scheduleId}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AvailabilityRow {
    /// The row id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The days (empty for a date override).
    #[serde(default, deserialize_with = "super::de_weekday_numbers")]
    pub days: Vec<Weekday>,
    /// Start time of day.
    #[serde(deserialize_with = "super::de_timestamp_time")]
    pub start_time: Time,
    /// End time of day.
    #[serde(deserialize_with = "super::de_timestamp_time")]
    pub end_time: Time,
    /// The date, for a date override.
    #[serde(default, deserialize_with = "super::de_date_opt")]
    pub date: Option<Date>,
}

/// `{"start":"…Z","end":"…Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TimeRange {
    /// Start.
    #[serde(deserialize_with = "super::de_timestamp")]
    pub start: OffsetDateTime,
    /// End.
    #[serde(deserialize_with = "super::de_timestamp")]
    pub end: OffsetDateTime,
}

/// `{"ranges":[{start,end}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct LegacyDateOverride {
    /// The ranges of that date.
    #[serde(default)]
    pub ranges: Vec<TimeRange>,
}

/// A schedule in either shape, for answers whose version is not known (e.g. through
/// [`CalClient::request`](crate::api::CalClient::request) without a `cal-api-version`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum AnySchedule {
    /// 2024-04-15 (has `workingHours`).
    Legacy(LegacySchedule),
    /// 2024-06-11.
    Current(Schedule),
}

impl AnySchedule {
    /// The schedule id.
    pub fn id(&self) -> i64 {
        match self {
            Self::Legacy(s) => s.id,
            Self::Current(s) => s.id,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        match self {
            Self::Legacy(s) => &s.name,
            Self::Current(s) => &s.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, time};

    const LEGACY: &str = r#"{"id":101,"name":"Working hours","isManaged":false,
        "workingHours":[{"days":[1,2,3,4],"startTime":540,"endTime":1020},{"days":[],"startTime":600,"endTime":720}],
        "schedule":[{"id":10101,"userId":null,"eventTypeId":null,"days":[1,2,3,4],"startTime":"1970-01-01T09:00:00.000Z",
          "endTime":"1970-01-01T17:00:00.000Z","date":null,"scheduleId":101},
          {"id":10102,"userId":null,"eventTypeId":null,"days":[],"startTime":"1970-01-01T10:00:00.000Z",
          "endTime":"1970-01-01T12:00:00.000Z","date":"2026-12-24T00:00:00.000Z","scheduleId":101}],
        "availability":[[],[{"start":"2026-11-29T09:00:00.000Z","end":"2026-11-29T17:00:00.000Z"}],[],[],[],[],[]],
        "timeZone":"Europe/London",
        "dateOverrides":[{"ranges":[{"start":"2026-12-24T10:00:00.000Z","end":"2026-12-24T12:00:00.000Z"}]}],
        "isDefault":true,"isLastSchedule":false,"readOnly":false}"#;

    #[test]
    fn parses_the_old_shape() {
        let s: LegacySchedule = serde_json::from_str(LEGACY).unwrap();
        assert_eq!(s.working_hours[0].days[0], Weekday::Monday);
        assert_eq!(s.working_hours[0].start_time, time!(09:00));
        assert_eq!(s.working_hours[0].end_time, time!(17:00));
        assert_eq!(s.schedule[1].date, Some(date!(2026 - 12 - 24)));
        assert_eq!(s.schedule[1].start_time, time!(10:00));
        assert_eq!(s.availability[1][0].start.time(), time!(09:00));
        assert_eq!(
            s.date_overrides[0].ranges[0].end.date(),
            date!(2026 - 12 - 24)
        );
        assert!(s.is_default && !s.is_last_schedule);
    }

    #[test]
    fn any_schedule_tells_the_shapes_apart() {
        assert!(matches!(
            serde_json::from_str::<AnySchedule>(LEGACY).unwrap(),
            AnySchedule::Legacy(_)
        ));
        let new = r#"{"id":254,"ownerId":478,"name":"Catch up hours","timeZone":"Europe/Rome",
            "availability":[{"days":["Monday"],"startTime":"17:00","endTime":"19:00"}],"isDefault":true,"overrides":[]}"#;
        let any = serde_json::from_str::<AnySchedule>(new).unwrap();
        assert!(matches!(any, AnySchedule::Current(_)));
        assert_eq!((any.id(), any.name()), (254, "Catch up hours"));
    }
}
