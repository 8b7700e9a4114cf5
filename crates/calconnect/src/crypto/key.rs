//! Sealing keys: identifiers, key material, the text form `calconnect-key-v1:<key-id>:<base64url>`
//! and key generation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::fmt;
use zeroize::Zeroizing;

/// The prefix of a key in text form; the `v1` is the key format version.
pub const KEY_PREFIX: &str = "calconnect-key-v1";

/// Length of a key identifier, in bytes, at most. It is written into every sealed blob.
pub const MAX_KEY_ID_LEN: usize = 64;

/// The name of a sealing key. Written in clear into every blob it seals, so that the right key
/// can be found when opening and key rotation can tell which rows still use an old key.
///
/// 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parses a key id.
    ///
    /// # Errors
    /// [`KeyError::InvalidKeyId`] when empty, too long or with other characters.
    pub fn new(id: &str) -> Result<Self, KeyError> {
        let ok = !id.is_empty()
            && id.len() <= MAX_KEY_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(KeyError::InvalidKeyId {
                id: id.chars().take(MAX_KEY_ID_LEN).collect(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit XChaCha20-Poly1305 key with its id. `Debug` shows the id only.
pub struct SealingKey {
    id: KeyId,
    material: SecretBox<[u8; 32]>,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("material", &"[redacted]")
            .finish()
    }
}

/// Why a key could not be parsed or generated. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key id is not acceptable.
    #[error(
        "invalid key id `{id}`: use 1 to 64 characters from A-Z a-z 0-9 . _ - (for example `key-2026-01`)"
    )]
    InvalidKeyId {
        /// The offending id (truncated).
        id: String,
    },
    /// The text does not start with the expected prefix or has the wrong shape.
    #[error(
        "not a calconnect key: expected `{KEY_PREFIX}:<key-id>:<base64url of 32 bytes>`; generate one with `calconnect keys generate`"
    )]
    BadFormat,
    /// The key material is not 32 bytes of unpadded base64url.
    #[error(
        "key `{id}`: the key material is not 32 bytes of base64url (no padding); generate a new key with `calconnect keys generate`"
    )]
    BadMaterial {
        /// Id of the key whose material is bad.
        id: KeyId,
    },
}

impl SealingKey {
    /// Builds a key from its id and raw material.
    pub fn from_parts(id: KeyId, material: [u8; 32]) -> Self {
        Self {
            id,
            material: SecretBox::new(Box::new(material)),
        }
    }

    /// Generates a fresh random key.
    pub fn generate(id: KeyId, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut material = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(material.as_mut());
        Self::from_parts(id, *material)
    }

    /// Parses `calconnect-key-v1:<key-id>:<base64url 32 bytes>` (surrounding spaces ignored).
    ///
    /// # Errors
    /// [`KeyError`], naming the key id once it is known; never the material.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut parts = text.trim().splitn(3, ':');
        let (Some(prefix), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::BadFormat);
        };
        if prefix != KEY_PREFIX {
            return Err(KeyError::BadFormat);
        }
        let id = KeyId::new(id)?;
        let decoded = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(material.as_bytes())
                .map_err(|_| KeyError::BadMaterial { id: id.clone() })?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadMaterial { id: id.clone() })?;
        Ok(Self::from_parts(id, bytes))
    }

    /// The key in text form, for a key file or the `CALCONNECT_KEYS` variable.
    pub fn to_text(&self) -> SecretString {
        let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(self.material.expose_secret()));
        SecretString::from(format!("{KEY_PREFIX}:{}:{}", self.id, encoded.as_str()))
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub(crate) fn material(&self) -> &[u8; 32] {
        self.material.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn text_form_round_trips_and_debug_hides_material() {
        let key = SealingKey::generate(KeyId::new("k1").unwrap(), &mut OsRng);
        let text = key.to_text();
        assert!(text.expose_secret().starts_with("calconnect-key-v1:k1:"));
        let back = SealingKey::parse(text.expose_secret()).unwrap();
        assert_eq!(back.material(), key.material());
        let material = text.expose_secret().rsplit(':').next().unwrap().to_owned();
        let debug = format!("{key:?}");
        assert!(debug.contains("k1") && debug.contains("[redacted]"));
        assert!(!debug.contains(&material));
    }

    #[test]
    fn parse_errors_name_the_key_but_not_the_material() {
        let err = SealingKey::parse("calconnect-key-v1:prod-1:c2hvcnQ").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("prod-1"), "{msg}");
        assert!(!msg.contains("c2hvcnQ"), "{msg}");
        assert!(matches!(
            SealingKey::parse("nope:x:y"),
            Err(KeyError::BadFormat)
        ));
        assert!(matches!(
            SealingKey::parse("calconnect-key-v1:bad id:AAAA"),
            Err(KeyError::InvalidKeyId { .. })
        ));
    }
}
