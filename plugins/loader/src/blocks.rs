//! Block handles of a plugin, as [`BlockRead`] and [`BlockWrite`].
//!
//! Data moves through host buffers: a read hands the plugin the caller's
//! buffer to fill, a write lends it the caller's bytes. Dropping a handle
//! closes it in the plugin, on the dropping thread (a plugin may take a
//! moment there: the qcow2 plugin stops its raw view).

use std::ops::Range;
use std::sync::Arc;

use kiln_core::{BackendError, BlockRead, BlockWrite};
use kiln_plugin_abi::Request;

use crate::instance::Instance;

/// A plugin's read handle.
pub(crate) struct PluginReader {
    pub(crate) instance: Arc<Instance>,
    pub(crate) handle: u64,
    pub(crate) len: u64,
}

impl BlockRead for PluginReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn allocated(&self) -> Result<Vec<Range<u64>>, BackendError> {
        Ok(self.instance.call(&Request::Allocated {
            handle: self.handle,
        })?)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        Ok(self.instance.read_at(self.handle, offset, buf)?)
    }
}

impl Drop for PluginReader {
    fn drop(&mut self) {
        close(&self.instance, self.handle);
    }
}

/// A plugin's write handle.
pub(crate) struct PluginWriter {
    pub(crate) instance: Arc<Instance>,
    pub(crate) handle: u64,
    pub(crate) len: u64,
}

impl BlockWrite for PluginWriter {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        Ok(self.instance.write_at(self.handle, offset, data)?)
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        Ok(self.instance.call(&Request::ZeroRange {
            handle: self.handle,
            offset,
            len,
        })?)
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(self.instance.call(&Request::Flush {
            handle: self.handle,
        })?)
    }
}

impl Drop for PluginWriter {
    fn drop(&mut self) {
        close(&self.instance, self.handle);
    }
}

fn close(instance: &Instance, handle: u64) {
    if let Err(e) = instance.call::<()>(&Request::CloseHandle { handle }) {
        tracing::warn!(
            plugin = %instance.plugin.name,
            handle,
            error = %e,
            "plugin failed to close a block handle; it may stay open until the pool closes"
        );
    }
}
