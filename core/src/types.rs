//! Validated domain values that cross crate boundaries.
//!
//! Anything with a rule (a name, a size, a mount path) is a newtype whose
//! constructor enforces that rule, so a value that exists is a value that
//! is valid. Wire formats (serde) go through the same constructors.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Longest accepted name, in bytes (names are ASCII).
pub const NAME_MAX_LEN: usize = 63;

/// Checks the name rule shared by volumes, sandboxes, pools and owners:
/// `[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}`.
fn check_name(field: &'static str, s: &str) -> Result<()> {
    let reason = if s.is_empty() {
        Some("must not be empty".to_string())
    } else if s.len() > NAME_MAX_LEN {
        Some(format!("must be at most {NAME_MAX_LEN} characters"))
    } else if !s.as_bytes()[0].is_ascii_alphanumeric() {
        Some("must start with a letter or digit".to_string())
    } else if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(format!(
            "must contain only letters, digits, '.', '_' and '-' (found {c:?})"
        ))
    } else if s.contains("..") {
        Some("must not contain '..'".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidInput {
            field: field.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Validates `s` against the name rule.
            pub fn new(s: impl Into<String>) -> Result<Self> {
                let s = s.into();
                check_name($field, &s)?;
                Ok(Self(s))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A volume's user-facing name, unique per owner.
    VolumeName,
    "name"
);
name_type!(
    /// A sandbox's name, unique per owner.
    SandboxName,
    "name"
);
name_type!(
    /// A configured pool's name (a key of `pools:` in the config).
    PoolName,
    "pool"
);
name_type!(
    /// The principal a token belongs to.
    Owner,
    "owner"
);

impl Owner {
    /// The owner of requests made over the unix socket without a token.
    pub fn local_admin() -> Self {
        Self("admin".to_string())
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $ty:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "{}"), uuid::Uuid::new_v4().simple()))
            }

            /// Parses an id produced by [`Self::generate`] (or stored earlier).
            ///
            /// Ids only ever hold lowercase ASCII letters, digits and `-`,
            /// so backends may use them in file names and LV names as is.
            pub fn parse(s: &str) -> Result<Self> {
                let ok = s.starts_with($prefix)
                    && s.len() > $prefix.len()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if ok {
                    Ok(Self(s.to_string()))
                } else {
                    Err(Error::InvalidInput {
                        field: "id".to_string(),
                        reason: format!(concat!("{:?} is not a valid ", stringify!($ty)), s),
                    })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// kiln's own id of a volume: what backends are addressed by, never
    /// the user-facing name. `vol-` followed by 32 hex digits.
    VolumeId,
    "vol-"
);
id_type!(
    /// A point-in-time snapshot a backend took of a volume.
    SnapshotId,
    "snap-"
);
id_type!(
    /// One entry of the operations journal.
    OperationId,
    "op-"
);
id_type!(
    /// A long-running job (backup, restore).
    JobId,
    "job-"
);
id_type!(
    /// A backup in the backup target.
    BackupId,
    "bk-"
);

/// A size in mebibytes (MiB, 2^20 bytes), the unit sizes have on the wire.
///
/// Always at least 1: a zero-sized volume is refused when the value is made.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SizeMib(u64);

/// One mebibyte in bytes.
pub const MIB: u64 = 1 << 20;

/// The largest size accepted anywhere (1 PiB): beyond it byte counts risk
/// overflowing the arithmetic of tools kiln drives.
pub const SIZE_MIB_MAX: u64 = 1 << 30;

impl SizeMib {
    /// Validates a size for the field `field` (used in the error).
    pub fn new_for(field: &str, mib: u64) -> Result<Self> {
        if mib == 0 {
            return Err(Error::InvalidInput {
                field: field.to_string(),
                reason: "must be at least 1 MiB".to_string(),
            });
        }
        if mib > SIZE_MIB_MAX {
            return Err(Error::InvalidInput {
                field: field.to_string(),
                reason: format!("must be at most {SIZE_MIB_MAX} MiB"),
            });
        }
        Ok(Self(mib))
    }

    /// Validates a size for the `size_mib` field.
    pub fn new(mib: u64) -> Result<Self> {
        Self::new_for("size_mib", mib)
    }

    /// The size in MiB.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0 * MIB
    }
}

impl fmt::Display for SizeMib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} MiB", self.0)
    }
}

impl fmt::Debug for SizeMib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}MiB", self.0)
    }
}

impl<'de> Deserialize<'de> for SizeMib {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        Self::new(n).map_err(serde::de::Error::custom)
    }
}

/// Folders a volume may never be mounted on (nor under, for the ones in
/// [`FORBIDDEN_MOUNT_TREES`]).
pub const FORBIDDEN_MOUNTS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr", "/var",
];

/// Folders under which nothing may be mounted either.
pub const FORBIDDEN_MOUNT_TREES: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin",
    "/sys", "/usr",
];

/// Where an attachment appears inside the sandbox: absolute, normalised,
/// without `..`, and not a system folder.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MountPath(String);

impl MountPath {
    /// Validates a mount path.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let bad = |reason: String| Error::InvalidInput {
            field: "mount".to_string(),
            reason,
        };
        if !s.starts_with('/') {
            return Err(bad(format!("{s:?} must be an absolute path")));
        }
        if s.len() > 4096 {
            return Err(bad("must be at most 4096 bytes".to_string()));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(bad(format!("{s:?} must not contain control characters")));
        }
        if s.split('/').any(|c| c == "..") {
            return Err(bad(format!("{s:?} must not contain '..'")));
        }
        // Normalise: drop empty and "." components so "/data/./x/" == "/data/x".
        let parts: Vec<&str> = s
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let norm = format!("/{}", parts.join("/"));
        if FORBIDDEN_MOUNTS.contains(&norm.as_str()) {
            return Err(bad(format!("{norm:?} is a system folder")));
        }
        if let Some(tree) = FORBIDDEN_MOUNT_TREES
            .iter()
            .find(|t| Path::new(&norm).starts_with(t))
        {
            return Err(bad(format!(
                "{norm:?} is inside the system folder {tree:?}"
            )));
        }
        Ok(Self(norm))
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for MountPath {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MountPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "A9", "data.v1", "x_y-z", &"a".repeat(63)] {
            assert!(VolumeName::new(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "a..b",
            "é",
            "naïve",
            &"a".repeat(64),
        ] {
            let err = VolumeName::new(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn sizes_are_positive_and_bounded() {
        assert!(SizeMib::new(0).is_err());
        assert!(SizeMib::new(SIZE_MIB_MAX + 1).is_err());
        assert_eq!(SizeMib::new(3).map(SizeMib::bytes).ok(), Some(3 * MIB));
    }

    #[test]
    fn mount_paths_refuse_system_folders_and_escapes() {
        for ok in ["/data", "/home/user/work", "/workspace/./x/", "/mnt/vol"] {
            assert!(MountPath::new(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "data",
            "",
            "/",
            "/proc",
            "/etc",
            "/etc/x",
            "/usr/local",
            "/sys/",
            "/a/../etc",
            "/dev",
            "//",
            "/./",
        ] {
            assert!(MountPath::new(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            MountPath::new("/data//x/./").map(|m| m.0).ok(),
            Some("/data/x".to_string())
        );
    }

    #[test]
    fn ids_round_trip_and_refuse_garbage() {
        let id = VolumeId::generate();
        assert_eq!(VolumeId::parse(id.as_str()).ok(), Some(id.clone()));
        assert!(VolumeId::parse("vol-../../etc").is_err());
        assert!(VolumeId::parse("snap-abc").is_err());
    }
}
