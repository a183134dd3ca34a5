//! The JSON messages of the ABI.
//!
//! A [`Request`] names its operation in `op` (`{"op":"create","id":
//! "vol-...","size_mib":64,"contents":"ext4"}`). The result of each
//! operation is the JSON form of what the matching
//! [`VolumeStore`](kiln_core::VolumeStore) method returns:
//!
//! | op | result |
//! |---|---|
//! | `create`, `clone_volume` | a [`StoredVolume`](kiln_core::StoredVolume) |
//! | `delete`, `grow`, `snapshot`, `drop_snapshot`, `zero_range`, `flush`, `close_handle` | `null` |
//! | `open_read`, `open_write` | a [`HandleOpened`] |
//! | `allocated` | `[{"start":0,"end":4096}, ...]` |
//! | `device_path` | the path as a string |
//! | `check_filesystem` | `"clean"` or `"repaired"` |
//! | `list` | an array of `StoredVolume` |
//! | `capacity` | a [`PoolCapacity`](kiln_core::PoolCapacity) |
//!
//! Every failure is a [`WireError`]: `{"kind":"not_found","message":
//! "..."}`, `kind` being an [`ErrorKind`] code.

use std::fmt;

use kiln_core::{Capabilities, Contents, ErrorKind, SizeMib, SnapshotId, VolumeId};
use serde::{Deserialize, Serialize};

use crate::table::{CAP_COW_CLONE, CAP_SNAPSHOTS, CAP_SPARSE_READS};

/// One operation on a plugin instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `VolumeStore::create`.
    Create {
        /// The new volume.
        id: VolumeId,
        /// Its size.
        size_mib: SizeMib,
        /// What it holds.
        contents: Contents,
    },
    /// `VolumeStore::delete`.
    Delete {
        /// The volume.
        id: VolumeId,
    },
    /// `VolumeStore::grow`.
    Grow {
        /// The volume.
        id: VolumeId,
        /// The size to grow to.
        new_size_mib: SizeMib,
    },
    /// `VolumeStore::clone_volume`.
    CloneVolume {
        /// The volume copied.
        src: VolumeId,
        /// The new volume.
        dst: VolumeId,
    },
    /// `VolumeStore::snapshot`.
    Snapshot {
        /// The volume.
        id: VolumeId,
        /// The new snapshot.
        snap: SnapshotId,
    },
    /// `VolumeStore::drop_snapshot`.
    DropSnapshot {
        /// The volume.
        id: VolumeId,
        /// The snapshot.
        snap: SnapshotId,
    },
    /// `VolumeStore::open_read`: answers a [`HandleOpened`].
    OpenRead {
        /// The volume.
        id: VolumeId,
        /// One of its snapshots, or the volume itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snap: Option<SnapshotId>,
    },
    /// `VolumeStore::open_write`: answers a [`HandleOpened`].
    OpenWrite {
        /// The volume.
        id: VolumeId,
    },
    /// `BlockRead::allocated` of an open read handle.
    Allocated {
        /// The handle.
        handle: u64,
    },
    /// `BlockWrite::zero_range` of an open write handle.
    ZeroRange {
        /// The handle.
        handle: u64,
        /// The first byte.
        offset: u64,
        /// The number of bytes.
        len: u64,
    },
    /// `BlockWrite::flush` of an open write handle.
    Flush {
        /// The handle.
        handle: u64,
    },
    /// Closes a read or write handle (the host dropped it).
    CloseHandle {
        /// The handle.
        handle: u64,
    },
    /// `VolumeStore::device_path`.
    DevicePath {
        /// The volume.
        id: VolumeId,
    },
    /// `VolumeStore::check_filesystem`.
    CheckFilesystem {
        /// The volume.
        id: VolumeId,
    },
    /// `VolumeStore::list`.
    List,
    /// `VolumeStore::capacity`.
    Capacity,
}

impl Request {
    /// The operation's name, as in `op`.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Create { .. } => "create",
            Request::Delete { .. } => "delete",
            Request::Grow { .. } => "grow",
            Request::CloneVolume { .. } => "clone_volume",
            Request::Snapshot { .. } => "snapshot",
            Request::DropSnapshot { .. } => "drop_snapshot",
            Request::OpenRead { .. } => "open_read",
            Request::OpenWrite { .. } => "open_write",
            Request::Allocated { .. } => "allocated",
            Request::ZeroRange { .. } => "zero_range",
            Request::Flush { .. } => "flush",
            Request::CloseHandle { .. } => "close_handle",
            Request::DevicePath { .. } => "device_path",
            Request::CheckFilesystem { .. } => "check_filesystem",
            Request::List => "list",
            Request::Capacity => "capacity",
        }
    }
}

/// The result of `open_read` and `open_write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleOpened {
    /// The handle, for `read_at`, `write_at` and the handle requests.
    pub handle: u64,
    /// The size of the volume in bytes.
    pub len: u64,
}

/// The result of `open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenResponse {
    /// What this instance can do; the host uses the bits both this and
    /// [`PluginTable::capabilities`](crate::PluginTable::capabilities) set.
    pub capabilities: Capabilities,
}

/// A failure, as it crosses the boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What kind of failure, as the built-in backends classify theirs.
    pub kind: ErrorKind,
    /// The plugin's message, with its causes.
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}

/// The `CAP_*` bits of `caps`.
pub fn capabilities_to_bits(caps: Capabilities) -> u64 {
    let mut bits = 0;
    if caps.cow_clone {
        bits |= CAP_COW_CLONE;
    }
    if caps.snapshots {
        bits |= CAP_SNAPSHOTS;
    }
    if caps.sparse_reads {
        bits |= CAP_SPARSE_READS;
    }
    bits
}

/// The capabilities `bits` declare (unknown bits are ignored).
pub fn capabilities_from_bits(bits: u64) -> Capabilities {
    Capabilities {
        cow_clone: bits & CAP_COW_CLONE != 0,
        snapshots: bits & CAP_SNAPSHOTS != 0,
        sparse_reads: bits & CAP_SPARSE_READS != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_operation() {
        let id = VolumeId::generate();
        let req = Request::Create {
            id: id.clone(),
            size_mib: SizeMib::new(64).expect("64 MiB is a valid size"),
            contents: Contents::Ext4,
        };
        let json = serde_json::to_value(&req).expect("serializes");
        assert_eq!(json["op"], "create");
        assert_eq!(json["size_mib"], 64);
        let back: Request = serde_json::from_value(json).expect("parses");
        assert_eq!(back, req);
        let list: Request = serde_json::from_str(r#"{"op":"list"}"#).expect("parses");
        assert_eq!(list.op(), "list");
    }

    #[test]
    fn bad_requests_are_refused() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"delete","id":"../etc"}"#).is_err());
    }

    #[test]
    fn capability_bits_round_trip() {
        let caps = Capabilities {
            cow_clone: true,
            snapshots: false,
            sparse_reads: true,
        };
        assert_eq!(capabilities_to_bits(caps), CAP_COW_CLONE | CAP_SPARSE_READS);
        assert_eq!(
            capabilities_from_bits(capabilities_to_bits(caps) | 1 << 40),
            caps
        );
    }

    #[test]
    fn errors_carry_a_kind_code() {
        let e = WireError {
            kind: ErrorKind::NotFound,
            message: "volume vol-1 not found".into(),
        };
        let json = serde_json::to_string(&e).expect("serializes");
        assert_eq!(
            json,
            r#"{"kind":"not_found","message":"volume vol-1 not found"}"#
        );
    }
}
