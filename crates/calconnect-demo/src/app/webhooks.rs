//! `POST /webhooks/calconnect`: the example app's webhook receiver. Checks the broker's
//! `calconnect-signature` (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`) and keeps the
//! last events in memory for the home page; answers 204, or 401 for a bad signature.

use super::AppCtx;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq as _;

pub(crate) async fn receive(
    State(ctx): State<AppCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let sig = header("calconnect-signature");
    let Some(t) = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse::<i64>().ok())
    else {
        return StatusCode::UNAUTHORIZED;
    };
    let expected = calconnect_broker::webhooks::signature(&ctx.webhook_secret, t, &body);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return StatusCode::UNAUTHORIZED;
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let connection = json["data"]["connection_id"]
        .as_str()
        .or_else(|| json["connection_id"].as_str())
        .unwrap_or("")
        .to_owned();
    if let Ok(mut list) = ctx.received.lock() {
        list.insert(
            0,
            super::pages::Received {
                kind: header("calconnect-event-type"),
                connection_id: connection,
            },
        );
        list.truncate(20);
    }
    StatusCode::NO_CONTENT
}
