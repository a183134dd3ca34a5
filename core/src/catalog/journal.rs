//! The operations journal: every multi-step operation is written here
//! before its first step and marked when it ends, so that start-up can
//! finish or undo one a crash interrupted.

use rusqlite::params;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{db, decode, from_nanos, to_nanos, Tx};
use crate::error::{Error, Result};
use crate::types::{OperationId, Owner, PoolName, SizeMib, VolumeId, VolumeName};

/// What a journalled operation does, with what recovery needs to finish
/// or undo it (stored as the entry's JSON payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Making a new volume; undone by deleting it.
    Create {
        /// The volume's owner.
        owner: Owner,
        /// The volume's name.
        name: VolumeName,
        /// Its pool.
        pool: PoolName,
        /// Its size.
        size_mib: SizeMib,
    },
    /// Copying `source` into a new volume; undone by deleting the copy.
    Clone {
        /// The copy's owner.
        owner: Owner,
        /// The copy's name.
        name: VolumeName,
        /// The pool of both.
        pool: PoolName,
        /// The volume copied.
        source: VolumeId,
    },
    /// Removing a volume; finished by removing it.
    Delete {
        /// The volume's owner.
        owner: Owner,
        /// The volume's name.
        name: VolumeName,
        /// Its pool.
        pool: PoolName,
    },
    /// Growing a volume; finished if the backend has the new size, else
    /// rolled back to the old.
    Resize {
        /// The volume's owner.
        owner: Owner,
        /// The volume's name.
        name: VolumeName,
        /// Its pool.
        pool: PoolName,
        /// The size before.
        old_size_mib: SizeMib,
        /// The size asked for.
        new_size_mib: SizeMib,
    },
}

impl Step {
    /// The operation's kind as stored (`create`, `clone`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Create { .. } => "create",
            Step::Clone { .. } => "clone",
            Step::Delete { .. } => "delete",
            Step::Resize { .. } => "resize",
        }
    }

    /// The pool the operation works in.
    pub fn pool(&self) -> &PoolName {
        match self {
            Step::Create { pool, .. }
            | Step::Clone { pool, .. }
            | Step::Delete { pool, .. }
            | Step::Resize { pool, .. } => pool,
        }
    }

    /// `owner/name` of the volume the operation makes or changes.
    pub fn target(&self) -> String {
        match self {
            Step::Create { owner, name, .. }
            | Step::Clone { owner, name, .. }
            | Step::Delete { owner, name, .. }
            | Step::Resize { owner, name, .. } => format!("{owner}/{name}"),
        }
    }
}

/// Where a journalled operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationState {
    /// Started and not ended (after a crash: interrupted).
    Running,
    /// Finished.
    Done,
    /// Failed and undone.
    Undone,
}

impl OperationState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Running => "running",
            OperationState::Done => "done",
            OperationState::Undone => "undone",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(OperationState::Running),
            "done" => Some(OperationState::Done),
            "undone" => Some(OperationState::Undone),
            _ => None,
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Its id.
    pub id: OperationId,
    /// The volume it makes or changes (for a clone, the copy).
    pub volume: VolumeId,
    /// What it does.
    pub step: Step,
    /// Where it is.
    pub state: OperationState,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// When it ended, if it did.
    pub finished_at: Option<OffsetDateTime>,
}

impl Operation {
    /// A new running entry for `step` on `volume`.
    pub fn start(volume: &VolumeId, step: Step) -> Self {
        Self {
            id: OperationId::generate(),
            volume: volume.clone(),
            step,
            state: OperationState::Running,
            started_at: OffsetDateTime::now_utc(),
            finished_at: None,
        }
    }
}

impl Tx<'_> {
    /// Writes a journal entry.
    pub fn insert_operation(&self, op: &Operation) -> Result<()> {
        let payload = serde_json::to_string(&op.step)
            .map_err(|e| Error::Internal(format!("journal payload: {e}")))?;
        self.tx
            .prepare_cached(
                "INSERT INTO operations
                   (id, kind, volume_id, payload, state, started_at, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    op.id.as_str(),
                    op.step.kind(),
                    op.volume.as_str(),
                    payload,
                    op.state.as_str(),
                    to_nanos(op.started_at),
                    op.finished_at.map(to_nanos),
                ])
            })
            .map_err(db("insert journal entry"))?;
        Ok(())
    }

    /// Marks a journal entry ended with `state`.
    pub fn end_operation(&self, id: &OperationId, state: OperationState) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE operations SET state = ?2, finished_at = ?3 WHERE id = ?1")
            .and_then(|mut s| {
                s.execute(params![
                    id.as_str(),
                    state.as_str(),
                    to_nanos(OffsetDateTime::now_utc())
                ])
            })
            .map_err(db("end journal entry"))?;
        Ok(())
    }

    /// Forgets entries that ended before `before`; how many.
    pub fn prune_operations(&self, before: OffsetDateTime) -> Result<usize> {
        self.tx
            .prepare_cached("DELETE FROM operations WHERE state != 'running' AND finished_at < ?1")
            .and_then(|mut s| s.execute(params![to_nanos(before)]))
            .map_err(db("prune journal"))
    }

    /// The entries still running, oldest first.
    pub fn running_operations(&self) -> Result<Vec<Operation>> {
        self.operations_where("state = 'running'")
    }

    /// Every entry, oldest first.
    pub fn operations(&self) -> Result<Vec<Operation>> {
        self.operations_where("1")
    }

    fn operations_where(&self, filter: &str) -> Result<Vec<Operation>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT id, volume_id, payload, state, started_at, finished_at
                 FROM operations WHERE {filter} ORDER BY started_at, rowid"
            ))
            .map_err(db("prepare journal query"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Operation {
                    id: decode(0, r.get(0)?, |s| OperationId::parse(&s))?,
                    volume: decode(1, r.get(1)?, |s| VolumeId::parse(&s))?,
                    step: decode(2, r.get(2)?, |s| {
                        serde_json::from_str(&s)
                            .map_err(|e| Error::invalid("payload", e.to_string()))
                    })?,
                    state: decode(3, r.get(3)?, |s| {
                        OperationState::parse(&s).ok_or_else(|| Error::invalid("state", s))
                    })?,
                    started_at: from_nanos(r.get(4)?),
                    finished_at: r.get::<_, Option<i64>>(5)?.map(from_nanos),
                })
            })
            .map_err(db("query journal"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("read journal"))
    }
}
