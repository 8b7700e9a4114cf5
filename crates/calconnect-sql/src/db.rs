//! [`Db`]: a pool on SQLite or PostgreSQL, and the one place where a query runs.
//!
//! A statement is written once, with `$n` placeholders (SQLite reads `$n` as parameter `n`, as
//! PostgreSQL does), bound with typed [`Arg`]s and run on the pool or inside a write transaction
//! ([`Tx`]); columns come back through [`Row::get`]. Times are bound and read as
//! [`OffsetDateTime`] and stored in the backend's one time encoding ([`crate::Dialect`]).

use crate::dialect::{Backend, Dialect, UniqueKey};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// `match` on a per-backend enum with the same body for every backend (the body is generic code
/// instantiated once per backend; this is the only place that chooses between them).
macro_rules! each {
    ($value:expr, $enum:ident, $x:ident => $body:expr) => {
        match $value {
            #[cfg(feature = "sqlite")]
            $enum::Sqlite($x) => $body,
            #[cfg(feature = "postgres")]
            $enum::Postgres($x) => $body,
        }
    };
}
pub(crate) use each;

/// A connection pool on one database, SQLite or PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    description: Arc<str>,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Pool {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Pool {
    fn from(pool: sqlx::PgPool) -> Self {
        Self::Postgres(pool)
    }
}

fn dialect_of<B: Backend>(_: &sqlx::Pool<B>) -> &'static Dialect {
    B::DIALECT
}

fn unique_key_of<B: Backend>(_: &sqlx::Pool<B>, e: &sqlx::Error) -> Option<UniqueKey> {
    match e {
        sqlx::Error::Database(d) => B::unique_key(d.as_ref()),
        _ => None,
    }
}

impl Db {
    /// The store's change feed: on PostgreSQL a task that LISTENs on `calconnect_connections`
    /// (notified by a trigger on `connection_events`, migration 3) and reconnects when its
    /// connection drops; `None` on SQLite. Must be called within a tokio runtime.
    pub(crate) fn subscribe_changes(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<calconnect::store::ConnectionId>> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                tokio::runtime::Handle::try_current().ok()?;
                let (tx, rx) = tokio::sync::broadcast::channel(1024);
                tokio::spawn(listen(pool.clone(), tx));
                Some(rx)
            }
            #[allow(unreachable_patterns)] // reason: unreachable with only the postgres feature
            _ => None,
        }
    }

    /// A handle on `pool`; `description` names the database in errors (never a password).
    pub(crate) fn new(pool: impl Into<Pool>, description: impl Into<Arc<str>>) -> Self {
        Self {
            pool: pool.into(),
            description: description.into(),
        }
    }

    /// The database, for messages: a SQLite file path, or PostgreSQL host, port, database and
    /// user (never the password).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The backend's statement fragments.
    pub fn dialect(&self) -> &'static Dialect {
        each!(&self.pool, Pool, p => dialect_of(p))
    }

    /// Begins a transaction that reads and then writes ([`Dialect::begin_write`]).
    ///
    /// # Errors
    /// The driver's.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        let inner = each!(&self.pool, Pool, p => {
            TxInner::from(p.begin_with(dialect_of(p).begin_write).await?)
        });
        Ok(Tx(inner))
    }

    /// Which unique key `e` violated, if it is a unique violation.
    pub fn unique_violation(&self, e: &sqlx::Error) -> Option<UniqueKey> {
        each!(&self.pool, Pool, p => unique_key_of(p, e))
    }

    /// Closes the pool (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        each!(&self.pool, Pool, p => p.close().await);
    }
}

/// A write transaction ([`Db::begin_write`]). Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx(TxInner);

#[derive(Debug)]
pub(crate) enum TxInner {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

#[cfg(feature = "sqlite")]
impl From<sqlx::Transaction<'static, sqlx::Sqlite>> for TxInner {
    fn from(tx: sqlx::Transaction<'static, sqlx::Sqlite>) -> Self {
        Self::Sqlite(tx)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::Transaction<'static, sqlx::Postgres>> for TxInner {
    fn from(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Self {
        Self::Postgres(tx)
    }
}

impl Tx {
    /// Commits.
    ///
    /// # Errors
    /// The driver's.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        each!(self.0, TxInner, t => t.commit().await)
    }

    pub(crate) fn inner(&mut self) -> &mut TxInner {
        &mut self.0
    }
}

/// Where a [`Query`] runs: on the pool (`&Db`) or inside a transaction (`&mut Tx`).
#[derive(Debug)]
pub struct On<'a>(OnInner<'a>);

#[derive(Debug)]
enum OnInner<'a> {
    Pool(&'a Pool),
    Tx(&'a mut TxInner),
}

impl<'a> From<&'a Db> for On<'a> {
    fn from(db: &'a Db) -> Self {
        Self(OnInner::Pool(&db.pool))
    }
}

impl<'a> From<&'a mut Tx> for On<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Self(OnInner::Tx(&mut tx.0))
    }
}

/// A value bound to a `$n` placeholder. Every variant may be NULL (`None`); a time is stored in
/// the backend's time encoding.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Arg<'a> {
    /// An integer.
    I64(Option<i64>),
    /// Text.
    Text(Option<&'a str>),
    /// Bytes (sealed blobs, digests).
    Bytes(Option<&'a [u8]>),
    /// A UUID (SQLite: 16 bytes; PostgreSQL: `uuid`).
    Uuid(Option<Uuid>),
    /// A time (SQLite: microseconds since the epoch; PostgreSQL: `timestamptz`).
    Time(Option<OffsetDateTime>),
}

impl std::fmt::Debug for Arg<'_> {
    /// The kind only: values may be sealed secrets or end-user ids.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::I64(_) => "I64",
            Self::Text(_) => "Text",
            Self::Bytes(_) => "Bytes",
            Self::Uuid(_) => "Uuid",
            Self::Time(_) => "Time",
        })
    }
}

macro_rules! arg_from {
    ($variant:ident: $($t:ty => $convert:expr),* $(,)?) => {
        $(impl<'a> From<$t> for Arg<'a> {
            fn from(v: $t) -> Self {
                Self::$variant($convert(v))
            }
        })*
    };
}
arg_from!(I64: i64 => Some, Option<i64> => std::convert::identity);
arg_from!(Text: &'a str => Some, &'a String => |s: &'a String| Some(s.as_str()),
    Option<&'a str> => std::convert::identity);
arg_from!(Bytes: &'a [u8] => Some, Option<&'a [u8]> => std::convert::identity);
arg_from!(Uuid: Uuid => Some, Option<Uuid> => std::convert::identity);
arg_from!(Time: OffsetDateTime => Some, Option<OffsetDateTime> => std::convert::identity);

/// A statement with its arguments ([`query`]).
pub struct Query<'q> {
    sql: &'q str,
    args: Vec<Arg<'q>>,
}

impl std::fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("sql", &self.sql)
            .field("args", &self.args)
            .finish()
    }
}

/// A statement with `$1`, `$2`, … placeholders, to [`Query::bind`] in order and run.
pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::with_capacity(8),
    }
}

/// Runs `$body` with `$q` the statement built for the backend of `$on` and `$e` its executor.
macro_rules! run {
    ($query:expr, $on:expr, |$q:ident, $e:ident| $body:expr) => {{
        let query = $query;
        let on: On<'_> = $on.into();
        match on.0 {
            #[cfg(feature = "sqlite")]
            OnInner::Pool(Pool::Sqlite($e)) => {
                let $q = query.build::<sqlx::Sqlite>();
                $body
            }
            #[cfg(feature = "sqlite")]
            OnInner::Tx(TxInner::Sqlite(tx)) => {
                let ($q, $e) = (query.build::<sqlx::Sqlite>(), &mut **tx);
                $body
            }
            #[cfg(feature = "postgres")]
            OnInner::Pool(Pool::Postgres($e)) => {
                let $q = query.build::<sqlx::Postgres>();
                $body
            }
            #[cfg(feature = "postgres")]
            OnInner::Tx(TxInner::Postgres(tx)) => {
                let ($q, $e) = (query.build::<sqlx::Postgres>(), &mut **tx);
                $body
            }
        }
    }};
}

impl<'q> Query<'q> {
    /// Binds the next placeholder.
    #[must_use]
    pub fn bind(mut self, arg: impl Into<Arg<'q>>) -> Self {
        self.args.push(arg.into());
        self
    }

    fn build<B: Backend>(self) -> sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>>
    where
        Option<i64>: sqlx::Encode<'q, B> + sqlx::Type<B>,
        Option<&'q str>: sqlx::Encode<'q, B> + sqlx::Type<B>,
        Option<&'q [u8]>: sqlx::Encode<'q, B> + sqlx::Type<B>,
        Option<Uuid>: sqlx::Encode<'q, B> + sqlx::Type<B>,
        Option<B::Time>: sqlx::Encode<'q, B> + sqlx::Type<B>,
    {
        let mut q = sqlx::query(self.sql);
        for arg in self.args {
            q = match arg {
                Arg::I64(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Uuid(v) => q.bind(v),
                Arg::Time(v) => q.bind(v.map(B::encode_time)),
            };
        }
        q
    }

    /// Runs it; the number of rows it changed.
    ///
    /// # Errors
    /// The driver's.
    pub async fn execute<'a>(self, on: impl Into<On<'a>>) -> Result<u64, sqlx::Error> {
        run!(self, on, |q, e| Ok(q.execute(e).await?.rows_affected()))
    }

    /// The one row it returns.
    ///
    /// # Errors
    /// [`sqlx::Error::RowNotFound`] if none; the driver's.
    pub async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<Row, sqlx::Error> {
        run!(self, on, |q, e| q.fetch_one(e).await.map(Row::from))
    }

    /// The row it returns, if any.
    ///
    /// # Errors
    /// The driver's.
    pub async fn fetch_optional<'a>(
        self,
        on: impl Into<On<'a>>,
    ) -> Result<Option<Row>, sqlx::Error> {
        run!(self, on, |q, e| Ok(q
            .fetch_optional(e)
            .await?
            .map(Row::from)))
    }

    /// Every row it returns.
    ///
    /// # Errors
    /// The driver's.
    pub async fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> Result<Vec<Row>, sqlx::Error> {
        run!(self, on, |q, e| Ok(q
            .fetch_all(e)
            .await?
            .into_iter()
            .map(Row::from)
            .collect()))
    }
}

/// A result row.
pub struct Row(RowInner);

impl std::fmt::Debug for Row {
    /// The column names only: values may be sealed secrets or end-user ids.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use sqlx::{Column as _, Row as _};
        let names: Vec<&str> = each!(&self.0, RowInner, r => {
            r.columns().iter().map(|c| c.name()).collect()
        });
        f.debug_struct("Row").field("columns", &names).finish()
    }
}

enum RowInner {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::sqlite::SqliteRow),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::postgres::PgRow),
}

#[cfg(feature = "sqlite")]
impl From<sqlx::sqlite::SqliteRow> for Row {
    fn from(row: sqlx::sqlite::SqliteRow) -> Self {
        Self(RowInner::Sqlite(row))
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::postgres::PgRow> for Row {
    fn from(row: sqlx::postgres::PgRow) -> Self {
        Self(RowInner::Postgres(row))
    }
}

impl Row {
    /// Column `col` as a `T`.
    ///
    /// # Errors
    /// [`sqlx::Error::ColumnNotFound`], [`sqlx::Error::ColumnDecode`] (wrong type, unexpected
    /// NULL, a time out of range).
    pub fn get<T: Column>(&self, col: &str) -> Result<T, sqlx::Error> {
        T::read(self, col)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type a column reads as ([`Row::get`]).
pub trait Column: Sized + sealed::Sealed {
    #[doc(hidden)]
    fn read(row: &Row, col: &str) -> Result<Self, sqlx::Error>;
}

macro_rules! column {
    ($($t:ty),* $(,)?) => {
        $(impl sealed::Sealed for $t {}
        impl Column for $t {
            fn read(row: &Row, col: &str) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                each!(&row.0, RowInner, r => r.try_get(col))
            }
        })*
    };
}
column!(
    i64,
    Option<i64>,
    String,
    Option<String>,
    Vec<u8>,
    Option<Vec<u8>>,
    Uuid
);

fn time_of<R>(row: &R, col: &str) -> Result<Option<OffsetDateTime>, sqlx::Error>
where
    R: sqlx::Row,
    R::Database: Backend,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let stored: Option<<R::Database as Backend>::Time> = row.try_get(col)?;
    stored
        .map(|s| {
            <R::Database as Backend>::decode_time(s).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: col.to_owned(),
                source: "time out of range".into(),
            })
        })
        .transpose()
}

impl sealed::Sealed for Option<OffsetDateTime> {}
impl Column for Option<OffsetDateTime> {
    fn read(row: &Row, col: &str) -> Result<Self, sqlx::Error> {
        each!(&row.0, RowInner, r => time_of(r, col))
    }
}

impl sealed::Sealed for OffsetDateTime {}
impl Column for OffsetDateTime {
    fn read(row: &Row, col: &str) -> Result<Self, sqlx::Error> {
        row.get::<Option<OffsetDateTime>>(col)?
            .ok_or_else(|| sqlx::Error::ColumnDecode {
                index: col.to_owned(),
                source: Box::new(sqlx::error::UnexpectedNullError),
            })
    }
}

/// The channel of connection-event notifications (store migration 3).
#[cfg(feature = "postgres")]
const CHANGES_CHANNEL: &str = "calconnect_connections";

#[cfg(feature = "postgres")]
async fn listen(
    pool: sqlx::PgPool,
    tx: tokio::sync::broadcast::Sender<calconnect::store::ConnectionId>,
) {
    loop {
        if pool.is_closed() || tx.receiver_count() == 0 {
            return; // the store was closed, or every keeper is gone
        }
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "change feed: cannot connect; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
            tracing::warn!(error = %e, "change feed: cannot LISTEN; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        // Listening from now on: whatever changed before (while connecting, or while the
        // connection was lost) may have been missed, so every receiver forgets everything once.
        if tx.send(calconnect::store::ConnectionId::ANY).is_err() {
            return; // nobody listens any more
        }
        loop {
            let received = tokio::select! {
                received = listener.recv() => received,
                () = tx.closed() => return, // every keeper is gone
            };
            match received {
                Ok(n) => {
                    let Ok(id) = Uuid::parse_str(n.payload()) else {
                        continue;
                    };
                    if tx
                        .send(calconnect::store::ConnectionId::from_uuid(id))
                        .is_err()
                    {
                        return; // nobody listens any more
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}
