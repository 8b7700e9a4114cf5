//! Sealing: tokens and PKCE verifiers are encrypted in the library, before anything reaches a
//! store, so stores only ever see [`SealedBlob`]s (docs/architecture.md §3.4).
//!
//! - XChaCha20-Poly1305 with a random 192-bit nonce per seal.
//! - Each blob carries a format version and the id of the key that sealed it.
//! - The record kind, record id and field name are the associated data: a blob copied to another
//!   row or field fails to open.
//! - A [`Keyring`] holds one active key (seals) and older keys (open only); rotating keys is
//!   [`crate::store::rotate_keys`].
//!
//! ```
//! use calconnect::crypto::{KeyId, Keyring, SealContext, SealedField, SealingKey};
//! use rand::rngs::OsRng;
//! use secrecy::{ExposeSecret, SecretString};
//!
//! let keyring = Keyring::new(vec![SealingKey::generate(KeyId::new("k1")?, &mut OsRng)])?;
//! let id = uuid::Uuid::new_v4();
//! let context = SealContext::connection(id, SealedField::AccessToken);
//! let blob = keyring.seal_secret(&mut OsRng, context, &SecretString::from("eyJ-token"))?;
//! assert_eq!(blob.key_id()?.as_str(), "k1");
//! assert_eq!(keyring.open_string(&blob, context)?.expose_secret(), "eyJ-token");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blob;
mod key;
mod keyring;
#[cfg(test)]
mod tests;

pub use blob::{BLOB_VERSION, BlobFormatError, RecordKind, SealContext, SealedBlob, SealedField};
pub use key::{KEY_PREFIX, KeyError, KeyId, MAX_KEY_ID_LEN, SealingKey};
pub use keyring::{KEYS_ENV, Keyring, KeyringError, OpenError, ResealError, SealError};
