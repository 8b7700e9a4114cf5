//! Response models of the API v2 endpoints `CalClient` calls, in their documented shapes
//! (docs/calcom.md §5). Unknown fields are accepted (Cal.com adds fields often); days are
//! [`time::Weekday`], times of day [`time::Time`], dates [`time::Date`], instants
//! [`time::OffsetDateTime`].

pub mod booking;
pub mod event_type;
pub mod legacy_schedule;
pub mod me;
pub mod schedule;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Time, Weekday};

/// `{"status":"success","data":…}`.
#[derive(Debug, Deserialize)]
pub(crate) struct DataEnvelope<T> {
    pub(crate) data: T,
}

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("sunday", Weekday::Sunday),
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
];

/// An English weekday name, any case (`"Monday"`).
pub(crate) fn weekday_from_name(name: &str) -> Option<Weekday> {
    DAY_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, d)| *d)
}

/// Cal.com's stored day number: 0 = Sunday … 6 = Saturday.
pub(crate) fn weekday_from_number(n: u8) -> Option<Weekday> {
    DAY_NAMES.get(usize::from(n)).map(|(_, d)| *d)
}

/// `HH:MM` or `HH:MM:SS`.
pub(crate) fn parse_time_of_day(s: &str) -> Option<Time> {
    let mut parts = s.trim().split(':');
    let h: u8 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let sec: u8 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Time::from_hms(h, m, sec).ok()
}

/// `YYYY-MM-DD` (also the date part of an ISO timestamp).
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let s = s.get(..10).unwrap_or(s);
    let mut p = s.split('-');
    let y: i32 = p.next()?.parse().ok()?;
    let m = Month::try_from(p.next()?.parse::<u8>().ok()?).ok()?;
    let d: u8 = p.next()?.parse().ok()?;
    Date::from_calendar_date(y, m, d).ok()
}

/// Minutes since midnight (2024-04-15 `workingHours`); 1440 and above mean "end of day".
pub(crate) fn time_from_minutes(minutes: u32) -> Time {
    if minutes >= 24 * 60 {
        return Time::from_hms_nano(23, 59, 59, 999_999_999).unwrap_or(Time::MIDNIGHT);
    }
    let (h, m) = (minutes / 60, minutes % 60);
    Time::from_hms(
        u8::try_from(h).unwrap_or(0),
        u8::try_from(m).unwrap_or(0),
        0,
    )
    .unwrap_or(Time::MIDNIGHT)
}

fn invalid<E: de::Error>(what: &str, value: &str) -> E {
    E::custom(format!("`{value}` is not {what}"))
}

pub(crate) fn de_weekday_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|n| weekday_from_name(n).ok_or_else(|| invalid("an English weekday name", n)))
        .collect()
}

pub(crate) fn de_weekday_numbers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Weekday>, D::Error> {
    let numbers = Vec::<u8>::deserialize(d)?;
    numbers
        .iter()
        .map(|n| weekday_from_number(*n).ok_or_else(|| invalid("a day number 0-6", &n.to_string())))
        .collect()
}

pub(crate) fn de_weekday_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Weekday>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|n| weekday_from_name(&n)))
}

pub(crate) fn de_time_of_day<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    let s = String::deserialize(d)?;
    parse_time_of_day(&s).ok_or_else(|| invalid("a time of day (HH:MM)", &s))
}

pub(crate) fn de_minutes<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    Ok(time_from_minutes(u32::deserialize(d)?))
}

pub(crate) fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    let s = String::deserialize(d)?;
    parse_date(&s).ok_or_else(|| invalid("a date (YYYY-MM-DD)", &s))
}

pub(crate) fn de_date_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) => parse_date(&s)
            .map(Some)
            .ok_or_else(|| invalid("a date (YYYY-MM-DD)", &s)),
        None => Ok(None),
    }
}

pub(crate) fn de_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    OffsetDateTime::parse(&s, &Rfc3339).map_err(|_| invalid("an RFC 3339 timestamp", &s))
}

pub(crate) fn de_timestamp_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<OffsetDateTime>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) => OffsetDateTime::parse(&s, &Rfc3339)
            .map(Some)
            .map_err(|_| invalid("an RFC 3339 timestamp", &s)),
        None => Ok(None),
    }
}

/// The time-of-day part of an ISO timestamp (2024-04-15 rows: `1970-01-01T09:00:00.000Z`).
pub(crate) fn de_timestamp_time<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    let s = String::deserialize(d)?;
    OffsetDateTime::parse(&s, &Rfc3339)
        .map(OffsetDateTime::time)
        .or_else(|_| parse_time_of_day(&s).ok_or(()))
        .map_err(|()| invalid("a timestamp or time of day", &s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, time};

    #[test]
    fn parses_days_times_and_dates() {
        assert_eq!(weekday_from_name("Monday"), Some(Weekday::Monday));
        assert_eq!(weekday_from_name("sunday"), Some(Weekday::Sunday));
        assert_eq!(weekday_from_name("Mon"), None);
        assert_eq!(weekday_from_number(0), Some(Weekday::Sunday));
        assert_eq!(weekday_from_number(6), Some(Weekday::Saturday));
        assert_eq!(weekday_from_number(7), None);
        assert_eq!(parse_time_of_day("17:00"), Some(time!(17:00)));
        assert_eq!(parse_time_of_day("09:30:15"), Some(time!(09:30:15)));
        assert_eq!(parse_time_of_day("25:00"), None);
        assert_eq!(parse_date("2024-05-20"), Some(date!(2024 - 05 - 20)));
        assert_eq!(
            parse_date("2024-05-20T00:00:00.000Z"),
            Some(date!(2024 - 05 - 20))
        );
        assert_eq!(time_from_minutes(1439), time!(23:59));
        assert_eq!(time_from_minutes(540), time!(09:00));
    }
}
