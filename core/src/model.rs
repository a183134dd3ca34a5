//! The records kiln keeps: volumes, sandboxes, attachments, and the
//! states they move through. These are also the API's JSON objects.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::types::{MountPath, Owner, PoolName, SandboxName, SizeMib, VolumeId, VolumeName};

/// Where a volume is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeStatus {
    /// Being made; not usable yet.
    Creating,
    /// Usable.
    Ready,
    /// Growing.
    Resizing,
    /// Being copied into (the target of a clone).
    Cloning,
    /// Being restored into (the target of a restore).
    Restoring,
    /// Being removed.
    Deleting,
    /// Something failed that needs an operator; `error` says what.
    Error,
}

impl VolumeStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeStatus::Creating => "creating",
            VolumeStatus::Ready => "ready",
            VolumeStatus::Resizing => "resizing",
            VolumeStatus::Cloning => "cloning",
            VolumeStatus::Restoring => "restoring",
            VolumeStatus::Deleting => "deleting",
            VolumeStatus::Error => "error",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "creating" => VolumeStatus::Creating,
            "ready" => VolumeStatus::Ready,
            "resizing" => VolumeStatus::Resizing,
            "cloning" => VolumeStatus::Cloning,
            "restoring" => VolumeStatus::Restoring,
            "deleting" => VolumeStatus::Deleting,
            "error" => VolumeStatus::Error,
            _ => return None,
        })
    }
}

impl std::fmt::Display for VolumeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A volume as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// kiln's id (what the backend knows it by).
    pub id: VolumeId,
    /// The owner's name for it.
    pub name: VolumeName,
    /// Whose it is.
    pub owner: Owner,
    /// The pool it lives in.
    pub pool: PoolName,
    /// Provisioned size.
    pub size_mib: SizeMib,
    /// Where it is in its life.
    pub status: VolumeStatus,
    /// Why it is in `error`, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who uses it now.
    pub attachments: Vec<Attachment>,
}

/// A sandbox's use of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// The sandbox.
    pub sandbox: SandboxName,
    /// Where the volume appears in the guest.
    pub mount: MountPath,
    /// Whether the sandbox may only read.
    pub read_only: bool,
}

/// Whether a sandbox's volumes are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// Its volumes are attached.
    Running,
    /// Its volumes are detached; the list is kept for `start`.
    Stopped,
}

impl SandboxState {
    /// The state as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Running => "running",
            SandboxState::Stopped => "stopped",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(SandboxState::Running),
            "stopped" => Some(SandboxState::Stopped),
            _ => None,
        }
    }
}

/// One volume a sandbox wants, as asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRequest {
    /// The volume's name.
    pub volume: VolumeName,
    /// Where it appears in the guest.
    pub mount: MountPath,
    /// Whether the sandbox may only read.
    #[serde(default)]
    pub read_only: bool,
}

/// A sandbox as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// Its name.
    pub name: SandboxName,
    /// Whose it is.
    pub owner: Owner,
    /// Whether its volumes are attached.
    pub state: SandboxState,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its volumes, with what a VMM needs for each while running.
    pub volumes: Vec<SandboxVolume>,
}

/// One of a sandbox's volumes, with what a VMM needs to use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxVolume {
    /// The volume's name.
    pub volume: VolumeName,
    /// Where it appears in the guest.
    pub mount: MountPath,
    /// Whether the sandbox may only read (Firecracker's `is_read_only`).
    pub read_only: bool,
    /// The host path of the block device or image (Firecracker's
    /// `path_on_host`), while the sandbox is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}
