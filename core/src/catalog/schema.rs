//! The catalog's schema and its ordered migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. A
//! migration is never edited once released: a change to the schema is a
//! new entry at the end of [`MIGRATIONS`].

use rusqlite::Connection;

use super::db;
use crate::error::{Error, Result};

/// The migrations, in order; entry `i` takes the schema from version `i`
/// to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: volumes, sandboxes, their volume lists, attachments, the journal.
    "CREATE TABLE volumes (
         id          TEXT PRIMARY KEY,
         owner       TEXT NOT NULL,
         name        TEXT NOT NULL,
         pool        TEXT NOT NULL,
         size_mib    INTEGER NOT NULL CHECK (size_mib > 0),
         status      TEXT NOT NULL,
         error       TEXT,
         created_at  INTEGER NOT NULL,
         UNIQUE (owner, name)
     );
     CREATE INDEX volumes_pool ON volumes (pool);

     CREATE TABLE sandboxes (
         id          INTEGER PRIMARY KEY,
         owner       TEXT NOT NULL,
         name        TEXT NOT NULL,
         state       TEXT NOT NULL,
         created_at  INTEGER NOT NULL,
         UNIQUE (owner, name)
     );

     -- What a sandbox asked for, kept while it is stopped. Volumes are
     -- named, not referenced: deleting a volume a stopped sandbox lists
     -- is allowed, and starting the sandbox then fails naming it.
     CREATE TABLE sandbox_volumes (
         sandbox_id  INTEGER NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
         position    INTEGER NOT NULL,
         volume      TEXT NOT NULL,
         mount       TEXT NOT NULL,
         read_only   INTEGER NOT NULL,
         PRIMARY KEY (sandbox_id, position),
         UNIQUE (sandbox_id, volume),
         UNIQUE (sandbox_id, mount)
     );

     -- Who uses a volume now. No cascade from volumes: an attached volume
     -- cannot be deleted, not even by mistake. `device` is filled in once
     -- the backend has named it.
     CREATE TABLE attachments (
         volume_id   TEXT NOT NULL REFERENCES volumes (id),
         sandbox_id  INTEGER NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
         mount       TEXT NOT NULL,
         read_only   INTEGER NOT NULL,
         device      TEXT,
         PRIMARY KEY (volume_id, sandbox_id),
         UNIQUE (sandbox_id, mount)
     );
     CREATE INDEX attachments_sandbox ON attachments (sandbox_id);

     CREATE TABLE operations (
         id           TEXT PRIMARY KEY,
         kind         TEXT NOT NULL,
         volume_id    TEXT NOT NULL,
         payload      TEXT NOT NULL,
         state        TEXT NOT NULL,
         started_at   INTEGER NOT NULL,
         finished_at  INTEGER
     );
     CREATE INDEX operations_running ON operations (state) WHERE state = 'running';",
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// The schema version of the database behind `conn`.
pub fn version(conn: &Connection) -> Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db("read schema version"))
}

/// Applies every migration the database lacks, each in its own
/// transaction together with its version bump.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current = version(conn)?;
    if current > VERSION {
        return Err(Error::Internal(format!(
            "catalog schema version {current} is newer than this kiln ({VERSION})"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(db("begin migration"))?;
        tx.execute_batch(sql).map_err(db("migrate schema"))?;
        tx.pragma_update(None, "user_version", i as u32 + 1)
            .map_err(db("set schema version"))?;
        tx.commit().map_err(db("commit migration"))?;
    }
    Ok(())
}
