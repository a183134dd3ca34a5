//! A test plugin whose table claims ABI version 99 with age 0: kilnd must
//! refuse it at start-up, naming the library and both versions, without
//! calling anything else in it.

#![deny(missing_docs)]

use std::ffi::c_char;

use kiln_plugin_abi::PluginTable;

/// The version this library claims to speak.
pub const CLAIMED_ABI_VERSION: u32 = 99;

static TABLE: PluginTable = PluginTable {
    abi_version: CLAIMED_ABI_VERSION,
    abi_age: 0,
    name: c"wrong-abi".as_ptr().cast::<c_char>(),
    version: c"0.0.1".as_ptr().cast::<c_char>(),
    capabilities: 0,
    open: None,
    close: None,
    call: None,
    read_at: None,
    write_at: None,
    free_buffer: None,
};

/// The entry symbol, returning the table of a future ABI.
#[unsafe(no_mangle)]
pub extern "C" fn kiln_plugin_entry() -> *const PluginTable {
    &TABLE
}
