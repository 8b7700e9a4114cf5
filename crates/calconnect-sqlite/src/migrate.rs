//! Schema migrations, run at startup. Safe from several processes at once: the whole run is one
//! `BEGIN IMMEDIATE` transaction (SQLite DDL is transactional), so the second process waits for
//! the first, then finds nothing left to do.

use crate::rows::unavailable;
use calconnect::StoreError;
use sqlx::{Executor as _, Row as _, SqlitePool};

/// The migrations of this backend: (version, name, SQL).
pub static MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "init", include_str!("../migrations/0001_init.sql"))];

pub(crate) async fn run(pool: &SqlitePool, database: &str) -> Result<(), StoreError> {
    let migration_error = |migration: &str| {
        let migration = migration.to_owned();
        move |e: sqlx::Error| StoreError::Migration {
            database: database.to_owned(),
            migration: migration.clone(),
            source: Box::new(e),
        }
    };
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| unavailable(database, "starting migrations", e))?;
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS calconnect_migrations (
            version INTEGER PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )",
        )
        .await
        .map_err(migration_error("bookkeeping table"))?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM calconnect_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(migration_error("bookkeeping table"))?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()
        .map_err(migration_error("bookkeeping table"))?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let label = format!("{version:04}_{name}");
        (&mut *tx)
            .execute(*sql)
            .await
            .map_err(migration_error(&label))?;
        sqlx::query("INSERT INTO calconnect_migrations (version, name) VALUES (?, ?)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(migration_error(&label))?;
        tracing::info!(database, migration = %label, "applied migration");
    }
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(newest) = applied.iter().copied().max().filter(|v| *v > known) {
        tracing::warn!(
            database,
            newest,
            known,
            "the schema is newer than this build; upgrade calconnect"
        );
    }
    tx.commit()
        .await
        .map_err(|e| unavailable(database, "committing migrations", e))
}
