//! `GET /v2/bookings` with `cal-api-version: 2024-08-13` (scope `BOOKING_READ`;
//! `GetBookingsOutput_2024_08_13`). docs/calcom.md §5 names the endpoint (and its expired-token
//! 403) but not its shape; the fields here follow Cal.com's `booking.output.ts`.

use serde::Deserialize;
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `cal-api-version` of the documented bookings shape.
pub const BOOKINGS_API_VERSION: &str = "2024-08-13";

/// A booking.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Booking {
    /// The id.
    pub id: i64,
    /// The public uid.
    pub uid: String,
    /// The title.
    pub title: String,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
    /// `accepted`, `cancelled`, `rejected`, `pending`, …
    pub status: BookingStatus,
    /// Start.
    #[serde(deserialize_with = "super::de_timestamp")]
    pub start: OffsetDateTime,
    /// End.
    #[serde(deserialize_with = "super::de_timestamp")]
    pub end: OffsetDateTime,
    /// Duration in minutes.
    #[serde(default)]
    pub duration: Option<u32>,
    /// The event type.
    #[serde(default)]
    pub event_type_id: Option<i64>,
    /// Hosts.
    #[serde(default)]
    pub hosts: Vec<BookingHost>,
    /// Attendees.
    #[serde(default)]
    pub attendees: Vec<Attendee>,
    /// The location, as sent.
    #[serde(default)]
    pub location: Option<String>,
    /// When it was booked.
    #[serde(default, deserialize_with = "super::de_timestamp_opt")]
    pub created_at: Option<OffsetDateTime>,
}

/// A booking's status; values Cal.com adds later read as [`BookingStatus::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BookingStatus {
    /// Confirmed.
    Accepted,
    /// Cancelled.
    Cancelled,
    /// Rejected by the host.
    Rejected,
    /// Waiting for confirmation.
    Pending,
    /// Something else.
    #[serde(untagged)]
    Other(String),
}

/// A host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BookingHost {
    /// User id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Username.
    #[serde(default)]
    pub username: Option<String>,
    /// Time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// An attendee.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Attendee {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Language.
    #[serde(default)]
    pub language: Option<String>,
    /// Marked absent.
    #[serde(default)]
    pub absent: bool,
}

/// `pagination` of the bookings list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Pagination {
    /// Bookings matching the filters.
    pub total_items: u64,
    /// Bookings after this page.
    #[serde(default)]
    pub remaining_items: u64,
    /// Page size.
    #[serde(default)]
    pub items_per_page: u64,
    /// 1-based page number.
    #[serde(default)]
    pub current_page: u64,
    /// Pages.
    #[serde(default)]
    pub total_pages: u64,
    /// There is a next page.
    #[serde(default)]
    pub has_next_page: bool,
    /// There is a previous page.
    #[serde(default)]
    pub has_previous_page: bool,
}

/// One page of bookings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BookingPage {
    /// The bookings.
    #[serde(rename = "data")]
    pub bookings: Vec<Booking>,
    /// Paging information (absent in older versions).
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// A `status` filter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusFilter {
    /// Not ended, not cancelled or rejected.
    Upcoming,
    /// Recurring.
    Recurring,
    /// Ended.
    Past,
    /// Cancelled or rejected.
    Cancelled,
    /// Pending and not ended.
    Unconfirmed,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            Self::Upcoming => "upcoming",
            Self::Recurring => "recurring",
            Self::Past => "past",
            Self::Cancelled => "cancelled",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}

impl fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sort order of `sortStart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first.
    Ascending,
    /// Newest first.
    Descending,
}

/// Filters of [`CalClient::bookings`](crate::api::CalClient::bookings) (query parameters of
/// `GetBookingsInput_2024_08_13`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BookingFilters {
    /// Any of these statuses (OR-ed).
    pub statuses: Vec<StatusFilter>,
    /// Start at or after.
    pub after_start: Option<OffsetDateTime>,
    /// End at or before.
    pub before_end: Option<OffsetDateTime>,
    /// Sort by start.
    pub sort_start: Option<SortOrder>,
    /// Page size (1–250).
    pub take: Option<u32>,
    /// Bookings to skip.
    pub skip: Option<u32>,
}

impl BookingFilters {
    /// No filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a status.
    #[must_use]
    pub fn status(mut self, status: StatusFilter) -> Self {
        self.statuses.push(status);
        self
    }

    /// Start at or after `at`.
    #[must_use]
    pub fn after_start(mut self, at: OffsetDateTime) -> Self {
        self.after_start = Some(at);
        self
    }

    /// End at or before `at`.
    #[must_use]
    pub fn before_end(mut self, at: OffsetDateTime) -> Self {
        self.before_end = Some(at);
        self
    }

    /// Sort by start.
    #[must_use]
    pub fn sort_start(mut self, order: SortOrder) -> Self {
        self.sort_start = Some(order);
        self
    }

    /// Page: `take` bookings after skipping `skip`.
    #[must_use]
    pub fn page(mut self, take: u32, skip: u32) -> Self {
        self.take = Some(take);
        self.skip = Some(skip);
        self
    }

    /// The query pairs.
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if !self.statuses.is_empty() {
            let joined: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
            q.push(("status", joined.join(",")));
        }
        let ts = |t: &OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        if let Some(t) = &self.after_start {
            q.push(("afterStart", ts(t)));
        }
        if let Some(t) = &self.before_end {
            q.push(("beforeEnd", ts(t)));
        }
        if let Some(o) = self.sort_start {
            let v = match o {
                SortOrder::Ascending => "asc",
                SortOrder::Descending => "desc",
            };
            q.push(("sortStart", v.to_owned()));
        }
        if let Some(n) = self.take {
            q.push(("take", n.to_string()));
        }
        if let Some(n) = self.skip {
            q.push(("skip", n.to_string()));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_a_page() {
        let body = r#"{"status":"success","data":[{"id":9001,"uid":"bk_1","title":"t","description":"",
            "hosts":[{"id":1,"name":"Alice","username":"alice","timeZone":"Europe/London"}],"status":"accepted",
            "start":"2027-01-16T10:00:00.000Z","end":"2027-01-16T10:30:00.000Z","duration":30,"eventTypeId":501,
            "eventType":{"id":501,"slug":"30min"},"location":null,"absentHost":false,"createdAt":"2027-01-01T00:00:00.000Z",
            "attendees":[{"name":"Erin","email":"erin@example.org","timeZone":"UTC","language":"en","absent":false}]},
            {"id":9002,"uid":"bk_2","title":"t","status":"awaiting_host","start":"2027-01-16T10:00:00Z","end":"2027-01-16T11:00:00Z"}],
            "pagination":{"totalItems":2,"remainingItems":0,"itemsPerPage":100,"currentPage":1,"totalPages":1,"hasNextPage":false,"hasPreviousPage":false}}"#;
        let page: BookingPage = serde_json::from_str(body).unwrap();
        assert_eq!(page.bookings[0].status, BookingStatus::Accepted);
        assert_eq!(page.bookings[0].start, datetime!(2027-01-16 10:00 UTC));
        assert_eq!(
            page.bookings[1].status,
            BookingStatus::Other("awaiting_host".into())
        );
        assert_eq!(page.pagination.unwrap().total_items, 2);
    }

    #[test]
    fn filters_become_query_pairs() {
        let f = BookingFilters::new()
            .status(StatusFilter::Upcoming)
            .status(StatusFilter::Past)
            .after_start(datetime!(2027-01-01 00:00 UTC))
            .sort_start(SortOrder::Descending)
            .page(10, 20);
        assert_eq!(
            f.query(),
            vec![
                ("status", "upcoming,past".to_owned()),
                ("afterStart", "2027-01-01T00:00:00Z".to_owned()),
                ("sortStart", "desc".to_owned()),
                ("take", "10".to_owned()),
                ("skip", "20".to_owned()),
            ]
        );
    }
}
