//! The `zfs` commands the backend runs, and the parsing of their `-Hp`
//! (tab-separated, exact numbers) output.

use std::time::Duration;

use kiln_core::exec::{ExecError, Output, Tool};

use crate::error::ZfsZvolError;

/// The user property that marks a zvol as kiln's.
pub(crate) const PROPERTY: &str = "kiln:volume";

/// How often a destroy is retried while the zvol is busy: udev probes a
/// zvol's device right after it changes, holding it open for a moment.
const BUSY_RETRIES: u32 = 20;

/// One zvol as `zfs list -Hp -o name,kiln:volume,volsize,referenced`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Zvol {
    pub name: String,
    /// The value of [`PROPERTY`], `None` when unset.
    pub kiln_volume: Option<String>,
    pub volsize: u64,
    pub referenced: u64,
}

/// One snapshot as `zfs list -Hp -t snapshot -o name,clones,createtxg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub name: String,
    pub clones: Vec<String>,
    pub createtxg: u64,
}

impl Snapshot {
    /// The part after `@`.
    pub fn short_name(&self) -> &str {
        self.name.rsplit_once('@').map_or("", |(_, s)| s)
    }
}

fn number(field: &str, s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{field} {s:?} is not a number"))
}

fn columns(line: &str, n: usize) -> Result<Vec<&str>, String> {
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.len() == n {
        Ok(cols)
    } else {
        Err(format!("{line:?} has {} columns, not {n}", cols.len()))
    }
}

/// `-` is how `zfs list` shows a property that has no value.
fn value(s: &str) -> Option<String> {
    (s != "-" && !s.is_empty()).then(|| s.to_string())
}

pub(crate) fn parse_zvols(out: &str) -> Result<Vec<Zvol>, String> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let c = columns(line, 4)?;
            Ok(Zvol {
                name: c[0].to_string(),
                kiln_volume: value(c[1]),
                volsize: number("volsize", c[2])?,
                referenced: number("referenced", c[3])?,
            })
        })
        .collect()
}

pub(crate) fn parse_snapshots(out: &str) -> Result<Vec<Snapshot>, String> {
    let mut snaps = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let c = columns(line, 3)?;
            Ok(Snapshot {
                name: c[0].to_string(),
                clones: value(c[1])
                    .map(|v| v.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
                createtxg: number("createtxg", c[2])?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    snaps.sort_by_key(|s| s.createtxg);
    Ok(snaps)
}

/// The `zfs` binary, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Zfs {
    zfs: Tool,
}

impl Zfs {
    pub fn resolve() -> Result<Self, ExecError> {
        Ok(Self {
            zfs: Tool::resolve("zfs")?,
        })
    }

    /// Runs `zfs ARGS`, classifying the failure by its message.
    async fn run(
        &self,
        operation: &'static str,
        target: &str,
        args: &[&str],
    ) -> Result<Output, ZfsZvolError> {
        let result = self.zfs.command().args(args).run().await;
        result.map_err(|source| {
            let stderr = source.stderr();
            if stderr.contains("out of space") || stderr.contains("insufficient space") {
                ZfsZvolError::NoSpace {
                    operation,
                    dataset: target.to_string(),
                    source,
                }
            } else if stderr.contains("does not exist")
                || stderr.contains("could not find any snapshots")
            {
                ZfsZvolError::NotFound {
                    dataset: target.to_string(),
                }
            } else if stderr.contains("already exists") {
                ZfsZvolError::Exists {
                    dataset: target.to_string(),
                }
            } else {
                ZfsZvolError::Tool {
                    operation,
                    target: target.to_string(),
                    source,
                }
            }
        })
    }

    fn report_err(command: &str) -> impl FnOnce(String) -> ZfsZvolError + '_ {
        move |reason| ZfsZvolError::Report {
            command: command.to_string(),
            reason,
        }
    }

    /// Whether `dataset` exists and is a filesystem or volume.
    pub async fn exists(&self, dataset: &str) -> Result<bool, ZfsZvolError> {
        match self
            .run("zfs list", dataset, &["list", "-Hp", "-o", "name", dataset])
            .await
        {
            Ok(_) => Ok(true),
            Err(ZfsZvolError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The zvols directly under `parent`.
    pub async fn zvols(&self, parent: &str) -> Result<Vec<Zvol>, ZfsZvolError> {
        let fields = format!("name,{PROPERTY},volsize,referenced");
        let args = [
            "list", "-Hp", "-t", "volume", "-d", "1", "-o", &fields, parent,
        ];
        let out = self.run("zfs list", parent, &args).await?;
        parse_zvols(&out.stdout).map_err(Self::report_err("zfs list -t volume"))
    }

    /// One zvol, if it exists.
    pub async fn zvol(&self, name: &str) -> Result<Option<Zvol>, ZfsZvolError> {
        let fields = format!("name,{PROPERTY},volsize,referenced");
        let args = ["list", "-Hp", "-t", "volume", "-o", &fields, name];
        match self.run("zfs list", name, &args).await {
            Ok(out) => Ok(parse_zvols(&out.stdout)
                .map_err(Self::report_err("zfs list -t volume"))?
                .into_iter()
                .next()),
            Err(ZfsZvolError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The snapshots of `dataset`, oldest first.
    pub async fn snapshots(&self, dataset: &str) -> Result<Vec<Snapshot>, ZfsZvolError> {
        let args = [
            "list",
            "-Hp",
            "-t",
            "snapshot",
            "-d",
            "1",
            "-o",
            "name,clones,createtxg",
            dataset,
        ];
        let out = self.run("zfs list", dataset, &args).await?;
        parse_snapshots(&out.stdout).map_err(Self::report_err("zfs list -t snapshot"))
    }

    /// A property's value (`-` when unset).
    pub async fn get(&self, dataset: &str, property: &str) -> Result<String, ZfsZvolError> {
        let args = ["get", "-Hp", "-o", "value", property, dataset];
        let out = self.run("zfs get", dataset, &args).await?;
        Ok(out.stdout.trim().to_string())
    }

    /// Space `avail` and `used` of `dataset`.
    pub async fn space(&self, dataset: &str) -> Result<(u64, u64), ZfsZvolError> {
        let args = ["list", "-Hp", "-o", "avail,used", dataset];
        let out = self.run("zfs list", dataset, &args).await?;
        let parse = || -> Result<(u64, u64), String> {
            let line = out.stdout.lines().next().unwrap_or("");
            let c = columns(line, 2)?;
            Ok((number("avail", c[0])?, number("used", c[1])?))
        };
        parse().map_err(Self::report_err("zfs list -o avail,used"))
    }

    /// `zfs create [-s] -V BYTES -o K=V... NAME`.
    pub async fn create_zvol(
        &self,
        name: &str,
        bytes: u64,
        sparse: bool,
        props: &[String],
    ) -> Result<(), ZfsZvolError> {
        let size = bytes.to_string();
        let mut args = vec!["create"];
        if sparse {
            args.push("-s");
        }
        args.extend(["-V", &size]);
        for p in props {
            args.extend(["-o", p]);
        }
        args.push(name);
        self.run("zfs create", name, &args).await.map(drop)
    }

    /// `zfs snapshot NAME@SNAP`.
    pub async fn snapshot(&self, snapshot: &str) -> Result<(), ZfsZvolError> {
        self.run("zfs snapshot", snapshot, &["snapshot", snapshot])
            .await
            .map(drop)
    }

    /// `zfs clone -o K=V... SNAPSHOT NAME`.
    pub async fn clone(
        &self,
        snapshot: &str,
        name: &str,
        props: &[String],
    ) -> Result<(), ZfsZvolError> {
        let mut args = vec!["clone"];
        for p in props {
            args.extend(["-o", p]);
        }
        args.extend([snapshot, name]);
        self.run("zfs clone", name, &args).await.map(drop)
    }

    /// `zfs promote NAME`.
    pub async fn promote(&self, name: &str) -> Result<(), ZfsZvolError> {
        self.run("zfs promote", name, &["promote", name])
            .await
            .map(drop)
    }

    /// `zfs set K=V NAME`.
    pub async fn set(&self, name: &str, prop: &str) -> Result<(), ZfsZvolError> {
        self.run("zfs set", name, &["set", prop, name])
            .await
            .map(drop)
    }

    /// `zfs destroy NAME`, retried while the device is busy.
    pub async fn destroy(&self, name: &str) -> Result<(), ZfsZvolError> {
        let mut attempt = 0;
        loop {
            match self.run("zfs destroy", name, &["destroy", name]).await {
                Err(ZfsZvolError::Tool { source, .. })
                    if source.stderr().contains("busy") && attempt < BUSY_RETRIES =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                other => return other.map(drop),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zvol_rows() {
        let out = "tank/kiln/vol-1\tvol-1\t1073741824\t12288\ntank/kiln/other\t-\t4194304\t8192\n";
        let z = parse_zvols(out).expect("parses");
        assert_eq!(z.len(), 2);
        assert_eq!(z[0].kiln_volume.as_deref(), Some("vol-1"));
        assert_eq!(z[0].volsize, 1 << 30);
        assert_eq!(z[1].kiln_volume, None);
        assert!(parse_zvols("tank/x\t-\t1.5G\t0\n").is_err());
        assert!(parse_zvols("tank/x 1 2\n").is_err());
    }

    #[test]
    fn parses_snapshots_oldest_first_with_their_clones() {
        let out = "t/k/v@b\tt/k/c1,t/k/c2\t90\nt/k/v@a\t-\t12\n";
        let s = parse_snapshots(out).expect("parses");
        assert_eq!(s[0].short_name(), "a");
        assert!(s[0].clones.is_empty());
        assert_eq!(
            s[1].clones,
            vec!["t/k/c1".to_string(), "t/k/c2".to_string()]
        );
    }
}
