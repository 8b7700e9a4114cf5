//! The store error. One enum for every store operation: callers mostly match on a few variants
//! (`VersionMismatch`, `LeaseHeld`, `NotFound`) and report the rest.

use super::types::{ConnectionId, LeaseOwner};
use time::OffsetDateTime;

/// A boxed source error from a database driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed. Messages name the database (host, port, database name and user,
/// never a password) and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such record (or a pending authorization already consumed, or bound to another browser).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, with its id when it is not secret.
        what: String,
    },
    /// The pending authorization existed but had expired; it is now deleted. Start again.
    #[error("the pending authorization expired; start the connection again")]
    PendingExpired,
    /// A fenced write lost: someone wrote the connection since it was read. Re-read and decide.
    #[error(
        "connection {id} changed since it was read (expected version {expected}, found {actual}); re-read it"
    )]
    VersionMismatch {
        /// The connection.
        id: ConnectionId,
        /// The version the writer expected.
        expected: i64,
        /// The version found.
        actual: i64,
    },
    /// Another owner holds the refresh lease.
    #[error("connection {id} is being refreshed by {owner} until {until}")]
    LeaseHeld {
        /// The connection.
        id: ConnectionId,
        /// Current holder.
        owner: LeaseOwner,
        /// Lease end.
        until: OffsetDateTime,
    },
    /// The caller does not hold the lease it tried to renew or use.
    #[error("{owner} does not hold the refresh lease of connection {id}")]
    LeaseNotHeld {
        /// The connection.
        id: ConnectionId,
        /// The caller.
        owner: LeaseOwner,
    },
    /// The Cal.com identity is already connected under another id: seal the tokens for that id
    /// and upsert again (see [`super::save_connection`]).
    #[error("this Cal.com identity is already connected as {existing}")]
    IdentityConflict {
        /// The existing connection.
        existing: ConnectionId,
    },
    /// A record with this id or state already exists.
    #[error("{what} already exists")]
    Duplicate {
        /// What.
        what: String,
    },
    /// The database could not be reached or failed the operation.
    #[error("{operation} failed on {database}: {source}")]
    Unavailable {
        /// Description of the database without password.
        database: String,
        /// The operation.
        operation: &'static str,
        /// The driver error.
        #[source]
        source: BoxError,
    },
    /// A stored value could not be read back.
    #[error("corrupt row in {database}: {what}")]
    Corrupt {
        /// Description of the database without password.
        database: String,
        /// What is wrong.
        what: String,
    },
    /// Migrating the schema failed.
    #[error("migrating {database} failed at migration {migration}: {source}")]
    Migration {
        /// Description of the database without password.
        database: String,
        /// Which migration.
        migration: String,
        /// The driver error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A `NotFound` for a connection.
    pub fn connection_not_found(id: ConnectionId) -> Self {
        Self::NotFound {
            what: format!("connection {id}"),
        }
    }
}
