//! [`ConnectionStore`](calconnect::store::ConnectionStore) on PostgreSQL: several broker instances share
//! one database. The store itself is `calconnect-sql`'s one SQL store; this crate names its
//! PostgreSQL side.
//!
//! ```no_run
//! # async fn demo() -> Result<(), calconnect::store::StoreError> {
//! use calconnect::SystemClock;
//! use secrecy::SecretString;
//! use std::sync::Arc;
//! let url = SecretString::from("postgres://calconnect:secret@db.internal/calconnect");
//! let store = calconnect_postgres::PostgresStore::connect(&url, Arc::new(SystemClock)).await?;
//! # Ok(()) }
//! ```

pub use calconnect_sql::{
    ConnectOptions, DEFAULT_MAX_CONNECTIONS, MigrationStatus, PostgresStore, describe,
};
