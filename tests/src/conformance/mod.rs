//! The backend conformance suite: the same scenarios for every
//! [`VolumeStore`], chosen by the driver's [`Capabilities`].
//!
//! A driver's test builds a [`Target`] (a label, the store, how the suite
//! reaches file data in a volume, a tag for test resources) and calls
//! [`run`]; the [`Report`] says for each scenario whether it passed,
//! failed (and why) or was skipped (and why: "driver has no snapshots").
//! The suite knows no concrete driver: it runs on the host against
//! ext4-file, inside a QEMU guest against lvm-thin and zfs-zvol, and
//! against plugins.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn kiln_core::VolumeStore>) {
//! use kiln_tests::conformance::{run, Access, Target};
//! let report = run(Target::new("ext4-file", store, Access::Mount)).await;
//! report.assert_all_passed();
//! # }
//! ```
//!
//! # Access modes
//!
//! Scenarios check data as files in the volume's ext4. With
//! [`Access::Mount`] they mount the device path (through a loop device of
//! their own when it is a file) and need root. With [`Access::Blocks`]
//! they write a whole filesystem built by `mkfs.ext4 -d` through
//! `open_write` and read files back from `open_read` with `debugfs`, for
//! drivers whose device path is not raw ext4 (a qcow2 plugin).
//!
//! # Resources
//!
//! Volumes get fresh ids and are deleted after each scenario, passed or
//! failed; snapshots are dropped first. Mount folders and dumps are
//! temporary folders named `kiln-<tag>-...`, loop devices are detached by
//! the guard that attached them (see [`host`]).
//!
//! # Limitations
//!
//! - In [`Access::Blocks`] each write replaces the whole filesystem, so
//!   "grow keeps the data" is checked on a filesystem kiln did not make.
//! - The suite expects to be the only user of the pool while it runs
//!   ("list is exact" compares listings before and after).
//! - "list ignores foreign objects" needs the driver to say how to plant
//!   one ([`Target::with_foreign`]); without it that scenario is skipped.

mod files;
pub mod host;
mod report;
mod scenarios;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kiln_core::{BlockRead, Capabilities, Contents, SizeMib, SnapshotId, VolumeId, VolumeStore};

pub use report::{Outcome, Report};
pub use scenarios::scenario_names;

/// How the suite reaches file data in a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Mount the device path (a loop device for an image file); needs root.
    Mount,
    /// Block I/O only (`open_write`, `open_read`), files read with debugfs.
    Blocks,
}

/// Plants objects in a driver's pool that look like volumes but are not
/// kiln's (an untagged file or LV), so the suite can check `list` skips
/// them.
#[async_trait]
pub trait ForeignObjects: Send + Sync {
    /// Makes the objects; returns what was made, for messages.
    async fn plant(&self) -> Result<String, String>;
    /// Removes exactly what [`ForeignObjects::plant`] made.
    async fn remove(&self) -> Result<(), String>;
}

/// What the suite runs against.
pub struct Target {
    driver: String,
    store: Arc<dyn VolumeStore>,
    access: Access,
    tag: String,
    volume_size: SizeMib,
    foreign: Option<Arc<dyn ForeignObjects>>,
}

/// The size of the volumes scenarios make unless told otherwise.
const DEFAULT_VOLUME_MIB: u64 = 64;

impl Target {
    /// A target labelled `driver` (the label of the report's lines), with a
    /// fresh tag and 64 MiB volumes.
    pub fn new(driver: impl Into<String>, store: Arc<dyn VolumeStore>, access: Access) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        Self {
            driver: driver.into(),
            store,
            access,
            tag: format!(
                "conf{}x{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
            volume_size: SizeMib::new(DEFAULT_VOLUME_MIB).expect("64 MiB is a valid size"),
            foreign: None,
        }
    }

    /// Uses `tag` in the names of test resources.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// The size of the volumes scenarios make (grow doubles it).
    pub fn with_volume_size(mut self, size: SizeMib) -> Self {
        self.volume_size = size;
        self
    }

    /// How to plant non-kiln objects in the pool.
    pub fn with_foreign(mut self, foreign: Arc<dyn ForeignObjects>) -> Self {
        self.foreign = Some(foreign);
        self
    }

    /// The tag of this target's test resources.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

/// Runs every scenario against `target`, one after another, and reports.
pub async fn run(target: Target) -> Report {
    let ctx = Arc::new(Ctx::new(target));
    let mut report = Report::new(ctx.driver.clone());
    for (name, scenario) in scenarios::SCENARIOS {
        let outcome = scenarios::run_one(&ctx, name, *scenario).await;
        report.push(name, outcome);
    }
    report
}

/// What scenarios share: the target, the host tools, and the volumes and
/// snapshots made so far (for cleanup).
pub(crate) struct Ctx {
    driver: String,
    store: Arc<dyn VolumeStore>,
    access: Access,
    tag: String,
    size: SizeMib,
    caps: Capabilities,
    foreign: Option<Arc<dyn ForeignObjects>>,
    tools: Result<host::HostTools, String>,
    volumes: Mutex<Vec<VolumeId>>,
    snapshots: Mutex<Vec<(VolumeId, SnapshotId)>>,
}

impl Ctx {
    fn new(t: Target) -> Self {
        let tools = host::HostTools::resolve().map_err(|e| e.to_string());
        let tools = match (tools, t.access) {
            (Ok(_), Access::Mount) if !host::is_root() => {
                Err("Access::Mount needs root (loop devices and mounts)".to_string())
            }
            (r, _) => r,
        };
        Self {
            driver: t.driver,
            caps: t.store.capabilities(),
            store: t.store,
            access: t.access,
            tag: t.tag,
            size: t.volume_size,
            foreign: t.foreign,
            tools,
            volumes: Mutex::new(Vec::new()),
            snapshots: Mutex::new(Vec::new()),
        }
    }

    /// The host tools, or why they are missing (a loud failure).
    fn tools(&self) -> Result<&host::HostTools, String> {
        self.tools
            .as_ref()
            .map_err(|e| format!("prerequisite missing: {e}"))
    }

    /// A fresh id, remembered for cleanup.
    fn new_id(&self) -> VolumeId {
        let id = VolumeId::generate();
        lock(&self.volumes).push(id.clone());
        id
    }

    /// Creates a volume of the target's size.
    async fn create(&self, contents: Contents) -> Result<VolumeId, String> {
        self.create_sized(self.size, contents).await
    }

    async fn create_sized(&self, size: SizeMib, contents: Contents) -> Result<VolumeId, String> {
        let id = self.new_id();
        let v = self
            .store
            .create(&id, size, contents)
            .await
            .map_err(|e| format!("create {id} ({size}, {contents:?}): {}", chain(&e)))?;
        if v.id != id || v.size_bytes != size.bytes() {
            return Err(format!(
                "create {id} of {} bytes returned {v:?}",
                size.bytes()
            ));
        }
        Ok(id)
    }

    /// Clones `src` to a fresh id.
    async fn clone_of(&self, src: &VolumeId) -> Result<VolumeId, String> {
        let dst = self.new_id();
        self.store
            .clone_volume(src, &dst)
            .await
            .map_err(|e| format!("clone {src} to {dst}: {}", chain(&e)))?;
        Ok(dst)
    }

    /// Takes a snapshot, remembered for cleanup.
    async fn snapshot(&self, id: &VolumeId) -> Result<SnapshotId, String> {
        let snap = SnapshotId::generate();
        lock(&self.snapshots).push((id.clone(), snap.clone()));
        self.store
            .snapshot(id, &snap)
            .await
            .map_err(|e| format!("snapshot {id}: {}", chain(&e)))?;
        Ok(snap)
    }

    async fn device(&self, id: &VolumeId) -> Result<std::path::PathBuf, String> {
        self.store
            .device_path(id)
            .await
            .map_err(|e| format!("device_path {id}: {}", chain(&e)))
    }

    async fn reader(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, String> {
        self.store
            .open_read(id, snap)
            .await
            .map_err(|e| format!("open_read {id} {snap:?}: {}", chain(&e)))
    }

    /// Drops the snapshots and deletes the volumes scenarios made and did
    /// not remove themselves; reports what could not be removed.
    async fn cleanup(&self) -> Result<(), String> {
        let mut left = Vec::new();
        let snaps = std::mem::take(&mut *lock(&self.snapshots));
        for (id, snap) in snaps {
            match self.store.drop_snapshot(&id, &snap).await {
                Ok(()) => {}
                Err(e) if e.kind() == kiln_core::ErrorKind::NotFound => {}
                Err(e) => left.push(format!("snapshot {snap} of {id}: {}", chain(&e))),
            }
        }
        let volumes = std::mem::take(&mut *lock(&self.volumes));
        for id in volumes {
            match self.store.delete(&id).await {
                Ok(()) => {}
                Err(e) if e.kind() == kiln_core::ErrorKind::NotFound => {}
                Err(e) => left.push(format!("volume {id}: {}", chain(&e))),
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("cleanup failed: {}", left.join("; ")))
        }
    }
}

/// Locks a mutex, recovering the data if a panicking scenario poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error with its causes, `: `-separated.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}
