//! `POST /webhooks/calconnect`: the example app's webhook receiver. Checks the broker's
//! `calconnect-signature` (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one `v1` per
//! secret the broker signs with) the way the README's "Webhooks" section tells a receiver to:
//! some `v1` must match the app's secret, and `t` must be within five minutes of now. Keeps the
//! last events in memory for the home page; answers 204, or 401 when the check fails.

use super::AppCtx;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use calconnect::Clock as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

/// How far `t` may be from now, either way. An older delivery may be a recorded one played
/// again; the broker signs each attempt anew, so a retry always carries a fresh `t`.
const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No `t=` (or no header at all).
    NoTimestamp,
    /// `t` is more than five minutes from now.
    Stale,
    /// No `v1=` matches the app's secret.
    NoMatch,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Self::NoTimestamp => "no timestamp",
            Self::Stale => "timestamp more than five minutes away",
            Self::NoMatch => "no signature matches",
        }
    }
}

/// Checks the header `signature` of `body` against `secret` at unix time `now`.
pub(crate) fn verify(
    secret: &SecretString,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in signature.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let t = t.ok_or(Refused::NoTimestamp)?;
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(Refused::Stale);
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return Err(Refused::NoMatch); // HMAC takes keys of any length
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    if candidates
        .iter()
        .any(|c| mac.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(Refused::NoMatch)
    }
}

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
    let now = ctx.clock.now().unix_timestamp();
    if let Err(why) = verify(
        &ctx.webhook_secret,
        &header("calconnect-signature"),
        &body,
        now,
    ) {
        tracing::info!(reason = why.as_str(), "webhook refused");
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn v1(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn one_matching_v1_within_five_minutes() {
        let ours = SecretString::from("our-secret-0123456789");
        let body = br#"{"type":"connection.created"}"#;
        let check = |header: &str, now: i64| verify(&ours, header, body, now);
        let good = v1("our-secret-0123456789", NOW, body);
        let other = v1("their-secret-0123456789", NOW, body);
        assert_eq!(check(&format!("t={NOW},v1={good}"), NOW), Ok(()));
        // During a rotation the broker signs with both; either position works.
        assert_eq!(check(&format!("t={NOW},v1={other},v1={good}"), NOW), Ok(()));
        assert_eq!(check(&format!("t={NOW},v1={good},v1={other}"), NOW), Ok(()));
        assert_eq!(
            check(&format!("t={NOW},v1={other}"), NOW),
            Err(Refused::NoMatch)
        );
        assert_eq!(check(&format!("t={NOW}"), NOW), Err(Refused::NoMatch));
        assert_eq!(check(&format!("v1={good}"), NOW), Err(Refused::NoTimestamp));
        assert_eq!(check("", NOW), Err(Refused::NoTimestamp));
        // Five minutes either way, not a second more.
        assert_eq!(check(&format!("t={NOW},v1={good}"), NOW + 300), Ok(()));
        assert_eq!(check(&format!("t={NOW},v1={good}"), NOW - 300), Ok(()));
        assert_eq!(
            check(&format!("t={NOW},v1={good}"), NOW + 301),
            Err(Refused::Stale)
        );
        assert_eq!(
            check(&format!("t={NOW},v1={good}"), NOW - 301),
            Err(Refused::Stale)
        );
        // The timestamp is signed: moving it forward breaks the signature.
        let later = NOW + 200;
        assert_eq!(
            check(&format!("t={later},v1={good}"), later),
            Err(Refused::NoMatch)
        );
        // Another body.
        assert_eq!(
            verify(&ours, &format!("t={NOW},v1={good}"), b"{}", NOW),
            Err(Refused::NoMatch)
        );
    }
}
