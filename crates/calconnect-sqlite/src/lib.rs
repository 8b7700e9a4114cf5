//! [`ConnectionStore`](calconnect::store::ConnectionStore) on SQLite: the embedded default (one file,
//! WAL). The store itself is `calconnect-sql`'s one SQL store; this crate names its SQLite side.
//!
//! ```no_run
//! # async fn demo() -> Result<(), calconnect::store::StoreError> {
//! use calconnect::SystemClock;
//! use std::sync::Arc;
//! let store = calconnect_sqlite::SqliteStore::open("calconnect.db".as_ref(), Arc::new(SystemClock)).await?;
//! # Ok(()) }
//! ```

pub use calconnect_sql::{BUSY_TIMEOUT, MigrationStatus, SqliteStore};
