//! Holds: which operation has a volume now, and per-sandbox ordering.
//!
//! A hold lives in memory for the whole run of an operation, not just for
//! a check: a second conflicting operation finds it and gets
//! [`Error::Busy`]. Holds vanish with the process; after a crash the
//! journal, not the holds, says what was running.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OwnedMutexGuard;

use crate::error::{Error, Result};
use crate::model::Volume;
use crate::types::VolumeId;

/// One held volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hold {
    /// What holds it (`clone`, `resize`, `backup`, ...).
    pub operation: &'static str,
    /// Whether sandboxes may attach the volume meanwhile (a backup may
    /// run on an attached volume; a clone or resize may not).
    pub allows_attach: bool,
}

/// The map of held volumes.
#[derive(Default)]
pub(crate) struct Holds {
    map: Mutex<HashMap<VolumeId, Hold>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single map operation, so a panic
    // cannot leave the map half changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Holds {
    /// What holds `id`, if anything.
    pub fn holder(&self, id: &VolumeId) -> Option<Hold> {
        lock(&self.map).get(id).copied()
    }

    /// Holds `volume` for `operation`, or fails with [`Error::Busy`]
    /// naming the operation that holds it already.
    pub fn take(
        self: &Arc<Self>,
        volume: &Volume,
        operation: &'static str,
        allows_attach: bool,
    ) -> Result<VolumeHold> {
        let mut map = lock(&self.map);
        if let Some(h) = map.get(&volume.id) {
            return Err(Error::Busy {
                volume: volume.name.to_string(),
                operation: h.operation.to_string(),
            });
        }
        map.insert(
            volume.id.clone(),
            Hold {
                operation,
                allows_attach,
            },
        );
        Ok(VolumeHold {
            holds: Arc::clone(self),
            id: volume.id.clone(),
            operation,
        })
    }
}

/// Holds a volume for one operation; the hold is released on drop.
#[must_use = "the hold is released as soon as the guard is dropped"]
pub struct VolumeHold {
    holds: Arc<Holds>,
    id: VolumeId,
    operation: &'static str,
}

impl VolumeHold {
    /// The volume held.
    pub fn volume_id(&self) -> &VolumeId {
        &self.id
    }

    /// The operation holding it.
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}

impl std::fmt::Debug for VolumeHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeHold")
            .field("volume", &self.id)
            .field("operation", &self.operation)
            .finish()
    }
}

impl Drop for VolumeHold {
    fn drop(&mut self) {
        lock(&self.holds.map).remove(&self.id);
    }
}

/// One async lock per key, made on first use and dropped once unused;
/// it orders the steps of operations on one sandbox.
pub(crate) struct KeyedLocks<K> {
    map: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> KeyedLocks<K> {
    /// Waits for the lock of `key`.
    pub async fn lock(&self, key: K) -> OwnedMutexGuard<()> {
        let m = {
            let mut map = lock(&self.map);
            // Only the map refers to an unused lock: forget those, so the
            // map stays as small as the number of sandboxes in use.
            map.retain(|_, m| Arc::strong_count(m) > 1);
            Arc::clone(map.entry(key).or_default())
        };
        m.lock_owned().await
    }
}
