//! The refresh budget in the database (`calconnect::budget`): one row per budget, read and
//! written in one write transaction (PostgreSQL: the row locked `FOR UPDATE`; SQLite: the file's
//! write lock), so every instance and process on the database takes from one bucket.

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

impl<B: sqlx::Database> SqlBudget<B> {
    /// Reads the bucket under the write lock, lets `change` update it, writes it back.
    async fn update<T>(
        &self,
        operation: &'static str,
        change: impl FnOnce(&mut BucketState, OffsetDateTime) -> T,
    ) -> Result<T, StoreError> {
        let store = &self.store;
        let err = store.err(operation);
        let now = store.now();
        let mut tx = store.db.begin_write().await.map_err(&err)?;
        let full = BucketState::full(&self.config, now);
        query(
            "INSERT INTO refresh_budgets (name, micro_permits, micro_background, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(self.config.name.as_str())
        .bind(micro(full.tokens))
        .bind(micro(full.background))
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(&err)?;
        let sql = format!(
            "SELECT micro_permits, micro_background, updated_at, paused_until \
             FROM refresh_budgets WHERE name = $1{}",
            store.db.dialect().lock_row
        );
        let row = query(&sql)
            .bind(self.config.name.as_str())
            .fetch_one(&mut tx)
            .await
            .map_err(&err)?;
        let d = store.decoder();
        let mut state = BucketState {
            tokens: d.get::<i64>(&row, "micro_permits")? as f64 / MICRO,
            background: d.get::<i64>(&row, "micro_background")? as f64 / MICRO,
            updated_at: d.get(&row, "updated_at")?,
            paused_until: d.get(&row, "paused_until")?,
        };
        let answer = change(&mut state, now);
        query(
            "UPDATE refresh_budgets SET micro_permits = $1, micro_background = $2, \
             updated_at = $3, paused_until = $4 WHERE name = $5",
        )
        .bind(micro(state.tokens))
        .bind(micro(state.background))
        .bind(state.updated_at)
        .bind(state.paused_until)
        .bind(self.config.name.as_str())
        .execute(&mut tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(answer)
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
