//! The manifest: what one backup is, as stored (JSON, versioned) and as
//! shown (the API's backup object).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::types::{BackupId, Owner, PoolName, SizeMib, VolumeName, MIB, SIZE_MIB_MAX};

/// The format version this code writes. Readers refuse manifests of a
/// newer version rather than misread them.
pub const FORMAT_VERSION: u32 = 1;

/// How consistent a backup's content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Read from a detached volume.
    Clean,
    /// Read from a snapshot of an attached volume: like a power cut.
    CrashConsistent,
    /// Read from an attached volume whose pool cannot snapshot: files being
    /// written during the backup may be torn.
    Inconsistent,
}

impl Consistency {
    /// The value as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Clean => "clean",
            Consistency::CrashConsistent => "crash_consistent",
            Consistency::Inconsistent => "inconsistent",
        }
    }
}

/// What a backup cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Bytes of the volume outside holes (the data blocks' length).
    pub logical_bytes: u64,
    /// Bytes uploaded for blocks the target did not hold (as stored:
    /// compressed, encrypted).
    pub stored_bytes: u64,
    /// Bytes of the volume whose blocks the target held already (logical).
    pub reused_bytes: u64,
    /// Blocks uploaded.
    pub blocks_new: u64,
    /// Blocks found in the target already.
    pub blocks_reused: u64,
    /// Blocks recorded as holes.
    pub holes: u64,
}

/// How blocks are encrypted, if they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// The AEAD: `xchacha20poly1305`.
    pub algorithm: String,
    /// A public fingerprint of the key (not the key), so a restore with a
    /// different key fails with a clear message.
    pub key_id: String,
}

/// One backup, as stored in `manifests/<owner>/<volume>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format version ([`FORMAT_VERSION`] when written by this code).
    pub format_version: u32,
    /// The backup's id.
    pub id: BackupId,
    /// The volume's name.
    pub volume: VolumeName,
    /// The volume's owner.
    pub owner: Owner,
    /// The pool it was read from.
    pub pool: PoolName,
    /// The driver of that pool.
    pub driver: String,
    /// The volume's size in bytes.
    pub size_bytes: u64,
    /// When the backup started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How consistent the content is.
    pub consistency: Consistency,
    /// The block size in bytes (the last block may be shorter).
    pub block_size: u64,
    /// The block hash: `blake3`, or `blake3-keyed` when encrypted.
    pub hash: String,
    /// The block compression: `zstd`.
    pub compression: String,
    /// Set when blocks are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// What it cost.
    pub stats: BackupStats,
    /// Block `i` covers bytes `i * block_size ..`: its hash in hex, or
    /// `null` for a hole (all zeros, not stored).
    pub blocks: Vec<Option<String>>,
}

impl Manifest {
    /// Serializes for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest holds only serializable plain data")
    }

    /// Parses and checks a stored manifest; `key` names it in errors.
    pub fn from_bytes(key: &str, bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt {
            what: format!("manifest {key}"),
            reason,
        };
        let version: VersionOnly =
            serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if version.format_version > FORMAT_VERSION || version.format_version == 0 {
            return Err(corrupt(format!(
                "format version {} is not supported (this kiln reads up to {FORMAT_VERSION})",
                version.format_version
            )));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if m.size_bytes == 0 || m.size_bytes > SIZE_MIB_MAX * MIB {
            return Err(corrupt(format!(
                "size {} bytes is not a volume's size",
                m.size_bytes
            )));
        }
        if m.block_size == 0 || m.blocks.len() as u64 != m.size_bytes.div_ceil(m.block_size) {
            return Err(corrupt(format!(
                "{} blocks of {} bytes do not cover {} bytes",
                m.blocks.len(),
                m.block_size,
                m.size_bytes
            )));
        }
        let bad = m.blocks.iter().flatten().find(|h| {
            h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if let Some(h) = bad {
            return Err(corrupt(format!("block hash {h:?} is not 64 hex digits")));
        }
        Ok(m)
    }

    /// The byte range block `index` covers.
    pub fn block_range(&self, index: usize) -> std::ops::Range<u64> {
        let start = index as u64 * self.block_size;
        start..(start + self.block_size).min(self.size_bytes)
    }

    /// The API's view of this backup.
    pub fn info(&self) -> BackupInfo {
        BackupInfo {
            id: self.id.clone(),
            volume: self.volume.clone(),
            owner: self.owner.clone(),
            pool: self.pool.clone(),
            driver: self.driver.clone(),
            size_mib: SizeMib::new(self.size_bytes.div_ceil(MIB).max(1))
                .expect("Manifest::from_bytes checked the size is at most SIZE_MIB_MAX MiB"),
            created_at: self.created_at,
            consistency: self.consistency,
            logical_bytes: self.stats.logical_bytes,
            stored_bytes: self.stats.stored_bytes,
            reused_bytes: self.stats.reused_bytes,
        }
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

/// A backup as the API shows it (`GET /v1/volumes/{name}/backups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The backup's id.
    pub id: BackupId,
    /// The volume's name.
    pub volume: VolumeName,
    /// The volume's owner.
    pub owner: Owner,
    /// The pool it was read from.
    pub pool: PoolName,
    /// That pool's driver.
    pub driver: String,
    /// The volume's size.
    pub size_mib: SizeMib,
    /// When the backup started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How consistent the content is.
    pub consistency: Consistency,
    /// Bytes outside holes.
    pub logical_bytes: u64,
    /// Bytes uploaded new.
    pub stored_bytes: u64,
    /// Bytes whose blocks were already in the target.
    pub reused_bytes: u64,
}

/// A fresh backup id that sorts by time: `bk-<UTC yyyymmddthhmmssmmm>z-<random>`
/// (`bk-20260301t120000123z-3f9a0c1d`).
pub fn new_backup_id(now: OffsetDateTime) -> BackupId {
    let now = now.to_offset(time::UtcOffset::UTC);
    let id = format!(
        "bk-{:04}{:02}{:02}t{:02}{:02}{:02}{:03}z-{:08x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond(),
        rand::random::<u32>()
    );
    BackupId::parse(&id).expect("the id is made of lowercase letters, digits and '-'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_parse() {
        let t = time::macros::datetime!(2026-03-01 12:00:00.123 UTC);
        let a = new_backup_id(t);
        let b = new_backup_id(t + time::Duration::milliseconds(1));
        assert!(a.as_str().starts_with("bk-20260301t120000123z-"), "{a}");
        assert!(a < b);
    }

    #[test]
    fn newer_versions_and_short_block_lists_are_refused() {
        let newer = br#"{"format_version": 99}"#;
        let err = Manifest::from_bytes("m", newer).expect_err("newer version");
        assert!(err.to_string().contains("format version 99"), "{err}");

        let m = Manifest {
            format_version: FORMAT_VERSION,
            id: BackupId::parse("bk-1").expect("valid id"),
            volume: VolumeName::new("v").expect("valid name"),
            owner: Owner::new("o").expect("valid owner"),
            pool: PoolName::new("p").expect("valid pool"),
            driver: "ext4-file".into(),
            size_bytes: 3 * MIB,
            created_at: OffsetDateTime::UNIX_EPOCH,
            consistency: Consistency::Clean,
            block_size: MIB,
            hash: "blake3".into(),
            compression: "zstd".into(),
            encryption: None,
            stats: BackupStats::default(),
            blocks: vec![None, Some("ab".repeat(32))],
        };
        let err = Manifest::from_bytes("m", &m.to_bytes()).expect_err("two blocks for three");
        assert!(err.to_string().contains("do not cover"), "{err}");
        let mut ok = m.clone();
        ok.blocks.push(None);
        assert_eq!(
            Manifest::from_bytes("m", &ok.to_bytes()).expect("valid"),
            ok
        );
    }
}
