//! Schema migrations, run at start-up. Safe from several processes at once: everything runs in
//! one transaction that first takes `pg_advisory_xact_lock`, so a second instance waits for the
//! first, then finds nothing left to do. PostgreSQL DDL is transactional: a failed migration
//! leaves nothing half-applied.

use crate::rows::unavailable;
use calconnect::StoreError;
use sqlx::{Executor as _, PgPool, Row as _};

/// The migrations of this backend: (version, name, SQL).
pub static MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "init", include_str!("../migrations/0001_init.sql"))];

/// Advisory lock key: "calconn" in ASCII, so it does not collide with other applications' keys.
const LOCK_KEY: i64 = 0x0063_616c_636f_6e6e;

pub(crate) async fn run(pool: &PgPool, database: &str) -> Result<(), StoreError> {
    let migration_error = |migration: &str| {
        let migration = migration.to_owned();
        move |e: sqlx::Error| StoreError::Migration {
            database: database.to_owned(),
            migration: migration.clone(),
            source: Box::new(e),
        }
    };
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| unavailable(database, "starting migrations", e))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(migration_error("advisory lock"))?;
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS calconnect_migrations (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
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
        sqlx::query("INSERT INTO calconnect_migrations (version, name) VALUES ($1, $2)")
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
