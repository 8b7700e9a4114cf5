//! The `cal-api-version` each API v2 route documents (docs/calcom.md §5.2), for callers that
//! reach a route by its path: `calconnect api` and the broker's proxy send the same default
//! when the caller names no version.

use super::models::booking::BOOKINGS_API_VERSION;
use super::models::event_type::EVENT_TYPES_API_VERSION;
use super::models::schedule::SCHEDULES_API_VERSION;

/// The version `/v2/slots` documents ("Must be set to 2024-09-04", docs/calcom.md §5.2).
pub const SLOTS_API_VERSION: &str = "2024-09-04";

/// The `cal-api-version` to send to the API v2 route `path` when the caller names none:
/// `2024-06-11` for `schedules…`, `2024-06-14` for `event-types…`, `2024-08-13` for
/// `bookings…`, `2024-09-04` for `slots…`; `None` elsewhere (`me` serves any version, and an
/// unknown route gets what Cal.com does without the header, 2024-04-15).
///
/// `path` is relative to the API root, with or without a leading `/` and an optional `v2/`
/// (`/v2/schedules/12`, `schedules/12` and `v2/schedules/12` are one route); a query is
/// ignored. Only the first segment counts, whole (`schedulesx` is not `schedules`).
pub fn default_api_version(path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = match path.strip_prefix("v2") {
        Some("") => "",
        Some(rest) => rest.strip_prefix('/').unwrap_or(path),
        None => path,
    };
    let first = path.split('/').next().unwrap_or_default();
    match first {
        "schedules" => Some(SCHEDULES_API_VERSION),
        "event-types" => Some(EVENT_TYPES_API_VERSION),
        "bookings" => Some(BOOKINGS_API_VERSION),
        "slots" => Some(SLOTS_API_VERSION),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_gets_its_documented_version() {
        for (path, want) in [
            ("/v2/schedules", Some("2024-06-11")),
            ("schedules/default", Some("2024-06-11")),
            ("v2/schedules/12", Some("2024-06-11")),
            ("/schedules?x=1", Some("2024-06-11")),
            ("event-types", Some("2024-06-14")),
            ("/v2/event-types/5", Some("2024-06-14")),
            ("bookings", Some("2024-08-13")),
            ("/v2/bookings/uid-1/cancel", Some("2024-08-13")),
            ("slots", Some("2024-09-04")),
            ("/v2/me", None),
            ("me", None),
            ("/v2", None),
            ("v2", None),
            ("/", None),
            ("schedulesx", None),
            ("v2schedules", None),
            ("/v2/v2/schedules", None),
            ("teams/1/schedules", None),
        ] {
            assert_eq!(default_api_version(path), want, "{path}");
        }
    }
}
