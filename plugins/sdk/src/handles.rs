//! One open store on the plugin side, with the block handles the host
//! holds on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kiln_core::{BlockRead, BlockWrite, ErrorKind};
use kiln_plugin_abi::WireError;

/// An open block handle.
#[derive(Clone)]
pub(crate) enum Handle {
    /// From `open_read`.
    Read(Arc<dyn BlockRead>),
    /// From `open_write`.
    Write(Arc<dyn BlockWrite>),
}

/// A store the host opened, and its handles by number.
pub(crate) struct Instance<S> {
    pub(crate) store: S,
    next: AtomicU64,
    handles: Mutex<HashMap<u64, Handle>>,
}

impl<S> Instance<S> {
    pub(crate) fn new(store: S) -> Self {
        Self {
            store,
            next: AtomicU64::new(1),
            handles: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `handle` and returns its number.
    pub(crate) fn insert(&self, handle: Handle) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.table().insert(n, handle);
        n
    }

    /// Forgets handle `n`, returning it so the caller drops it outside the
    /// lock (dropping may take time: a backend may stop a child process).
    pub(crate) fn remove(&self, n: u64) -> Result<Handle, WireError> {
        self.table().remove(&n).ok_or_else(|| unknown(n))
    }

    /// Read handle `n`.
    pub(crate) fn reader(&self, n: u64) -> Result<Arc<dyn BlockRead>, WireError> {
        match self.table().get(&n) {
            Some(Handle::Read(r)) => Ok(Arc::clone(r)),
            Some(Handle::Write(_)) => Err(wrong_direction(n, "read")),
            None => Err(unknown(n)),
        }
    }

    /// Write handle `n`.
    pub(crate) fn writer(&self, n: u64) -> Result<Arc<dyn BlockWrite>, WireError> {
        match self.table().get(&n) {
            Some(Handle::Write(w)) => Ok(Arc::clone(w)),
            Some(Handle::Read(_)) => Err(wrong_direction(n, "write")),
            None => Err(unknown(n)),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        // The map is consistent between statements, so a panic elsewhere
        // while it was locked leaves nothing half-done: recover it.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn unknown(n: u64) -> WireError {
    WireError {
        kind: ErrorKind::InvalidInput,
        message: format!("block handle {n} is not open"),
    }
}

fn wrong_direction(n: u64, want: &str) -> WireError {
    WireError {
        kind: ErrorKind::InvalidInput,
        message: format!("block handle {n} is not open for {want}ing"),
    }
}
