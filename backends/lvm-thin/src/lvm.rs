//! The LVM commands the backend runs, and the parsing of their JSON
//! reports. Every command is scoped to the configured volume group.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_core::exec::{Command, ExecError, Tool};
use serde::Deserialize;

use crate::error::LvmThinError;

/// The report columns kiln reads, in the order of [`LvRow`].
const FIELDS: &str =
    "lv_name,lv_attr,lv_size,lv_tags,pool_lv,data_percent,metadata_percent,lv_active";

/// Settings for hosts (and guests) without udev: LVM then makes the
/// `/dev/VG/LV` links itself instead of waiting for udev rules that never
/// run.
const NO_UDEV_CONFIG: &str = "activation { udev_sync = 0 udev_rules = 0 } \
                              devices { obtain_device_list_from_udev = 0 }";

/// How long a device node may take to appear after activation.
const DEVICE_WAIT: Duration = Duration::from_secs(10);

/// One LV as `lvs` reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lv {
    pub name: String,
    pub attr: String,
    pub size_bytes: u64,
    pub tags: Vec<String>,
    pub pool_lv: String,
    pub data_percent: Option<f64>,
    pub metadata_percent: Option<f64>,
    pub active: bool,
}

impl Lv {
    /// Whether this LV is a thin pool (`lv_attr` starts with `t`).
    pub fn is_thin_pool(&self) -> bool {
        self.attr.starts_with('t')
    }

    /// Whether this LV carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

#[derive(Deserialize)]
struct Report {
    report: Vec<ReportSection>,
}

#[derive(Deserialize)]
struct ReportSection {
    #[serde(default)]
    lv: Vec<LvRow>,
}

#[derive(Deserialize)]
struct LvRow {
    lv_name: String,
    lv_attr: String,
    lv_size: String,
    lv_tags: String,
    pool_lv: String,
    data_percent: String,
    metadata_percent: String,
    lv_active: String,
}

/// Parses `lvs --reportformat json --units b --nosuffix -o FIELDS`.
pub(crate) fn parse_lvs(json: &str) -> Result<Vec<Lv>, String> {
    let report: Report = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let percent = |s: &str| -> Result<Option<f64>, String> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse()
                .map(Some)
                .map_err(|_| format!("bad percentage {s:?}"))
        }
    };
    let mut out = Vec::new();
    for row in report.report.into_iter().flat_map(|s| s.lv) {
        let size_bytes = row
            .lv_size
            .trim()
            .parse()
            .map_err(|_| format!("bad lv_size {:?} of {}", row.lv_size, row.lv_name))?;
        out.push(Lv {
            size_bytes,
            attr: row.lv_attr,
            tags: row
                .lv_tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            pool_lv: row.pool_lv,
            data_percent: percent(&row.data_percent)?,
            metadata_percent: percent(&row.metadata_percent)?,
            active: row.lv_active == "active",
            name: row.lv_name,
        });
    }
    Ok(out)
}

/// The LVM tools, resolved once, bound to one volume group.
#[derive(Debug, Clone)]
pub(crate) struct Lvm {
    lvs: Tool,
    lvcreate: Tool,
    lvremove: Tool,
    lvextend: Tool,
    lvchange: Tool,
    udev: bool,
    pub vg: String,
}

impl Lvm {
    /// Resolves the tools. `udev` says whether udev runs on this host.
    pub fn resolve(vg: &str, udev: bool) -> Result<Self, ExecError> {
        Ok(Self {
            lvs: Tool::resolve("lvs")?,
            lvcreate: Tool::resolve("lvcreate")?,
            lvremove: Tool::resolve("lvremove")?,
            lvextend: Tool::resolve("lvextend")?,
            lvchange: Tool::resolve("lvchange")?,
            udev,
            vg: vg.to_string(),
        })
    }

    /// Whether udev runs here (its control socket exists).
    pub fn udev_running() -> bool {
        Path::new("/run/udev/control").exists()
    }

    fn cmd(&self, tool: &Tool) -> Command {
        let c = tool.command();
        if self.udev {
            c
        } else {
            c.args(["--config", NO_UDEV_CONFIG])
        }
    }

    fn path_of(&self, lv: &str) -> String {
        format!("{}/{lv}", self.vg)
    }

    /// The device of an active LV.
    pub fn device(&self, lv: &str) -> PathBuf {
        PathBuf::from(format!("/dev/{}/{lv}", self.vg))
    }

    fn tool_err(operation: &'static str, target: String) -> impl FnOnce(ExecError) -> LvmThinError {
        move |source| LvmThinError::Tool {
            operation,
            target,
            source,
        }
    }

    /// Every LV of the volume group.
    pub async fn list(&self) -> Result<Vec<Lv>, LvmThinError> {
        let c = self
            .cmd(&self.lvs)
            .args([
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                FIELDS,
            ])
            .arg(&self.vg);
        let argv = c.argv().to_string();
        let out = c
            .run()
            .await
            .map_err(Self::tool_err("lvs", self.vg.clone()))?;
        parse_lvs(&out.stdout).map_err(|reason| LvmThinError::Report {
            command: argv,
            reason,
        })
    }

    /// One LV of the volume group, if it exists.
    pub async fn find(&self, lv: &str) -> Result<Option<Lv>, LvmThinError> {
        Ok(self.list().await?.into_iter().find(|l| l.name == lv))
    }

    /// Makes a thin LV of `size_mib` in `pool` with `tags`.
    pub async fn create_thin(
        &self,
        pool: &str,
        lv: &str,
        size_mib: u64,
        tags: &[String],
    ) -> Result<(), LvmThinError> {
        let mut c = self
            .cmd(&self.lvcreate)
            .args(["--yes", "--type", "thin", "--thinpool", pool])
            .args(["--virtualsize", &format!("{size_mib}m"), "--name", lv]);
        for t in tags {
            c = c.args(["--addtag", t]);
        }
        c.arg(&self.vg)
            .run()
            .await
            .map(drop)
            .map_err(Self::tool_err("lvcreate", self.path_of(lv)))
    }

    /// Makes `lv` a thin snapshot of `origin` with `tags`; `backup` makes it
    /// read-only and skipped by activation (what a backup snapshot is),
    /// otherwise it is a writable LV activated like any other.
    pub async fn snapshot(
        &self,
        origin: &str,
        lv: &str,
        tags: &[String],
        backup: bool,
    ) -> Result<(), LvmThinError> {
        let mut c = self
            .cmd(&self.lvcreate)
            .args(["--yes", "--snapshot", "--name", lv])
            .args(["--setactivationskip", if backup { "y" } else { "n" }]);
        if backup {
            c = c.args(["--permission", "r"]);
        }
        for t in tags {
            c = c.args(["--addtag", t]);
        }
        c.arg(self.path_of(origin))
            .run()
            .await
            .map(drop)
            .map_err(Self::tool_err("lvcreate --snapshot", self.path_of(lv)))
    }

    /// Removes tags from an LV.
    pub async fn del_tags(&self, lv: &str, tags: &[String]) -> Result<(), LvmThinError> {
        let mut c = self.cmd(&self.lvchange);
        for t in tags {
            c = c.args(["--deltag", t]);
        }
        c.arg(self.path_of(lv))
            .run()
            .await
            .map(drop)
            .map_err(Self::tool_err("lvchange --deltag", self.path_of(lv)))
    }

    /// Activates an LV even if it is flagged to be skipped, and waits for
    /// its device node.
    pub async fn activate(&self, lv: &str) -> Result<PathBuf, LvmThinError> {
        self.cmd(&self.lvchange)
            .args(["--activate", "y", "--ignoreactivationskip"])
            .arg(self.path_of(lv))
            .run()
            .await
            .map_err(Self::tool_err("lvchange --activate", self.path_of(lv)))?;
        self.wait_device(lv).await
    }

    /// Waits until the device node of `lv` exists.
    pub async fn wait_device(&self, lv: &str) -> Result<PathBuf, LvmThinError> {
        let path = self.device(lv);
        let deadline = tokio::time::Instant::now() + DEVICE_WAIT;
        while !path.exists() {
            if tokio::time::Instant::now() >= deadline {
                return Err(LvmThinError::NoDevice {
                    vg: self.vg.clone(),
                    lv: lv.to_string(),
                    path: path.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(path)
    }

    /// Grows an LV to `size_mib`.
    pub async fn extend(&self, lv: &str, size_mib: u64) -> Result<(), LvmThinError> {
        self.cmd(&self.lvextend)
            .args(["--size", &format!("{size_mib}m")])
            .arg(self.path_of(lv))
            .run()
            .await
            .map(drop)
            .map_err(Self::tool_err("lvextend", self.path_of(lv)))
    }

    /// Removes an LV (deactivating it first).
    pub async fn remove(&self, lv: &str) -> Result<(), LvmThinError> {
        self.cmd(&self.lvremove)
            .args(["--yes", "--force"])
            .arg(self.path_of(lv))
            .run()
            .await
            .map(drop)
            .map_err(Self::tool_err("lvremove", self.path_of(lv)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_lvs_json_report() {
        let json = r#"{
          "report": [ { "lv": [
            {"lv_name":"kiln", "lv_attr":"twi-aotz--", "lv_size":"1073741824", "lv_tags":"",
             "pool_lv":"", "data_percent":"12.50", "metadata_percent":"3.08", "lv_active":"active"},
            {"lv_name":"kiln-vol-0a", "lv_attr":"Vwi-a-tz--", "lv_size":"67108864",
             "lv_tags":"kiln,kiln-vol-0a", "pool_lv":"kiln", "data_percent":"4.00",
             "metadata_percent":"", "lv_active":"active"},
            {"lv_name":"root", "lv_attr":"-wi-ao----", "lv_size":"4194304", "lv_tags":"",
             "pool_lv":"", "data_percent":"", "metadata_percent":"", "lv_active":""}
          ] } ]
        }"#;
        let lvs = parse_lvs(json).expect("parses");
        assert_eq!(lvs.len(), 3);
        assert!(lvs[0].is_thin_pool());
        assert_eq!(lvs[0].data_percent, Some(12.5));
        assert_eq!(lvs[1].size_bytes, 64 << 20);
        assert!(lvs[1].has_tag("kiln-vol-0a") && lvs[1].active);
        assert_eq!(lvs[2].data_percent, None);
        assert!(!lvs[2].active && !lvs[2].is_thin_pool());
    }

    #[test]
    fn refuses_a_report_that_is_not_one() {
        assert!(parse_lvs("WARNING: something").is_err());
        let bad_size = r#"{"report":[{"lv":[{"lv_name":"a","lv_attr":"","lv_size":"1.5g",
            "lv_tags":"","pool_lv":"","data_percent":"","metadata_percent":"","lv_active":""}]}]}"#;
        assert!(parse_lvs(bad_size).is_err());
    }
}
