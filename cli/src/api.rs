//! The API's objects as the CLI reads them (docs/api.md).
//!
//! These are tolerant: unknown fields are ignored and fields the CLI can
//! do without are optional, so a newer daemon does not break an older
//! CLI. `--json` prints what the daemon sent, not these.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::error::CliError;

/// Reads one API object out of an answer.
pub fn decode<T: DeserializeOwned>(value: &Value, what: &'static str) -> Result<T, CliError> {
    T::deserialize(value).map_err(|source| CliError::Unreadable { what, source })
}

/// Takes the array out of a listing answer (`{"volumes": [...]}`); a bare
/// array is taken as it is.
pub fn list(value: Value, key: &'static str) -> Result<Vec<Value>, CliError> {
    let items = match value {
        Value::Array(items) => Some(items),
        Value::Object(mut object) => match object.remove(key) {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => None,
    };
    items.ok_or_else(|| CliError::Unreadable {
        what: key,
        source: serde::de::Error::custom(format!("expected an object with a {key:?} array")),
    })
}

/// A volume.
#[derive(Debug, Clone, Deserialize)]
pub struct Volume {
    /// The owner's name for it.
    pub name: String,
    /// Whose it is.
    #[serde(default)]
    pub owner: Option<String>,
    /// Its pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Provisioned size.
    pub size_mib: u64,
    /// `ready`, `creating`, ..., `error`.
    #[serde(default)]
    pub status: Option<String>,
    /// Why it is in `error`.
    #[serde(default)]
    pub error: Option<String>,
    /// When it was made.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Who uses it.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// A sandbox's use of a volume.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// The sandbox.
    pub sandbox: String,
    /// The mount path in the guest.
    pub mount: String,
    /// Read-only or not.
    #[serde(default)]
    pub read_only: bool,
}

/// A sandbox.
#[derive(Debug, Clone, Deserialize)]
pub struct Sandbox {
    /// Its name.
    pub name: String,
    /// Whose it is.
    #[serde(default)]
    pub owner: Option<String>,
    /// `running` or `stopped`.
    #[serde(default)]
    pub state: Option<String>,
    /// When it was made.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Its volumes.
    #[serde(default)]
    pub volumes: Vec<SandboxVolume>,
}

/// One of a sandbox's volumes.
#[derive(Debug, Clone, Deserialize)]
pub struct SandboxVolume {
    /// The volume's name.
    pub volume: String,
    /// The mount path in the guest.
    pub mount: String,
    /// Read-only or not.
    #[serde(default)]
    pub read_only: bool,
    /// The host path a VMM opens, while running.
    #[serde(default)]
    pub device: Option<String>,
}

/// A pool.
#[derive(Debug, Clone, Deserialize)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Its driver.
    #[serde(default)]
    pub driver: Option<String>,
    /// The plugin behind it, if any.
    #[serde(default)]
    pub plugin: Option<Plugin>,
    /// Its space.
    #[serde(default)]
    pub capacity: Option<Capacity>,
    /// Why the space could not be read, when it could not.
    #[serde(default)]
    pub capacity_error: Option<String>,
    /// The sum of its volumes' sizes.
    #[serde(default)]
    pub provisioned_mib: Option<u64>,
    /// How many volumes it holds.
    #[serde(default)]
    pub volumes: Option<u64>,
    /// Backend images kiln's catalog does not know.
    #[serde(default)]
    pub unmanaged: Vec<String>,
}

/// A plugin's self-description.
#[derive(Debug, Clone, Deserialize)]
pub struct Plugin {
    /// Its name.
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
}

/// A pool's space.
#[derive(Debug, Clone, Deserialize)]
pub struct Capacity {
    /// Total data space.
    #[serde(default)]
    pub size_bytes: u64,
    /// In use.
    #[serde(default)]
    pub allocated_bytes: u64,
    /// Free.
    #[serde(default)]
    pub free_bytes: u64,
    /// Thin data and metadata use.
    #[serde(default)]
    pub thin: Option<Thin>,
}

/// A thin pool's use.
#[derive(Debug, Clone, Deserialize)]
pub struct Thin {
    /// Percent of data space used.
    pub data_percent: f64,
    /// Percent of metadata space used.
    pub metadata_percent: f64,
}

/// A job: a backup, restore, gc or verify running in the daemon.
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// `backup`, `restore`, `gc` or `verify`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The volume it works on.
    #[serde(default)]
    pub volume: Option<String>,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Bytes done so far.
    #[serde(default)]
    pub bytes_done: u64,
    /// Bytes to do, when known.
    #[serde(default)]
    pub bytes_total: Option<u64>,
    /// What the job is waiting for before it can go on (a gc waiting for
    /// running backups, say), while it waits.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// When it started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it failed: a message, or an `{code, message}` object.
    #[serde(default)]
    pub error: Option<Value>,
    /// What it made, when it succeeded.
    #[serde(default)]
    pub result: Option<Value>,
}

impl Job {
    /// The kind, or `job` when the daemon did not say.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("job")
    }

    /// Whether the job has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed" | "cancelled")
    }

    /// The failure's message, whatever shape the daemon gave it.
    pub fn error_message(&self) -> String {
        match &self.error {
            Some(Value::String(message)) => message.clone(),
            Some(Value::Object(object)) => {
                let message = object.get("message").and_then(Value::as_str);
                let code = object.get("code").and_then(Value::as_str);
                match (message, code) {
                    (Some(message), Some(code)) => format!("{message} ({code})"),
                    (Some(message), None) => message.to_owned(),
                    _ => Value::Object(object.clone()).to_string(),
                }
            }
            Some(other) if !other.is_null() => other.to_string(),
            _ => "no reason given".into(),
        }
    }
}

/// A backup.
#[derive(Debug, Clone, Deserialize)]
pub struct Backup {
    /// Its id.
    pub id: String,
    /// The volume's size then.
    #[serde(default)]
    pub size_mib: Option<u64>,
    /// When it was taken.
    #[serde(default)]
    pub created_at: Option<String>,
    /// `clean`, `crash_consistent` or `inconsistent`.
    #[serde(default)]
    pub consistency: Option<String>,
    /// Bytes of data the backup describes (holes excluded).
    #[serde(default)]
    pub logical_bytes: Option<u64>,
    /// Bytes uploaded new by this backup.
    #[serde(default)]
    pub stored_bytes: Option<u64>,
    /// Bytes found already in the target.
    #[serde(default)]
    pub reused_bytes: Option<u64>,
}

/// What garbage collection did.
#[derive(Debug, Clone, Deserialize)]
pub struct GcResult {
    /// Blocks removed.
    #[serde(default)]
    pub blocks_deleted: u64,
    /// Bytes removed.
    #[serde(default)]
    pub bytes_deleted: u64,
}

/// What verifying a backup found.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifyResult {
    /// Blocks read and checked.
    #[serde(default)]
    pub blocks_checked: u64,
    /// The hashes of damaged or missing blocks.
    #[serde(default)]
    pub damaged: Vec<String>,
}
