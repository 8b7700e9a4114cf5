//! The refresh budget in the database (`calconnect::budget`): one row per budget, so every
//! instance and process on the database takes from one bucket. A take reads the row and writes
//! it back only if it is unchanged (two statements, no lock held between them; about a third of
//! the round trips of a locked transaction, which matters at a refresh every few hundred
//! milliseconds); after [`OPTIMISTIC_ROUNDS`] lost races, one write transaction (PostgreSQL:
//! the row locked `FOR UPDATE`; SQLite: the file's write lock).

use super::SqlStore;
use crate::db::query;
use async_trait::async_trait;
use calconnect::budget::{BucketState, BudgetConfig, Priority, RefreshBudget, Taken};
use calconnect::store::StoreError;
use std::fmt;
use std::sync::Arc;
use time::OffsetDateTime;

/// Millionths of a permit per permit.
const MICRO: f64 = 1_000_000.0;

/// A [`RefreshBudget`] kept in the store's `refresh_budgets` table, shared by every instance on
/// the database ([`SqlStore::refresh_budget`]).
pub struct SqlBudget<B: sqlx::Database> {
    store: SqlStore<B>,
    config: BudgetConfig,
}

impl<B: sqlx::Database> fmt::Debug for SqlBudget<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBudget")
            .field("database", &self.store.db.description())
            .field("config", &self.config)
            .finish()
    }
}

impl<B: sqlx::Database> SqlStore<B> {
    /// The shared budget as the store trait hands it out.
    pub(super) fn shared_budget(&self, config: BudgetConfig) -> Arc<dyn RefreshBudget> {
        Arc::new(self.refresh_budget(config))
    }

    /// The refresh budget `config.name` in this database, created full on first use.
    pub fn refresh_budget(&self, config: BudgetConfig) -> SqlBudget<B> {
        SqlBudget {
            store: self.clone(),
            config,
        }
    }
}

/// Rounds of read, compute and compare-and-write before [`SqlBudget::update`] falls back to
/// the locked transaction (several instances taking at the same moment).
const OPTIMISTIC_ROUNDS: u32 = 3;

/// The bucket's row as stored: compared whole by the optimistic write.
#[derive(Clone, Copy, PartialEq)]
struct Stored {
    micro_permits: i64,
    micro_background: i64,
    updated_at: OffsetDateTime,
    paused_until: Option<OffsetDateTime>,
}

impl Stored {
    fn state(self) -> BucketState {
        BucketState {
            tokens: self.micro_permits as f64 / MICRO,
            background: self.micro_background as f64 / MICRO,
            updated_at: self.updated_at,
            paused_until: self.paused_until,
        }
    }

    fn of(state: &BucketState) -> Self {
        Self {
            micro_permits: micro(state.tokens),
            micro_background: micro(state.background),
            updated_at: state.updated_at,
            paused_until: state.paused_until,
        }
    }
}

const SELECT: &str = "SELECT micro_permits, micro_background, updated_at, paused_until \
                      FROM refresh_budgets WHERE name = $1";

impl<B: sqlx::Database> SqlBudget<B> {
    /// Reads the bucket, lets `change` update it, writes it back, as one atomic step for every
    /// instance on the database. Usually two statements and no lock held between them: the
    /// write changes the row only if it is still what was read (else another instance took in
    /// between, and the round starts again); after [`OPTIMISTIC_ROUNDS`] lost races, one
    /// transaction with the row locked. A change that leaves the row as it was writes nothing.
    async fn update<T>(
        &self,
        operation: &'static str,
        change: impl Fn(&mut BucketState, OffsetDateTime) -> T,
    ) -> Result<T, StoreError> {
        let store = &self.store;
        let err = store.err(operation);
        for _ in 0..OPTIMISTIC_ROUNDS {
            let now = store.now();
            let Some(read) = self.fetch(&store.db, SELECT, &err).await? else {
                self.create(&store.db, now).await.map_err(&err)?;
                continue;
            };
            let mut state = read.state();
            let answer = change(&mut state, now);
            let written = Stored::of(&state);
            if written == read || self.write(&store.db, &read, &written, &err).await? == 1 {
                return Ok(answer);
            }
        }
        self.update_locked(&err, change).await
    }

    /// [`SqlBudget::update`] in one write transaction with the row locked.
    async fn update_locked<T>(
        &self,
        err: &impl Fn(sqlx::Error) -> StoreError,
        change: impl Fn(&mut BucketState, OffsetDateTime) -> T,
    ) -> Result<T, StoreError> {
        let store = &self.store;
        let now = store.now();
        let mut tx = store.db.begin_write().await.map_err(err)?;
        self.create(&mut tx, now).await.map_err(err)?;
        let sql = format!("{SELECT}{}", store.db.dialect().lock_row);
        let read = self
            .fetch(&mut tx, &sql, err)
            .await?
            .ok_or_else(|| err(sqlx::Error::RowNotFound))?;
        let mut state = read.state();
        let answer = change(&mut state, now);
        // The row is locked: the write's comparison holds, unless what was read does not
        // compare equal to itself in the database (then no permit may be granted).
        if self.write(&mut tx, &read, &Stored::of(&state), err).await? != 1 {
            return Err(err(sqlx::Error::RowNotFound));
        }
        tx.commit().await.map_err(err)?;
        Ok(answer)
    }

    /// The bucket's row read by `sql` ([`SELECT`], perhaps locking), decoded; `None` when there
    /// is none yet.
    async fn fetch<'a>(
        &self,
        on: impl Into<crate::db::On<'a>>,
        sql: &str,
        err: &impl Fn(sqlx::Error) -> StoreError,
    ) -> Result<Option<Stored>, StoreError> {
        let Some(row) = query(sql)
            .bind(self.config.name.as_str())
            .fetch_optional(on)
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let d = self.store.decoder();
        Ok(Some(Stored {
            micro_permits: d.get(&row, "micro_permits")?,
            micro_background: d.get(&row, "micro_background")?,
            updated_at: d.get(&row, "updated_at")?,
            paused_until: d.get(&row, "paused_until")?,
        }))
    }

    /// Writes `written` over the row if it is still `read`; the rows changed (0 or 1).
    async fn write<'a>(
        &self,
        on: impl Into<crate::db::On<'a>>,
        read: &Stored,
        written: &Stored,
        err: &impl Fn(sqlx::Error) -> StoreError,
    ) -> Result<u64, StoreError> {
        query(
            "UPDATE refresh_budgets SET micro_permits = $1, micro_background = $2, \
             updated_at = $3, paused_until = $4 WHERE name = $5 AND micro_permits = $6 \
             AND micro_background = $7 AND updated_at = $8 \
             AND paused_until IS NOT DISTINCT FROM $9",
        )
        .bind(written.micro_permits)
        .bind(written.micro_background)
        .bind(written.updated_at)
        .bind(written.paused_until)
        .bind(self.config.name.as_str())
        .bind(read.micro_permits)
        .bind(read.micro_background)
        .bind(read.updated_at)
        .bind(read.paused_until)
        .execute(on)
        .await
        .map_err(err)
    }

    /// Creates the bucket full, unless it exists.
    async fn create<'a>(
        &self,
        on: impl Into<crate::db::On<'a>>,
        now: OffsetDateTime,
    ) -> Result<u64, sqlx::Error> {
        let full = BucketState::full(&self.config, now);
        query(
            "INSERT INTO refresh_budgets (name, micro_permits, micro_background, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(self.config.name.as_str())
        .bind(micro(full.tokens))
        .bind(micro(full.background))
        .bind(now)
        .execute(on)
        .await
    }
}

fn micro(permits: f64) -> i64 {
    (permits * MICRO).round() as i64
}

#[async_trait]
impl<B: sqlx::Database> RefreshBudget for SqlBudget<B> {
    fn config(&self) -> &BudgetConfig {
        &self.config
    }

    async fn try_take(&self, priority: Priority) -> Result<Taken, StoreError> {
        let config = &self.config;
        self.update("taking a refresh-budget permit", |state, now| {
            state.take(config, now, priority)
        })
        .await
    }

    async fn pause(&self, until: OffsetDateTime) -> Result<(), StoreError> {
        let config = &self.config;
        self.update("pausing the refresh budget", |state, now| {
            state.pause(config, now, until);
        })
        .await
    }

    async fn state(&self) -> Result<BucketState, StoreError> {
        let config = &self.config;
        self.update("reading the refresh budget", |state, now| {
            state.refill(config, now);
            *state
        })
        .await
    }
}
