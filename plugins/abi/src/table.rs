//! The entry symbol, the function table and the buffers of the ABI.
//!
//! # Versioning
//!
//! The ABI is versioned the way libtool versions shared libraries: a
//! plugin states the version it was built for (`abi_version`, V) and an
//! age (`abi_age`, A), and serves every host speaking a version from
//! `V - A` to `V`. The host speaks exactly [`HOST_ABI_VERSION`].
//!
//! - A change older hosts do not notice raises the version **and** the
//!   age: a function appended at the end of [`PluginTable`], a new
//!   [`Request`](crate::Request) operation, an optional field in a
//!   message, a new capability bit.
//! - A change older hosts would misread raises the version and resets the
//!   age to 0: a function removed, reordered or given another signature, a
//!   field removed or its meaning changed, a status code redefined.
//!
//! So the table only ever grows at its end, and a host reads only the
//! fields its own version defines.
//!
//! # Ownership
//!
//! - Requests and option documents are host memory, lent to the plugin
//!   for the duration of one call.
//! - Responses and errors are [`PluginBuffer`]s the plugin allocates; the
//!   host copies them and hands each back exactly once to
//!   [`PluginTable::free_buffer`].
//! - Block reads fill a buffer the host allocates and owns; block writes
//!   lend host memory to the plugin for the call.

use std::ffi::{c_char, c_void};

/// The name of the one symbol a plugin exports, of type [`EntryFn`].
pub const ENTRY_SYMBOL: &str = "kiln_plugin_entry";

/// The ABI version this host speaks.
pub const HOST_ABI_VERSION: u32 = 1;

/// A call succeeded; the response buffer holds the operation's JSON result.
pub const STATUS_OK: i32 = 0;

/// A call failed; the response buffer holds a [`WireError`](crate::WireError).
pub const STATUS_ERROR: i32 = 1;

/// Capability bit: clones are copy-on-write.
pub const CAP_COW_CLONE: u64 = 1 << 0;

/// Capability bit: snapshots work.
pub const CAP_SNAPSHOTS: u64 = 1 << 1;

/// Capability bit: block reads report real holes.
pub const CAP_SPARSE_READS: u64 = 1 << 2;

/// Whether a plugin built for `version` with `age` serves a host speaking
/// `host` (see the module docs).
pub const fn serves(version: u32, age: u32, host: u32) -> bool {
    age <= version && version - age <= host && host <= version
}

/// Bytes the plugin allocated and the host must give back to
/// [`PluginTable::free_buffer`] exactly once.
///
/// An empty buffer (`ptr` null, `len` 0) owns nothing; freeing it is
/// allowed and does nothing.
#[repr(C)]
#[derive(Debug)]
pub struct PluginBuffer {
    /// The first byte, or null for an empty buffer.
    pub ptr: *mut u8,
    /// The number of bytes.
    pub len: usize,
}

impl PluginBuffer {
    /// A buffer that owns nothing, for out-parameters before a call.
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }
}

/// The entry symbol's type: returns the plugin's static table. It is
/// called once per load, must not fail and must not allocate per call.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginTable;

/// Makes a store instance from the options (a JSON document of
/// `options_len` bytes). On [`STATUS_OK`], `*instance` is set and
/// `*response` holds an [`OpenResponse`](crate::OpenResponse); on
/// [`STATUS_ERROR`], `*response` holds the error.
pub type OpenFn = unsafe extern "C" fn(
    options: *const u8,
    options_len: usize,
    instance: *mut *mut c_void,
    response: *mut PluginBuffer,
) -> i32;

/// Destroys an instance made by [`OpenFn`]; every handle of it must be
/// closed first.
pub type CloseFn = unsafe extern "C" fn(instance: *mut c_void);

/// Runs one [`Request`](crate::Request) (a JSON document) on an instance
/// and leaves the JSON result or the error in `*response`. Calls on one
/// instance may run concurrently from several host threads.
pub type CallFn = unsafe extern "C" fn(
    instance: *mut c_void,
    request: *const u8,
    request_len: usize,
    response: *mut PluginBuffer,
) -> i32;

/// Fills the host's buffer (`len` bytes at `buf`) from `offset` of an
/// open block handle. On [`STATUS_ERROR`], `*error` holds the error and
/// the buffer's content is unspecified.
pub type ReadAtFn = unsafe extern "C" fn(
    instance: *mut c_void,
    handle: u64,
    offset: u64,
    buf: *mut u8,
    len: usize,
    error: *mut PluginBuffer,
) -> i32;

/// Writes the host's `len` bytes at `data` at `offset` of a handle opened
/// for writing. On [`STATUS_ERROR`], `*error` holds the error.
pub type WriteAtFn = unsafe extern "C" fn(
    instance: *mut c_void,
    handle: u64,
    offset: u64,
    data: *const u8,
    len: usize,
    error: *mut PluginBuffer,
) -> i32;

/// Frees a buffer the plugin handed out.
pub type FreeFn = unsafe extern "C" fn(buffer: PluginBuffer);

/// What [`ENTRY_SYMBOL`] returns: version 1 of the table.
///
/// Later versions only append fields (see the module docs). Function
/// pointers are `Option`s so that a null one is seen, not called: the
/// host refuses a table with any of them null.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// The ABI version the plugin was built for.
    pub abi_version: u32,
    /// How many versions before `abi_version` the plugin still serves.
    pub abi_age: u32,
    /// The plugin's name: static, NUL-terminated UTF-8 (`qcow2`).
    pub name: *const c_char,
    /// The plugin's version: static, NUL-terminated UTF-8 (`0.1.0`).
    pub version: *const c_char,
    /// `CAP_*` bits: what the plugin may do; unknown bits are ignored.
    pub capabilities: u64,
    /// Makes an instance.
    pub open: Option<OpenFn>,
    /// Destroys an instance.
    pub close: Option<CloseFn>,
    /// Runs a JSON request.
    pub call: Option<CallFn>,
    /// Reads blocks into a host buffer.
    pub read_at: Option<ReadAtFn>,
    /// Writes blocks from a host buffer.
    pub write_at: Option<WriteAtFn>,
    /// Frees a plugin buffer.
    pub free_buffer: Option<FreeFn>,
}

// SAFETY: the table is immutable after the plugin built it; its pointers
// are to static strings and to functions, which any thread may read and
// call (the ABI requires the functions to be thread-safe).
unsafe impl Sync for PluginTable {}

// SAFETY: as for Sync: nothing in the table is tied to a thread.
unsafe impl Send for PluginTable {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_age_bound_the_hosts_served() {
        assert!(serves(1, 0, 1));
        assert!(
            !serves(1, 0, 2),
            "a newer host is not served by an older plugin"
        );
        assert!(!serves(2, 0, 1), "age 0 drops older hosts");
        assert!(serves(3, 2, 1) && serves(3, 2, 2) && serves(3, 2, 3));
        assert!(!serves(3, 2, 4));
        assert!(!serves(1, 5, 1), "an age above the version is malformed");
    }
}
