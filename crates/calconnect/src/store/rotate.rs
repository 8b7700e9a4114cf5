//! Online key rotation: re-seal every row not sealed with the active key, in batches, while the
//! service runs. Writes are fenced on the connection version and do not bump it, so a concurrent
//! refresh is never lost: if a token write lands first, the re-seal sees the new version, re-reads
//! the row and re-seals the new tokens.

use super::types::Connection;
use super::{ConnectionStore, StoreError};
use crate::crypto::{Keyring, ResealError, SealContext, SealedBlob, SealedField};
use rand::{CryptoRng, RngCore};
use uuid::Uuid;

/// How far a rotation has come. Passed to the progress callback after every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationProgress {
    /// Connections at the start.
    pub connections_total: u64,
    /// Connections looked at.
    pub connections_scanned: u64,
    /// Connections re-sealed.
    pub connections_resealed: u64,
    /// Re-seals retried because a token write came in between.
    pub conflicts_retried: u64,
    /// Pending authorizations re-sealed.
    pub pending_resealed: u64,
}

/// Why a rotation stopped. Nothing already written is lost; run it again after fixing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A row could not be opened (its key is missing or wrong). It is left untouched.
    #[error("record {record}: {source}")]
    Reseal {
        /// The connection or pending authorization id.
        record: Uuid,
        /// Why.
        #[source]
        source: ResealError,
    },
    /// A connection kept changing under the rotation.
    #[error("connection {0} changed on every attempt; run the rotation again")]
    TooManyConflicts(Uuid),
}

const MAX_ATTEMPTS: u32 = 20;

/// Re-seals with the active key every connection and pending authorization sealed with another
/// key, `batch_size` rows at a time, calling `progress` after each batch. When it returns `Ok`,
/// old keys can be removed from the keyring.
///
/// # Errors
/// [`RotationError`]; rows done so far stay done.
pub async fn rotate_keys(
    store: &dyn ConnectionStore,
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng + Send),
    batch_size: u32,
    progress: &mut (dyn FnMut(&RotationProgress) + Send),
) -> Result<RotationProgress, RotationError> {
    let batch_size = batch_size.max(1);
    let mut state = RotationProgress {
        connections_total: store.count_connections().await?,
        ..RotationProgress::default()
    };
    let mut after = None;
    loop {
        let batch = store.list_connections(after, batch_size).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        for connection in batch {
            state.connections_scanned += 1;
            reseal_connection(store, keyring, rng, connection, &mut state).await?;
        }
        progress(&state);
    }
    let mut after = None;
    loop {
        let batch = store.list_pending(after, batch_size).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        for pending in batch {
            let context = SealContext::pending_verifier(pending.id.as_uuid());
            let resealed = keyring
                .reseal(rng, &pending.pkce_verifier, context)
                .map_err(|source| RotationError::Reseal {
                    record: pending.id.as_uuid(),
                    source,
                })?;
            if let Some(resealed) = resealed {
                // `false` means it was consumed meanwhile: nothing left to re-seal.
                if store
                    .reseal_pending(pending.id, &pending.pkce_verifier, resealed)
                    .await?
                {
                    state.pending_resealed += 1;
                }
            }
        }
        progress(&state);
    }
    Ok(state)
}

fn reseal_field(
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng),
    c: &Connection,
    field: SealedField,
    blob: &SealedBlob,
) -> Result<Option<SealedBlob>, RotationError> {
    keyring
        .reseal(rng, blob, SealContext::connection(c.id.as_uuid(), field))
        .map_err(|source| RotationError::Reseal {
            record: c.id.as_uuid(),
            source,
        })
}

async fn reseal_connection(
    store: &dyn ConnectionStore,
    keyring: &Keyring,
    rng: &mut (impl RngCore + CryptoRng + Send),
    mut c: Connection,
    state: &mut RotationProgress,
) -> Result<(), RotationError> {
    for _ in 0..MAX_ATTEMPTS {
        let access = reseal_field(keyring, rng, &c, SealedField::AccessToken, &c.access_token)?;
        let refresh = match &c.refresh_token {
            Some(blob) => reseal_field(keyring, rng, &c, SealedField::RefreshToken, blob)?,
            None => None,
        };
        if access.is_none() && refresh.is_none() {
            return Ok(());
        }
        let access = access.unwrap_or_else(|| c.access_token.clone());
        let refresh = refresh.or_else(|| c.refresh_token.clone());
        match store.reseal_tokens(c.id, c.version, access, refresh).await {
            Ok(()) => {
                state.connections_resealed += 1;
                return Ok(());
            }
            Err(StoreError::VersionMismatch { .. }) => {
                state.conflicts_retried += 1;
                c = match store.get_connection(c.id).await {
                    Ok(fresh) => fresh,
                    Err(StoreError::NotFound { .. }) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
            }
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(RotationError::TooManyConflicts(c.id.as_uuid()))
}
