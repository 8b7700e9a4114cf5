//! [`SqlStore`]: the one [`ConnectionStore`] on SQL. Every operation is one atomic statement, or a
//! write transaction ([`crate::Dialect::begin_write`]) that locks what it reads
//! ([`crate::Dialect::lock_row`]).

mod budget;
mod coordination;
pub use budget::SqlBudget;
pub use coordination::claim_due_sql;
mod rows;

use crate::db::{Db, Pool, Tx, query};
use crate::dialect::UniqueKey;
use crate::migrate::{self, LegacyLedger, MigrationStatus, Migrations};
use crate::scopes;
use async_trait::async_trait;
use calconnect::Clock;
use calconnect::crypto::SealedBlob;
use calconnect::store::*;
use rows::{CONNECTION_COLUMNS, Decoder, EVENT_COLUMNS, PENDING_COLUMNS};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The store's tables: connections, pending authorizations, connection events. Versions 1–999
/// of the ledger; the entries of the earlier ledger `calconnect_migrations` keep their numbers.
pub static STORE_MIGRATIONS: Migrations = Migrations {
    name: "store",
    versions: 1..=999,
    sqlite: &[
        (
            1,
            "init",
            include_str!("../../migrations/sqlite/0001_init.sql"),
        ),
        (
            2,
            "status index",
            include_str!("../../migrations/sqlite/0002_status_index.sql"),
        ),
        (
            3,
            "change notifications",
            include_str!("../../migrations/sqlite/0003_change_notifications.sql"),
        ),
        (
            4,
            "profile",
            include_str!("../../migrations/sqlite/0004_profile.sql"),
        ),
        (
            5,
            "refresh budget",
            include_str!("../../migrations/sqlite/0005_refresh_budget.sql"),
        ),
    ],
    postgres: &[
        (
            1,
            "init",
            include_str!("../../migrations/postgres/0001_init.sql"),
        ),
        (
            2,
            "status index",
            include_str!("../../migrations/postgres/0002_status_index.sql"),
        ),
        (
            3,
            "change notifications",
            include_str!("../../migrations/postgres/0003_change_notifications.sql"),
        ),
        (
            4,
            "profile",
            include_str!("../../migrations/postgres/0004_profile.sql"),
        ),
        (
            5,
            "refresh budget",
            include_str!("../../migrations/postgres/0005_refresh_budget.sql"),
        ),
    ],
    legacy: Some(LegacyLedger {
        table: "calconnect_migrations",
        offset: 0,
    }),
};

/// A [`ConnectionStore`] in a SQL database: [`crate::SqliteStore`] or [`crate::PostgresStore`].
/// Cheap to clone (the pool is shared).
pub struct SqlStore<B: sqlx::Database> {
    pool: sqlx::Pool<B>,
    db: Db,
    clock: Arc<dyn Clock>,
}

impl<B: sqlx::Database> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            db: self.db.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<B: sqlx::Database> std::fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &self.db.description())
            .finish_non_exhaustive()
    }
}

impl<B: sqlx::Database> SqlStore<B> {
    /// Runs the store's pending migrations on a pool just `connected` to `database` (its
    /// description) by `operation`.
    pub(crate) async fn start(
        connected: Result<sqlx::Pool<B>, sqlx::Error>,
        database: String,
        operation: &'static str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError>
    where
        sqlx::Pool<B>: Into<Pool>,
    {
        let pool = connected.map_err(|e| StoreError::Unavailable {
            database: database.clone(),
            operation,
            source: Box::new(e),
        })?;
        let db = Db::new(pool.clone(), database);
        migrate::run(&db, &STORE_MIGRATIONS).await?;
        Ok(Self { pool, db, clock })
    }

    /// The connection pool (for operators' queries and tests).
    pub fn pool(&self) -> &sqlx::Pool<B> {
        &self.pool
    }

    /// The database, for other tables on it (the broker's).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the pool (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// How far the store's schema is (applied and known migrations).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        migrate::status(&self.db, &STORE_MIGRATIONS)
            .await
            .map_err(self.err("reading the migration ledger"))
    }

    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.clock.now())
    }

    fn err(&self, operation: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| StoreError::Unavailable {
            database: self.db.description().to_owned(),
            operation,
            source: Box::new(e),
        }
    }

    fn decoder(&self) -> Decoder<'_> {
        Decoder {
            database: self.db.description(),
        }
    }

    /// The connection of `identity`, read inside `tx` with its row locked.
    async fn locked_identity(
        &self,
        tx: &mut Tx,
        identity: &CalIdentity,
    ) -> Result<Option<(Uuid, String, ConnectionStatus)>, StoreError> {
        let sql = format!(
            "SELECT id, end_user, status FROM connections \
             WHERE client_id = $1 AND owner_kind = $2 AND owner_id = $3{}",
            self.db.dialect().lock_row
        );
        let Some(row) = query(&sql)
            .bind(&identity.client_id)
            .bind(identity.owner.kind())
            .bind(identity.owner.id())
            .fetch_optional(tx)
            .await
            .map_err(self.err("saving a connection"))?
        else {
            return Ok(None);
        };
        let d = self.decoder();
        let status = d
            .status(&row, "status")?
            .ok_or_else(|| d.corrupt("column status: null"))?;
        Ok(Some((d.get(&row, "id")?, d.get(&row, "end_user")?, status)))
    }

    /// Inserts a new connection inside `tx` (its identity was not there when read).
    async fn insert_connection(
        &self,
        mut tx: Tx,
        new: &NewConnection,
        now: OffsetDateTime,
    ) -> Result<(Tx, Connection), StoreError> {
        let sql = format!(
            "INSERT INTO connections (id, end_user, client_id, owner_kind, owner_id, scopes, \
             status, status_reason, status_changed_at, access_token, refresh_token, \
             access_expires_at, last_refreshed_at, refresh_expires_at_estimate, version, \
             profile_name, profile_email, profile_username, profile_fetched_at, \
             profile_check_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'active', 'authorized', $7, $8, $9, $10, $7, $11, \
             1, $12, $13, $14, $15, $16, $7, $7) RETURNING {CONNECTION_COLUMNS}"
        );
        let profile = new.profile.as_ref();
        let inserted = query(&sql)
            .bind(new.id.as_uuid())
            .bind(new.end_user.as_str())
            .bind(&new.identity.client_id)
            .bind(new.identity.owner.kind())
            .bind(new.identity.owner.id())
            .bind(&scopes::encode(&new.scopes))
            .bind(now)
            .bind(new.access_token.as_bytes())
            .bind(new.refresh_token.as_ref().map(SealedBlob::as_bytes))
            .bind(new.access_expires_at)
            .bind(new.refresh_expires_at_estimate)
            .bind(profile.and_then(|p| p.name.as_deref()))
            .bind(profile.and_then(|p| p.email.as_deref()))
            .bind(profile.and_then(|p| p.username.as_deref()))
            .bind(profile.map(|p| truncate_to_micros(p.fetched_at)))
            .bind(profile_check_at(new, now))
            .fetch_one(&mut tx)
            .await;
        match inserted {
            Ok(row) => Ok((tx, self.decoder().connection(&row)?)),
            Err(e) => match self.db.unique_violation(&e) {
                Some(UniqueKey::PrimaryKey) => Err(StoreError::Duplicate {
                    what: format!("connection {}", new.id),
                }),
                // A concurrent transaction connected this identity first (PostgreSQL's READ
                // COMMITTED saw no row before; the unique index waited for it): report its id.
                Some(UniqueKey::Other) => {
                    drop(tx);
                    Err(match self.find_by_identity(&new.identity).await? {
                        Some(c) => StoreError::IdentityConflict { existing: c.id },
                        None => self.err("saving a connection")(e),
                    })
                }
                None => Err(self.err("saving a connection")(e)),
            },
        }
    }
}

/// When a connection saved as `new` next has its profile asked for: a day after the profile it
/// brings, else at once.
fn profile_check_at(new: &NewConnection, now: OffsetDateTime) -> OffsetDateTime {
    new.profile.as_ref().map_or(now, |p| {
        truncate_to_micros(p.fetched_at + calconnect::store::PROFILE_MAX_AGE)
    })
}

/// The `WHERE` clause of a listing ([`ConnectionStore::query_connections`]), with its
/// placeholders numbered in binding order: `$1` the limit, then the status, the end user and the
/// cursor, each when given.
struct Listing {
    sql: String,
}

impl Listing {
    fn of(q: &ConnectionQuery) -> Self {
        let mut terms = Vec::new();
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        match q.status {
            // Most connections are active: the creation-order index, filtered.
            Some(ConnectionStatus::Active) => terms.push(format!("status = ${}", next())),
            // The few others: the partial index, which this repeated term selects.
            Some(_) => terms.push(format!("status = ${} AND status <> 'active'", next())),
            None => {}
        }
        if q.end_user.is_some() {
            terms.push(format!("end_user = ${}", next()));
        }
        if q.after.is_some() {
            let (t, id) = (next(), next());
            terms.push(format!("(created_at, id) > (${t}, ${id})"));
        }
        let sql = if terms.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", terms.join(" AND "))
        };
        Self { sql }
    }
}

/// An event row, inserted inside the transaction that made it.
struct EventRow<'a> {
    id: ConnectionId,
    end_user: &'a str,
    kind: EventKind,
    from: Option<ConnectionStatus>,
    to: Option<ConnectionStatus>,
    reason: &'a str,
    at: OffsetDateTime,
}

async fn insert_event(tx: &mut Tx, e: EventRow<'_>) -> Result<(), sqlx::Error> {
    query(
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
    .execute(tx)
    .await
    .map(|_| ())
}

#[async_trait]
impl<B: sqlx::Database> ConnectionStore for SqlStore<B> {
    fn subscribe_changes(&self) -> Option<tokio::sync::broadcast::Receiver<ConnectionId>> {
        self.db.subscribe_changes()
    }

    async fn insert_pending(&self, p: NewPendingRecord) -> Result<(), StoreError> {
        let inserted = query(
            "INSERT INTO pending_authorizations (id, state_key, pkce_verifier, end_user, scopes, \
             redirect_uri, return_to, browser_binding, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(p.id.as_uuid())
        .bind(&p.state_key.as_bytes()[..])
        .bind(p.pkce_verifier.as_bytes())
        .bind(p.end_user.as_str())
        .bind(&scopes::encode(&p.scopes))
        .bind(&p.redirect_uri)
        .bind(p.return_to.as_deref())
        .bind(&p.browser_binding.as_bytes()[..])
        .bind(p.expires_at)
        .bind(self.now())
        .execute(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if self.db.unique_violation(&e).is_some() => Err(StoreError::Duplicate {
                what: format!("pending authorization {} (or its state)", p.id),
            }),
            Err(e) => Err(self.err("recording a pending authorization")(e)),
        }
    }

    /// Single use by `DELETE … RETURNING`, which is atomic on its own.
    async fn consume_pending(
        &self,
        state: &StateKey,
        binding: &BrowserBinding,
    ) -> Result<PendingRecord, StoreError> {
        let now = self.now();
        let sql = format!(
            "DELETE FROM pending_authorizations WHERE state_key = $1 AND browser_binding = $2 \
             RETURNING {PENDING_COLUMNS}"
        );
        let row = query(&sql)
            .bind(&state.as_bytes()[..])
            .bind(&binding.as_bytes()[..])
            .fetch_optional(&self.db)
            .await
            .map_err(self.err("consuming a pending authorization"))?
            .ok_or_else(|| StoreError::NotFound {
                what: "pending authorization".to_owned(),
            })?;
        let pending = self.decoder().pending(&row)?;
        if pending.expires_at <= now {
            return Err(StoreError::PendingExpired);
        }
        Ok(pending)
    }

    fn budget(
        &self,
        config: calconnect::budget::BudgetConfig,
        _clock: Arc<dyn Clock>,
    ) -> Arc<dyn calconnect::budget::RefreshBudget> {
        self.shared_budget(config)
    }

    async fn purge_expired_pending(&self) -> Result<u64, StoreError> {
        query("DELETE FROM pending_authorizations WHERE expires_at <= $1")
            .bind(self.now() - calconnect::store::PENDING_PURGE_GRACE)
            .execute(&self.db)
            .await
            .map_err(self.err("purging expired pending authorizations"))
    }

    async fn list_pending(
        &self,
        after: Option<PendingId>,
        limit: u32,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let sql = match after {
            Some(_) => format!(
                "SELECT {PENDING_COLUMNS} FROM pending_authorizations WHERE id > $2 \
                 ORDER BY id LIMIT $1"
            ),
            None => {
                format!("SELECT {PENDING_COLUMNS} FROM pending_authorizations ORDER BY id LIMIT $1")
            }
        };
        let mut q = query(&sql).bind(i64::from(limit));
        if let Some(after) = after {
            q = q.bind(after.as_uuid());
        }
        let rows = q
            .fetch_all(&self.db)
            .await
            .map_err(self.err("listing pending authorizations"))?;
        rows.iter().map(|r| self.decoder().pending(r)).collect()
    }

    async fn reseal_pending(
        &self,
        id: PendingId,
        current: &SealedBlob,
        resealed: SealedBlob,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE pending_authorizations SET pkce_verifier = $1 \
             WHERE id = $2 AND pkce_verifier = $3",
        )
        .bind(resealed.as_bytes())
        .bind(id.as_uuid())
        .bind(current.as_bytes())
        .execute(&self.db)
        .await
        .map_err(self.err("re-sealing a pending authorization"))?;
        Ok(done == 1)
    }

    async fn upsert_connection(&self, new: NewConnection) -> Result<UpsertOutcome, StoreError> {
        let err = self.err("saving a connection");
        let now = self.now();
        let mut tx = self.db.begin_write().await.map_err(&err)?;
        let (mut tx, outcome) = match self.locked_identity(&mut tx, &new.identity).await? {
            Some((id, _, _)) if id != new.id.as_uuid() => {
                return Err(StoreError::IdentityConflict {
                    existing: ConnectionId::from_uuid(id),
                });
            }
            Some((id, previous_end_user, previous_status)) => {
                // Without a new profile, the stored one (same account) stays.
                let profile = if new.profile.is_some() {
                    "profile_name = $10, profile_email = $11, profile_username = $12, \
                     profile_fetched_at = $13, "
                } else {
                    ""
                };
                let sql = format!(
                    "UPDATE connections SET end_user = $1, scopes = $2, access_token = $3, \
                     refresh_token = $4, access_expires_at = $5, \
                     refresh_expires_at_estimate = $6, last_refreshed_at = $7, \
                     status = 'active', status_reason = 'authorized again', \
                     status_changed_at = $7, version = version + 1, lease_owner = NULL, \
                     lease_until = NULL, refresh_intent_started_at = NULL, updated_at = $7, \
                     {profile}profile_check_at = $9 \
                     WHERE id = $8 RETURNING {CONNECTION_COLUMNS}"
                );
                let scopes = scopes::encode(&new.scopes);
                let mut q = query(&sql)
                    .bind(new.end_user.as_str())
                    .bind(&scopes)
                    .bind(new.access_token.as_bytes())
                    .bind(new.refresh_token.as_ref().map(SealedBlob::as_bytes))
                    .bind(new.access_expires_at)
                    .bind(new.refresh_expires_at_estimate)
                    .bind(now)
                    .bind(id)
                    .bind(profile_check_at(&new, now));
                if let Some(p) = &new.profile {
                    q = q
                        .bind(p.name.as_deref())
                        .bind(p.email.as_deref())
                        .bind(p.username.as_deref())
                        .bind(truncate_to_micros(p.fetched_at));
                }
                let row = q.fetch_one(&mut tx).await.map_err(&err)?;
                let outcome = UpsertOutcome::Updated {
                    connection: self.decoder().connection(&row)?,
                    previous_end_user: EndUserId::new(&previous_end_user).map_err(|_| {
                        self.decoder().corrupt(format!("connection {id}: end_user"))
                    })?,
                    previous_status,
                };
                (tx, outcome)
            }
            None => {
                let (tx, created) = self.insert_connection(tx, &new, now).await?;
                (tx, UpsertOutcome::Created(created))
            }
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
        let event = EventRow {
            id: c.id,
            end_user: c.end_user.as_str(),
            kind,
            from,
            to: Some(ConnectionStatus::Active),
            reason,
            at: now,
        };
        insert_event(&mut tx, event).await.map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(outcome)
    }

    async fn get_connection(&self, id: ConnectionId) -> Result<Connection, StoreError> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1");
        let row = query(&sql)
            .bind(id.as_uuid())
            .fetch_optional(&self.db)
            .await
            .map_err(self.err("reading a connection"))?
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        self.decoder().connection(&row)
    }

    async fn find_by_identity(
        &self,
        identity: &CalIdentity,
    ) -> Result<Option<Connection>, StoreError> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections \
             WHERE client_id = $1 AND owner_kind = $2 AND owner_id = $3"
        );
        let row = query(&sql)
            .bind(&identity.client_id)
            .bind(identity.owner.kind())
            .bind(identity.owner.id())
            .fetch_optional(&self.db)
            .await
            .map_err(self.err("looking up a Cal.com identity"))?;
        row.map(|r| self.decoder().connection(&r)).transpose()
    }

    async fn list_for_end_user(&self, end_user: &EndUserId) -> Result<Vec<Connection>, StoreError> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE end_user = $1 \
             ORDER BY created_at, id"
        );
        let rows = query(&sql)
            .bind(end_user.as_str())
            .fetch_all(&self.db)
            .await
            .map_err(self.err("listing an end user's connections"))?;
        rows.iter().map(|r| self.decoder().connection(r)).collect()
    }

    async fn list_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>, StoreError> {
        let sql = match after {
            Some(_) => format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id > $2 ORDER BY id LIMIT $1"
            ),
            None => format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY id LIMIT $1"),
        };
        let mut q = query(&sql).bind(i64::from(limit));
        if let Some(after) = after {
            q = q.bind(after.as_uuid());
        }
        let rows = q
            .fetch_all(&self.db)
            .await
            .map_err(self.err("listing connections"))?;
        rows.iter().map(|r| self.decoder().connection(r)).collect()
    }

    async fn query_connections(&self, q: &ConnectionQuery) -> Result<Vec<Connection>, StoreError> {
        let listing = Listing::of(q);
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections{} ORDER BY created_at, id LIMIT $1",
            listing.sql
        );
        let mut statement = query(&sql).bind(i64::from(q.limit));
        if let Some(status) = q.status {
            statement = statement.bind(status.as_str());
        }
        if let Some(end_user) = &q.end_user {
            statement = statement.bind(end_user.as_str());
        }
        if let Some(after) = q.after {
            statement = statement
                .bind(truncate_to_micros(after.created_at))
                .bind(after.id.as_uuid());
        }
        let rows = statement
            .fetch_all(&self.db)
            .await
            .map_err(self.err("listing connections"))?;
        rows.iter().map(|r| self.decoder().connection(r)).collect()
    }

    async fn count_by_status_for(&self, end_user: &EndUserId) -> Result<StatusCounts, StoreError> {
        let rows = query(
            "SELECT status, COUNT(*) AS n FROM connections WHERE end_user = $1 GROUP BY status",
        )
        .bind(end_user.as_str())
        .fetch_all(&self.db)
        .await
        .map_err(self.err("counting an end user's connections"))?;
        let d = self.decoder();
        let mut counts = StatusCounts::default();
        for row in &rows {
            let n = u64::try_from(d.get::<i64>(row, "n")?).unwrap_or(0);
            if let Some(status) = d.status(row, "status")? {
                counts.add(status, n);
            }
        }
        Ok(counts)
    }

    async fn count_connections(&self) -> Result<u64, StoreError> {
        let row = query("SELECT COUNT(*) AS n FROM connections")
            .fetch_one(&self.db)
            .await
            .map_err(self.err("counting connections"))?;
        Ok(u64::try_from(self.decoder().get::<i64>(&row, "n")?).unwrap_or(0))
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        // The connections that are not active, by status, and all of them (status NULL): both
        // read an index only (migration 0002); the active ones are the difference.
        let rows = query(
            "SELECT status, COUNT(*) AS n FROM connections WHERE status <> 'active' \
             GROUP BY status UNION ALL SELECT NULL, COUNT(*) FROM connections",
        )
        .fetch_all(&self.db)
        .await
        .map_err(self.err("counting connections by status"))?;
        let d = self.decoder();
        let mut counts = StatusCounts::default();
        let mut all = 0;
        for row in &rows {
            let n = u64::try_from(d.get::<i64>(row, "n")?).unwrap_or(0);
            match d.status(row, "status")? {
                Some(status) => counts.add(status, n),
                None => all = n,
            }
        }
        counts.add(ConnectionStatus::Active, all.saturating_sub(counts.total()));
        Ok(counts)
    }

    async fn delete_connection(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError> {
        let err = self.err("deleting a connection");
        let now = self.now();
        let mut tx = self.db.begin_write().await.map_err(&err)?;
        let row = query("DELETE FROM connections WHERE id = $1 RETURNING end_user, status")
            .bind(id.as_uuid())
            .fetch_optional(&mut tx)
            .await
            .map_err(&err)?
            .ok_or_else(|| StoreError::connection_not_found(id))?;
        let end_user: String = self.decoder().get(&row, "end_user")?;
        let event = EventRow {
            id,
            end_user: &end_user,
            kind: EventKind::Deleted,
            from: self.decoder().status(&row, "status")?,
            to: None,
            reason,
            at: now,
        };
        insert_event(&mut tx, event).await.map_err(&err)?;
        tx.commit().await.map_err(&err)
    }

    async fn acquire_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        self.acquire_lease_for(id, owner, lease_for).await
    }

    async fn renew_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        lease_for: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        self.renew_lease_for(id, owner, lease_for).await
    }

    async fn release_lease(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
    ) -> Result<bool, StoreError> {
        self.release_lease_of(id, owner).await
    }

    async fn record_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        self.set_refresh_intent(id, owner, expected_version, true)
            .await
    }

    async fn clear_refresh_intent(
        &self,
        id: ConnectionId,
        owner: &LeaseOwner,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        self.set_refresh_intent(id, owner, expected_version, false)
            .await
    }

    async fn write_tokens(
        &self,
        id: ConnectionId,
        write: TokenWrite,
    ) -> Result<Connection, StoreError> {
        self.fenced_token_write(id, write).await
    }

    async fn reseal_tokens(
        &self,
        id: ConnectionId,
        expected_version: i64,
        access_token: SealedBlob,
        refresh_token: Option<SealedBlob>,
    ) -> Result<(), StoreError> {
        let done = query(
            "UPDATE connections SET access_token = $1, refresh_token = $2 \
             WHERE id = $3 AND version = $4",
        )
        .bind(access_token.as_bytes())
        .bind(refresh_token.as_ref().map(SealedBlob::as_bytes))
        .bind(id.as_uuid())
        .bind(expected_version)
        .execute(&self.db)
        .await
        .map_err(self.err("re-sealing tokens"))?;
        if done == 1 {
            return Ok(());
        }
        Err(StoreError::VersionMismatch {
            id,
            expected: expected_version,
            actual: self.miss(id).await?.version,
        })
    }

    async fn set_status(
        &self,
        id: ConnectionId,
        change: StatusChange,
    ) -> Result<Connection, StoreError> {
        self.change_status(id, change).await
    }

    async fn write_profile(&self, id: ConnectionId, write: ProfileWrite) -> Result<(), StoreError> {
        let sql = if write.profile.is_some() {
            "UPDATE connections SET profile_check_at = $1, profile_name = $3, \
             profile_email = $4, profile_username = $5, profile_fetched_at = $6 WHERE id = $2"
        } else {
            "UPDATE connections SET profile_check_at = $1 WHERE id = $2"
        };
        let mut q = query(sql)
            .bind(truncate_to_micros(write.next_check_at))
            .bind(id.as_uuid());
        if let Some(p) = &write.profile {
            q = q
                .bind(p.name.as_deref())
                .bind(p.email.as_deref())
                .bind(p.username.as_deref())
                .bind(truncate_to_micros(p.fetched_at));
        }
        let done = q
            .execute(&self.db)
            .await
            .map_err(self.err("keeping a connection's profile"))?;
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::connection_not_found(id))
        }
    }

    async fn claim_profile_checks(
        &self,
        q: ProfileCheckQuery,
    ) -> Result<Vec<Connection>, StoreError> {
        let skip_locked = self.db.dialect().skip_locked;
        let sql = format!(
            "WITH due AS ( \
               SELECT id FROM connections \
               WHERE status = 'active' AND profile_check_at <= $1 AND access_expires_at > $2 \
               ORDER BY profile_check_at LIMIT $3{skip_locked}) \
             UPDATE connections SET profile_check_at = $4 \
             WHERE id IN (SELECT id FROM due) RETURNING {CONNECTION_COLUMNS}"
        );
        let rows = query(&sql)
            .bind(truncate_to_micros(q.due_by))
            .bind(truncate_to_micros(q.access_valid_after))
            .bind(i64::from(q.limit))
            .bind(truncate_to_micros(q.claim_until))
            .fetch_all(&self.db)
            .await
            .map_err(self.err("claiming profile checks"))?;
        let mut claimed = rows
            .iter()
            .map(|r| self.decoder().connection(r))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn claim_due_for_refresh(&self, query: DueQuery) -> Result<Vec<Connection>, StoreError> {
        self.claim_due(query).await
    }

    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM connection_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.db)
            .await
            .map_err(self.err("reading events"))?;
        rows.iter().map(|r| self.decoder().event(r)).collect()
    }

    async fn events_for_connection(
        &self,
        id: ConnectionId,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM connection_events WHERE connection_id = $1 ORDER BY seq"
        );
        let rows = query(&sql)
            .bind(id.as_uuid())
            .fetch_all(&self.db)
            .await
            .map_err(self.err("reading events"))?;
        rows.iter().map(|r| self.decoder().event(r)).collect()
    }
}

#[cfg(test)]
mod send_check {
    use super::*;
    fn is_send<T: Send>(_: &T) {}
    #[cfg(feature = "sqlite")]
    #[allow(dead_code)] // reason: compile-time check only
    fn open_is_send(path: &std::path::Path, clock: Arc<dyn Clock>) {
        is_send(&crate::SqliteStore::open(path, clock));
    }
    #[cfg(feature = "postgres")]
    #[allow(dead_code)] // reason: compile-time check only
    fn connect_is_send(options: crate::ConnectOptions, clock: Arc<dyn Clock>) {
        is_send(&crate::PostgresStore::connect_with(options, clock));
    }
}
