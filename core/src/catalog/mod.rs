//! The SQLite catalog: volumes, sandboxes, attachments and the operations
//! journal.
//!
//! The catalog is synchronous: one connection behind a mutex, held only
//! for one read or one write transaction at a time. Every read and write
//! goes through [`Catalog::read`] or [`Catalog::write`], which hand a
//! [`Tx`] to a closure; a write either commits whole or changes nothing.
//!
//! The schema is versioned with `PRAGMA user_version` and upgraded by the
//! ordered migrations of [`schema`] when the catalog opens. The database
//! runs in WAL mode with foreign keys on.
//!
//! The catalog knows rows, not rules: owners, quotas and attachment rules
//! are the service's.

mod journal;
mod sandboxes;
pub mod schema;
mod volumes;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use time::OffsetDateTime;
use tracing::info;

use crate::error::{Error, Result};

pub use journal::{Operation, OperationState, Step};
pub use sandboxes::SandboxRow;

/// The catalog database; see the module docs.
pub struct Catalog {
    conn: Mutex<Connection>,
}

/// One open transaction, read or write; the queries are its methods.
pub struct Tx<'c> {
    tx: Transaction<'c>,
}

/// The operation name of a failed SQLite call, for [`Error::Catalog`].
pub(crate) fn db(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Catalog { operation, source }
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db("open"))?;
        let catalog = Self::init(conn)?;
        info!(
            path = %path.display(),
            schema_version = schema::VERSION,
            "catalog opened"
        );
        Ok(catalog)
    }

    /// An empty catalog in memory (for tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(db("open"))?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        // journal_mode answers with a row, so it cannot go through execute.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(db("enable WAL"))?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(db("set pragmas"))?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction half
        // applied (rusqlite rolls back on drop), so a poisoned lock is safe
        // to take over.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a read transaction (one consistent view).
    pub fn read<R>(&self, f: impl FnOnce(&Tx<'_>) -> Result<R>) -> Result<R> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(db("begin read"))?;
        let tx = Tx { tx };
        let out = f(&tx)?;
        tx.tx.finish().map_err(db("end read"))?;
        Ok(out)
    }

    /// Runs `f` in a write transaction, committed only if `f` succeeds.
    pub fn write<R>(&self, f: impl FnOnce(&Tx<'_>) -> Result<R>) -> Result<R> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("begin write"))?;
        let tx = Tx { tx };
        let out = f(&tx)?;
        tx.tx.commit().map_err(db("commit"))?;
        Ok(out)
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<u32> {
        schema::version(&self.lock())
    }
}

/// A timestamp as stored: nanoseconds since the Unix epoch.
pub(crate) fn to_nanos(t: OffsetDateTime) -> i64 {
    // i64 nanoseconds reach the year 2262.
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// A stored timestamp back as a time.
pub(crate) fn from_nanos(ns: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Decodes a stored text column through a validating constructor; a
/// value that fails was written by something other than kiln.
pub(crate) fn decode<T>(
    idx: usize,
    text: String,
    parse: impl FnOnce(String) -> Result<T>,
) -> rusqlite::Result<T> {
    parse(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Decodes a stored size in MiB.
pub(crate) fn decode_size(idx: usize, mib: i64) -> rusqlite::Result<crate::types::SizeMib> {
    crate::types::SizeMib::new(u64::try_from(mib).unwrap_or(0)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, Box::new(e))
    })
}

#[cfg(test)]
mod tests;
