//! The broker's own tables (API keys, connect sessions, webhook outbox) on the same SQLite file or
//! PostgreSQL database as the connection store, with their own migration ledger
//! (`calconnect_broker_migrations`, separate from the store's `calconnect_migrations`).
//!
//! Queries are runtime `sqlx` queries written once with `$n` placeholders (SQLite accepts them) and
//! run on either pool through [`with_pool!`]. Times are unix milliseconds (`BIGINT`), so both
//! backends store the same values.

use calconnect::StoreError;
use sqlx::{PgPool, SqlitePool};

/// Runs `$body` with `$pool` bound to the SQLite or the PostgreSQL pool.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::BrokerDb::Sqlite($pool) => async { $body }.await,
            $crate::db::BrokerDb::Postgres($pool) => async { $body }.await,
        }
    };
}
pub(crate) use with_pool;

/// A pool on the broker's database.
#[derive(Debug, Clone)]
pub enum BrokerDb {
    /// SQLite (one instance).
    Sqlite(SqlitePool),
    /// PostgreSQL (several instances).
    Postgres(PgPool),
}

/// A broker database error: logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
#[error("broker database: {operation} failed: {source}")]
pub struct DbError {
    /// What was being done.
    pub operation: &'static str,
    /// The driver error.
    #[source]
    pub source: sqlx::Error,
}

/// Maps a driver error for `operation`.
pub(crate) fn db_err(operation: &'static str) -> impl Fn(sqlx::Error) -> DbError {
    move |source| DbError { operation, source }
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../migrations/sqlite/0001_init.sql"),
)];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../migrations/postgres/0001_init.sql"),
)];

/// Advisory lock key for broker migrations ("calbrok"), distinct from the store's.
const PG_LOCK_KEY: i64 = 0x0063_616c_6272_6f6b;

impl BrokerDb {
    /// Applies the broker's pending migrations (in one transaction; concurrent starts wait).
    ///
    /// # Errors
    /// [`StoreError::Migration`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let fail = |migration: &str, e: sqlx::Error| StoreError::Migration {
            database: "broker tables".into(),
            migration: migration.to_owned(),
            source: Box::new(e),
        };
        const LEDGER: &str = "CREATE TABLE IF NOT EXISTS calconnect_broker_migrations (
            version BIGINT PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at_ms BIGINT)";
        match self {
            Self::Sqlite(pool) => {
                let mut tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(|e| fail("begin", e))?;
                sqlx::query(LEDGER)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| fail("ledger", e))?;
                for (version, name, sql) in SQLITE_MIGRATIONS {
                    let done: Option<i64> = sqlx::query_scalar(
                        "SELECT version FROM calconnect_broker_migrations WHERE version = $1",
                    )
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| fail(name, e))?;
                    if done.is_none() {
                        sqlx::raw_sql(sql)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| fail(name, e))?;
                        sqlx::query("INSERT INTO calconnect_broker_migrations (version, name) VALUES ($1, $2)")
                            .bind(version)
                            .bind(name)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| fail(name, e))?;
                    }
                }
                tx.commit().await.map_err(|e| fail("commit", e))
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(|e| fail("begin", e))?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_LOCK_KEY)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| fail("advisory lock", e))?;
                sqlx::query(LEDGER)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| fail("ledger", e))?;
                for (version, name, sql) in POSTGRES_MIGRATIONS {
                    let done: Option<i64> = sqlx::query_scalar(
                        "SELECT version FROM calconnect_broker_migrations WHERE version = $1",
                    )
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| fail(name, e))?;
                    if done.is_none() {
                        sqlx::raw_sql(sql)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| fail(name, e))?;
                        sqlx::query("INSERT INTO calconnect_broker_migrations (version, name) VALUES ($1, $2)")
                            .bind(version)
                            .bind(name)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| fail(name, e))?;
                    }
                }
                tx.commit().await.map_err(|e| fail("commit", e))
            }
        }
    }

    /// Whether the database answers and the broker's migrations are applied (for `/readyz`).
    pub async fn ready(&self) -> bool {
        let expected = match self {
            Self::Sqlite(_) => SQLITE_MIGRATIONS.len(),
            Self::Postgres(_) => POSTGRES_MIGRATIONS.len(),
        };
        let count: Result<i64, sqlx::Error> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM calconnect_broker_migrations")
                .fetch_one(pool)
                .await
        });
        count.is_ok_and(|c| usize::try_from(c).is_ok_and(|c| c >= expected))
    }
}
