//! Refresh coordination (docs/architecture.md §4): leases, the refresh intent, fenced token writes,
//! status changes and the due-for-refresh claim. Each is one conditional statement — the fence is
//! in its `WHERE` — or a write transaction that locks the row first.

use super::rows::CONNECTION_COLUMNS;
use super::{EventRow, SqlStore, insert_event};
use crate::db::{Row, query};
use crate::scopes;
use calconnect::crypto::SealedBlob;
use calconnect::store::StoreError;
use calconnect::store::*;
use time::{Duration, OffsetDateTime};

/// The due-for-refresh claim (docs/scaling.md): `$1` owner, `$2` lease end, `$3` access
/// tokens expiring before, `$4` refresh tokens obtained before, `$5` now, `$6` limit. Each
/// branch walks one partial index (`connections_due_access`, `connections_due_keepalive`) in
/// due order and stops at the limit. Public so that the scale tools can `EXPLAIN` it.
pub fn claim_due_sql(skip_locked: &str) -> String {
    format!(
        "WITH by_access AS ( \
           SELECT id, access_expires_at AS due_at FROM connections \
           WHERE status = 'active' AND access_expires_at < $3 \
             AND (lease_until IS NULL OR lease_until <= $5) \
           ORDER BY access_expires_at LIMIT $6{skip_locked}), \
         by_age AS ( \
           SELECT id, last_refreshed_at AS due_at FROM connections \
           WHERE status = 'active' AND last_refreshed_at < $4 \
             AND (lease_until IS NULL OR lease_until <= $5) \
           ORDER BY last_refreshed_at LIMIT $6{skip_locked}), \
         due AS ( \
           SELECT id FROM (SELECT id, due_at FROM by_access \
                           UNION ALL SELECT id, due_at FROM by_age) u \
           GROUP BY id ORDER BY MIN(due_at), id LIMIT $6) \
         UPDATE connections SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM due) RETURNING {CONNECTION_COLUMNS}"
    )
}

/// When a connection became due under `q` (the earlier of its reasons).
fn due_at(c: &Connection, q: &DueQuery) -> OffsetDateTime {
    let by_access = c.access_expires_at.filter(|t| *t < q.access_expires_before);
    let by_age = Some(c.last_refreshed_at).filter(|t| *t < q.last_refreshed_before);
    by_access
        .into_iter()
        .chain(by_age)
        .min()
        .unwrap_or(c.last_refreshed_at)
}

/// What a row looks like when a conditional write matched nothing.
pub(super) struct Miss {
    pub(super) version: i64,
    lease_owner: Option<String>,
    lease_until: Option<OffsetDateTime>,
}

impl Miss {
    fn holds(&self, owner: &LeaseOwner) -> bool {
        self.lease_owner.as_deref() == Some(owner.as_str())
    }
}

impl<B: sqlx::Database> SqlStore<B> {
    /// Why a conditional write on `id` matched nothing (or [`StoreError::NotFound`]).
    pub(super) async fn miss(&self, id: ConnectionId) -> Result<Miss, StoreError> {
        let row = query("SELECT version, lease_owner, lease_until FROM connections WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.db)
            .await
            .map_err(self.err("reading a connection"))?
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        let d = self.decoder();
        Ok(Miss {
            version: d.get(&row, "version")?,
            lease_owner: d.get(&row, "lease_owner")?,
            lease_until: d.get(&row, "lease_until")?,
        })
    }

    fn lease_grant(&self, row: &Row) -> Result<LeaseGrant, StoreError> {
        let d = self.decoder();
        Ok(LeaseGrant {
            version: d.get(row, "version")?,
            until: d.get(row, "lease_until")?,
        })
    }

    pub(super) async fn acquire_lease_for(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        let now = self.now();
        for _ in 0..3 {
            let row = query(
                "UPDATE connections SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
                 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until <= $4) \
                 RETURNING version, lease_until",
            )
            .bind(owner.as_str())
            .bind(now + lease_for)
            .bind(id.as_uuid())
            .bind(now)
            .fetch_optional(&self.db)
            .await
            .map_err(self.err("taking a refresh lease"))?;
            if let Some(row) = row {
                return self.lease_grant(&row);
            }
            let miss = self.miss(id).await?;
            if let (Some(holder), Some(until)) = (miss.lease_owner, miss.lease_until) {
                return Err(StoreError::LeaseHeld {
                    id,
                    owner: LeaseOwner::new(holder),
                    until,
                });
            }
            // Released in between: try again.
        }
        Err(StoreError::LeaseNotHeld {
            id,
            owner: owner.clone(),
        })
    }

    pub(super) async fn renew_lease_for(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        let row = query(
            "UPDATE connections SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 \
             RETURNING version, lease_until",
        )
        .bind(self.now() + lease_for)
        .bind(id.as_uuid())
        .bind(owner.as_str())
        .fetch_optional(&self.db)
        .await
        .map_err(self.err("renewing a refresh lease"))?;
        match row {
            Some(row) => self.lease_grant(&row),
            None => {
                self.miss(id).await?;
                Err(StoreError::LeaseNotHeld {
                    id,
                    owner: owner.clone(),
                })
            }
        }
    }

    pub(super) async fn release_lease_of(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE connections SET lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id.as_uuid())
        .bind(owner.as_str())
        .execute(&self.db)
        .await
        .map_err(self.err("releasing a refresh lease"))?;
        if done == 0 {
            self.miss(id).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Records (`set`) or clears the refresh intent. Recording needs a live lease; clearing only
    /// that nobody took the lease over (docs/architecture.md §4.3, §4.6).
    pub(super) async fn set_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
        set: bool,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let (sql, operation) = if set {
            (
                "UPDATE connections SET refresh_intent_started_at = $1, updated_at = $1 \
                 WHERE id = $2 AND lease_owner = $3 AND lease_until > $1 AND version = $4",
                "recording a refresh intent",
            )
        } else {
            (
                "UPDATE connections SET refresh_intent_started_at = NULL, updated_at = $1 \
                 WHERE id = $2 AND lease_owner = $3 AND version = $4",
                "clearing a refresh intent",
            )
        };
        let done = query(sql)
            .bind(now)
            .bind(id.as_uuid())
            .bind(owner.as_str())
            .bind(expected_version)
            .execute(&self.db)
            .await
            .map_err(self.err(operation))?;
        if done == 1 {
            return Ok(());
        }
        let miss = self.miss(id).await?;
        let live = !set || miss.lease_until.is_some_and(|until| until > now);
        if !(miss.holds(owner) && live) {
            return Err(StoreError::LeaseNotHeld {
                id,
                owner: owner.clone(),
            });
        }
        Err(StoreError::VersionMismatch {
            id,
            expected: expected_version,
            actual: miss.version,
        })
    }

    pub(super) async fn fenced_token_write(
        &self,
        id: ConnectionId,
        w: TokenWrite,
    ) -> Result<Connection, StoreError> {
        let sql = format!(
            "UPDATE connections SET access_token = $1, \
             refresh_token = COALESCE($2, refresh_token), scopes = COALESCE($3, scopes), \
             access_expires_at = $4, refresh_expires_at_estimate = $5, last_refreshed_at = $6, \
             refresh_intent_started_at = NULL, version = version + 1, updated_at = $6 \
             WHERE id = $7 AND version = $8 RETURNING {CONNECTION_COLUMNS}"
        );
        let scopes = w.scopes.as_deref().map(scopes::encode);
        let row = query(&sql)
            .bind(w.access_token.as_bytes())
            .bind(w.refresh_token.as_ref().map(SealedBlob::as_bytes))
            .bind(scopes.as_deref())
            .bind(w.access_expires_at)
            .bind(w.refresh_expires_at_estimate)
            .bind(self.now())
            .bind(id.as_uuid())
            .bind(w.expected_version)
            .fetch_optional(&self.db)
            .await
            .map_err(self.err("writing refreshed tokens"))?;
        match row {
            Some(row) => self.decoder().connection(&row),
            None => Err(StoreError::VersionMismatch {
                id,
                expected: w.expected_version,
                actual: self.miss(id).await?.version,
            }),
        }
    }

    pub(super) async fn change_status(
        &self,
        id: ConnectionId,
        change: StatusChange,
    ) -> Result<Connection, StoreError> {
        let err = self.err("changing a connection's status");
        let now = self.now();
        let mut tx = self.db.begin_write().await.map_err(&err)?;
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1{}",
            self.db.dialect().lock_row
        );
        let row = query(&sql)
            .bind(id.as_uuid())
            .fetch_optional(&mut tx)
            .await
            .map_err(&err)?
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        let current = self.decoder().connection(&row)?;
        if let Some(expected) = change.expected_version {
            if expected != current.version {
                return Err(StoreError::VersionMismatch {
                    id,
                    expected,
                    actual: current.version,
                });
            }
        }
        if current.status == change.status {
            return Ok(current);
        }
        let sql = format!(
            "UPDATE connections SET status = $1, status_reason = $2, status_changed_at = $3, \
             version = version + 1, updated_at = $3 WHERE id = $4 RETURNING {CONNECTION_COLUMNS}"
        );
        let row = query(&sql)
            .bind(change.status.as_str())
            .bind(&change.reason)
            .bind(now)
            .bind(id.as_uuid())
            .fetch_one(&mut tx)
            .await
            .map_err(&err)?;
        let updated = self.decoder().connection(&row)?;
        let event = EventRow {
            id,
            end_user: updated.end_user.as_str(),
            kind: EventKind::StatusChanged,
            from: Some(current.status),
            to: Some(change.status),
            reason: &change.reason,
            at: now,
        };
        insert_event(&mut tx, event).await.map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(updated)
    }

    /// One statement. Each reason walks its partial index in order and stops after `limit`
    /// rows, so the cost does not grow with the number of due connections; the `UPDATE` leases
    /// the earliest `limit` of them. On PostgreSQL each branch locks the rows it picks and skips
    /// rows another instance has locked ([`crate::Dialect::skip_locked`]); on SQLite the
    /// statement runs under the write lock, so concurrent claimers wait and then see the leases
    /// set by this one.
    pub(super) async fn claim_due(&self, q: DueQuery) -> Result<Vec<Connection>, StoreError> {
        let now = self.now();
        let skip_locked = self.db.dialect().skip_locked;
        let sql = claim_due_sql(skip_locked);
        let rows = query(&sql)
            .bind(q.owner.as_str())
            .bind(now + q.lease_for)
            .bind(q.access_expires_before)
            .bind(q.last_refreshed_before)
            .bind(now)
            .bind(i64::from(q.limit))
            .fetch_all(&self.db)
            .await
            .map_err(self.err("claiming connections due for refresh"))?;
        let mut claimed = rows
            .iter()
            .map(|r| self.decoder().connection(r))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|c| (due_at(c, &q), c.id));
        Ok(claimed)
    }
}
