//! The pool options of `driver: ext4-file`.

use std::path::PathBuf;

use serde::Deserialize;

/// The options of an ext4-file pool, as in `config.yaml`:
///
/// ```yaml
/// pools:
///   default:
///     driver: ext4-file
///     path: /var/lib/kiln/volumes   # the folder of the images
///     reflink: auto                 # auto | always | never
///     create: true                  # make `path` if missing (default true)
/// ```
///
/// `create` is read by [`open`](crate::open) only, which is why it is no
/// field here: [`Ext4FileStore::new`](crate::Ext4FileStore::new) behaves
/// as `create: true`, and
/// [`Ext4FileStore::open_folder`](crate::Ext4FileStore::open_folder)
/// takes it as an argument.
///
/// A missing folder is made only if its parent exists, and a warning says
/// so: a folder on a disk that is not mounted would otherwise be made on
/// the root filesystem, and every volume of the catalog would show
/// `error`. The backend cannot ask the catalog whether the pool should
/// hold volumes (it knows no catalog), so the rule is about the folder
/// alone. A folder inside a mount point (`/srv/disk1/kiln`) has a parent
/// even while the disk is not mounted; with `create: false` a missing
/// folder always refuses the pool, which is what such a pool wants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ext4FileOptions {
    /// The folder holding the images.
    pub path: PathBuf,
    /// Whether clones and snapshots use reflinks.
    #[serde(default)]
    pub reflink: ReflinkMode,
}

impl Ext4FileOptions {
    /// Options for `path` with reflinks probed.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            reflink: ReflinkMode::Auto,
        }
    }
}

/// Every key of an ext4-file pool in `config.yaml`: [`Ext4FileOptions`]
/// and `create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolKeys {
    pub path: PathBuf,
    #[serde(default)]
    pub reflink: ReflinkMode,
    #[serde(default = "create_by_default")]
    pub create: bool,
}

fn create_by_default() -> bool {
    true
}

impl PoolKeys {
    /// The options, and whether to create a missing folder.
    pub fn split(self) -> (Ext4FileOptions, bool) {
        let options = Ext4FileOptions {
            path: self.path,
            reflink: self.reflink,
        };
        (options, self.create)
    }
}

/// Whether to use reflinks (`FICLONE`) for clones and snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReflinkMode {
    /// Use them if the folder's filesystem has them (probed at open).
    #[default]
    Auto,
    /// Use them; refuse to open if the filesystem lacks them.
    Always,
    /// Never use them: clones are hole-preserving copies, no snapshots.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflink_defaults_to_auto_and_unknown_keys_are_refused() {
        let o: Ext4FileOptions =
            serde_json::from_value(serde_json::json!({"path": "/p"})).expect("valid options");
        assert_eq!(o, Ext4FileOptions::new("/p"));
        let o: Ext4FileOptions =
            serde_json::from_value(serde_json::json!({"path": "/p", "reflink": "never"}))
                .expect("valid options");
        assert_eq!(o.reflink, ReflinkMode::Never);
        let e =
            serde_json::from_value::<Ext4FileOptions>(serde_json::json!({"path": "/p", "size": 1}))
                .expect_err("unknown key");
        assert!(e.to_string().contains("size"), "{e}");
        serde_json::from_value::<Ext4FileOptions>(serde_json::json!({"reflink": "auto"}))
            .expect_err("path is required");
    }
}
