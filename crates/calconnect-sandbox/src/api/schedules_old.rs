//! The undocumented 2024-04-15 schedule shape, served when `cal-api-version` is missing or not
//! 2024-06-11/14 (`docs/calcom.md` §5). Built the way Cal.com builds it:
//! `schedules_2024_04_15/outputs/schedule.output.ts` (fields),
//! `packages/lib/server/repository/schedule.ts` `findDetailedScheduleById` (values) and
//! `packages/lib/schedules/transformers` `transform*ForAtom` + `packages/lib/availability.ts`
//! `getWorkingHours`:
//!
//! - `schedule`: the raw `Availability` rows — `{id, userId:null, eventTypeId:null, days:[int],
//!   startTime:"1970-01-01T09:00:00.000Z", endTime, date:null|"YYYY-MM-DDT00:00:00.000Z",
//!   scheduleId}`; weekly rows first, then date overrides (`days: []`). Row ids are synthesised
//!   as `scheduleId * 100 + n`.
//! - `workingHours`: `getWorkingHours({utcOffset: 0}, rows)` — every row (override rows too,
//!   with `days: []`) as `{days, startTime, endTime}` in minutes, sorted by `startTime`, a range
//!   starting one minute after the previous one ends merged into it; no rows → all week 0–1439.
//! - `availability`: seven lists (index 0 = Sunday) of `{start, end}` on *today's* UTC date
//!   (sandbox clock) at the row's times, sorted; an end of `23:59` becomes `23:59:59.999`.
//! - `dateOverrides`: `[{ranges:[{start,end}]}]` per override date not before today, grouped by
//!   date and sorted. (Cal.com compares against today in the schedule's time zone; the sandbox
//!   has no time-zone database and uses UTC.)
//! - `isManaged: false`, `readOnly: false` (own schedules only), `isLastSchedule: count <= 1`,
//!   `isDefault: defaultScheduleId == id`.
//!
//! Day numbers are 0 = Sunday … 6 = Saturday, as Cal.com stores them.

use super::envelope::iso_millis;
use crate::seed::SeedSchedule;
use serde_json::{Value, json};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn day_number(name: &str) -> Option<u8> {
    DAY_NAMES
        .iter()
        .position(|d| *d == name)
        .and_then(|p| u8::try_from(p).ok())
}

fn hhmm(s: &str) -> Time {
    let mut parts = s.split(':');
    let h = parts.next().and_then(|p| p.parse::<u8>().ok()).unwrap_or(0);
    let m = parts.next().and_then(|p| p.parse::<u8>().ok()).unwrap_or(0);
    Time::from_hms(h, m, 0).unwrap_or(Time::MIDNIGHT)
}

fn at(date: Date, t: Time) -> OffsetDateTime {
    PrimitiveDateTime::new(date, t).assume_utc()
}

fn epoch_date() -> Date {
    Date::from_calendar_date(1970, Month::January, 1).unwrap_or(Date::MIN)
}

fn parse_date(s: &str) -> Option<Date> {
    let mut p = s.split('-');
    let y = p.next()?.parse().ok()?;
    let m = Month::try_from(p.next()?.parse::<u8>().ok()?).ok()?;
    let d = p.next()?.parse().ok()?;
    Date::from_calendar_date(y, m, d).ok()
}

/// One `Availability` row.
struct Row {
    id: i64,
    days: Vec<u8>,
    start: Time,
    end: Time,
    date: Option<Date>,
}

fn rows(s: &SeedSchedule) -> Vec<Row> {
    let weekly = s.availability.iter().map(|a| Row {
        id: 0,
        days: a.days.iter().filter_map(|d| day_number(d)).collect(),
        start: hhmm(&a.start_time),
        end: hhmm(&a.end_time),
        date: None,
    });
    let overrides = s.overrides.iter().map(|o| Row {
        id: 0,
        days: vec![],
        start: hhmm(&o.start_time),
        end: hhmm(&o.end_time),
        date: parse_date(&o.date),
    });
    weekly
        .chain(overrides)
        .zip(1i64..)
        .map(|(r, n)| Row {
            id: s.id * 100 + n,
            ..r
        })
        .collect()
}

fn minutes(t: Time) -> i64 {
    i64::from(t.hour()) * 60 + i64::from(t.minute())
}

/// `getWorkingHours({ utcOffset: 0 }, rows)`.
fn working_hours(rows: &[Row]) -> Vec<Value> {
    if rows.is_empty() {
        return vec![json!({"days": [0, 1, 2, 3, 4, 5, 6], "startTime": 0, "endTime": 1439})];
    }
    let mut wh: Vec<(Vec<u8>, i64, i64)> = rows
        .iter()
        .map(|r| (r.days.clone(), minutes(r.start), minutes(r.end)))
        .filter(|(_, s, e)| s != e)
        .collect();
    wh.sort_by_key(|(_, s, _)| *s);
    let mut merged: Vec<(Vec<u8>, i64, i64)> = Vec::with_capacity(wh.len());
    for cur in wh {
        match merged.last_mut() {
            Some(prev) if prev.2 + 1 == cur.1 => prev.2 = cur.2,
            _ => merged.push(cur),
        }
    }
    merged
        .into_iter()
        .map(|(days, s, e)| json!({"days": days, "startTime": s, "endTime": e}))
        .collect()
}

fn end_of_day(end: OffsetDateTime) -> String {
    iso_millis(end).replace("23:59:00.000Z", "23:59:59.999Z")
}

/// The 2024-04-15 `ScheduleOutput` of `s`.
pub(super) fn detailed(
    s: &SeedSchedule,
    schedules_count: usize,
    is_default: bool,
    now: OffsetDateTime,
) -> Value {
    let rows = rows(s);
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let raw: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "userId": null,
                "eventTypeId": null,
                "days": r.days,
                "startTime": iso_millis(at(epoch_date(), r.start)),
                "endTime": iso_millis(at(epoch_date(), r.end)),
                "date": r.date.map(|d| iso_millis(at(d, Time::MIDNIGHT))),
                "scheduleId": s.id,
            })
        })
        .collect();
    let mut week: Vec<Vec<(OffsetDateTime, OffsetDateTime)>> = vec![Vec::new(); 7];
    for r in &rows {
        for d in &r.days {
            if let Some(slot) = week.get_mut(usize::from(*d)) {
                slot.push((at(today, r.start), at(today, r.end)));
            }
        }
    }
    let availability: Vec<Value> = week
        .into_iter()
        .map(|mut day| {
            day.sort_by_key(|(start, _)| *start);
            Value::Array(
                day.into_iter()
                    .map(|(a, b)| json!({"start": iso_millis(a), "end": end_of_day(b)}))
                    .collect(),
            )
        })
        .collect();
    let mut groups: Vec<(Date, Vec<(OffsetDateTime, OffsetDateTime)>)> = Vec::new();
    for r in &rows {
        let Some(date) = r.date.filter(|d| *d >= today) else {
            continue;
        };
        let range = (at(date, r.start), at(date, r.end));
        match groups.iter_mut().find(|(d, _)| *d == date) {
            Some((_, ranges)) => ranges.push(range),
            None => groups.push((date, vec![range])),
        }
    }
    groups.sort_by_key(|(_, ranges)| ranges.first().map(|r| r.0));
    let date_overrides: Vec<Value> = groups
        .into_iter()
        .map(|(_, ranges)| {
            json!({"ranges": ranges.into_iter()
                .map(|(a, b)| json!({"start": iso_millis(a), "end": iso_millis(b)}))
                .collect::<Vec<_>>()})
        })
        .collect();
    json!({
        "id": s.id,
        "name": s.name,
        "isManaged": false,
        "workingHours": working_hours(&rows),
        "schedule": raw,
        "availability": availability,
        "timeZone": s.time_zone,
        "dateOverrides": date_overrides,
        "isDefault": is_default,
        "isLastSchedule": schedules_count <= 1,
        "readOnly": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{SeedAvailability, SeedOverride};

    fn sched(avail: Vec<(&[&str], &str, &str)>) -> SeedSchedule {
        SeedSchedule {
            id: 7,
            owner_id: 1,
            name: "s".into(),
            time_zone: "Europe/London".into(),
            is_default: true,
            availability: avail
                .into_iter()
                .map(|(d, s, e)| SeedAvailability {
                    days: d.iter().map(|x| (*x).to_owned()).collect(),
                    start_time: s.into(),
                    end_time: e.into(),
                })
                .collect(),
            overrides: vec![SeedOverride {
                date: "2027-01-20".into(),
                start_time: "10:00".into(),
                end_time: "12:00".into(),
            }],
        }
    }

    #[test]
    fn working_hours_sort_merge_and_include_override_rows() {
        let s = sched(vec![
            (&["Monday"], "13:00", "17:00"),
            (&["Sunday"], "09:00", "12:59"),
        ]);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(); // 2027-01-15
        let v = detailed(&s, 1, true, now);
        // 09:00-12:59 then 10:00-12:00 (override row, days []) then 13:00-17:00: the override
        // sits between them, so nothing merges.
        assert_eq!(
            v["workingHours"],
            json!([{"days":[0],"startTime":540,"endTime":779},
                   {"days":[],"startTime":600,"endTime":720},
                   {"days":[1],"startTime":780,"endTime":1020}])
        );
        assert_eq!(
            v["availability"][0],
            json!([{"start":"2027-01-15T09:00:00.000Z","end":"2027-01-15T12:59:00.000Z"}])
        );
        assert_eq!(
            v["dateOverrides"],
            json!([{"ranges":[{"start":"2027-01-20T10:00:00.000Z","end":"2027-01-20T12:00:00.000Z"}]}])
        );
        assert_eq!(v["schedule"][2]["date"], json!("2027-01-20T00:00:00.000Z"));
    }

    #[test]
    fn empty_schedule_is_available_all_week() {
        let mut s = sched(vec![]);
        s.overrides.clear();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let v = detailed(&s, 2, false, now);
        assert_eq!(
            v["workingHours"],
            json!([{"days":[0,1,2,3,4,5,6],"startTime":0,"endTime":1439}])
        );
        assert_eq!(v["isLastSchedule"], json!(false));
    }
}
