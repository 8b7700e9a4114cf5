//! `GET /v2/event-types`: the caller's event types, scope `EVENT_TYPE_READ`.
//!
//! Shape: `EventTypeOutput_2024_06_14` (`packages/platform/types/event-types/
//! event-types_2024_06_14/outputs/event-type.output.ts`), documented for
//! `cal-api-version: 2024-06-14`: `{"status":"success","data":[…]}`. The sandbox fills the
//! required fields with Cal.com's defaults for a plain event type (no locations, no custom
//! booking fields, 120 min notice, no buffers, price 0 "usd") and adds `hidden`.
//!
//! **Simplification:** Cal.com serves an older `{eventTypeGroups, profiles}` shape without the
//! version header; the sandbox serves the 2024-06-14 shape for every version.

use super::auth::ExpiredTokenPolicy;
use super::{ApiRequest, PeerIp, respond};
use crate::seed::{SeedEventType, SeedUser};
use crate::state::Shared;
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

fn event_type_json(e: &SeedEventType, owner: &SeedUser) -> Value {
    json!({
        "id": e.id,
        "ownerId": e.owner_id,
        "lengthInMinutes": e.length_in_minutes,
        "title": e.title,
        "slug": e.slug,
        "description": e.description.clone().unwrap_or_default(),
        "locations": [],
        "bookingFields": [],
        "disableGuests": false,
        "slotInterval": null,
        "minimumBookingNotice": 120,
        "beforeEventBuffer": 0,
        "afterEventBuffer": 0,
        "schedulingType": null,
        "recurrence": null,
        "metadata": {},
        "requiresConfirmation": false,
        "price": 0,
        "currency": "usd",
        "lockTimeZoneToggleOnBookingPage": false,
        "seatsPerTimeSlot": null,
        "forwardParamsSuccessRedirect": true,
        "successRedirectUrl": null,
        "seatsShowAvailabilityCount": true,
        "isInstantEvent": false,
        "users": [{
            "id": owner.id,
            "name": owner.name,
            "username": owner.username,
            "avatarUrl": null,
            "weekStart": owner.week_start,
            "brandColor": "#292929",
            "darkBrandColor": "#fafafa",
            "metadata": {},
        }],
        "scheduleId": null,
        "hidden": e.hidden,
    })
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
        &["EVENT_TYPE_READ"],
        ExpiredTokenPolicy::Unauthorized,
        |caller| {
            let db = shared.db();
            let data: Vec<Value> = db
                .event_types
                .iter()
                .filter(|e| e.owner_id == caller.user.id)
                .map(|e| event_type_json(e, &caller.user))
                .collect();
            Ok(json!({"status": "success", "data": data}))
        },
    )
}
