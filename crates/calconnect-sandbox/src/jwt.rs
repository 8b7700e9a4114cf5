//! HS256 JWTs with Cal.com's third-party token claims (`docs/calcom.md` §3.6), written by hand
//! so the sandbox shares no code with the client it tests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// `token_type` claim of an access token.
pub const ACCESS_TOKEN_TYPE: &str = "Access Token";
/// `token_type` claim of a refresh token.
pub const REFRESH_TOKEN_TYPE: &str = "Refresh Token";

/// Claims of Cal.com's access and refresh tokens, field names as Cal.com writes them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub user_id: Option<i64>,
    pub team_id: Option<i64>,
    pub scope: Vec<String>,
    #[serde(rename = "token_type")]
    pub token_type: String,
    pub client_id: String,
    /// Refresh tokens only: the secret also stored in `OAuthRefreshToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("invalid signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

/// Signs `claims` with HS256 (`{"alg":"HS256","typ":"JWT"}`, as jsonwebtoken does by default).
pub fn sign(claims: &Claims, key: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(mac(key, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Verifies signature and expiry (`exp` must be after `now_unix`, as jsonwebtoken checks it,
/// without leeway).
///
/// # Errors
/// [`JwtError`] for a token that does not parse, is not signed with `key`, or has expired.
pub fn verify(token: &str, key: &[u8], now_unix: i64) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let mut m = HmacSha256::new_from_slice(key).map_err(|_| JwtError::BadSignature)?;
    m.update(header.as_bytes());
    m.update(b".");
    m.update(payload.as_bytes());
    m.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwtError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
    if claims.exp <= now_unix {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            user_id: Some(1),
            team_id: None,
            scope: vec!["PROFILE_READ".into()],
            token_type: ACCESS_TOKEN_TYPE.into(),
            client_id: "c".into(),
            secret: None,
            code_challenge: None,
            code_challenge_method: None,
            iat: 100,
            exp,
        }
    }

    #[test]
    fn sign_then_verify() {
        let t = sign(&claims(2000), b"k");
        assert_eq!(verify(&t, b"k", 1000).unwrap(), claims(2000));
        assert_eq!(verify(&t, b"other", 1000), Err(JwtError::BadSignature));
        assert_eq!(verify(&t, b"k", 2000), Err(JwtError::Expired));
        assert_eq!(verify("a.b", b"k", 0), Err(JwtError::Malformed));
    }

    #[test]
    fn claim_names_match_cal_com() {
        let t = sign(&claims(2000), b"k");
        let payload = t.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"userId":1,"teamId":null,"scope":["PROFILE_READ"],
                "token_type":"Access Token","clientId":"c","iat":100,"exp":2000})
        );
    }
}
