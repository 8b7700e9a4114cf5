//! The body of a webhook delivery, for the OpenAPI document (`components.schemas.WebhookEvent`),
//! so that generated clients have a type for what their receiver gets. The bodies themselves are
//! written by `payload.rs` (store events), `mod.rs` (`connection.conflict`) and `manual.rs`
//! (`webhook.test`); a test below checks that each of them fits this description.

use serde::Serialize;

/// A webhook event: the JSON body of a delivery, signed in `calconnect-signature`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookEvent {
    /// The event id (`evt_…`), also in the `calconnect-event-id` header; a redelivery keeps it,
    /// so deduplicate on it.
    pub id: String,
    /// What happened; also in the `calconnect-event-type` header.
    #[serde(rename = "type")]
    pub kind: WebhookEventType,
    /// When (RFC 3339).
    pub created_at: String,
    /// About which connection.
    pub data: WebhookEventData,
}

/// The event types.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub enum WebhookEventType {
    /// A connection was made.
    #[serde(rename = "connection.created")]
    Created,
    /// The user connected the same Cal.com account again (new tokens, maybe new scopes).
    #[serde(rename = "connection.updated")]
    Updated,
    /// The user must reconnect (revoked, expired, client rejected): `data.reconnect_url`.
    #[serde(rename = "connection.needs_reauth")]
    NeedsReauth,
    /// A refresh's answer was lost (a crash mid-refresh): `data.reconnect_url`.
    #[serde(rename = "connection.refresh_lost")]
    RefreshLost,
    /// A broken connection works again.
    #[serde(rename = "connection.recovered")]
    Recovered,
    /// The connection was deleted.
    #[serde(rename = "connection.deleted")]
    Deleted,
    /// A flow for one end user reached a Cal.com account connected for another; nothing
    /// changed.
    #[serde(rename = "connection.conflict")]
    Conflict,
    /// A test delivery (`POST /api/v1/webhooks/test`); no connection changed.
    #[serde(rename = "webhook.test")]
    Test,
}

/// The event's data; which fields are present depends on the type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookEventData {
    /// The connection (every `connection.*` event).
    pub connection_id: Option<String>,
    /// The app's user the connection belongs to (every `connection.*` event).
    pub end_user_id: Option<String>,
    /// The status before (`active`, `needs_reauth`, `refresh_lost`), for status changes.
    pub from_status: Option<String>,
    /// The status after.
    pub status: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// A single-use connect link for the same user, valid 7 days (`connection.needs_reauth`,
    /// `connection.refresh_lost`): send the user there to reconnect.
    pub reconnect_url: Option<String>,
    /// The end user whose flow reached the account (`connection.conflict`).
    pub requested_end_user_id: Option<String>,
    /// A note for people (`webhook.test`).
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use utoipa::PartialSchema as _;

    /// The keys of `body` and of its `data` are properties of the schema, and its type one of
    /// the listed values.
    pub(crate) fn fits(body: &str) {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        let event = serde_json::to_value(WebhookEvent::schema()).unwrap();
        let data = serde_json::to_value(WebhookEventData::schema()).unwrap();
        let types = serde_json::to_value(WebhookEventType::schema()).unwrap();
        for key in body.as_object().unwrap().keys() {
            assert!(event["properties"].get(key).is_some(), "{key} in {body}");
        }
        for key in body["data"].as_object().unwrap().keys() {
            assert!(
                data["properties"].get(key).is_some(),
                "data.{key} in {body}"
            );
        }
        let listed = types["enum"].as_array().unwrap();
        assert!(
            listed.contains(&body["type"]),
            "{} in {types}",
            body["type"]
        );
    }

    #[test]
    fn the_bodies_sent_fit_the_description() {
        fits(
            r#"{"id":"evt_7","type":"connection.needs_reauth","created_at":"2026-01-01T00:00:00Z","data":{"connection_id":"c","end_user_id":"u","from_status":"active","status":"needs_reauth","reason":"r","reconnect_url":"https://b.example/connect/t"}}"#,
        );
        fits(&crate::webhooks::manual::test_body(
            "evt_test_1",
            1_700_000_000,
        ));
        fits(&crate::webhooks::conflict_body(
            -1,
            1_700_000_000_000,
            "c",
            "u1",
            "u2",
        ));
    }
}
