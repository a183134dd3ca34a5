//! The pool options of a `zfs-zvol` pool in `config.yaml`.

use serde::Deserialize;

/// Options of a `zfs-zvol` pool.
///
/// ```yaml
/// pools:
///   zfs:
///     driver: zfs-zvol
///     dataset: tank/kiln
///     volblocksize: 16K
///     sparse: true
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZfsZvolOptions {
    /// The parent dataset the zvols are made under.
    pub dataset: String,
    /// The zvols' block size: bytes, or with a `K`/`M` suffix.
    #[serde(default = "default_volblocksize")]
    pub volblocksize: BlockSize,
    /// Sparse zvols (no `refreservation`): the pool may be overcommitted.
    #[serde(default = "default_sparse")]
    pub sparse: bool,
}

/// A `volblocksize` as written in the config: `16384`, `"16K"`, `"1M"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct BlockSize(pub u64);

impl TryFrom<serde_json::Value> for BlockSize {
    type Error = String;

    fn try_from(v: serde_json::Value) -> Result<Self, String> {
        let bytes = match &v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => {
                let s = s.trim();
                let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                    Some((i, _)) => s.split_at(i),
                    None => (s, ""),
                };
                let mult = match unit.to_ascii_uppercase().as_str() {
                    "" | "B" => Some(1),
                    "K" | "KB" | "KIB" => Some(1 << 10),
                    "M" | "MB" | "MIB" => Some(1 << 20),
                    _ => None,
                };
                digits.parse::<u64>().ok().zip(mult).map(|(d, m)| d * m)
            }
            _ => None,
        };
        match bytes {
            Some(b) if b.is_power_of_two() && (512..=1 << 20).contains(&b) => Ok(BlockSize(b)),
            _ => Err(format!(
                "volblocksize {v} must be a power of two from 512 to 1M (e.g. 16K)"
            )),
        }
    }
}

fn default_volblocksize() -> BlockSize {
    BlockSize(16 << 10)
}

fn default_sparse() -> bool {
    true
}

impl ZfsZvolOptions {
    /// Checks the dataset name: ZFS's characters, no snapshot or bookmark.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.dataset;
        let ok = !d.is_empty()
            && d.len() < 200
            && !d.starts_with('/')
            && !d.ends_with('/')
            && !d.contains("//")
            && d.split('/').all(|c| c != "." && c != "..")
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(format!("dataset: {d:?} is not a ZFS dataset name"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<ZfsZvolOptions, String> {
        let o: ZfsZvolOptions = serde_json::from_value(v).map_err(|e| e.to_string())?;
        o.validate().map(|()| o)
    }

    #[test]
    fn defaults_and_block_sizes() {
        let o = parse(serde_json::json!({"dataset": "tank/kiln"})).expect("minimal");
        assert_eq!((o.volblocksize, o.sparse), (BlockSize(16384), true));
        for (v, want) in [
            (serde_json::json!("8K"), 8192),
            (serde_json::json!("128k"), 131072),
            (serde_json::json!(4096), 4096),
            (serde_json::json!("1M"), 1 << 20),
        ] {
            let o = parse(serde_json::json!({"dataset": "tank", "volblocksize": v}))
                .expect("valid block size");
            assert_eq!(o.volblocksize, BlockSize(want));
        }
    }

    #[test]
    fn bad_options_are_refused() {
        for bad in [
            serde_json::json!({"dataset": "tank", "volblocksize": "12K"}),
            serde_json::json!({"dataset": "tank", "volblocksize": "2M"}),
            serde_json::json!({"dataset": "tank", "volblocksize": "16Q"}),
            serde_json::json!({"dataset": "tank@snap"}),
            serde_json::json!({"dataset": "/tank"}),
            serde_json::json!({"dataset": "tank", "compression": "lz4"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
