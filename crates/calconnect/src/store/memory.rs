//! An in-memory [`ConnectionStore`] for tests and examples. One process only; lost on exit.

use super::types::*;
use super::{
    ConnectionQuery, ConnectionStore, ProfileCheckQuery, ProfileWrite, StatusCounts, StoreError,
};
use crate::clock::Clock;
use crate::crypto::SealedBlob;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use time::{Duration, OffsetDateTime};

/// A [`ConnectionStore`] in a mutex. Behaves like the database backends (same conformance suite).
#[derive(Debug)]
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    /// Refresh budgets by name: every budget of one name taken from this store shares a bucket.
    budgets: Mutex<std::collections::HashMap<String, crate::budget::SharedBucket>>,
}

#[derive(Debug, Default)]
struct Inner {
    connections: BTreeMap<ConnectionId, Connection>,
    pending: BTreeMap<PendingId, PendingRecord>,
    events: Vec<ConnectionEvent>,
}

impl MemoryStore {
    /// An empty store using `clock` for "now".
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner::default()),
            budgets: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.clock.now())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn connection(&mut self, id: ConnectionId) -> Result<&mut Connection, StoreError> {
        self.connections
            .get_mut(&id)
            .ok_or_else(|| StoreError::connection_not_found(id))
    }

    fn event(
        &mut self,
        c: &Connection,
        kind: EventKind,
        from: Option<ConnectionStatus>,
        to: Option<ConnectionStatus>,
        reason: &str,
        at: OffsetDateTime,
    ) {
        let seq = self.events.last().map_or(1, |e| e.seq + 1);
        self.events.push(ConnectionEvent {
            seq,
            connection_id: c.id,
            end_user: c.end_user.clone(),
            kind,
            from_status: from,
            to_status: to,
            reason: reason.to_owned(),
            at,
        });
    }
}

fn check_version(c: &Connection, expected: i64) -> Result<(), StoreError> {
    if c.version == expected {
        Ok(())
    } else {
        Err(StoreError::VersionMismatch {
            id: c.id,
            expected,
            actual: c.version,
        })
    }
}

fn micros_opt(t: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    t.map(truncate_to_micros)
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn insert_pending(&self, p: NewPendingRecord) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        if inner.pending.contains_key(&p.id)
            || inner.pending.values().any(|x| x.state_key == p.state_key)
        {
            return Err(StoreError::Duplicate {
                what: format!("pending authorization {}", p.id),
            });
        }
        inner.pending.insert(
            p.id,
            PendingRecord {
                id: p.id,
                state_key: p.state_key,
                pkce_verifier: p.pkce_verifier,
                end_user: p.end_user,
                scopes: p.scopes,
                redirect_uri: p.redirect_uri,
                return_to: p.return_to,
                browser_binding: p.browser_binding,
                expires_at: truncate_to_micros(p.expires_at),
                created_at: now,
            },
        );
        Ok(())
    }

    async fn consume_pending(
        &self,
        state: &StateKey,
        binding: &BrowserBinding,
    ) -> Result<PendingRecord, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let found = inner
            .pending
            .values()
            .find(|p| p.state_key == *state && p.browser_binding == *binding)
            .map(|p| p.id);
        let Some(pending) = found.and_then(|id| inner.pending.remove(&id)) else {
            return Err(StoreError::NotFound {
                what: "pending authorization".to_owned(),
            });
        };
        if pending.expires_at <= now {
            return Err(StoreError::PendingExpired);
        }
        Ok(pending)
    }

    fn budget(
        &self,
        config: crate::budget::BudgetConfig,
        clock: Arc<dyn Clock>,
    ) -> Arc<dyn crate::budget::RefreshBudget> {
        let bucket = self
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(config.name.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(crate::budget::BucketState::full(
                    &config,
                    clock.now(),
                )))
            })
            .clone();
        Arc::new(crate::budget::LocalBudget::sharing(config, clock, bucket))
    }

    async fn purge_expired_pending(&self) -> Result<u64, StoreError> {
        let cutoff = self.now() - super::PENDING_PURGE_GRACE;
        let mut inner = self.lock();
        let before = inner.pending.len();
        inner.pending.retain(|_, p| p.expires_at > cutoff);
        Ok(u64::try_from(before - inner.pending.len()).unwrap_or(u64::MAX))
    }

    async fn list_pending(
        &self,
        after: Option<PendingId>,
        limit: u32,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .pending
            .values()
            .filter(|p| after.is_none_or(|a| p.id > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn reseal_pending(
        &self,
        id: PendingId,
        current: &SealedBlob,
        resealed: SealedBlob,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.pending.get_mut(&id) {
            Some(p) if p.pkce_verifier == *current => {
                p.pkce_verifier = resealed;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn upsert_connection(&self, new: NewConnection) -> Result<UpsertOutcome, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let existing = inner
            .connections
            .values()
            .find(|c| c.identity == new.identity)
            .map(|c| c.id);
        match existing {
            Some(id) if id != new.id => Err(StoreError::IdentityConflict { existing: id }),
            Some(id) => {
                let c = inner.connection(id)?;
                let previous_end_user = std::mem::replace(&mut c.end_user, new.end_user);
                let previous_status = c.status;
                c.scopes = new.scopes;
                c.access_token = new.access_token;
                c.refresh_token = new.refresh_token;
                c.access_expires_at = micros_opt(new.access_expires_at);
                c.refresh_expires_at_estimate = micros_opt(new.refresh_expires_at_estimate);
                c.last_refreshed_at = now;
                c.status = ConnectionStatus::Active;
                c.status_reason = "authorized again".to_owned();
                c.status_changed_at = now;
                c.version += 1;
                c.lease = None;
                c.refresh_intent_started_at = None;
                c.updated_at = now;
                match new.profile {
                    Some(profile) => {
                        c.profile_check_at = profile.fetched_at + super::PROFILE_MAX_AGE;
                        c.profile = Some(profile);
                    }
                    None => c.profile_check_at = now,
                }
                let c = c.clone();
                inner.event(
                    &c,
                    EventKind::Reauthorized,
                    Some(previous_status),
                    Some(ConnectionStatus::Active),
                    "authorized again",
                    now,
                );
                Ok(UpsertOutcome::Updated {
                    connection: c,
                    previous_end_user,
                    previous_status,
                })
            }
            None => {
                if inner.connections.contains_key(&new.id) {
                    return Err(StoreError::Duplicate {
                        what: format!("connection {}", new.id),
                    });
                }
                let profile_check_at = new
                    .profile
                    .as_ref()
                    .map_or(now, |p| p.fetched_at + super::PROFILE_MAX_AGE);
                let c = Connection {
                    id: new.id,
                    end_user: new.end_user,
                    identity: new.identity,
                    scopes: new.scopes,
                    status: ConnectionStatus::Active,
                    status_reason: "authorized".to_owned(),
                    status_changed_at: now,
                    access_token: new.access_token,
                    refresh_token: new.refresh_token,
                    access_expires_at: micros_opt(new.access_expires_at),
                    last_refreshed_at: now,
                    refresh_expires_at_estimate: micros_opt(new.refresh_expires_at_estimate),
                    version: 1,
                    lease: None,
                    refresh_intent_started_at: None,
                    profile: new.profile,
                    profile_check_at,
                    created_at: now,
                    updated_at: now,
                };
                inner.connections.insert(c.id, c.clone());
                inner.event(
                    &c,
                    EventKind::Created,
                    None,
                    Some(ConnectionStatus::Active),
                    "authorized",
                    now,
                );
                Ok(UpsertOutcome::Created(c))
            }
        }
    }

    async fn get_connection(&self, id: ConnectionId) -> Result<Connection, StoreError> {
        self.lock().connection(id).cloned()
    }

    async fn find_by_identity(
        &self,
        identity: &CalIdentity,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .lock()
            .connections
            .values()
            .find(|c| c.identity == *identity)
            .cloned())
    }

    async fn list_for_end_user(&self, end_user: &EndUserId) -> Result<Vec<Connection>, StoreError> {
        let mut list: Vec<Connection> = self
            .lock()
            .connections
            .values()
            .filter(|c| c.end_user == *end_user)
            .cloned()
            .collect();
        list.sort_by_key(|c| (c.created_at, c.id));
        Ok(list)
    }

    async fn list_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>, StoreError> {
        Ok(self
            .lock()
            .connections
            .values()
            .filter(|c| after.is_none_or(|a| c.id > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn query_connections(&self, q: &ConnectionQuery) -> Result<Vec<Connection>, StoreError> {
        let mut list: Vec<Connection> = self
            .lock()
            .connections
            .values()
            .filter(|c| q.status.is_none_or(|s| c.status == s))
            .filter(|c| q.end_user.as_ref().is_none_or(|u| c.end_user == *u))
            .filter(|c| {
                q.after
                    .is_none_or(|a| (c.created_at, c.id) > (a.created_at, a.id))
            })
            .cloned()
            .collect();
        list.sort_by_key(|c| (c.created_at, c.id));
        list.truncate(q.limit as usize);
        Ok(list)
    }

    async fn count_by_status_for(&self, end_user: &EndUserId) -> Result<StatusCounts, StoreError> {
        Ok(self
            .lock()
            .connections
            .values()
            .filter(|c| c.end_user == *end_user)
            .map(|c| (c.status, 1))
            .collect())
    }

    async fn count_connections(&self) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.lock().connections.len()).unwrap_or(u64::MAX))
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        Ok(self
            .lock()
            .connections
            .values()
            .map(|c| (c.status, 1))
            .collect())
    }

    async fn delete_connection(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let c = inner
            .connections
            .remove(&id)
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        inner.event(&c, EventKind::Deleted, Some(c.status), None, reason, now);
        Ok(())
    }

    async fn acquire_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        if let Some(lease) = &c.lease {
            if lease.owner != *owner && lease.until > now {
                return Err(StoreError::LeaseHeld {
                    id,
                    owner: lease.owner.clone(),
                    until: lease.until,
                });
            }
        }
        let until = now + lease_for;
        c.lease = Some(RefreshLease {
            owner: owner.clone(),
            until,
        });
        Ok(LeaseGrant {
            version: c.version,
            until,
        })
    }

    async fn renew_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        match &mut c.lease {
            Some(lease) if lease.owner == *owner => {
                lease.until = now + lease_for;
                Ok(LeaseGrant {
                    version: c.version,
                    until: lease.until,
                })
            }
            _ => Err(StoreError::LeaseNotHeld {
                id,
                owner: owner.clone(),
            }),
        }
    }

    async fn release_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        if c.lease.as_ref().is_some_and(|l| l.owner == *owner) {
            c.lease = None;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn record_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        if !c
            .lease
            .as_ref()
            .is_some_and(|l| l.owner == *owner && l.until > now)
        {
            return Err(StoreError::LeaseNotHeld {
                id,
                owner: owner.clone(),
            });
        }
        check_version(c, expected_version)?;
        c.refresh_intent_started_at = Some(now);
        c.updated_at = now;
        Ok(())
    }

    async fn clear_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        if !c.lease.as_ref().is_some_and(|l| l.owner == *owner) {
            return Err(StoreError::LeaseNotHeld {
                id,
                owner: owner.clone(),
            });
        }
        check_version(c, expected_version)?;
        c.refresh_intent_started_at = None;
        c.updated_at = now;
        Ok(())
    }

    async fn write_tokens(
        &self,
        id: ConnectionId,
        write: TokenWrite,
    ) -> Result<Connection, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        check_version(c, write.expected_version)?;
        c.access_token = write.access_token;
        if let Some(refresh) = write.refresh_token {
            c.refresh_token = Some(refresh);
        }
        if let Some(scopes) = write.scopes {
            c.scopes = scopes;
        }
        c.access_expires_at = micros_opt(write.access_expires_at);
        c.refresh_expires_at_estimate = micros_opt(write.refresh_expires_at_estimate);
        c.last_refreshed_at = now;
        c.refresh_intent_started_at = None;
        c.version += 1;
        c.updated_at = now;
        Ok(c.clone())
    }

    async fn reseal_tokens(
        &self,
        id: ConnectionId,
        expected_version: i64,
        access_token: SealedBlob,
        refresh_token: Option<SealedBlob>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        check_version(c, expected_version)?;
        c.access_token = access_token;
        c.refresh_token = refresh_token;
        Ok(())
    }

    async fn set_status(
        &self,
        id: ConnectionId,
        change: StatusChange,
    ) -> Result<Connection, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        if let Some(expected) = change.expected_version {
            check_version(c, expected)?;
        }
        if c.status == change.status {
            return Ok(c.clone());
        }
        let from = c.status;
        c.status = change.status;
        c.status_reason.clone_from(&change.reason);
        c.status_changed_at = now;
        c.version += 1;
        c.updated_at = now;
        let c = c.clone();
        inner.event(
            &c,
            EventKind::StatusChanged,
            Some(from),
            Some(change.status),
            &change.reason,
            now,
        );
        Ok(c)
    }

    async fn write_profile(&self, id: ConnectionId, write: ProfileWrite) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let c = inner.connection(id)?;
        if let Some(mut profile) = write.profile {
            profile.fetched_at = truncate_to_micros(profile.fetched_at);
            c.profile = Some(profile);
        }
        c.profile_check_at = truncate_to_micros(write.next_check_at);
        Ok(())
    }

    async fn claim_profile_checks(
        &self,
        q: ProfileCheckQuery,
    ) -> Result<Vec<Connection>, StoreError> {
        let mut inner = self.lock();
        let mut due: Vec<&mut Connection> = inner
            .connections
            .values_mut()
            .filter(|c| {
                c.status == ConnectionStatus::Active
                    && c.profile_check_at <= q.due_by
                    && c.access_expires_at
                        .is_some_and(|t| t > q.access_valid_after)
            })
            .collect();
        due.sort_by_key(|c| (c.profile_check_at, c.id));
        let until = truncate_to_micros(q.claim_until);
        Ok(due
            .into_iter()
            .take(q.limit as usize)
            .map(|c| {
                c.profile_check_at = until;
                c.clone()
            })
            .collect())
    }

    async fn claim_due_for_refresh(&self, q: DueQuery) -> Result<Vec<Connection>, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        let mut due: Vec<&mut Connection> = inner
            .connections
            .values_mut()
            .filter(|c| {
                c.status == ConnectionStatus::Active
                    && (c
                        .access_expires_at
                        .is_some_and(|t| t < q.access_expires_before)
                        || c.last_refreshed_at < q.last_refreshed_before)
                    && c.lease.as_ref().is_none_or(|l| l.until <= now)
            })
            .collect();
        // The earlier of the reasons it is due for, as the database backends order them.
        let due_at = |c: &Connection| {
            let by_access = c.access_expires_at.filter(|t| *t < q.access_expires_before);
            let by_age = Some(c.last_refreshed_at).filter(|t| *t < q.last_refreshed_before);
            by_access.into_iter().chain(by_age).min()
        };
        due.sort_by_key(|c| (due_at(c), c.id));
        let until = now + q.lease_for;
        Ok(due
            .into_iter()
            .take(q.limit as usize)
            .map(|c| {
                c.lease = Some(RefreshLease {
                    owner: q.owner.clone(),
                    until,
                });
                c.clone()
            })
            .collect())
    }

    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        Ok(self
            .lock()
            .events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn events_for_connection(
        &self,
        id: ConnectionId,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        Ok(self
            .lock()
            .events
            .iter()
            .filter(|e| e.connection_id == id)
            .cloned()
            .collect())
    }
}
