//! Loading a library and checking its table.

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};

use kiln_plugin_abi::{
    serves, CallFn, CloseFn, EntryFn, FreeFn, OpenFn, PluginTable, ReadAtFn, WriteAtFn,
    ENTRY_SYMBOL, HOST_ABI_VERSION,
};

use crate::error::PluginError;

/// A loaded plugin library whose table passed the checks: what it says
/// about itself and the functions to call.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub(crate) library: PathBuf,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) abi_version: u32,
    pub(crate) abi_age: u32,
    pub(crate) capabilities: u64,
    pub(crate) open: OpenFn,
    pub(crate) close: CloseFn,
    pub(crate) call: CallFn,
    pub(crate) read_at: ReadAtFn,
    pub(crate) write_at: WriteAtFn,
    pub(crate) free_buffer: FreeFn,
}

impl Plugin {
    /// The library's path.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The plugin's name (`qcow2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version (`0.1.0`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The ABI version the plugin was built for, and its age.
    pub fn abi(&self) -> (u32, u32) {
        (self.abi_version, self.abi_age)
    }
}

/// Loads `library`, refusing it unless it exports the entry symbol and its
/// ABI version and age serve [`HOST_ABI_VERSION`].
///
/// Loading runs the library's initialisers: only load libraries you
/// trust as you would trust `kilnd` itself. The library is never unloaded.
pub fn load(library: &Path) -> Result<Plugin, PluginError> {
    let path = library.to_path_buf();

    // SAFETY: loading a library runs its initialisers; the operator named
    // this library as a plugin of this daemon, which is the trust a plugin
    // needs. Nothing else is assumed about it before the checks below.
    let lib = unsafe { libloading::Library::new(library) }.map_err(|source| PluginError::Load {
        library: path.clone(),
        source,
    })?;
    // Never unloaded (see the crate's limitations): the table and its
    // functions stay valid for the life of the process.
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));

    // SAFETY: the ABI fixes the entry symbol's type as `EntryFn`; a
    // library exporting this name is declaring that it follows the ABI.
    let entry: EntryFn = unsafe { lib.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }
        .map(|sym| *sym)
        .map_err(|source| PluginError::NoEntry {
            library: path.clone(),
            symbol: ENTRY_SYMBOL,
            source,
        })?;

    // SAFETY: `entry` is the plugin's entry function (checked by name
    // above); it takes nothing and returns a pointer to a static table.
    let table = unsafe { entry() };
    if table.is_null() {
        return Err(bad(&path, "the entry function returned null"));
    }

    // The version and age are the first two fields of every version of
    // the table, so they are read before anything else is trusted.
    // SAFETY: `table` is non-null and points at a table whose layout
    // starts with two u32s in every ABI version.
    let (abi_version, abi_age) = unsafe { ((*table).abi_version, (*table).abi_age) };
    if !serves(abi_version, abi_age, HOST_ABI_VERSION) {
        return Err(PluginError::Incompatible {
            library: path,
            version: abi_version,
            age: abi_age,
            host: HOST_ABI_VERSION,
        });
    }

    // SAFETY: the plugin serves this host's version, so its table starts
    // with this version's fields (later versions only append).
    let table: &'static PluginTable = unsafe { &*table };
    let missing = |what: &str| bad(&path, &format!("{what} is null"));
    Ok(Plugin {
        name: text(&path, table.name, "name")?,
        version: text(&path, table.version, "version")?,
        abi_version,
        abi_age,
        capabilities: table.capabilities,
        open: table.open.ok_or_else(|| missing("open"))?,
        close: table.close.ok_or_else(|| missing("close"))?,
        call: table.call.ok_or_else(|| missing("call"))?,
        read_at: table.read_at.ok_or_else(|| missing("read_at"))?,
        write_at: table.write_at.ok_or_else(|| missing("write_at"))?,
        free_buffer: table.free_buffer.ok_or_else(|| missing("free_buffer"))?,
        library: path,
    })
}

fn bad(library: &Path, reason: &str) -> PluginError {
    PluginError::BadTable {
        library: library.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// One of the table's static strings.
fn text(library: &Path, ptr: *const c_char, field: &str) -> Result<String, PluginError> {
    if ptr.is_null() {
        return Err(bad(library, &format!("{field} is null")));
    }
    // SAFETY: the ABI makes `name` and `version` static NUL-terminated
    // strings; non-null was checked.
    let s = unsafe { CStr::from_ptr(ptr) };
    let s = s
        .to_str()
        .map_err(|_| bad(library, &format!("{field} is not UTF-8")))?;
    if s.is_empty() {
        return Err(bad(library, &format!("{field} is empty")));
    }
    Ok(s.to_string())
}
