//! `GET /v2/bookings`: the caller's bookings, scope `BOOKING_READ`, with the 403
//! "no oAuth client found" switch for expired tokens (`docs/calcom.md` §5).
//!
//! Shape: `GetBookingsOutput_2024_08_13` (`apps/api/v2/src/ee/bookings/2024-08-13/outputs/
//! get-bookings.output.ts`): `{"status":"success","data":[BookingOutput…],"pagination":{
//! totalItems, remainingItems, itemsPerPage, currentPage, totalPages, hasNextPage,
//! hasPreviousPage}}`, each booking per `packages/platform/types/bookings/2024-08-13/outputs/
//! booking.output.ts`. Served for every `cal-api-version` (**simplification**: Cal.com's
//! unversioned 2024-04-15 controller has an older shape).
//!
//! Query (`GetBookingsInput_2024_08_13`): `status` (comma-separated `upcoming`, `recurring`,
//! `past`, `cancelled`, `unconfirmed`, OR-ed), `afterStart` (start ≥), `beforeEnd` (end ≤),
//! `sortStart` (`asc`/`desc`), `take` (1–250, default 100 [inferred]) and `skip` (≥ 0); other
//! parameters are ignored. Pagination follows the `PaginationMetaDto` descriptions:
//! `remainingItems = max(0, totalItems - (skip + take))`, `currentPage = floor(skip / take) + 1`,
//! `totalPages = ceil(totalItems / take)`. Invalid values give
//! Nest's `ValidationPipe` 400 with the validator texts. Status meanings follow Cal.com's booking
//! list (`bookings/get.handler.ts`): upcoming = ends now or later and not cancelled/rejected;
//! past = ended and not cancelled/rejected; cancelled = cancelled or rejected; unconfirmed =
//! pending and not ended; recurring = none (the sandbox has no recurring bookings). "Now" is the
//! sandbox clock. Without `sortStart`, a single `past` or `cancelled` filter sorts newest first
//! and everything else oldest first [inferred from the web app's defaults].

use super::auth::ExpiredTokenPolicy;
use super::envelope::{ApiError, iso_millis};
use super::{ApiRequest, PeerIp, respond};
use crate::state::{Booking, Db, Shared};
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

const STATUSES: [&str; 5] = ["upcoming", "recurring", "past", "cancelled", "unconfirmed"];

#[derive(Debug, Default)]
struct Query {
    statuses: Vec<String>,
    after_start: Option<OffsetDateTime>,
    before_end: Option<OffsetDateTime>,
    sort_desc: Option<bool>,
    take: usize,
    skip: usize,
}

/// `@IsISO8601({ strict: true })`: a full RFC 3339 timestamp or a calendar date (midnight UTC).
fn parse_iso(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt)
        .ok()
        .map(|d| PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc())
}

fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
    let mut q = Query {
        take: 100,
        ..Query::default()
    };
    let mut errors: Vec<(u8, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "status" => q.statuses.extend(v.split(',').map(|s| s.trim().to_owned())),
            "afterStart" => match parse_iso(&v) {
                Some(t) => q.after_start = Some(t),
                None => errors.push((1, "fromDate must be a valid ISO 8601 date.".to_owned())),
            },
            "beforeEnd" => match parse_iso(&v) {
                Some(t) => q.before_end = Some(t),
                None => errors.push((2, "toDate must be a valid ISO 8601 date.".to_owned())),
            },
            "sortStart" => match v.as_ref() {
                "asc" => q.sort_desc = Some(false),
                "desc" => q.sort_desc = Some(true),
                _ => errors.push((3, r#"SortStart must be either "asc" or "desc"."#.to_owned())),
            },
            "take" => match v.trim().parse::<i64>() {
                Ok(n) if n < 1 => errors.push((4, "take must not be less than 1".to_owned())),
                Ok(n) if n > 250 => {
                    errors.push((4, "take must not be greater than 250".to_owned()))
                }
                Ok(n) => q.take = usize::try_from(n).unwrap_or(100),
                Err(_) => errors.push((
                    4,
                    "take must be a number conforming to the specified constraints".to_owned(),
                )),
            },
            "skip" => match v.trim().parse::<i64>() {
                Ok(n) if n < 0 => errors.push((5, "skip must not be less than 0".to_owned())),
                Ok(n) => q.skip = usize::try_from(n).unwrap_or(0),
                Err(_) => errors.push((
                    5,
                    "skip must be a number conforming to the specified constraints".to_owned(),
                )),
            },
            _ => {}
        }
    }
    if q.statuses.iter().any(|s| !STATUSES.contains(&s.as_str())) {
        errors.push((
            0,
            "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed"
                .to_owned(),
        ));
    }
    if errors.is_empty() {
        return Ok(q);
    }
    // class-validator reports properties in declaration order.
    errors.sort_by_key(|(rank, _)| *rank);
    Err(ApiError::validation(
        errors.into_iter().map(|(_, m)| m).collect(),
    ))
}

fn matches_status(b: &Booking, status: &str, now: OffsetDateTime) -> bool {
    let dead = b.status == "cancelled" || b.status == "rejected";
    match status {
        "upcoming" => b.end >= now && !dead,
        "past" => b.end <= now && !dead,
        "cancelled" => dead,
        "unconfirmed" => b.end >= now && b.status == "pending",
        _ => false,
    }
}

fn booking_json(b: &Booking, db: &Db) -> Value {
    let host = db.users.get(&b.user_id);
    let slug = db
        .event_types
        .iter()
        .find(|e| e.id == b.event_type_id)
        .map(|e| e.slug.clone());
    json!({
        "id": b.id,
        "uid": b.uid,
        "title": b.title,
        "description": "",
        "hosts": host.map(|u| vec![json!({
            "id": u.id, "name": u.name, "username": u.username, "timeZone": u.time_zone,
        })]).unwrap_or_default(),
        "status": b.status,
        "start": iso_millis(b.start),
        "end": iso_millis(b.end),
        "duration": (b.end - b.start).whole_minutes(),
        "eventTypeId": b.event_type_id,
        "eventType": {"id": b.event_type_id, "slug": slug},
        "location": null,
        "absentHost": false,
        "createdAt": iso_millis(b.created_at),
        "metadata": {},
        "attendees": [{
            "name": b.attendee_name,
            "email": b.attendee_email,
            "timeZone": b.attendee_time_zone,
            "language": "en",
            "absent": false,
        }],
        "bookingFieldsResponses": {"name": b.attendee_name, "email": b.attendee_email},
    })
}

fn div_ceil(a: usize, b: usize) -> usize {
    if b == 0 { 0 } else { a.div_ceil(b) }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
) -> Response {
    let req = ApiRequest {
        shared: &shared,
        uri: &uri,
        headers: &headers,
        peer,
    };
    respond(
        &req,
        &["BOOKING_READ"],
        ExpiredTokenPolicy::BookingsSwitch,
        |caller| {
            let q = parse_query(uri.query())?;
            let now = shared.clock.now();
            let db = shared.db();
            let mut found: Vec<&Booking> = db
                .bookings
                .iter()
                .filter(|b| b.user_id == caller.user.id)
                .filter(|b| {
                    q.statuses.is_empty() || q.statuses.iter().any(|s| matches_status(b, s, now))
                })
                .filter(|b| q.after_start.is_none_or(|t| b.start >= t))
                .filter(|b| q.before_end.is_none_or(|t| b.end <= t))
                .collect();
            let desc = q.sort_desc.unwrap_or(
                q.statuses.len() == 1 && (q.statuses[0] == "past" || q.statuses[0] == "cancelled"),
            );
            found.sort_by_key(|b| (b.start, b.id));
            if desc {
                found.reverse();
            }
            let total = found.len();
            let data: Vec<Value> = found
                .into_iter()
                .skip(q.skip)
                .take(q.take)
                .map(|b| booking_json(b, &db))
                .collect();
            Ok(json!({
                "status": "success",
                "data": data,
                "pagination": {
                    "totalItems": total,
                    "remainingItems": total.saturating_sub(q.skip + q.take),
                    "itemsPerPage": q.take,
                    "currentPage": q.skip / q.take.max(1) + 1,
                    "totalPages": div_ceil(total, q.take),
                    "hasNextPage": q.skip + q.take < total,
                    "hasPreviousPage": q.skip > 0,
                },
            }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages() {
        let e = parse_query(Some("status=upcoming,soon&take=0&sortStart=up")).unwrap_err();
        assert_eq!(
            e.details["message"],
            json!([
                "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed",
                r#"SortStart must be either "asc" or "desc"."#,
                "take must not be less than 1"
            ])
        );
        let q = parse_query(Some("status=upcoming,%20past&afterStart=2026-01-02")).unwrap();
        assert_eq!(q.statuses, vec!["upcoming", "past"]);
        assert!(q.after_start.is_some());
    }
}
