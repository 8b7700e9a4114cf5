//! Sealing and saving a freshly authorized connection, keeping one connection per Cal.com
//! identity (docs/calcom.md §3.4: one live refresh token per client and user or team).

use super::types::{CalIdentity, ConnectionId, EndUserId, NewConnection, UpsertOutcome};
use super::{ConnectionStore, StoreError};
use crate::crypto::{Keyring, SealContext, SealError, SealedField};
use rand::{CryptoRng, RngCore};
use secrecy::SecretString;
use time::OffsetDateTime;

/// Plaintext tokens of a new authorization, to be sealed and saved.
#[derive(Debug)]
pub struct TokensToSave {
    /// The application's end user.
    pub end_user: EndUserId,
    /// Cal.com identity the tokens belong to.
    pub identity: CalIdentity,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Access token.
    pub access_token: SecretString,
    /// Refresh token.
    pub refresh_token: Option<SecretString>,
    /// Absolute access expiry.
    pub access_expires_at: Option<OffsetDateTime>,
    /// Estimated refresh-token expiry.
    pub refresh_expires_at_estimate: Option<OffsetDateTime>,
    /// The account's profile, if it was asked for (`GET /v2/me`).
    pub profile: Option<super::AccountProfile>,
}

/// Why saving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Seals the tokens for the right connection id (the existing connection of this identity, or a
/// new one) and upserts. If another callback created the identity's connection in between, seals
/// again for that id and retries.
///
/// # Errors
/// [`SaveError`].
pub async fn save_connection(
    store: &dyn ConnectionStore,
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng + Send),
    tokens: TokensToSave,
) -> Result<UpsertOutcome, SaveError> {
    let mut id = match store.find_by_identity(&tokens.identity).await? {
        Some(c) => c.id,
        None => ConnectionId::random(rng),
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let seal = |rng: &mut _, field, value: &SecretString| {
            keyring.seal_secret(rng, SealContext::connection(id.as_uuid(), field), value)
        };
        let access_token = seal(rng, SealedField::AccessToken, &tokens.access_token)?;
        let refresh_token = match &tokens.refresh_token {
            Some(t) => Some(seal(rng, SealedField::RefreshToken, t)?),
            None => None,
        };
        let new = NewConnection {
            id,
            end_user: tokens.end_user.clone(),
            identity: tokens.identity.clone(),
            scopes: tokens.scopes.clone(),
            access_token,
            refresh_token,
            access_expires_at: tokens.access_expires_at,
            refresh_expires_at_estimate: tokens.refresh_expires_at_estimate,
            profile: tokens.profile.clone(),
        };
        match store.upsert_connection(new).await {
            Err(StoreError::IdentityConflict { existing }) if attempts < 3 => id = existing,
            other => return Ok(other?),
        }
    }
}
