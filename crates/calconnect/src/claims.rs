//! Reading Cal.com's JWT claims (docs/calcom.md §3.6) **without verifying them**.
//!
//! # Security
//! The signature cannot be checked (HS256 with the server's secret), so the claims are a hint:
//! used only to learn which Cal.com user or team a token belongs to (so one user gets one
//! connection per client, docs/architecture.md §3.4) and, if `expires_in` is missing, when it expires.
//! Never use them for an authorization decision; `GET /v2/me` is the authority.

use crate::store::CalOwner;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use time::OffsetDateTime;

/// Longest token whose claims are read.
const MAX_TOKEN_CHARS: usize = 16 * 1024;

/// The claims calconnect reads from a Cal.com token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnverifiedClaims {
    /// `userId` / `teamId` (a team selected at consent: `teamId` set, `userId` null;
    /// docs/calcom.md §3.7).
    pub identity: Option<CalOwner>,
    /// `clientId`.
    pub client_id: Option<String>,
    /// `exp`.
    pub expires_at: Option<OffsetDateTime>,
    /// `scope` (an array of scope names).
    pub scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    user_id: Option<serde_json::Value>,
    #[serde(default)]
    team_id: Option<serde_json::Value>,
    #[serde(default)]
    client_id: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<serde_json::Value>,
}

/// The payload of a JWT-shaped token (three dot-separated parts, a JSON object in the middle),
/// **unverified**; `None` for an opaque token or anything else.
pub(crate) fn unverified_payload(
    token: &str,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    if token.len() > MAX_TOKEN_CHARS {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    // An object only (serde would also read a struct from a JSON array).
    serde_json::from_slice(&bytes).ok()
}

/// Reads the claims of a JWT-shaped token; `None` for an opaque token (any other provider).
pub fn read_unverified_claims(token: &str) -> Option<UnverifiedClaims> {
    let object = unverified_payload(token)?;
    let raw: Raw = serde_json::from_value(serde_json::Value::Object(object)).ok()?;
    let id = |v: &Option<serde_json::Value>| v.as_ref().and_then(as_i64);
    let identity = match (id(&raw.user_id), id(&raw.team_id)) {
        (Some(user), _) => Some(CalOwner::User(user)),
        (None, Some(team)) => Some(CalOwner::Team(team)),
        (None, None) => None,
    };
    let client_id = raw.client_id.and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let expires_at = raw
        .exp
        .as_ref()
        .and_then(as_i64)
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
    let scopes = raw.scope.and_then(|v| match v {
        serde_json::Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        serde_json::Value::String(s) => Some(crate::token_response::split_scopes(&s)),
        _ => None,
    });
    Some(UnverifiedClaims {
        identity,
        client_id,
        expires_at,
        scopes,
    })
}

fn as_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn user_token() {
        let t = jwt(
            r#"{"userId":42,"teamId":null,"scope":["BOOKING_READ"],"token_type":"Access Token","clientId":"cid","iat":1,"exp":1801}"#,
        );
        let c = read_unverified_claims(&t).unwrap();
        assert_eq!(c.identity, Some(CalOwner::User(42)));
        assert_eq!(c.client_id.as_deref(), Some("cid"));
        assert_eq!(c.expires_at.unwrap().unix_timestamp(), 1801);
        assert_eq!(c.scopes.unwrap(), vec!["BOOKING_READ".to_owned()]);
    }

    #[test]
    fn team_token() {
        let t = jwt(r#"{"userId":null,"teamId":7,"clientId":"cid"}"#);
        assert_eq!(
            read_unverified_claims(&t).unwrap().identity,
            Some(CalOwner::Team(7))
        );
    }

    #[test]
    fn opaque_tokens_have_no_claims() {
        assert!(read_unverified_claims("opaque-token").is_none());
        assert!(read_unverified_claims("a.b.c").is_none());
        assert!(read_unverified_claims("a.b.c.d").is_none());
        assert!(read_unverified_claims(&jwt("[1]")).is_none());
    }
}
