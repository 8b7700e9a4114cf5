//! Connections: upsert by Cal.com identity, reads, deletion, events.

use crate::PostgresStore;
use crate::rows::{CONNECTION_COLUMNS, EVENT_COLUMNS, is_unique_violation, scopes_json};
use calconnect::StoreError;
use calconnect::store::*;
use sqlx::{PgConnection, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

/// An event row to insert inside the caller's transaction.
pub(crate) struct EventRow<'a> {
    pub(crate) id: ConnectionId,
    pub(crate) end_user: &'a str,
    pub(crate) kind: EventKind,
    pub(crate) from: Option<ConnectionStatus>,
    pub(crate) to: Option<ConnectionStatus>,
    pub(crate) reason: &'a str,
    pub(crate) at: OffsetDateTime,
}

pub(crate) async fn insert_event(
    conn: &mut PgConnection,
    e: EventRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connection_events (connection_id, end_user, kind, from_status, to_status, \
         reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.id.as_uuid())
    .bind(e.end_user)
    .bind(e.kind.as_str())
    .bind(e.from.map(|s| s.as_str()))
    .bind(e.to.map(|s| s.as_str()))
    .bind(e.reason)
    .bind(e.at)
    .execute(conn)
    .await
    .map(|_| ())
}

impl PostgresStore {
    pub(crate) async fn upsert_connection_impl(
        &self,
        new: NewConnection,
    ) -> Result<UpsertOutcome, StoreError> {
        let err = self.err("saving a connection");
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(&err)?;
        let existing = sqlx::query(
            "SELECT id, end_user, status FROM connections \
             WHERE client_id = $1 AND owner_kind = $2 AND owner_id = $3 FOR UPDATE",
        )
        .bind(&new.identity.client_id)
        .bind(new.identity.owner.kind())
        .bind(new.identity.owner.id())
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?;
        let outcome = if let Some(row) = existing {
            let id: Uuid = row.try_get("id").map_err(&err)?;
            if id != new.id.as_uuid() {
                return Err(StoreError::IdentityConflict {
                    existing: ConnectionId::from_uuid(id),
                });
            }
            let previous_end_user: String = row.try_get("end_user").map_err(&err)?;
            let previous_status: String = row.try_get("status").map_err(&err)?;
            let previous_status =
                ConnectionStatus::parse(&previous_status).ok_or_else(|| StoreError::Corrupt {
                    database: self.database.to_string(),
                    what: format!("connection {id}: status {previous_status}"),
                })?;
            let sql = format!(
                "UPDATE connections SET end_user = $1, scopes = $2, access_token = $3, \
                 refresh_token = $4, access_expires_at = $5, refresh_expires_at_estimate = $6, \
                 last_refreshed_at = $7, status = 'active', status_reason = 'authorized again', \
                 status_changed_at = $8, version = version + 1, lease_owner = NULL, \
                 lease_until = NULL, refresh_intent_started_at = NULL, updated_at = $9 \
                 WHERE id = $10 RETURNING {CONNECTION_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(new.end_user.as_str())
                .bind(scopes_json(&new.scopes))
                .bind(new.access_token.as_bytes())
                .bind(new.refresh_token.as_ref().map(|b| b.as_bytes()))
                .bind(new.access_expires_at)
                .bind(new.refresh_expires_at_estimate)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(&err)?;
            let connection = self.decoder_ref().connection(&row)?;
            UpsertOutcome::Updated {
                connection,
                previous_end_user: EndUserId::new(&previous_end_user).map_err(|_| {
                    StoreError::Corrupt {
                        database: self.database.to_string(),
                        what: format!("connection {id}: end_user"),
                    }
                })?,
                previous_status,
            }
        } else {
            let sql = format!(
                "INSERT INTO connections (id, end_user, client_id, owner_kind, owner_id, scopes, \
                 status, status_reason, status_changed_at, access_token, refresh_token, \
                 access_expires_at, last_refreshed_at, refresh_expires_at_estimate, version, \
                 created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'active', 'authorized', $7, $8, $9, $10, $11, $12, 1, $13, $14) \
                 RETURNING {CONNECTION_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(new.id.as_uuid())
                .bind(new.end_user.as_str())
                .bind(&new.identity.client_id)
                .bind(new.identity.owner.kind())
                .bind(new.identity.owner.id())
                .bind(scopes_json(&new.scopes))
                .bind(now)
                .bind(new.access_token.as_bytes())
                .bind(new.refresh_token.as_ref().map(|b| b.as_bytes()))
                .bind(new.access_expires_at)
                .bind(now)
                .bind(new.refresh_expires_at_estimate)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await;
            let row = match row {
                Ok(row) => row,
                Err(e) if is_unique_violation(&e, "connections_identity") => {
                    // A concurrent transaction connected this identity first (READ COMMITTED
                    // saw no row before, the unique index waited for it): report its id.
                    drop(tx);
                    let existing = self.find_by_identity_impl(&new.identity).await?;
                    return Err(match existing {
                        Some(c) => StoreError::IdentityConflict { existing: c.id },
                        None => err(e),
                    });
                }
                Err(e) if is_unique_violation(&e, "connections_pkey") => {
                    return Err(StoreError::Duplicate {
                        what: format!("connection {}", new.id),
                    });
                }
                Err(e) => return Err(err(e)),
            };
            UpsertOutcome::Created(self.decoder_ref().connection(&row)?)
        };
        let c = outcome.connection();
        let (kind, from, reason) = match &outcome {
            UpsertOutcome::Created(_) => (EventKind::Created, None, "authorized"),
            UpsertOutcome::Updated {
                previous_status, ..
            } => (
                EventKind::Reauthorized,
                Some(*previous_status),
                "authorized again",
            ),
        };
        insert_event(
            &mut tx,
            EventRow {
                id: c.id,
                end_user: c.end_user.as_str(),
                kind,
                from,
                to: Some(ConnectionStatus::Active),
                reason,
                at: now,
            },
        )
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(outcome)
    }

    pub(crate) fn decoder_ref(&self) -> crate::rows::Decoder<'_> {
        crate::rows::Decoder {
            database: &self.database,
        }
    }

    pub(crate) async fn get_connection_impl(
        &self,
        id: ConnectionId,
    ) -> Result<Connection, StoreError> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("reading a connection"))?
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        self.decoder_ref().connection(&row)
    }

    pub(crate) async fn find_by_identity_impl(
        &self,
        identity: &CalIdentity,
    ) -> Result<Option<Connection>, StoreError> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections \
             WHERE client_id = $1 AND owner_kind = $2 AND owner_id = $3"
        );
        let row = sqlx::query(&sql)
            .bind(&identity.client_id)
            .bind(identity.owner.kind())
            .bind(identity.owner.id())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("looking up a Cal.com identity"))?;
        row.map(|r| self.decoder_ref().connection(&r)).transpose()
    }

    pub(crate) async fn list_for_end_user_impl(
        &self,
        end_user: &EndUserId,
    ) -> Result<Vec<Connection>, StoreError> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE end_user = $1 \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(end_user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing an end user's connections"))?;
        rows.iter()
            .map(|r| self.decoder_ref().connection(r))
            .collect()
    }

    pub(crate) async fn list_connections_impl(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>, StoreError> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE ($1::uuid IS NULL OR id > $1) \
             ORDER BY id LIMIT $2"
        );
        let after = after.map(|a| a.as_uuid());
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing connections"))?;
        rows.iter()
            .map(|r| self.decoder_ref().connection(r))
            .collect()
    }

    pub(crate) async fn count_connections_impl(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connections")
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("counting connections"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn delete_connection_impl(
        &self,
        id: ConnectionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let err = self.err("deleting a connection");
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(&err)?;
        let row = sqlx::query("DELETE FROM connections WHERE id = $1 RETURNING end_user, status")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(&err)?
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        let end_user: String = row.try_get("end_user").map_err(&err)?;
        let status: String = row.try_get("status").map_err(&err)?;
        insert_event(
            &mut tx,
            EventRow {
                id,
                end_user: &end_user,
                kind: EventKind::Deleted,
                from: ConnectionStatus::parse(&status),
                to: None,
                reason,
                at: now,
            },
        )
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)
    }

    pub(crate) async fn events_after_impl(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM connection_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("reading events"))?;
        rows.iter().map(|r| self.decoder_ref().event(r)).collect()
    }

    pub(crate) async fn events_for_connection_impl(
        &self,
        id: ConnectionId,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM connection_events WHERE connection_id = $1 ORDER BY seq"
        );
        let rows = sqlx::query(&sql)
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("reading events"))?;
        rows.iter().map(|r| self.decoder_ref().event(r)).collect()
    }
}
