//! `GET /v2/event-types` with `cal-api-version: 2024-06-14` (scope `EVENT_TYPE_READ`;
//! `EventTypeOutput_2024_06_14`). docs/calcom.md does not list this shape; the fields kept here
//! are the stable core of Cal.com's output type (the sandbox serves the same).

use serde::Deserialize;
use serde_json::Value;

/// `cal-api-version` of the documented event-type shape.
pub const EVENT_TYPES_API_VERSION: &str = "2024-06-14";

/// An event type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EventType {
    /// The id.
    pub id: i64,
    /// The owner's user id (absent for team event types).
    #[serde(default)]
    pub owner_id: Option<i64>,
    /// Duration in minutes.
    pub length_in_minutes: u32,
    /// The title.
    pub title: String,
    /// The URL slug.
    pub slug: String,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
    /// Hidden from the profile page.
    #[serde(default)]
    pub hidden: bool,
    /// Minimum notice in minutes.
    #[serde(default)]
    pub minimum_booking_notice: Option<u32>,
    /// Buffer before, minutes.
    #[serde(default)]
    pub before_event_buffer: Option<u32>,
    /// Buffer after, minutes.
    #[serde(default)]
    pub after_event_buffer: Option<u32>,
    /// Bookings need confirmation.
    #[serde(default)]
    pub requires_confirmation: bool,
    /// The schedule used, when not the owner's default.
    #[serde(default)]
    pub schedule_id: Option<i64>,
    /// Price in the currency's minor unit.
    #[serde(default)]
    pub price: Option<i64>,
    /// ISO currency code, lower case at Cal.com.
    #[serde(default)]
    pub currency: Option<String>,
    /// Locations, as sent (their shapes vary by type).
    #[serde(default)]
    pub locations: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_ignores_unknown_fields() {
        let body = r#"{"id":501,"ownerId":1,"lengthInMinutes":30,"title":"30 min meeting","slug":"30min",
            "description":"A quick call.","locations":[],"bookingFields":[],"minimumBookingNotice":120,
            "beforeEventBuffer":0,"afterEventBuffer":0,"price":0,"currency":"usd","hidden":false,"users":[{"id":1}]}"#;
        let e: EventType = serde_json::from_str(body).unwrap();
        assert_eq!(
            (e.id, e.length_in_minutes, e.slug.as_str()),
            (501, 30, "30min")
        );
        assert_eq!(e.minimum_booking_notice, Some(120));
    }
}
