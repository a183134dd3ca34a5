//! Queries on sandboxes, their volume lists and attachments.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Row, ToSql};
use time::OffsetDateTime;

use super::{db, decode, from_nanos, to_nanos, Tx};
use crate::error::{Error, Result};
use crate::model::{Sandbox, SandboxState, SandboxVolume, VolumeRequest};
use crate::types::{MountPath, Owner, SandboxName, VolumeId, VolumeName};

/// A sandbox with its row id (what attachments refer to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRow {
    /// The row id.
    pub id: i64,
    /// The sandbox, with its volume list (and devices while running).
    pub sandbox: Sandbox,
}

fn sandbox_from_row(r: &Row<'_>) -> rusqlite::Result<SandboxRow> {
    Ok(SandboxRow {
        id: r.get(0)?,
        sandbox: Sandbox {
            owner: decode(1, r.get(1)?, Owner::new)?,
            name: decode(2, r.get(2)?, SandboxName::new)?,
            state: decode(3, r.get(3)?, |s| {
                SandboxState::parse(&s).ok_or_else(|| Error::invalid("state", s))
            })?,
            created_at: from_nanos(r.get(4)?),
            volumes: Vec::new(),
        },
    })
}

fn sandbox_volume_from_row(r: &Row<'_>) -> rusqlite::Result<(i64, SandboxVolume)> {
    Ok((
        r.get(0)?,
        SandboxVolume {
            volume: decode(1, r.get(1)?, VolumeName::new)?,
            mount: decode(2, r.get(2)?, MountPath::new)?,
            read_only: r.get(3)?,
            device: r.get(4)?,
        },
    ))
}

impl Tx<'_> {
    /// Sandboxes matching `filter` (a SQL condition on `sandboxes`), with
    /// their volume lists: one query for each.
    fn select_sandboxes(&self, filter: &str, args: &[&dyn ToSql]) -> Result<Vec<SandboxRow>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT id, owner, name, state, created_at FROM sandboxes
                 WHERE {filter} ORDER BY owner, name"
            ))
            .map_err(db("prepare sandbox query"))?;
        let mut rows = stmt
            .query_map(args, sandbox_from_row)
            .map_err(db("query sandboxes"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("read sandboxes"))?;
        if rows.is_empty() {
            return Ok(rows);
        }

        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT sv.sandbox_id, sv.volume, sv.mount, sv.read_only, a.device
                 FROM sandbox_volumes sv
                 LEFT JOIN attachments a
                   ON a.sandbox_id = sv.sandbox_id AND a.mount = sv.mount
                 WHERE sv.sandbox_id IN (SELECT id FROM sandboxes WHERE {filter})
                 ORDER BY sv.sandbox_id, sv.position"
            ))
            .map_err(db("prepare sandbox volume query"))?;
        let volumes = stmt
            .query_map(args, sandbox_volume_from_row)
            .map_err(db("query sandbox volumes"))?;
        let index: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        for v in volumes {
            let (sandbox_id, v) = v.map_err(db("read sandbox volumes"))?;
            if let Some(&i) = index.get(&sandbox_id) {
                rows[i].sandbox.volumes.push(v);
            }
        }
        Ok(rows)
    }

    /// The sandbox `name` of `owner`.
    pub fn sandbox(&self, owner: &Owner, name: &SandboxName) -> Result<Option<SandboxRow>> {
        Ok(self
            .select_sandboxes(
                "owner = ?1 AND name = ?2",
                &[&owner.as_str(), &name.as_str()],
            )?
            .pop())
    }

    /// Every sandbox of `owner`, or of every owner, by owner and name.
    pub fn sandboxes(&self, owner: Option<&Owner>) -> Result<Vec<Sandbox>> {
        let rows = match owner {
            Some(o) => self.select_sandboxes("owner = ?1", &[&o.as_str()])?,
            None => self.select_sandboxes("1", &[])?,
        };
        Ok(rows.into_iter().map(|r| r.sandbox).collect())
    }

    /// Adds a sandbox and its volume list; its row id.
    ///
    /// A taken `(owner, name)` is [`Error::SandboxExists`].
    pub fn insert_sandbox(
        &self,
        owner: &Owner,
        name: &SandboxName,
        state: SandboxState,
        created_at: OffsetDateTime,
        volumes: &[VolumeRequest],
    ) -> Result<i64> {
        let res = self
            .tx
            .prepare_cached(
                "INSERT INTO sandboxes (owner, name, state, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    owner.as_str(),
                    name.as_str(),
                    state.as_str(),
                    to_nanos(created_at)
                ])
            });
        match res {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(Error::SandboxExists {
                    sandbox: name.to_string(),
                })
            }
            Err(e) => return Err(db("insert sandbox")(e)),
        }
        let id = self.tx.last_insert_rowid();

        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO sandbox_volumes (sandbox_id, position, volume, mount, read_only)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(db("prepare sandbox volume insert"))?;
        for (pos, v) in volumes.iter().enumerate() {
            stmt.execute(params![
                id,
                pos as i64,
                v.volume.as_str(),
                v.mount.as_str(),
                v.read_only
            ])
            .map_err(db("insert sandbox volume"))?;
        }
        Ok(id)
    }

    /// Records that sandbox `sandbox_id` uses volume `volume` at `mount`
    /// (without a device path yet).
    pub fn attach(
        &self,
        sandbox_id: i64,
        volume: &VolumeId,
        mount: &MountPath,
        read_only: bool,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO attachments (volume_id, sandbox_id, mount, read_only)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    volume.as_str(),
                    sandbox_id,
                    mount.as_str(),
                    read_only
                ])
            })
            .map_err(db("insert attachment"))?;
        Ok(())
    }

    /// Records the device path of an attachment.
    pub fn set_attachment_device(
        &self,
        sandbox_id: i64,
        volume: &VolumeId,
        device: &str,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE attachments SET device = ?3 WHERE sandbox_id = ?1 AND volume_id = ?2",
            )
            .and_then(|mut s| s.execute(params![sandbox_id, volume.as_str(), device]))
            .map_err(db("update attachment device"))?;
        Ok(())
    }

    /// Removes every attachment of sandbox `sandbox_id`.
    pub fn detach_all(&self, sandbox_id: i64) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM attachments WHERE sandbox_id = ?1")
            .and_then(|mut s| s.execute(params![sandbox_id]))
            .map_err(db("delete attachments"))?;
        Ok(())
    }

    /// Sets a sandbox's state.
    pub fn set_sandbox_state(&self, sandbox_id: i64, state: SandboxState) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE sandboxes SET state = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![sandbox_id, state.as_str()]))
            .map_err(db("update sandbox state"))?;
        Ok(())
    }

    /// Removes a sandbox, its volume list and its attachments.
    pub fn delete_sandbox(&self, sandbox_id: i64) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM sandboxes WHERE id = ?1")
            .and_then(|mut s| s.execute(params![sandbox_id]))
            .map_err(db("delete sandbox"))?;
        Ok(())
    }

    /// Whether sandbox `sandbox_id` still exists.
    pub fn sandbox_exists(&self, sandbox_id: i64) -> Result<bool> {
        self.tx
            .prepare_cached("SELECT 1 FROM sandboxes WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![sandbox_id], |_| Ok(())).optional())
            .map(|o| o.is_some())
            .map_err(db("look up sandbox"))
    }
}
