//! The SQL [`ConnectionStore`](calconnect::store::ConnectionStore) of calconnect: one implementation on
//! SQLite (feature `sqlite`, the embedded default: one file, WAL) and PostgreSQL (feature
//! `postgres`: several broker instances on one database). The queries are written once; what
//! truly differs between the two databases is a small dialect (docs/architecture.md §6.3).
//!
//! ```no_run
//! # async fn demo() -> Result<(), calconnect::store::StoreError> {
//! use calconnect::SystemClock;
//! use std::sync::Arc;
//! # #[cfg(feature = "sqlite")]
//! let store = calconnect_sql::SqliteStore::open("calconnect.db".as_ref(), Arc::new(SystemClock)).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! | Module | What it holds |
//! |---|---|
//! | `dialect` | the [`Dialect`] of each backend: how a write transaction begins (SQLite `BEGIN IMMEDIATE`), row locks (`FOR UPDATE`, `SKIP LOCKED`), the time encoding (SQLite microseconds since the epoch, PostgreSQL `timestamptz`), which unique key a failed insert hit, how migrations are serialised |
//! | `db` | [`Db`], a pool on either backend, and the only place a query runs: [`query`] with `$n` placeholders (SQLite reads `$n` as parameter n too), typed [`Arg`]s, [`Row`] getters, write transactions ([`Tx`]) |
//! | `migrate` | one migration runner for every set of tables ([`Migrations`]: the store's here, the broker's in its crate), on sqlx's [`Migrator`](sqlx::migrate::Migrator) with checksums, adopting the ledgers of earlier versions |
//! | `store` | [`SqlStore`]: the one `ConnectionStore` implementation, and the row decoding |
//! | `sqlite`, `postgres` | opening each backend: [`SqliteStore::open`], [`PostgresStore::connect`] |
//! | `scopes` | the one scope-list encoding (a JSON array in a text column) |
//!
//! Nothing outside `dialect` (and the backend match in `db`) knows which database it talks to.
//!
//! # One encoding per database
//!
//! Every table of a database, the store's and the broker's, stores times one way (SQLite: integer
//! microseconds since the Unix epoch, UTC; PostgreSQL: `timestamptz`) and scope lists one way (a
//! JSON array of strings). [`Arg::Time`] and [`Row::get`] convert, so callers only see
//! [`time::OffsetDateTime`].

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("calconnect-sql needs the `sqlite` or the `postgres` feature (or both)");

mod db;
mod dialect;
pub mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
pub mod scopes;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use db::{Arg, Column, Db, On, Query, Row, Tx, query};
pub use dialect::{Dialect, UniqueKey};
pub use migrate::{MigrationStatus, Migrations};
#[cfg(feature = "postgres")]
pub use postgres::{ConnectOptions, DEFAULT_MAX_CONNECTIONS, PostgresStore, describe};
#[cfg(feature = "sqlite")]
pub use sqlite::{BUSY_TIMEOUT, SqliteStore};
/// The driver, for callers that need its types (pools, errors).
pub use sqlx;
pub use store::{STORE_MIGRATIONS, SqlBudget, SqlStore, claim_due_sql};
