//! Times as a person reads them: in the Cal.com user's time zone (`/v2/me`'s `timeZone`, else the
//! schedule's), in their 12- or 24-hour format, with the zone's abbreviation — `Tue 1 Dec, 16:42
//! GMT` — and how long ago (`5 min ago`). The broker's timestamps (RFC 3339, microseconds) and
//! Cal.com's (UTC) never reach a page raw.
//!
//! Zones come from the IANA database bundled into the binary (`jiff`'s `tzdb-bundle-always`), so
//! the demo reads the same on a machine without `/usr/share/zoneinfo`.

use jiff::tz::TimeZone;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// 12- or 24-hour clock (`/v2/me`'s `timeFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hours {
    H12,
    H24,
}

impl Hours {
    /// Cal.com's `timeFormat`: 12 is the 12-hour clock; anything else (or nothing) reads as 24.
    pub(crate) fn from_time_format(format: Option<u8>) -> Self {
        if format == Some(12) {
            Self::H12
        } else {
            Self::H24
        }
    }
}

/// How a Cal.com user reads times, as `/v2/me` says: `timeZone` and `timeFormat`.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserClock {
    pub(crate) time_zone: Option<String>,
    pub(crate) time_format: Option<u8>,
}

/// A time zone to show times in, with its IANA name.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    tz: TimeZone,
    name: String,
    hours: Hours,
}

impl Zone {
    /// The first of `names` the time-zone database knows; UTC when none is.
    pub(crate) fn first_known<'a>(names: impl IntoIterator<Item = &'a str>, hours: Hours) -> Self {
        names
            .into_iter()
            .find_map(|name| {
                TimeZone::get(name).ok().map(|tz| Self {
                    tz,
                    name: name.to_owned(),
                    hours,
                })
            })
            .unwrap_or_else(|| Self {
                tz: TimeZone::UTC,
                name: "UTC".to_owned(),
                hours,
            })
    }

    /// The IANA name (`Europe/London`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn format(&self, t: OffsetDateTime, date: bool) -> String {
        let Ok(ts) = jiff::Timestamp::from_second(t.unix_timestamp()) else {
            return t.format(&Rfc3339).unwrap_or_default();
        };
        let clock = match self.hours {
            Hours::H24 => "%H:%M",
            Hours::H12 => "%-I:%M %P",
        };
        let pattern = if date {
            format!("%a %-d %b, {clock} %Z")
        } else {
            format!("{clock} %Z")
        };
        ts.to_zoned(self.tz.clone()).strftime(&pattern).to_string()
    }

    /// `Tue 1 Dec, 16:42 GMT` (or `4:42 pm GMT`).
    pub(crate) fn date_time(&self, t: OffsetDateTime) -> String {
        self.format(t, true)
    }

    /// `16:42 GMT` (or `4:42 pm GMT`).
    pub(crate) fn time(&self, t: OffsetDateTime) -> String {
        self.format(t, false)
    }
}

/// An RFC 3339 timestamp (the broker's), if it is one.
pub(crate) fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `just now`, `5 min ago`, `3 h ago`, `2 days ago` (or `in 5 min` for a future `t`).
pub(crate) fn ago(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (now - t).whole_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let span = match n {
        0..60 => return "just now".to_owned(),
        60..3600 => format!("{} min", n / 60),
        3600..86_400 => format!("{} h", n / 3600),
        86_400..172_800 => "1 day".to_owned(),
        _ => format!("{} days", n / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        parse(text).unwrap()
    }

    #[test]
    fn times_read_in_the_users_zone_and_format() {
        let london = Zone::first_known(["Europe/London"], Hours::H24);
        // The broker's timestamps carry microseconds; they do not reach the page.
        let winter = at("2026-12-01T16:42:07.123456Z");
        assert_eq!(london.date_time(winter), "Tue 1 Dec, 16:42 GMT");
        let summer = at("2026-07-01T16:42:00Z");
        assert_eq!(london.date_time(summer), "Wed 1 Jul, 17:42 BST");
        let new_york = Zone::first_known(["America/New_York"], Hours::H12);
        assert_eq!(new_york.date_time(winter), "Tue 1 Dec, 11:42 am EST");
        assert_eq!(new_york.time(winter), "11:42 am EST");
    }

    #[test]
    fn an_unknown_zone_falls_back_to_the_next_then_utc() {
        let z = Zone::first_known(["Mars/Olympus", "Europe/Rome"], Hours::H24);
        assert_eq!(z.name(), "Europe/Rome");
        let z = Zone::first_known(["Mars/Olympus"], Hours::H24);
        assert_eq!(z.name(), "UTC");
        assert_eq!(
            z.date_time(at("2026-12-01T16:42:00Z")),
            "Tue 1 Dec, 16:42 UTC"
        );
        assert_eq!(
            Hours::from_time_format(Some(12)),
            Hours::H12,
            "Cal.com's 12-hour users"
        );
        assert_eq!(Hours::from_time_format(None), Hours::H24);
    }

    #[test]
    fn how_long_ago() {
        let now = at("2026-12-01T16:42:00Z");
        let before = |s: i64| now - time::Duration::seconds(s);
        assert_eq!(ago(before(5), now), "just now");
        assert_eq!(ago(before(300), now), "5 min ago");
        assert_eq!(ago(before(3 * 3600 + 5), now), "3 h ago");
        assert_eq!(ago(before(86_400 + 5), now), "1 day ago");
        assert_eq!(ago(before(3 * 86_400), now), "3 days ago");
        assert_eq!(ago(before(-600), now), "in 10 min");
    }
}
