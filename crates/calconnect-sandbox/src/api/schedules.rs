//! `GET /v2/schedules`, `/v2/schedules/default`, `/v2/schedules/{id}`, scope `SCHEDULE_READ`
//! (`docs/calcom.md` §5).
//!
//! With `cal-api-version: 2024-06-11` or `2024-06-14` the documented shape
//! (`schedules_2024_06_11/services/output-schedules.service.ts`):
//! `{id, ownerId, name, timeZone, availability:[{days:["Monday"],startTime:"09:00",endTime}],
//! isDefault, overrides:[{date,startTime,endTime}]}`, `isDefault` meaning "is the owner's
//! `defaultScheduleId`". Any other or no version gets the old 2024-04-15 shape
//! ([`super::schedules_old`]).
//!
//! Errors, from `schedules_2024_06_11/services/schedules.service.ts`:
//! - unknown id → 404 `Schedule with ID=<id> does not exist.` (also for a non-numeric id);
//! - someone else's schedule → **403** `User with ID=<user> does not own schedule with ID=<id>`
//!   (`checkUserOwnsSchedule`);
//! - `/default` for a user without a default schedule → 200 `{"status":"success","data":null}`
//!   (`getUserScheduleDefault` returns `null`, in both versions).
//! - the list for a user without schedules: 2024-06-11 → `data: []`
//!   (`schedules_2024_06_11/services/schedules.service.ts` maps an empty list); 2024-04-15 →
//!   **500** `{"statusCode":500,"message":"Internal server error"}`: its service calls
//!   `PrismaScheduleRepository.findManyDetailedScheduleByUserId`
//!   (`packages/lib/server/repository/schedule.ts`), which throws a plain
//!   `Error("Schedules not found")` for zero schedules, and no Cal.com filter catches a plain
//!   `Error` (Nest's default body, see [`super::envelope`]; `docs/calcom.md` §5.6 "Response
//!   shapes we parse").
//!
//! The 2024-04-15 controller uses the same ownership check; its lookup
//! (`ScheduleRepository.findDetailedScheduleById`) throws plain `Error`s for an unknown or
//! unreadable id, which Cal.com turns into 500s — the sandbox answers those with the
//! 2024-06-11 404/403 instead.

use super::auth::ExpiredTokenPolicy;
use super::envelope::ApiError;
use super::{ApiRequest, ApiVersion, PeerIp, respond, schedules_old};
use crate::seed::{SeedSchedule, SeedUser};
use crate::state::{Db, Shared};
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

const SCOPE: &[&str] = &["SCHEDULE_READ"];

fn is_new_shape(headers: &HeaderMap) -> bool {
    matches!(
        ApiVersion::from_headers(headers),
        ApiVersion::V2024_06_11 | ApiVersion::V2024_06_14
    )
}

/// The 2024-06-11 shape of one schedule.
fn new_shape(s: &SeedSchedule, db: &Db) -> Value {
    let owner_default = db
        .users
        .get(&s.owner_id)
        .and_then(|u| u.default_schedule_id);
    json!({
        "id": s.id,
        "ownerId": s.owner_id,
        "name": s.name,
        "timeZone": s.time_zone,
        "availability": s.availability.iter().map(|a| json!({
            "days": a.days, "startTime": a.start_time, "endTime": a.end_time,
        })).collect::<Vec<_>>(),
        "isDefault": owner_default == Some(s.id),
        "overrides": s.overrides.iter().map(|o| json!({
            "date": o.date, "startTime": o.start_time, "endTime": o.end_time,
        })).collect::<Vec<_>>(),
    })
}

/// One schedule in the shape the request's version asks for.
fn render(s: &SeedSchedule, user: &SeedUser, db: &Db, new: bool, shared: &Shared) -> Value {
    if new {
        new_shape(s, db)
    } else {
        let count = db
            .schedules
            .iter()
            .filter(|x| x.owner_id == user.id)
            .count();
        let is_default = user.default_schedule_id == Some(s.id);
        schedules_old::detailed(s, count, is_default, shared.clock.now())
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
) -> Response {
    let new = is_new_shape(&headers);
    let req = ApiRequest {
        shared: &shared,
        uri: &uri,
        headers: &headers,
        peer,
    };
    respond(&req, SCOPE, ExpiredTokenPolicy::Unauthorized, |caller| {
        let db = shared.db();
        let data: Vec<Value> = db
            .schedules
            .iter()
            .filter(|s| s.owner_id == caller.user.id)
            .map(|s| render(s, &caller.user, &db, new, &shared))
            .collect();
        if data.is_empty() && !new {
            // `findManyDetailedScheduleByUserId` throws `new Error("Schedules not found")`.
            return Err(ApiError::unhandled());
        }
        Ok(json!({"status": "success", "data": data}))
    })
}

pub(super) async fn default(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
) -> Response {
    let new = is_new_shape(&headers);
    let req = ApiRequest {
        shared: &shared,
        uri: &uri,
        headers: &headers,
        peer,
    };
    respond(&req, SCOPE, ExpiredTokenPolicy::Unauthorized, |caller| {
        let db = shared.db();
        let data = caller
            .user
            .default_schedule_id
            .and_then(|id| db.schedules.iter().find(|s| s.id == id))
            .map_or(Value::Null, |s| render(s, &caller.user, &db, new, &shared));
        Ok(json!({"status": "success", "data": data}))
    })
}

pub(super) async fn by_id(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    PeerIp(peer): PeerIp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let new = is_new_shape(&headers);
    let req = ApiRequest {
        shared: &shared,
        uri: &uri,
        headers: &headers,
        peer,
    };
    respond(&req, SCOPE, ExpiredTokenPolicy::Unauthorized, |caller| {
        let db = shared.db();
        let not_found = || ApiError::not_found(format!("Schedule with ID={id} does not exist."));
        let sid: i64 = id.parse().map_err(|_| not_found())?;
        let s = db
            .schedules
            .iter()
            .find(|s| s.id == sid)
            .ok_or_else(not_found)?;
        if s.owner_id != caller.user.id {
            return Err(ApiError::forbidden(format!(
                "User with ID={} does not own schedule with ID={sid}",
                caller.user.id
            )));
        }
        Ok(json!({"status": "success", "data": render(s, &caller.user, &db, new, &shared)}))
    })
}
