//! The keyring: one active key that seals, older keys that still open. Loaded from the
//! `CALCONNECT_KEYS` environment variable (comma-separated, first is active) or a key file
//! (one key per line, first is active, `#` comments and blank lines ignored).

use super::blob::{self, NONCE_LEN, SealContext, SealedBlob};
use super::key::{KeyError, KeyId, SealingKey};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::path::{Path, PathBuf};

/// Name of the environment variable holding the keys.
pub const KEYS_ENV: &str = "CALCONNECT_KEYS";

/// A set of sealing keys. The first is active: it seals. All of them open.
#[derive(Debug)]
pub struct Keyring {
    active: SealingKey,
    older: Vec<SealingKey>,
}

/// Why a keyring could not be loaded. Names the entry (line or position) and, once parsed, the
/// key id; never the key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// No key at all.
    #[error(
        "no sealing key configured in {source_name}: set {KEYS_ENV} or a key file; generate a key with `calconnect keys generate`"
    )]
    Empty {
        /// Where the keys were read from.
        source_name: String,
    },
    /// One entry did not parse.
    #[error("{source_name}, {position}: {error}")]
    Entry {
        /// Where the keys were read from.
        source_name: String,
        /// "line 3" or "entry 2".
        position: String,
        /// What is wrong with it.
        #[source]
        error: KeyError,
    },
    /// Two entries share an id, so opening would be ambiguous.
    #[error("{source_name}: key id `{id}` appears twice; every key needs its own id")]
    DuplicateId {
        /// Where the keys were read from.
        source_name: String,
        /// The repeated id.
        id: KeyId,
    },
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Why sealing failed (practically never: the AEAD only fails on absurd lengths).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The cipher refused the input.
    #[error("sealing with key `{key_id}` failed")]
    Cipher {
        /// The active key.
        key_id: KeyId,
    },
}

/// Why a blob did not open. Names the key id; never shows plaintext or key material. Nothing is
/// overwritten when opening fails, so adding the right key back makes the data readable again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The blob is not in a format this build reads.
    #[error("cannot open {field}: {source}")]
    Format {
        /// The field being opened.
        field: &'static str,
        /// What is wrong with the header.
        #[source]
        source: blob::BlobFormatError,
    },
    /// The blob names a key that is not in the keyring.
    #[error(
        "cannot open {field}: it was sealed with key `{key_id}`, which is not in the keyring; add that key (as a non-active key) to {KEYS_ENV} or the key file"
    )]
    UnknownKey {
        /// The field being opened.
        field: &'static str,
        /// The key the blob names.
        key_id: KeyId,
    },
    /// Authentication failed: wrong material for this key id, or the blob was altered or moved
    /// to another row or field.
    #[error(
        "cannot open {field} with key `{key_id}`: the key material does not match the one that sealed it, or the value was altered or copied from another record"
    )]
    Authentication {
        /// The field being opened.
        field: &'static str,
        /// The key the blob names.
        key_id: KeyId,
    },
    /// The plaintext is not UTF-8 (only from [`Keyring::open_string`]).
    #[error("{field} opened but is not UTF-8 text")]
    NotText {
        /// The field being opened.
        field: &'static str,
    },
}

impl Keyring {
    /// Builds a keyring; `keys[0]` is active.
    ///
    /// # Errors
    /// [`KeyringError::Empty`] or [`KeyringError::DuplicateId`].
    pub fn new(keys: Vec<SealingKey>) -> Result<Self, KeyringError> {
        Self::checked(keys, "keyring")
    }

    fn checked(keys: Vec<SealingKey>, source_name: &str) -> Result<Self, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id() == key.id()) {
                return Err(KeyringError::DuplicateId {
                    source_name: source_name.to_owned(),
                    id: key.id().clone(),
                });
            }
        }
        let mut keys = keys.into_iter();
        match keys.next() {
            Some(active) => Ok(Self {
                active,
                older: keys.collect(),
            }),
            None => Err(KeyringError::Empty {
                source_name: source_name.to_owned(),
            }),
        }
    }

    fn keys(&self) -> impl Iterator<Item = &SealingKey> {
        std::iter::once(&self.active).chain(self.older.iter())
    }

    /// Parses the value of `CALCONNECT_KEYS`: keys separated by commas, the first active.
    ///
    /// # Errors
    /// [`KeyringError`] naming the entry position and key id.
    pub fn from_env_value(value: &SecretString) -> Result<Self, KeyringError> {
        let mut keys = Vec::new();
        for (i, entry) in value.expose_secret().split(',').enumerate() {
            if entry.trim().is_empty() {
                continue;
            }
            let key = SealingKey::parse(entry).map_err(|error| KeyringError::Entry {
                source_name: KEYS_ENV.to_owned(),
                position: format!("entry {}", i + 1),
                error,
            })?;
            keys.push(key);
        }
        Self::checked(keys, KEYS_ENV)
    }

    /// Reads `CALCONNECT_KEYS` from the process environment (read only).
    ///
    /// Returns `Ok(None)` when the variable is unset.
    ///
    /// # Errors
    /// As [`Self::from_env_value`].
    pub fn from_env() -> Result<Option<Self>, KeyringError> {
        match std::env::var(KEYS_ENV) {
            Ok(v) => Self::from_env_value(&SecretString::from(v)).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Parses the contents of a key file: one key per line, first active, `#` comments.
    ///
    /// # Errors
    /// [`KeyringError`] naming the line and key id.
    pub fn from_key_file_contents(
        contents: &SecretString,
        source_name: &str,
    ) -> Result<Self, KeyringError> {
        let mut keys = Vec::new();
        for (i, line) in contents.expose_secret().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = SealingKey::parse(line).map_err(|error| KeyringError::Entry {
                source_name: source_name.to_owned(),
                position: format!("line {}", i + 1),
                error,
            })?;
            keys.push(key);
        }
        Self::checked(keys, source_name)
    }

    /// Reads a key file. Warns (via `tracing`) when group or others can read it.
    ///
    /// # Errors
    /// [`KeyringError::File`] when unreadable, else as [`Self::from_key_file_contents`].
    pub fn from_key_file(path: &Path) -> Result<Self, KeyringError> {
        let contents = std::fs::read_to_string(path).map_err(|source| KeyringError::File {
            path: path.to_owned(),
            source,
        })?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "key file is readable by group or others; chmod 600 it");
            }
        }
        Self::from_key_file_contents(
            &SecretString::from(contents),
            &format!("key file {}", path.display()),
        )
    }

    /// The active key's id: what new seals carry.
    pub fn active_key_id(&self) -> &KeyId {
        self.active.id()
    }

    /// Ids of all keys, active first.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys().map(SealingKey::id)
    }

    /// Whether the keyring holds a key with this id.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys().any(|k| k.id() == id)
    }

    /// Seals `plaintext` with the active key under `context`, with a fresh random nonce.
    ///
    /// # Errors
    /// [`SealError`] (not expected in practice).
    pub fn seal(
        &self,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
        context: SealContext,
        plaintext: &[u8],
    ) -> Result<SealedBlob, SealError> {
        let key = &self.active;
        let header = blob::header_bytes(key.id());
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(key.material().into());
        let aad = context.aad(&header);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Cipher {
                key_id: key.id().clone(),
            })?;
        let mut out = header;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(SealedBlob::from_bytes(out))
    }

    /// Seals a secret string (a token or verifier).
    ///
    /// # Errors
    /// As [`Self::seal`].
    pub fn seal_secret(
        &self,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
        context: SealContext,
        plaintext: &SecretString,
    ) -> Result<SealedBlob, SealError> {
        self.seal(rng, context, plaintext.expose_secret().as_bytes())
    }

    /// Opens a blob sealed under `context` with whichever key it names.
    ///
    /// # Errors
    /// [`OpenError`] naming the key id.
    pub fn open(
        &self,
        sealed: &SealedBlob,
        context: SealContext,
    ) -> Result<SecretBox<[u8]>, OpenError> {
        let field = context.field().as_str();
        let (key_id, header_len) = sealed
            .header()
            .map_err(|source| OpenError::Format { field, source })?;
        let Some(key) = self.keys().find(|k| *k.id() == key_id) else {
            return Err(OpenError::UnknownKey { field, key_id });
        };
        let bytes = sealed.as_bytes();
        let (header, rest) = bytes.split_at(header_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(key.material().into());
        let aad = context.aad(header);
        let plaintext = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Authentication { field, key_id })?;
        Ok(SecretBox::from(plaintext))
    }

    /// Opens a blob holding UTF-8 text (tokens, verifiers).
    ///
    /// # Errors
    /// As [`Self::open`], or [`OpenError::NotText`].
    pub fn open_string(
        &self,
        sealed: &SealedBlob,
        context: SealContext,
    ) -> Result<SecretString, OpenError> {
        let bytes = self.open(sealed, context)?;
        let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| OpenError::NotText {
            field: context.field().as_str(),
        })?;
        Ok(SecretString::from(text))
    }

    /// Seals again with the active key whatever was sealed with another key. Returns `None` when
    /// the blob already uses the active key.
    ///
    /// # Errors
    /// [`OpenError`] if the old key is missing or wrong (nothing is changed then), or a
    /// [`SealError`] wrapped as [`ResealError::Seal`].
    pub fn reseal(
        &self,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
        sealed: &SealedBlob,
        context: SealContext,
    ) -> Result<Option<SealedBlob>, ResealError> {
        let field = context.field().as_str();
        let key_id = sealed
            .key_id()
            .map_err(|source| OpenError::Format { field, source })?;
        if key_id == *self.active_key_id() {
            return Ok(None);
        }
        let plaintext = self.open(sealed, context)?;
        Ok(Some(self.seal(rng, context, plaintext.expose_secret())?))
    }
}

/// Why re-sealing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResealError {
    /// Opening with the old key failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Sealing with the active key failed.
    #[error(transparent)]
    Seal(#[from] SealError),
}
