//! Where things live in the target: the object key layout.
//!
//! ```text
//! blocks/<h0h1>/<hash>                     one encoded block, named by its hash
//! manifests/<owner>/<volume>/<backup-id>   one backup's manifest (JSON)
//! locks/backup-<backup-id>                 a running backup (shared lock)
//! locks/gc-<uuid>                          a running gc (exclusive lock)
//! ```
//!
//! Owners and volume names follow the name rule (no `/`), backup ids are
//! lowercase letters, digits and `-`, and hashes are hex, so every key is
//! plain ASCII and no part can reach into another's space.

use crate::types::{BackupId, Owner, VolumeName};

/// The prefix of every block.
pub const BLOCKS: &str = "blocks/";
/// The prefix of every manifest.
pub const MANIFESTS: &str = "manifests/";
/// The prefix of every lock.
pub const LOCKS: &str = "locks/";
/// The prefix of backup locks, inside [`LOCKS`].
pub const BACKUP_LOCK: &str = "locks/backup-";
/// The prefix of gc locks, inside [`LOCKS`].
pub const GC_LOCK: &str = "locks/gc-";

/// The key of the block with this hex hash.
pub fn block(hash: &str) -> String {
    format!("{BLOCKS}{}/{hash}", &hash[..2.min(hash.len())])
}

/// The hash a block key names, if `key` is one.
pub fn block_hash(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(BLOCKS)?;
    let (fan, hash) = rest.split_once('/')?;
    (hash.len() == 64 && hash.starts_with(fan) && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(hash)
}

/// The key of a manifest.
pub fn manifest(owner: &Owner, volume: &VolumeName, id: &BackupId) -> String {
    format!("{MANIFESTS}{owner}/{volume}/{id}")
}

/// The prefix under which every manifest of `owner` lives, or of one of
/// its volumes.
pub fn manifests_of(owner: &Owner, volume: Option<&VolumeName>) -> String {
    match volume {
        Some(v) => format!("{MANIFESTS}{owner}/{v}/"),
        None => format!("{MANIFESTS}{owner}/"),
    }
}

/// Splits a manifest key into its owner, volume and backup id (as text;
/// the manifest itself is the authority).
pub fn parse_manifest(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.strip_prefix(MANIFESTS)?.split('/');
    let (owner, volume, id) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some((owner, volume, id))
}

/// The lock of a running backup.
pub fn backup_lock(id: &BackupId) -> String {
    format!("{BACKUP_LOCK}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let hash = "ab".repeat(32);
        assert_eq!(block_hash(&block(&hash)), Some(hash.as_str()));
        assert_eq!(block_hash("blocks/cd/abab"), None);

        let owner = Owner::new("team-a").expect("valid owner");
        let volume = VolumeName::new("data").expect("valid name");
        let id = BackupId::parse("bk-1").expect("valid id");
        let key = manifest(&owner, &volume, &id);
        assert!(key.starts_with(&manifests_of(&owner, Some(&volume))));
        assert_eq!(parse_manifest(&key), Some(("team-a", "data", "bk-1")));
        assert_eq!(parse_manifest("manifests/a/b"), None);
    }
}
