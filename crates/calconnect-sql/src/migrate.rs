//! One migration runner for every set of calconnect tables: the store's
//! ([`crate::STORE_MIGRATIONS`]) and the broker's (in its crate), on either backend.
//!
//! It is sqlx's [`Migrator`]: each migration's SHA-384 checksum is kept in sqlx's ledger
//! (`_sqlx_migrations`) and checked at every start, so an applied migration edited later stops
//! the start instead of being skipped silently. Around it, two things sqlx does not do:
//!
//! - **One transaction, one lock, for the whole run.** sqlx takes no lock on SQLite, and on
//!   PostgreSQL a session lock per run; two processes starting together on a fresh SQLite file
//!   would both apply the first migration. The runner opens the dialect's write transaction
//!   (SQLite `BEGIN IMMEDIATE`; PostgreSQL `BEGIN` and `pg_advisory_xact_lock`, the key the store
//!   has always used), runs the migrator inside it (each migration becomes a savepoint) and
//!   commits once: a second process waits, then finds nothing to do, and a failed migration
//!   leaves nothing half-applied (both backends' DDL is transactional).
//! - **Adopting earlier ledgers.** calconnect 0.1, before this crate, kept ledgers without
//!   checksums (`calconnect_migrations` for the store, `calconnect_broker_migrations` for the
//!   broker). In the same transaction, each set records its legacy entries in sqlx's ledger with
//!   the checksum of the same, unchanged file, and drops the old table — so a database made by
//!   an earlier version opens, and an earlier version refuses to open a database converted since
//!   (it finds no ledger and its first migration fails).
//!
//! The store's and the broker's tables share one database and sqlx has one ledger per database,
//! so each set owns a range of versions ([`Migrations::versions`]) and ignores the other's.
//!
//! The migrations are embedded with `include_str!` and handed to [`Migrator::new`] rather than
//! found by `sqlx::migrate!`: the macro needs sqlx's `macros` feature, which compiles both
//! database drivers a second time for the host (bundled SQLite included), to produce the same
//! embedded list; and one list per backend is kept by the set, not by a folder scan.

use crate::db::{Db, TxInner, each, query};
use crate::dialect::SQLITE;
use calconnect::store::StoreError;
use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{
    Migrate as _, MigrateError, Migration, MigrationSource, MigrationType, Migrator,
};
use std::borrow::Cow;
use std::ops::RangeInclusive;

/// Advisory lock key of every migration run: "calconn" in ASCII, so it does not collide with
/// other applications' keys.
const LOCK_KEY: i64 = 0x0063_616c_636f_6e6e;

/// One migration: version in the ledger, description, SQL.
pub type Step = (i64, &'static str, &'static str);

/// The migrations of one set of tables, for each backend.
#[derive(Debug)]
pub struct Migrations {
    /// Names the set in messages (`store`, `broker`).
    pub name: &'static str,
    /// The versions this set owns in the shared ledger; others' are not its business.
    pub versions: RangeInclusive<i64>,
    /// On SQLite, in order.
    pub sqlite: &'static [Step],
    /// On PostgreSQL, in order.
    pub postgres: &'static [Step],
    /// The ledger an earlier calconnect kept for this set, if any.
    pub legacy: Option<LegacyLedger>,
}

/// A ledger of calconnect 0.1 (before this crate): a table with a `version` column.
#[derive(Debug)]
pub struct LegacyLedger {
    /// Its table.
    pub table: &'static str,
    /// Its version `v` is version `v + offset` here.
    pub offset: i64,
}

/// How far a database's schema is for one set ([`status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The newest version of the set applied, if any.
    pub applied: Option<i64>,
    /// The newest version this build knows.
    pub known: i64,
    /// Versions this build knows that are not applied.
    pub pending: usize,
}

impl Migrations {
    fn steps(&self, db: &Db) -> &'static [Step] {
        if std::ptr::eq(db.dialect(), &SQLITE) {
            self.sqlite
        } else {
            self.postgres
        }
    }

    fn label(&self, version: i64, steps: &[Step]) -> String {
        let description = steps.iter().find(|s| s.0 == version).map_or("", |s| s.1);
        format!("{} {version:04} {description}", self.name)
    }
}

/// The embedded migrations, as sqlx's migrator takes them.
#[derive(Debug)]
struct Embedded(Vec<Migration>);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

fn embedded(steps: &[Step]) -> Vec<Migration> {
    steps
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect()
}

/// Applies the pending migrations of `set` (see the module documentation).
///
/// # Errors
/// [`StoreError::Unavailable`] when the database does not answer, [`StoreError::Migration`] when
/// a migration fails or an applied one changed since.
pub async fn run(db: &Db, set: &Migrations) -> Result<(), StoreError> {
    let steps = set.steps(db);
    let fail = |migration: String| {
        move |e: MigrateError| StoreError::Migration {
            database: db.description().to_owned(),
            migration,
            source: Box::new(e),
        }
    };
    let ledger = || fail(format!("{} ledger", set.name));
    let sql = |e: sqlx::Error| ledger()(MigrateError::Execute(e));
    let mut tx = db
        .begin_write()
        .await
        .map_err(|e| StoreError::Unavailable {
            database: db.description().to_owned(),
            operation: "starting migrations",
            source: Box::new(e),
        })?;
    if let Some(lock) = db.dialect().migration_lock {
        query(lock)
            .bind(LOCK_KEY)
            .execute(&mut tx)
            .await
            .map_err(sql)?;
    }
    each!(tx.inner(), TxInner, t => t.ensure_migrations_table().await).map_err(ledger())?;
    let migrations = embedded(steps);
    if let Some(legacy) = &set.legacy {
        adopt(&mut tx, db, legacy, &migrations)
            .await
            .map_err(ledger())?;
    }
    let applied: Vec<i64> = query("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut tx)
        .await
        .map_err(sql)?
        .iter()
        .map(|r| r.get::<i64>("version"))
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    let known = steps.last().map_or(0, |s| s.0);
    let newest = applied
        .iter()
        .copied()
        .filter(|v| set.versions.contains(v))
        .max();
    if let Some(newest) = newest.filter(|v| *v > known) {
        tracing::warn!(
            database = db.description(),
            set = set.name,
            newest,
            known,
            "the schema is newer than this build; upgrade calconnect"
        );
    }
    let mut migrator = Migrator::new(Embedded(migrations))
        .await
        .map_err(ledger())?;
    // The other set's versions share the ledger; our own lock is held already.
    migrator.set_ignore_missing(true);
    migrator.set_locking(false);
    // `run_direct` is `run` on a connection we already hold: `run` goes through `Acquire`, whose
    // future the compiler cannot prove `Send` for every lifetime (sqlx keeps `run_direct` public
    // for exactly this).
    each!(tx.inner(), TxInner, t => migrator.run_direct(&mut **t).await).map_err(|e| {
        let version = match &e {
            MigrateError::ExecuteMigration(_, v)
            | MigrateError::VersionMismatch(v)
            | MigrateError::Dirty(v) => Some(*v),
            _ => None,
        };
        match version {
            Some(v) => fail(set.label(v, steps))(e),
            None => ledger()(e),
        }
    })?;
    tx.commit().await.map_err(sql)?;
    for (version, _, _) in steps.iter().filter(|s| !applied.contains(&s.0)) {
        tracing::info!(
            database = db.description(),
            migration = %set.label(*version, steps),
            "applied migration"
        );
    }
    Ok(())
}

/// Records the entries of an earlier ledger in sqlx's, with the checksums of the same files, and
/// drops the earlier ledger.
async fn adopt(
    tx: &mut crate::Tx,
    db: &Db,
    legacy: &LegacyLedger,
    migrations: &[Migration],
) -> Result<(), MigrateError> {
    let found: i64 = query(db.dialect().table_exists)
        .bind(legacy.table)
        .fetch_one(&mut *tx)
        .await?
        .get("n")?;
    if found == 0 {
        return Ok(());
    }
    let rows = query(&format!("SELECT version FROM {}", legacy.table))
        .fetch_all(&mut *tx)
        .await?;
    for row in rows {
        let version = row.get::<i64>("version")? + legacy.offset;
        let migration = migrations
            .iter()
            .find(|m| m.version == version)
            .ok_or(MigrateError::VersionMissing(version))?;
        query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES ($1, $2, TRUE, $3, -1) ON CONFLICT (version) DO NOTHING",
        )
        .bind(version)
        .bind(migration.description.as_ref())
        .bind(migration.checksum.as_ref())
        .execute(&mut *tx)
        .await?;
    }
    query(&format!("DROP TABLE {}", legacy.table))
        .execute(&mut *tx)
        .await?;
    tracing::info!(
        database = db.description(),
        ledger = legacy.table,
        "adopted the migration ledger of an earlier calconnect"
    );
    Ok(())
}

/// How far `db`'s schema is for `set`.
///
/// # Errors
/// The driver's (also when the database was never migrated: there is no ledger).
pub async fn status(db: &Db, set: &Migrations) -> Result<MigrationStatus, sqlx::Error> {
    let steps = set.steps(db);
    let applied: Vec<i64> =
        query("SELECT version FROM _sqlx_migrations WHERE version >= $1 AND version <= $2")
            .bind(*set.versions.start())
            .bind(*set.versions.end())
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| r.get::<i64>("version"))
            .collect::<Result<_, _>>()?;
    Ok(MigrationStatus {
        applied: applied.iter().copied().max(),
        known: steps.last().map_or(0, |s| s.0),
        pending: steps.iter().filter(|s| !applied.contains(&s.0)).count(),
    })
}

impl Migrations {
    /// Whether the set is well formed: the same versions on both backends, ascending, inside
    /// [`Migrations::versions`], and a legacy offset that lands inside them (for tests of each
    /// set).
    pub fn is_well_formed(&self) -> bool {
        let versions = |steps: &[Step]| steps.iter().map(|s| s.0).collect::<Vec<_>>();
        let sqlite = versions(self.sqlite);
        sqlite == versions(self.postgres)
            && sqlite.windows(2).all(|w| w[0] < w[1])
            && sqlite.iter().all(|v| self.versions.contains(v))
            && self
                .legacy
                .as_ref()
                .is_none_or(|l| self.versions.contains(&(1 + l.offset)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_store_set_is_well_formed() {
        assert!(crate::STORE_MIGRATIONS.is_well_formed());
    }
}
