//! Queries on volumes.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, OptionalExtension, Row, ToSql};

use super::{db, decode, decode_size, from_nanos, to_nanos, Tx};
use crate::error::{Error, Result};
use crate::model::{Attachment, Volume, VolumeStatus};
use crate::types::{MountPath, Owner, PoolName, SandboxName, SizeMib, VolumeId, VolumeName};

const VOLUME_COLUMNS: &str = "id, owner, name, pool, size_mib, status, error, created_at";

fn volume_from_row(r: &Row<'_>) -> rusqlite::Result<Volume> {
    Ok(Volume {
        id: decode(0, r.get(0)?, |s| VolumeId::parse(&s))?,
        owner: decode(1, r.get(1)?, Owner::new)?,
        name: decode(2, r.get(2)?, VolumeName::new)?,
        pool: decode(3, r.get(3)?, PoolName::new)?,
        size_mib: decode_size(4, r.get(4)?)?,
        status: decode(5, r.get(5)?, |s| {
            VolumeStatus::parse(&s).ok_or_else(|| Error::invalid("status", s))
        })?,
        error: r.get(6)?,
        created_at: from_nanos(r.get(7)?),
        attachments: Vec::new(),
    })
}

fn attachment_from_row(r: &Row<'_>) -> rusqlite::Result<(String, Attachment)> {
    Ok((
        r.get(0)?,
        Attachment {
            sandbox: decode(1, r.get(1)?, SandboxName::new)?,
            mount: decode(2, r.get(2)?, MountPath::new)?,
            read_only: r.get(3)?,
        },
    ))
}

impl Tx<'_> {
    /// Volumes matching `filter` (a SQL condition on `volumes`), with
    /// their attachments: one query for each, however many volumes.
    fn select_volumes(&self, filter: &str, args: &[&dyn ToSql]) -> Result<Vec<Volume>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT {VOLUME_COLUMNS} FROM volumes WHERE {filter} ORDER BY owner, name"
            ))
            .map_err(db("prepare volume query"))?;
        let mut volumes = stmt
            .query_map(args, volume_from_row)
            .map_err(db("query volumes"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("read volumes"))?;
        if volumes.is_empty() {
            return Ok(volumes);
        }

        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT a.volume_id, s.name, a.mount, a.read_only
                 FROM attachments a
                 JOIN sandboxes s ON s.id = a.sandbox_id
                 WHERE a.volume_id IN (SELECT id FROM volumes WHERE {filter})
                 ORDER BY s.name"
            ))
            .map_err(db("prepare attachment query"))?;
        let rows = stmt
            .query_map(args, attachment_from_row)
            .map_err(db("query attachments"))?;
        let index: HashMap<String, usize> = volumes
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.as_str().to_string(), i))
            .collect();
        for row in rows {
            let (volume_id, attachment) = row.map_err(db("read attachments"))?;
            if let Some(&i) = index.get(&volume_id) {
                volumes[i].attachments.push(attachment);
            }
        }
        Ok(volumes)
    }

    /// The volume `name` of `owner`.
    pub fn volume(&self, owner: &Owner, name: &VolumeName) -> Result<Option<Volume>> {
        Ok(self
            .select_volumes(
                "owner = ?1 AND name = ?2",
                &[&owner.as_str(), &name.as_str()],
            )?
            .pop())
    }

    /// The volume with id `id`.
    pub fn volume_by_id(&self, id: &VolumeId) -> Result<Option<Volume>> {
        Ok(self.select_volumes("id = ?1", &[&id.as_str()])?.pop())
    }

    /// Every volume of `owner`, or of every owner, by owner and name.
    pub fn volumes(&self, owner: Option<&Owner>) -> Result<Vec<Volume>> {
        match owner {
            Some(o) => self.select_volumes("owner = ?1", &[&o.as_str()]),
            None => self.select_volumes("1", &[]),
        }
    }

    /// Every volume in `pool`.
    pub fn volumes_in_pool(&self, pool: &PoolName) -> Result<Vec<Volume>> {
        self.select_volumes("pool = ?1", &[&pool.as_str()])
    }

    /// Adds a volume row (its attachments are not stored from here).
    ///
    /// A taken `(owner, name)` is [`Error::VolumeExists`].
    pub fn insert_volume(&self, v: &Volume) -> Result<()> {
        let res = self
            .tx
            .prepare_cached(&format!(
                "INSERT INTO volumes ({VOLUME_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    v.id.as_str(),
                    v.owner.as_str(),
                    v.name.as_str(),
                    v.pool.as_str(),
                    v.size_mib.get() as i64,
                    v.status.as_str(),
                    v.error,
                    to_nanos(v.created_at),
                ])
            });
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::VolumeExists {
                    volume: v.name.to_string(),
                })
            }
            Err(e) => Err(db("insert volume")(e)),
        }
    }

    /// Sets a volume's status and error text.
    pub fn set_volume_status(
        &self,
        id: &VolumeId,
        status: VolumeStatus,
        error: Option<&str>,
    ) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE volumes SET status = ?2, error = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id.as_str(), status.as_str(), error]))
            .map_err(db("update volume status"))?;
        Ok(())
    }

    /// Sets a volume's provisioned size.
    pub fn set_volume_size(&self, id: &VolumeId, size: SizeMib) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE volumes SET size_mib = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id.as_str(), size.get() as i64]))
            .map_err(db("update volume size"))?;
        Ok(())
    }

    /// Removes a volume row; whether one was there.
    pub fn delete_volume(&self, id: &VolumeId) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached("DELETE FROM volumes WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id.as_str()]))
            .map_err(db("delete volume"))?;
        Ok(n > 0)
    }

    /// The provisioned MiB of all of `owner`'s volumes.
    pub fn provisioned_mib(&self, owner: &Owner) -> Result<u64> {
        let sum: i64 = self
            .tx
            .prepare_cached("SELECT COALESCE(SUM(size_mib), 0) FROM volumes WHERE owner = ?1")
            .and_then(|mut s| s.query_row(params![owner.as_str()], |r| r.get(0)))
            .map_err(db("sum provisioned size"))?;
        Ok(sum.max(0) as u64)
    }

    /// Per pool: the provisioned MiB and the number of volumes.
    pub fn pool_usage(&self) -> Result<BTreeMap<String, (u64, usize)>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT pool, SUM(size_mib), COUNT(*) FROM volumes GROUP BY pool")
            .map_err(db("prepare pool usage"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(db("query pool usage"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (pool, mib, n) = row.map_err(db("read pool usage"))?;
            out.insert(pool, (mib.max(0) as u64, n.max(0) as usize));
        }
        Ok(out)
    }

    /// Whether `id` is a known volume id (in any pool).
    pub fn volume_exists(&self, id: &VolumeId) -> Result<bool> {
        self.tx
            .prepare_cached("SELECT 1 FROM volumes WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id.as_str()], |_| Ok(())).optional())
            .map(|o| o.is_some())
            .map_err(db("look up volume id"))
    }
}
