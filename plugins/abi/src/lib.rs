//! The versioned C ABI between `kilnd` and backend plugins.
//!
//! A plugin is a shared library exporting one symbol, [`ENTRY_SYMBOL`]
//! (`kiln_plugin_entry`), a function returning a pointer to a static
//! [`PluginTable`]. The table says which ABI versions the plugin serves
//! ([`PluginTable::abi_version`] and [`PluginTable::abi_age`]), names the
//! plugin, declares its capability bits and holds the `extern "C"`
//! functions the host calls. Operations travel as JSON ([`Request`],
//! [`Response`] types, [`WireError`]) in byte buffers whose ownership is
//! fixed by [`PluginBuffer`]; block data travels raw, in buffers the host
//! owns.
//!
//! Nothing Rust-specific crosses the boundary: no allocator (each side
//! frees only what it allocated), no async runtime (the plugin runs its
//! own), no trait object, no panic (the plugin catches them and answers
//! with an error). The crate holds only types and constants; the SDK
//! (`kiln-plugin-sdk`) builds tables and the loader
//! (`kiln-plugin-loader`) reads them.
//!
//! ```
//! use kiln_plugin_abi::{serves, HOST_ABI_VERSION};
//! // A plugin built for version 3 with age 2 serves hosts speaking 1..=3.
//! assert!(serves(3, 2, 1));
//! assert!(!serves(3, 2, HOST_ABI_VERSION + 3));
//! ```

#![deny(missing_docs)]

mod table;
mod wire;

pub use table::{
    serves, CallFn, CloseFn, EntryFn, FreeFn, OpenFn, PluginBuffer, PluginTable, ReadAtFn,
    WriteAtFn, CAP_COW_CLONE, CAP_SNAPSHOTS, CAP_SPARSE_READS, ENTRY_SYMBOL, HOST_ABI_VERSION,
    STATUS_ERROR, STATUS_OK,
};
pub use wire::{
    capabilities_from_bits, capabilities_to_bits, HandleOpened, OpenResponse, Request, WireError,
};
