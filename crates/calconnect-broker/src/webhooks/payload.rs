//! Webhook bodies of store events (docs/architecture.md §3.7): the stored form in the outbox and
//! the form sent.
//!
//! `connection.needs_reauth` and `connection.refresh_lost` carry a `reconnect_url`, a bearer
//! connect link. The outbox never holds it: the stored body says only what the link is for
//! (`_reconnect`: scopes and whether it is a team's), and [`to_send`] mints the link for each
//! attempt just before it is signed and sent. A database dump therefore holds no usable link
//! (the at-rest rule of docs/architecture.md §6.4). Each attempt gets its own link, valid
//! [`RECONNECT_TTL_MS`]; a retried event may leave several valid links with its receiver, each
//! single use.

use crate::connections::ProfileView;
use crate::db::DbError;
use crate::state::{AppState, rfc3339};
use calconnect::store::{AccountProfile, ConnectionEvent, ConnectionStatus, EventKind};
use serde::{Deserialize, Serialize};

/// Reconnect links in webhooks stay valid for 7 days.
pub(crate) const RECONNECT_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// The webhook type of a store event, and whether it carries a reconnect link.
pub(crate) fn event_type(e: &ConnectionEvent) -> (&'static str, bool) {
    let broken = |s: Option<ConnectionStatus>| {
        matches!(
            s,
            Some(ConnectionStatus::NeedsReauth | ConnectionStatus::RefreshLost)
        )
    };
    match e.kind {
        EventKind::Created => ("connection.created", false),
        EventKind::Reauthorized if broken(e.from_status) => ("connection.recovered", false),
        EventKind::Reauthorized => ("connection.updated", false),
        EventKind::Deleted => ("connection.deleted", false),
        EventKind::StatusChanged => match e.to_status {
            Some(ConnectionStatus::NeedsReauth) => ("connection.needs_reauth", true),
            Some(ConnectionStatus::RefreshLost) => ("connection.refresh_lost", true),
            Some(ConnectionStatus::Active) => ("connection.recovered", false),
            None => ("connection.updated", false),
        },
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created_at: String,
    data: PayloadData,
}

#[derive(Serialize, Deserialize)]
struct PayloadData {
    connection_id: String,
    end_user_id: String,
    from_status: Option<String>,
    status: Option<String>,
    reason: String,
    /// Who holds the Cal.com account, as Cal.com last said (`GET /v2/me`), when it has; as in
    /// the API's connection view. Absent in rows written before profiles were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cal_profile: Option<ProfileView>,
    /// As sent (and in rows written before links were minted at delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reconnect_url: Option<String>,
    /// Stored only: mint a link for this at delivery. Never sent.
    #[serde(
        default,
        rename = "_reconnect",
        skip_serializing_if = "Option::is_none"
    )]
    reconnect: Option<ReconnectFor>,
}

/// What a reconnect link minted at delivery is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReconnectFor {
    pub(crate) scopes: Vec<String>,
    pub(crate) team: bool,
}

/// The stored body of store event `e` of type `kind` (with `reconnect` when it carries a link,
/// and the connection's `profile` when known).
pub(crate) fn stored(
    e: &ConnectionEvent,
    kind: &str,
    reconnect: Option<ReconnectFor>,
    profile: Option<&AccountProfile>,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Payload {
        id: format!("evt_{}", e.seq),
        kind: kind.to_owned(),
        created_at: rfc3339(e.at),
        data: PayloadData {
            connection_id: e.connection_id.to_string(),
            end_user_id: e.end_user.as_str().to_owned(),
            from_status: e.from_status.map(|s| s.as_str().to_owned()),
            status: e.to_status.map(|s| s.as_str().to_owned()),
            reason: e.reason.clone(),
            cal_profile: profile.map(ProfileView::from),
            reconnect_url: None,
            reconnect,
        },
    })
}

/// Why a body could not be made ready to send.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToSendError {
    #[error("making the reconnect link: {0}")]
    Mint(#[from] DbError),
    #[error("writing the body: {0}")]
    Json(#[from] serde_json::Error),
}

/// The body to sign and send for the stored body `stored`: as stored, unless it asks for a
/// reconnect link, which is minted now and put in `data.reconnect_url`.
pub(crate) async fn to_send(state: &AppState, stored: &str) -> Result<String, ToSendError> {
    let Ok(mut payload) = serde_json::from_str::<Payload>(stored) else {
        return Ok(stored.to_owned()); // not an event body (`connection.conflict`): as stored
    };
    let Some(wanted) = payload.data.reconnect.take() else {
        return Ok(stored.to_owned());
    };
    let link = crate::sessions::reconnect_link(
        state,
        &payload.data.end_user_id,
        wanted.scopes,
        wanted.team,
        RECONNECT_TTL_MS,
    )
    .await?;
    payload.data.reconnect_url = Some(link);
    Ok(serde_json::to_string(&payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_marker_is_never_sent_and_old_rows_pass_unchanged() {
        let stored = r#"{"id":"evt_7","type":"connection.needs_reauth","created_at":"2026-01-01T00:00:00Z","data":{"connection_id":"c","end_user_id":"u","from_status":"active","status":"needs_reauth","reason":"r","_reconnect":{"scopes":["PROFILE_READ"],"team":false}}}"#;
        let mut p: Payload = serde_json::from_str(stored).unwrap();
        let wanted = p.data.reconnect.take().unwrap();
        assert_eq!(wanted.scopes, ["PROFILE_READ"]);
        p.data.reconnect_url = Some("https://b.example/connect/t".into());
        let sent = serde_json::to_string(&p).unwrap();
        assert_eq!(
            sent,
            r#"{"id":"evt_7","type":"connection.needs_reauth","created_at":"2026-01-01T00:00:00Z","data":{"connection_id":"c","end_user_id":"u","from_status":"active","status":"needs_reauth","reason":"r","reconnect_url":"https://b.example/connect/t"}}"#
        );
    }
}
