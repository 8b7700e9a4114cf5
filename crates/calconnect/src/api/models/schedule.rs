//! `GET /v2/schedules`, `/v2/schedules/default`, `/v2/schedules/{id}` with
//! `cal-api-version: 2024-06-11` (scope `SCHEDULE_READ`; docs/calcom.md §5).

use serde::Deserialize;
use time::{Date, Time, Weekday};

/// `cal-api-version` of the documented schedule shape.
pub const SCHEDULES_API_VERSION: &str = "2024-06-11";

/// A schedule in the 2024-06-11 shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Schedule {
    /// The schedule id.
    pub id: i64,
    /// The owner's user id.
    #[serde(default)]
    pub owner_id: Option<i64>,
    /// The name.
    pub name: String,
    /// The IANA time zone the times are in.
    pub time_zone: String,
    /// Weekly availability.
    #[serde(default)]
    pub availability: Vec<WeeklyAvailability>,
    /// Whether it is the owner's default schedule.
    #[serde(default)]
    pub is_default: bool,
    /// Date overrides.
    #[serde(default)]
    pub overrides: Vec<DateOverride>,
}

/// `{"days":["Monday","Tuesday"],"startTime":"17:00","endTime":"19:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WeeklyAvailability {
    /// The days.
    #[serde(deserialize_with = "super::de_weekday_names")]
    pub days: Vec<Weekday>,
    /// Start, in the schedule's time zone.
    #[serde(deserialize_with = "super::de_time_of_day")]
    pub start_time: Time,
    /// End, in the schedule's time zone.
    #[serde(deserialize_with = "super::de_time_of_day")]
    pub end_time: Time,
}

/// `{"date":"2024-05-20","startTime":"18:00","endTime":"21:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DateOverride {
    /// The date.
    #[serde(deserialize_with = "super::de_date")]
    pub date: Date,
    /// Start, in the schedule's time zone.
    #[serde(deserialize_with = "super::de_time_of_day")]
    pub start_time: Time,
    /// End, in the schedule's time zone.
    #[serde(deserialize_with = "super::de_time_of_day")]
    pub end_time: Time,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::DataEnvelope;
    use time::macros::{date, time};

    #[test]
    fn parses_the_documented_example() {
        // docs/calcom.md §5 verbatim.
        let body = r#"{"status":"success","data":[{"id":254,"ownerId":478,"name":"Catch up hours","timeZone":"Europe/Rome",
 "availability":[{"days":["Monday","Tuesday"],"startTime":"17:00","endTime":"19:00"}],
 "isDefault":true,"overrides":[{"date":"2024-05-20","startTime":"18:00","endTime":"21:00"}]}]}"#;
        let list = serde_json::from_str::<DataEnvelope<Vec<Schedule>>>(body)
            .unwrap()
            .data;
        let s = &list[0];
        assert_eq!((s.id, s.owner_id, s.is_default), (254, Some(478), true));
        assert_eq!(
            s.availability[0].days,
            vec![Weekday::Monday, Weekday::Tuesday]
        );
        assert_eq!(s.availability[0].start_time, time!(17:00));
        assert_eq!(s.availability[0].end_time, time!(19:00));
        assert_eq!(s.overrides[0].date, date!(2024 - 05 - 20));
        assert_eq!(s.overrides[0].end_time, time!(21:00));
    }

    #[test]
    fn rejects_a_bad_day_or_time() {
        let bad = r#"{"id":1,"name":"x","timeZone":"UTC","availability":[{"days":["Mon"],"startTime":"17:00","endTime":"19:00"}]}"#;
        assert!(serde_json::from_str::<Schedule>(bad).is_err());
        let bad = r#"{"id":1,"name":"x","timeZone":"UTC","availability":[{"days":["Monday"],"startTime":"5pm","endTime":"19:00"}]}"#;
        assert!(serde_json::from_str::<Schedule>(bad).is_err());
    }
}
