//! The pool options of an `lvm-thin` pool in `config.yaml`.

use serde::Deserialize;

/// Options of an `lvm-thin` pool.
///
/// ```yaml
/// pools:
///   fast:
///     driver: lvm-thin
///     volume_group: vg0
///     thin_pool: kiln
///     reserve_data_percent: 10
///     reserve_metadata_percent: 10
///     max_overcommit_ratio: 4.0
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmThinOptions {
    /// The volume group holding the thin pool.
    pub volume_group: String,
    /// The thin pool LV in that group.
    pub thin_pool: String,
    /// Percent of the pool's data space kept free: an operation that would
    /// leave less is refused.
    #[serde(default = "default_reserve")]
    pub reserve_data_percent: f64,
    /// Percent of the pool's metadata space kept free.
    #[serde(default = "default_reserve")]
    pub reserve_metadata_percent: f64,
    /// The most the thin volumes' provisioned sizes may add up to, as a
    /// multiple of the pool's data size.
    #[serde(default = "default_overcommit")]
    pub max_overcommit_ratio: f64,
}

fn default_reserve() -> f64 {
    10.0
}

fn default_overcommit() -> f64 {
    4.0
}

impl LvmThinOptions {
    /// Checks the values that serde cannot: names LVM accepts, percentages
    /// in range, a positive ratio.
    pub fn validate(&self) -> Result<(), String> {
        for (key, name) in [
            ("volume_group", &self.volume_group),
            ("thin_pool", &self.thin_pool),
        ] {
            let ok = !name.is_empty()
                && name.len() <= 127
                && !name.starts_with('-')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b));
            if !ok || name == "." || name == ".." {
                return Err(format!("{key}: {name:?} is not a valid LVM name"));
            }
        }
        for (key, v) in [
            ("reserve_data_percent", self.reserve_data_percent),
            ("reserve_metadata_percent", self.reserve_metadata_percent),
        ] {
            if !(0.0..100.0).contains(&v) {
                return Err(format!("{key}: {v} must be at least 0 and under 100"));
            }
        }
        if !(self.max_overcommit_ratio.is_finite() && self.max_overcommit_ratio > 0.0) {
            return Err(format!(
                "max_overcommit_ratio: {} must be a positive number",
                self.max_overcommit_ratio
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<LvmThinOptions, String> {
        let o: LvmThinOptions = serde_json::from_value(v).map_err(|e| e.to_string())?;
        o.validate().map(|()| o)
    }

    #[test]
    fn defaults_apply_and_unknown_keys_are_refused() {
        let o = parse(serde_json::json!({"volume_group": "vg0", "thin_pool": "kiln"}))
            .expect("minimal options");
        assert_eq!(o.reserve_data_percent, 10.0);
        assert_eq!(o.max_overcommit_ratio, 4.0);
        let err = parse(serde_json::json!({
            "volume_group": "vg0", "thin_pool": "kiln", "thinpool": "x"
        }))
        .expect_err("unknown key");
        assert!(err.contains("thinpool"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            serde_json::json!({"volume_group": "vg 0", "thin_pool": "kiln"}),
            serde_json::json!({"volume_group": "vg0", "thin_pool": "-x"}),
            serde_json::json!({"volume_group": "vg0", "thin_pool": "k", "reserve_data_percent": 100}),
            serde_json::json!({"volume_group": "vg0", "thin_pool": "k", "max_overcommit_ratio": 0}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
