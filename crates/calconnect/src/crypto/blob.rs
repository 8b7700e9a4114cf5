//! The sealed-blob format and the associated data that binds a blob to its row and field.
//!
//! ```text
//! blob = version (1 byte, 0x01) | key-id length (1 byte) | key id (ASCII) | nonce (24 bytes)
//!        | XChaCha20-Poly1305 ciphertext + tag (16 bytes)
//! aad  = "calconnect-seal" | version | key-id length | key id | record kind | 0x00
//!        | record id (16 bytes) | field name
//! ```
//!
//! The header (version and key id) is part of the associated data, so it cannot be altered
//! without the blob failing to open; the record kind, record id and field name are too, so a
//! blob copied to another row or another column fails to open.

use super::key::{KeyId, MAX_KEY_ID_LEN};
use std::fmt;
use uuid::Uuid;

/// The current blob format version.
pub const BLOB_VERSION: u8 = 1;
pub(crate) const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;

/// An encrypted value as stores keep it. Not secret (it is ciphertext), but also not useful
/// without the keyring. `Debug` shows the key id and length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBlob(Vec<u8>);

impl SealedBlob {
    /// Wraps bytes read from a store. They are checked only when opened (or by [`Self::key_id`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for writing to a store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the blob into its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The id of the key that sealed this blob, read from its header.
    ///
    /// # Errors
    /// [`BlobFormatError`] when the header is not a supported blob header.
    pub fn key_id(&self) -> Result<KeyId, BlobFormatError> {
        Ok(self.header()?.0)
    }

    /// Splits into (key id, header length). Checks version and overall length.
    pub(crate) fn header(&self) -> Result<(KeyId, usize), BlobFormatError> {
        let bytes = &self.0;
        let (&version, rest) = bytes.split_first().ok_or(BlobFormatError::TooShort)?;
        if version != BLOB_VERSION {
            return Err(BlobFormatError::UnsupportedVersion { version });
        }
        let (&id_len, rest) = rest.split_first().ok_or(BlobFormatError::TooShort)?;
        let id_len = usize::from(id_len);
        if id_len == 0 || id_len > MAX_KEY_ID_LEN {
            return Err(BlobFormatError::BadKeyId);
        }
        let id_bytes = rest.get(..id_len).ok_or(BlobFormatError::TooShort)?;
        let id = std::str::from_utf8(id_bytes)
            .ok()
            .and_then(|s| KeyId::new(s).ok())
            .ok_or(BlobFormatError::BadKeyId)?;
        let header_len = 2 + id_len;
        if bytes.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(BlobFormatError::TooShort);
        }
        Ok((id, header_len))
    }
}

impl fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self
            .key_id()
            .map_or_else(|_| "?".to_owned(), |k| k.to_string());
        write!(f, "SealedBlob(key={key}, {} bytes)", self.0.len())
    }
}

/// The header of a blob is not one this version of calconnect can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobFormatError {
    /// Shorter than header + nonce + tag.
    #[error("sealed blob is truncated")]
    TooShort,
    /// Unknown format version.
    #[error(
        "sealed blob has format version {version}, this build reads version {BLOB_VERSION}; upgrade calconnect"
    )]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The key id in the header is not a valid key id.
    #[error("sealed blob header has an invalid key id")]
    BadKeyId,
}

/// What kind of record a sealed value belongs to (part of the associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// A stored connection.
    Connection,
    /// A pending authorization.
    PendingAuthorization,
    /// A client's saved settings (the command line's provider profiles).
    ClientProfile,
}

impl RecordKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::PendingAuthorization => "pending_authorization",
            Self::ClientProfile => "client_profile",
        }
    }
}

/// Which field a sealed value is stored in (part of the associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealedField {
    /// `connections.access_token`.
    AccessToken,
    /// `connections.refresh_token`.
    RefreshToken,
    /// `pending_authorizations.pkce_verifier`.
    PkceVerifier,
    /// A client profile's client secret.
    ClientSecret,
}

impl SealedField {
    /// The field name as bound into the associated data.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::PkceVerifier => "pkce_verifier",
            Self::ClientSecret => "client_secret",
        }
    }
}

/// Where a sealed value lives: record kind, record id and field. Sealing and opening must use
/// the same context, so a blob moved elsewhere does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext {
    kind: RecordKind,
    id: Uuid,
    field: SealedField,
}

impl SealContext {
    /// A field of a connection.
    pub fn connection(id: Uuid, field: SealedField) -> Self {
        Self {
            kind: RecordKind::Connection,
            id,
            field,
        }
    }

    /// The PKCE verifier of a pending authorization.
    pub fn pending_verifier(id: Uuid) -> Self {
        Self {
            kind: RecordKind::PendingAuthorization,
            id,
            field: SealedField::PkceVerifier,
        }
    }

    /// The client secret of a saved client profile `id` (outside any store: the command line
    /// keeps it sealed in its own files).
    pub fn client_secret(id: Uuid) -> Self {
        Self {
            kind: RecordKind::ClientProfile,
            id,
            field: SealedField::ClientSecret,
        }
    }

    /// The field.
    pub fn field(&self) -> SealedField {
        self.field
    }

    /// The record id.
    pub fn record_id(&self) -> Uuid {
        self.id
    }

    pub(crate) fn aad(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(96);
        aad.extend_from_slice(b"calconnect-seal");
        aad.extend_from_slice(header);
        aad.extend_from_slice(self.kind.as_str().as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.id.as_bytes());
        aad.extend_from_slice(self.field.as_str().as_bytes());
        aad
    }
}

pub(crate) fn header_bytes(key_id: &KeyId) -> Vec<u8> {
    let id = key_id.as_str().as_bytes();
    let mut header = Vec::with_capacity(2 + id.len());
    header.push(BLOB_VERSION);
    // KeyId guarantees 1..=64 bytes, so the length fits in one byte.
    header.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    header.extend_from_slice(id);
    header
}
