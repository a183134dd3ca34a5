//! The pool options of `driver: ext4-file`.

use std::path::PathBuf;

use serde::Deserialize;

/// The options of an ext4-file pool, as in `config.yaml`:
///
/// ```yaml
/// pools:
///   default:
///     driver: ext4-file
///     path: /var/lib/kiln/volumes   # created if missing
///     reflink: auto                 # auto | always | never
/// ```
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
