//! [`Progress`]: how far an engine operation is, and its cancellation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Shared between an engine operation and whoever watches it (a job):
/// bytes done and total, what it waits for (another holder's lock), and a
/// cancellation flag the engine checks between blocks. Cloning shares the
/// same counters.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    waiting_for: Mutex<Option<String>>,
}

impl Progress {
    /// Fresh counters at zero, not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes processed so far.
    pub fn bytes_done(&self) -> u64 {
        self.0.done.load(Ordering::Relaxed)
    }

    /// Bytes the operation will process (0 until it knows).
    pub fn bytes_total(&self) -> u64 {
        self.0.total.load(Ordering::Relaxed)
    }

    /// Asks the operation to stop at the next block boundary.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Progress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Relaxed)
    }

    /// What the operation waits for before it can go on (a running
    /// backup's or gc's lock, with its age), if it waits.
    pub fn waiting_for(&self) -> Option<String> {
        self.waiting().clone()
    }

    pub(crate) fn set_waiting_for(&self, what: Option<String>) {
        *self.waiting() = what;
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The guarded value is replaced whole; a panic cannot leave it
        // half written.
        self.0.waiting_for.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn start(&self, total: u64) {
        self.0.done.store(0, Ordering::Relaxed);
        self.0.total.store(total, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, bytes: u64) {
        self.0.done.fetch_add(bytes, Ordering::Relaxed);
    }
}
