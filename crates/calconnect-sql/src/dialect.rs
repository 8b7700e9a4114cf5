//! What truly differs between SQLite and PostgreSQL (docs/architecture.md §6.3). Everything
//! else — every query, the store, the migration runner — is written once against [`crate::Db`].

use time::OffsetDateTime;

/// Statement fragments of one backend, spliced into the queries that need them.
#[derive(Debug)]
#[non_exhaustive]
pub struct Dialect {
    /// `SQLite` or `PostgreSQL`.
    pub name: &'static str,
    /// Begins a transaction that reads rows and then writes them. SQLite: `BEGIN IMMEDIATE` takes
    /// the write lock first, so two such transactions (other pools, other processes) queue up
    /// instead of both reading and then failing to upgrade their lock. PostgreSQL: `BEGIN`; the
    /// rows it will write are locked by [`Dialect::lock_row`].
    pub begin_write: &'static str,
    /// Appended to a `SELECT` of rows the transaction then updates: ` FOR UPDATE` on PostgreSQL
    /// (READ COMMITTED), nothing on SQLite (the write lock covers the whole file).
    pub lock_row: &'static str,
    /// Appended to each branch of the due-for-refresh claim: ` FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL, so instances sweeping together never wait for or take each other's rows;
    /// nothing on SQLite, where the one-statement claim runs under the write lock.
    pub skip_locked: &'static str,
    /// Run first in the migration transaction, with a lock key as `$1`: PostgreSQL's
    /// `pg_advisory_xact_lock` (several instances starting together apply migrations once);
    /// none on SQLite, where [`Dialect::begin_write`] already serialises writers.
    pub migration_lock: Option<&'static str>,
    /// Counts (as `n`) the tables named `$1` in the current schema.
    pub table_exists: &'static str,
}

/// SQLite.
pub(crate) static SQLITE: Dialect = Dialect {
    name: "SQLite",
    begin_write: "BEGIN IMMEDIATE",
    lock_row: "",
    skip_locked: "",
    migration_lock: None,
    table_exists: "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1",
};

/// PostgreSQL.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // reason: only its backend uses it
pub(crate) static POSTGRES: Dialect = Dialect {
    name: "PostgreSQL",
    begin_write: "BEGIN",
    lock_row: " FOR UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    migration_lock: Some("SELECT pg_advisory_xact_lock($1)"),
    table_exists: "SELECT COUNT(*) AS n FROM information_schema.tables \
                   WHERE table_schema = current_schema() AND table_name = $1",
};

/// Which unique key an insert violated ([`crate::Db::unique_violation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UniqueKey {
    /// The primary key (the id is taken).
    PrimaryKey,
    /// Another unique constraint (for connections: the Cal.com identity).
    Other,
}

/// The code that differs: how times are stored and how a unique violation names its key.
pub(crate) trait Backend: sqlx::Database {
    /// The statement fragments.
    const DIALECT: &'static Dialect;
    /// How a time is stored.
    type Time: for<'q> sqlx::Encode<'q, Self>
        + for<'r> sqlx::Decode<'r, Self>
        + sqlx::Type<Self>
        + Send
        + Sync
        + 'static;

    fn encode_time(t: OffsetDateTime) -> Self::Time;

    /// `None` when the stored value is out of range.
    fn decode_time(stored: Self::Time) -> Option<OffsetDateTime>;

    /// The key of a unique violation (`None`: not one).
    fn unique_key(e: &dyn sqlx::error::DatabaseError) -> Option<UniqueKey>;
}

/// SQLite stores times as integer microseconds since the Unix epoch (UTC): exact, sortable, and
/// what every calconnect SQLite table has used since version 1 of the schema.
#[cfg(feature = "sqlite")]
impl Backend for sqlx::Sqlite {
    const DIALECT: &'static Dialect = &SQLITE;
    type Time = i64;

    fn encode_time(t: OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
    }

    fn decode_time(micros: i64) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
    }

    /// SQLite names no constraint; its extended result code tells the primary key
    /// (`SQLITE_CONSTRAINT_PRIMARYKEY`, 1555) from other unique indexes (2067).
    fn unique_key(e: &dyn sqlx::error::DatabaseError) -> Option<UniqueKey> {
        e.is_unique_violation().then(|| match e.code().as_deref() {
            Some("1555") => UniqueKey::PrimaryKey,
            _ => UniqueKey::Other,
        })
    }
}

/// PostgreSQL stores times as `timestamptz` (microsecond precision).
#[cfg(feature = "postgres")]
impl Backend for sqlx::Postgres {
    const DIALECT: &'static Dialect = &POSTGRES;
    type Time = OffsetDateTime;

    fn encode_time(t: OffsetDateTime) -> OffsetDateTime {
        t
    }

    fn decode_time(t: OffsetDateTime) -> Option<OffsetDateTime> {
        Some(t)
    }

    /// PostgreSQL names the constraint; primary keys are `<table>_pkey`.
    fn unique_key(e: &dyn sqlx::error::DatabaseError) -> Option<UniqueKey> {
        if !e.is_unique_violation() {
            return None;
        }
        let primary = e.constraint().is_some_and(|c| c.ends_with("_pkey"));
        Some(if primary {
            UniqueKey::PrimaryKey
        } else {
            UniqueKey::Other
        })
    }
}
