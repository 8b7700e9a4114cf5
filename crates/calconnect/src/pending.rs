//! The pending authorization: what a started flow must remember until its callback arrives
//! (docs/architecture.md §3.1–§3.2). Single use, 10-minute lifetime.
//!
//! # Security
//! It holds the PKCE verifier and the state in clear inside a `secrecy` box. To persist it, call
//! [`PendingAuthorization::to_sealable_bytes`] and **seal the bytes** (the crate's AEAD sealing)
//! before they reach any store, cookie or log; never store them in clear.

use crate::callback::{Callback, CallbackError, VerifiedCallback};
use crate::client::RedirectUri;
use crate::clock::Clock;
use crate::pkce::PkceVerifier;
use crate::secret::ct_eq_str;
use crate::store::StateKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{CryptoRng, RngCore};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::{Duration, OffsetDateTime};

/// How long a pending authorization stays usable: as long as Cal.com's codes (docs/calcom.md §2).
pub const PENDING_AUTHORIZATION_TTL: Duration = Duration::minutes(10);

/// Random bytes in a `state`: 256 bits (the issue asks for at least 128).
const STATE_BYTES: usize = 32;

/// Format version of [`PendingAuthorization::to_sealable_bytes`]. Version 1 always had a
/// verifier; version 2 has none when the client policy sends no PKCE. Both are read.
const FORMAT_VERSION: u8 = 2;

/// The `state` parameter. Single use: not `Clone`.
pub(crate) struct State(SecretString);

impl State {
    pub(crate) fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut bytes = [0u8; STATE_BYTES];
        rng.fill_bytes(&mut bytes);
        let state = Self(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)));
        bytes.zeroize();
        state
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A started, not yet finished, authorization. Consumed by [`PendingAuthorization::verify`].
pub struct PendingAuthorization {
    pub(crate) state: State,
    /// The PKCE verifier, when the authorize URL carried a challenge.
    pub(crate) verifier: Option<PkceVerifier>,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: RedirectUri,
    pub(crate) issuer: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) expires_at: OffsetDateTime,
}

impl PendingAuthorization {
    /// The key under which to store this pending authorization: a digest of the state (see
    /// [`StateKey`]), the same as [`Callback::state_key`] gives for its callback.
    pub fn state_key(&self) -> StateKey {
        StateKey::of(&self.state.0)
    }

    /// When it stops being usable.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// When the flow started.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// Checks `callback` against this pending authorization and consumes it.
    ///
    /// In order: the state must be present and equal (constant-time comparison); `iss` must equal
    /// the profile's issuer when the profile names one (RFC 9207); the authorization must not have
    /// expired; then a provider error becomes its typed error, and a success must carry a code.
    ///
    /// # Errors
    /// One [`CallbackError`] variant per cause; `AccessDenied` when the user said no.
    pub fn verify(
        self,
        callback: Callback,
        clock: &dyn Clock,
    ) -> Result<VerifiedCallback, CallbackError> {
        let Some(state) = callback.state.as_ref() else {
            return Err(CallbackError::MissingState);
        };
        if !ct_eq_str(state.expose_secret(), self.state.expose()) {
            return Err(CallbackError::StateMismatch);
        }
        if let Some(expected) = &self.issuer {
            match &callback.iss {
                None => return Err(CallbackError::MissingIssuer),
                Some(got) if got != expected => {
                    return Err(CallbackError::IssuerMismatch {
                        got: crate::callback::sanitize(got),
                    });
                }
                Some(_) => {}
            }
        }
        if clock.now() >= self.expires_at {
            return Err(CallbackError::Expired {
                expired_at: self.expires_at,
            });
        }
        if let Some(error) = callback.error {
            return Err(CallbackError::from_provider(error));
        }
        let Some(code) = callback.code else {
            return Err(CallbackError::MissingCode);
        };
        Ok(VerifiedCallback {
            code,
            verifier: self.verifier,
            client_id: self.client_id,
            redirect_uri: self.redirect_uri,
        })
    }

    /// Serialises this pending authorization (versioned JSON) for persistence.
    ///
    /// # Security
    /// The bytes contain the PKCE verifier and the state in clear: **seal them** (AEAD) before
    /// storing them anywhere, and drop them right after.
    pub fn to_sealable_bytes(&self) -> SecretSlice<u8> {
        let persisted = Persisted {
            v: FORMAT_VERSION,
            state: self.state.expose(),
            verifier: self.verifier.as_ref().map(PkceVerifier::expose),
            client_id: &self.client_id,
            redirect_uri: self.redirect_uri.as_str(),
            issuer: self.issuer.as_deref(),
            created_at: self.created_at.unix_timestamp(),
            expires_at: self.expires_at.unix_timestamp(),
        };
        let mut json = serde_json::to_vec(&persisted).unwrap_or_default();
        // Copy into an exactly-sized buffer so that no spare capacity escapes zeroization.
        let exact: Vec<u8> = json.as_slice().to_vec();
        json.zeroize();
        SecretSlice::from(exact)
    }

    /// Restores a pending authorization from [`Self::to_sealable_bytes`] output (after unsealing).
    ///
    /// # Errors
    /// [`PendingDecodeError`] when the bytes are not a pending authorization of a known version.
    pub fn from_unsealed_bytes(bytes: &SecretSlice<u8>) -> Result<Self, PendingDecodeError> {
        let owned: Owned = serde_json::from_slice(bytes.expose_secret())
            .map_err(|_| PendingDecodeError::Malformed)?;
        match (owned.v, &owned.verifier) {
            (1, Some(_)) | (FORMAT_VERSION, _) => {}
            (1, None) => return Err(PendingDecodeError::Malformed),
            (version, _) => return Err(PendingDecodeError::UnsupportedVersion { version }),
        }
        let time =
            |t| OffsetDateTime::from_unix_timestamp(t).map_err(|_| PendingDecodeError::Malformed);
        Ok(Self {
            state: State(SecretString::from(owned.state)),
            verifier: owned.verifier.map(PkceVerifier::from_persisted),
            client_id: owned.client_id,
            redirect_uri: RedirectUri::parse(&owned.redirect_uri)
                .map_err(|_| PendingDecodeError::Malformed)?,
            issuer: owned.issuer,
            created_at: time(owned.created_at)?,
            expires_at: time(owned.expires_at)?,
        })
    }
}

#[derive(Serialize)]
struct Persisted<'a> {
    v: u8,
    state: &'a str,
    verifier: Option<&'a str>,
    client_id: &'a str,
    redirect_uri: &'a str,
    issuer: Option<&'a str>,
    created_at: i64,
    expires_at: i64,
}

#[derive(Deserialize)]
struct Owned {
    v: u8,
    state: String,
    #[serde(default)]
    verifier: Option<String>,
    client_id: String,
    redirect_uri: String,
    issuer: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("state", &"[redacted]")
            .field("verifier", &self.verifier)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Persisted pending-authorization bytes could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PendingDecodeError {
    /// Not a pending authorization.
    #[error("the stored connection attempt is unreadable: start the connection again")]
    Malformed,
    /// Written by an incompatible version.
    #[error(
        "the stored connection attempt has format version {version}, which this version cannot read: start the connection again"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;

    fn pending(clock: &MockClock) -> PendingAuthorization {
        let mut rng = rand::rngs::OsRng;
        PendingAuthorization {
            state: State::generate(&mut rng),
            verifier: Some(PkceVerifier::generate(&mut rng)),
            client_id: "cid".into(),
            redirect_uri: RedirectUri::parse("https://app.example/cb").unwrap(),
            issuer: None,
            created_at: clock.now(),
            expires_at: clock.now() + PENDING_AUTHORIZATION_TTL,
        }
    }

    fn clock() -> MockClock {
        MockClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap())
    }

    fn callback_for(p: &PendingAuthorization, rest: &str) -> Callback {
        Callback::parse(&format!("state={}&{rest}", p.state.expose())).unwrap()
    }

    #[test]
    fn state_is_256_bits() {
        let s = State::generate(&mut rand::rngs::OsRng);
        assert_eq!(URL_SAFE_NO_PAD.decode(s.expose()).unwrap().len(), 32);
    }

    #[test]
    fn verify_success_yields_code_and_verifier() {
        let clock = clock();
        let p = pending(&clock);
        let verifier = p.verifier.as_ref().unwrap().expose().to_owned();
        let cb = callback_for(&p, "code=the-code");
        let verified = p.verify(cb, &clock).unwrap();
        assert_eq!(verified.code.expose(), "the-code");
        assert_eq!(verified.verifier.unwrap().expose(), verifier);
    }

    #[test]
    fn each_failure_is_distinct() {
        let clock = clock();
        let p = pending(&clock);
        assert_eq!(
            p.verify(Callback::parse("code=c").unwrap(), &clock)
                .unwrap_err(),
            CallbackError::MissingState
        );
        let p = pending(&clock);
        assert_eq!(
            p.verify(Callback::parse("code=c&state=forged").unwrap(), &clock)
                .unwrap_err(),
            CallbackError::StateMismatch
        );
        let p = pending(&clock);
        let cb = callback_for(&p, "code=c");
        clock.advance(Duration::minutes(10));
        assert!(matches!(
            p.verify(cb, &clock).unwrap_err(),
            CallbackError::Expired { .. }
        ));
        let clock = self::clock();
        let p = pending(&clock);
        let cb = callback_for(&p, "");
        assert_eq!(
            p.verify(cb, &clock).unwrap_err(),
            CallbackError::MissingCode
        );
        let p = pending(&clock);
        let cb = callback_for(&p, "error=access_denied");
        assert_eq!(
            p.verify(cb, &clock).unwrap_err(),
            CallbackError::AccessDenied { description: None }
        );
    }

    #[test]
    fn issuer_is_checked_when_configured() {
        let clock = clock();
        let mut p = pending(&clock);
        p.issuer = Some("http://127.0.0.1:5".into());
        let cb = callback_for(&p, "code=c");
        assert_eq!(
            p.verify(cb, &clock).unwrap_err(),
            CallbackError::MissingIssuer
        );
        let mut p = pending(&clock);
        p.issuer = Some("http://127.0.0.1:5".into());
        let cb = callback_for(&p, "code=c&iss=http%3A%2F%2Fevil");
        assert_eq!(
            p.verify(cb, &clock).unwrap_err(),
            CallbackError::IssuerMismatch {
                got: "http://evil".into()
            }
        );
        let mut p = pending(&clock);
        p.issuer = Some("http://127.0.0.1:5".into());
        let cb = callback_for(&p, "code=c&iss=http%3A%2F%2F127.0.0.1%3A5");
        assert!(p.verify(cb, &clock).is_ok());
    }

    #[test]
    fn round_trips_through_sealable_bytes() {
        let clock = clock();
        let p = pending(&clock);
        let key = p.state_key();
        let shown = format!("{p:?}");
        let verifier = p.verifier.as_ref().unwrap().expose();
        assert!(
            !shown.contains(p.state.expose()) && !shown.contains(verifier),
            "{shown}"
        );
        let bytes = p.to_sealable_bytes();
        assert_eq!(format!("{bytes:?}"), "SecretBox<[u8]>([REDACTED])");
        let back = PendingAuthorization::from_unsealed_bytes(&bytes).unwrap();
        assert_eq!(back.state_key(), key);
        assert_eq!(back.verifier.unwrap().expose(), verifier);
        assert_eq!(back.expires_at, p.expires_at);
        assert_eq!(
            PendingAuthorization::from_unsealed_bytes(&SecretSlice::from(b"{}".to_vec()))
                .unwrap_err(),
            PendingDecodeError::Malformed
        );
    }

    #[test]
    fn reads_version_1_and_a_pending_without_verifier() {
        let v1 = br#"{"v":1,"state":"S","verifier":"V","client_id":"cid","redirect_uri":"https://app.example/cb","issuer":null,"created_at":1800000000,"expires_at":1800000600}"#;
        let back =
            PendingAuthorization::from_unsealed_bytes(&SecretSlice::from(v1.to_vec())).unwrap();
        assert_eq!(back.verifier.unwrap().expose(), "V");
        let v1_without = br#"{"v":1,"state":"S","client_id":"cid","redirect_uri":"https://app.example/cb","created_at":1800000000,"expires_at":1800000600}"#;
        assert_eq!(
            PendingAuthorization::from_unsealed_bytes(&SecretSlice::from(v1_without.to_vec()))
                .unwrap_err(),
            PendingDecodeError::Malformed
        );
        let clock = clock();
        let mut p = pending(&clock);
        p.verifier = None;
        let back = PendingAuthorization::from_unsealed_bytes(&p.to_sealable_bytes()).unwrap();
        assert!(back.verifier.is_none());
        let v3 = br#"{"v":3,"state":"S","client_id":"cid","redirect_uri":"https://app.example/cb","created_at":1800000000,"expires_at":1800000600}"#;
        assert_eq!(
            PendingAuthorization::from_unsealed_bytes(&SecretSlice::from(v3.to_vec())).unwrap_err(),
            PendingDecodeError::UnsupportedVersion { version: 3 }
        );
    }
}
