//! `GET /v2/me` (any `cal-api-version`), scope `PROFILE_READ` (`docs/calcom.md` §5;
//! `apps/api/v2/src/ee/me/me.controller.ts`, `outputs/me.output.ts`). A team token answers as
//! the team owner. `organization` is present only for organization members, and the sandbox
//! seeds no organizations, so it is always absent and `organizationId` is `null`.

use super::auth::ExpiredTokenPolicy;
use super::{ApiRequest, PeerIp, respond};
use crate::seed::SeedUser;
use crate::state::Shared;
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// The `data` of `/v2/me`.
pub(crate) fn user_json(u: &SeedUser) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "name": u.name,
        "avatarUrl": null,
        "bio": u.bio,
        "timeFormat": u.time_format,
        "defaultScheduleId": u.default_schedule_id,
        "weekStart": u.week_start,
        "timeZone": u.time_zone,
        "locale": u.locale,
        "organizationId": null,
    })
}

pub(super) async fn get(
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
        &["PROFILE_READ"],
        ExpiredTokenPolicy::Unauthorized,
        |caller| Ok(json!({"status": "success", "data": user_json(&caller.user)})),
    )
}
