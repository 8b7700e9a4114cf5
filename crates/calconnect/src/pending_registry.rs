//! An in-memory, single-process home for pending authorizations (CLI `login`, tests, one-instance
//! deployments). It tells a reused callback from an unknown one by remembering used state keys
//! until their pending authorization would have expired. Several instances need a shared store
//! instead, keyed by [`StateKey`], holding sealed bytes.

use crate::callback::{Callback, CallbackError};
use crate::clock::Clock;
use crate::pending::PendingAuthorization;
use crate::store::StateKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use time::OffsetDateTime;

enum Entry {
    Pending(Box<PendingAuthorization>),
    Used { until: OffsetDateTime },
}

/// Pending authorizations by state key, each taken at most once.
pub struct PendingAuthorizations {
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<StateKey, Entry>>,
}

impl std::fmt::Debug for PendingAuthorizations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("PendingAuthorizations")
            .field("entries", &len)
            .finish()
    }
}

impl PendingAuthorizations {
    /// An empty registry using `clock` to forget expired entries.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `pending` until its callback arrives or it expires.
    pub fn insert(&self, pending: PendingAuthorization) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.now();
        entries.retain(|_, entry| match entry {
            Entry::Pending(p) => p.expires_at() > now,
            Entry::Used { until } => *until > now,
        });
        entries.insert(pending.state_key(), Entry::Pending(Box::new(pending)));
    }

    /// Takes the pending authorization matching `callback`'s state, then verifies the callback
    /// against it (see [`PendingAuthorization::verify`]).
    ///
    /// # Errors
    /// [`CallbackError::MissingState`], [`CallbackError::StateAlreadyUsed`] (a replayed callback),
    /// [`CallbackError::UnknownState`] (forged, or forgotten after expiry), or any error of
    /// [`PendingAuthorization::verify`].
    pub fn take_and_verify(
        &self,
        callback: Callback,
    ) -> Result<crate::VerifiedCallback, CallbackError> {
        let key = callback.state_key().ok_or(CallbackError::MissingState)?;
        let pending = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.remove(&key) {
                Some(Entry::Pending(p)) => {
                    let until = p.expires_at();
                    entries.insert(key, Entry::Used { until });
                    p
                }
                Some(used @ Entry::Used { .. }) => {
                    entries.insert(key, used);
                    return Err(CallbackError::StateAlreadyUsed);
                }
                None => return Err(CallbackError::UnknownState),
            }
        };
        (*pending).verify(callback, self.clock.as_ref())
    }

    /// How many entries (pending and remembered-as-used) are held.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
