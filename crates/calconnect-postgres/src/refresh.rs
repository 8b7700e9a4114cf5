//! Refresh coordination: leases, refresh intent, fenced token writes, status changes and the
//! due-for-refresh claim. Each is one atomic statement, or a transaction that locks the row first.

use crate::PostgresStore;
use crate::connections::{EventRow, insert_event};
use crate::rows::{CONNECTION_COLUMNS, scopes_json};
use calconnect::StoreError;
use calconnect::crypto::SealedBlob;
use calconnect::store::*;
use sqlx::Row as _;
use time::{Duration, OffsetDateTime};

/// When a connection became due under `q` (the earlier of its reasons).
pub(crate) fn due_at(c: &Connection, q: &DueQuery) -> OffsetDateTime {
    let by_access = c.access_expires_at.filter(|t| *t < q.access_expires_before);
    let by_age = Some(c.last_refreshed_at).filter(|t| *t < q.last_refreshed_before);
    by_access
        .into_iter()
        .chain(by_age)
        .min()
        .unwrap_or(c.last_refreshed_at)
}

/// What a row looks like when a conditional write matched nothing.
struct Miss {
    version: i64,
    lease_owner: Option<String>,
    lease_until: Option<OffsetDateTime>,
}

impl PostgresStore {
    async fn miss(&self, id: ConnectionId) -> Result<Miss, StoreError> {
        let row =
            sqlx::query("SELECT version, lease_owner, lease_until FROM connections WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err("reading a connection"))?
                .ok_or_else(|| StoreError::connection_not_found(id))?;
        let err = self.err("reading a connection");
        Ok(Miss {
            version: row.try_get("version").map_err(&err)?,
            lease_owner: row.try_get("lease_owner").map_err(&err)?,
            lease_until: row.try_get("lease_until").map_err(&err)?,
        })
    }

    fn lease_grant(&self, row: &sqlx::postgres::PgRow) -> Result<LeaseGrant, StoreError> {
        let err = self.err("taking a refresh lease");
        Ok(LeaseGrant {
            version: row.try_get("version").map_err(&err)?,
            until: row.try_get("lease_until").map_err(&err)?,
        })
    }

    pub(crate) async fn acquire_lease_impl(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        let now = self.now();
        for _ in 0..3 {
            let row = sqlx::query(
                "UPDATE connections SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
                 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until <= $4) \
                 RETURNING version, lease_until",
            )
            .bind(owner.as_str())
            .bind(now + lease_for)
            .bind(id.as_uuid())
            .bind(now)
            .fetch_optional(&self.pool)
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

    pub(crate) async fn renew_lease_impl(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "UPDATE connections SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 \
             RETURNING version, lease_until",
        )
        .bind(now + lease_for)
        .bind(id.as_uuid())
        .bind(owner.as_str())
        .fetch_optional(&self.pool)
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

    pub(crate) async fn release_lease_impl(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE connections SET lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id.as_uuid())
        .bind(owner.as_str())
        .execute(&self.pool)
        .await
        .map_err(self.err("releasing a refresh lease"))?;
        if done.rows_affected() == 0 {
            self.miss(id).await?;
            return Ok(false);
        }
        Ok(true)
    }

    pub(crate) async fn record_refresh_intent_impl(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let done = sqlx::query(
            "UPDATE connections SET refresh_intent_started_at = $1, updated_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND lease_until > $1 AND version = $4",
        )
        .bind(now)
        .bind(id.as_uuid())
        .bind(owner.as_str())
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(self.err("recording a refresh intent"))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let miss = self.miss(id).await?;
        let holds = miss.lease_owner.as_deref() == Some(owner.as_str())
            && miss.lease_until.is_some_and(|u| u > now);
        if !holds {
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

    pub(crate) async fn clear_refresh_intent_impl(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let done = sqlx::query(
            "UPDATE connections SET refresh_intent_started_at = NULL, updated_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND version = $4",
        )
        .bind(now)
        .bind(id.as_uuid())
        .bind(owner.as_str())
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(self.err("clearing a refresh intent"))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let miss = self.miss(id).await?;
        if miss.lease_owner.as_deref() != Some(owner.as_str()) {
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

    pub(crate) async fn write_tokens_impl(
        &self,
        id: ConnectionId,
        w: TokenWrite,
    ) -> Result<Connection, StoreError> {
        let now = self.now();
        let sql = format!(
            "UPDATE connections SET access_token = $1, \
             refresh_token = COALESCE($2, refresh_token), scopes = COALESCE($3, scopes), \
             access_expires_at = $4, refresh_expires_at_estimate = $5, last_refreshed_at = $6, \
             refresh_intent_started_at = NULL, version = version + 1, updated_at = $6 \
             WHERE id = $7 AND version = $8 RETURNING {CONNECTION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(w.access_token.as_bytes())
            .bind(w.refresh_token.as_ref().map(SealedBlob::as_bytes))
            .bind(w.scopes.as_deref().map(scopes_json))
            .bind(w.access_expires_at)
            .bind(w.refresh_expires_at_estimate)
            .bind(now)
            .bind(id.as_uuid())
            .bind(w.expected_version)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("writing refreshed tokens"))?;
        match row {
            Some(row) => self.decoder_ref().connection(&row),
            None => Err(StoreError::VersionMismatch {
                id,
                expected: w.expected_version,
                actual: self.miss(id).await?.version,
            }),
        }
    }

    pub(crate) async fn reseal_tokens_impl(
        &self,
        id: ConnectionId,
        expected_version: i64,
        access_token: SealedBlob,
        refresh_token: Option<SealedBlob>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE connections SET access_token = $1, refresh_token = $2 WHERE id = $3 AND version = $4",
        )
        .bind(access_token.as_bytes())
        .bind(refresh_token.as_ref().map(SealedBlob::as_bytes))
        .bind(id.as_uuid())
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(self.err("re-sealing tokens"))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(StoreError::VersionMismatch {
            id,
            expected: expected_version,
            actual: self.miss(id).await?.version,
        })
    }

    pub(crate) async fn set_status_impl(
        &self,
        id: ConnectionId,
        change: StatusChange,
    ) -> Result<Connection, StoreError> {
        let err = self.err("changing a connection's status");
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(&err)?;
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1 FOR UPDATE");
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(&err)?
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        let current = self.decoder_ref().connection(&row)?;
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
        let row = sqlx::query(&sql)
            .bind(change.status.as_str())
            .bind(&change.reason)
            .bind(now)
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(&err)?;
        let updated = self.decoder_ref().connection(&row)?;
        insert_event(
            &mut tx,
            EventRow {
                id,
                end_user: updated.end_user.as_str(),
                kind: EventKind::StatusChanged,
                from: Some(current.status),
                to: Some(change.status),
                reason: &change.reason,
                at: now,
            },
        )
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(updated)
    }

    pub(crate) async fn claim_due_for_refresh_impl(
        &self,
        q: DueQuery,
    ) -> Result<Vec<Connection>, StoreError> {
        let now = self.now();
        // One statement. Each reason walks its partial index in order, locking the rows it
        // picks and skipping rows another instance has locked (`SKIP LOCKED`); the UPDATE
        // leases the earliest `limit` of them before the locks are released.
        let sql = format!(
            "WITH by_access AS ( \
               SELECT id, access_expires_at AS due_at FROM connections \
               WHERE status = 'active' AND access_expires_at < $3 \
                 AND (lease_until IS NULL OR lease_until <= $5) \
               ORDER BY access_expires_at LIMIT $6 FOR UPDATE SKIP LOCKED), \
             by_age AS ( \
               SELECT id, last_refreshed_at AS due_at FROM connections \
               WHERE status = 'active' AND last_refreshed_at < $4 \
                 AND (lease_until IS NULL OR lease_until <= $5) \
               ORDER BY last_refreshed_at LIMIT $6 FOR UPDATE SKIP LOCKED), \
             due AS ( \
               SELECT id FROM (SELECT * FROM by_access UNION ALL SELECT * FROM by_age) u \
               GROUP BY id ORDER BY MIN(due_at), id LIMIT $6) \
             UPDATE connections c SET lease_owner = $1, lease_until = $2 FROM due \
             WHERE c.id = due.id RETURNING {}",
            CONNECTION_COLUMNS
                .split(", ")
                .map(|col| format!("c.{col}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(q.owner.as_str())
            .bind(now + q.lease_for)
            .bind(q.access_expires_before)
            .bind(q.last_refreshed_before)
            .bind(now)
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("claiming connections due for refresh"))?;
        let mut claimed = rows
            .iter()
            .map(|r| self.decoder_ref().connection(r))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|c| (due_at(c, &q), c.id));
        Ok(claimed)
    }
}
