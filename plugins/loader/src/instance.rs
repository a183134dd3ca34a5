//! One open plugin instance and the calls through its table.

use std::ffi::c_void;

use kiln_core::ErrorKind;
use kiln_plugin_abi::{OpenResponse, PluginBuffer, Request, WireError, STATUS_OK};
use serde::de::DeserializeOwned;

use crate::error::PluginError;
use crate::library::Plugin;

/// An instance the plugin made from a pool's options; closed on drop.
pub(crate) struct Instance {
    pub(crate) plugin: Plugin,
    ptr: *mut c_void,
}

// SAFETY: the ABI requires every function of the table to be callable from
// any thread, concurrently on one instance; the pointer is only ever
// passed back to those functions.
unsafe impl Send for Instance {}

// SAFETY: as for Send: the instance is shared by reference only through
// the plugin's thread-safe functions.
unsafe impl Sync for Instance {}

impl Instance {
    /// Opens an instance with `options`.
    pub(crate) fn open(
        plugin: Plugin,
        options: &serde_json::Value,
    ) -> Result<(Self, OpenResponse), PluginError> {
        let bytes = serde_json::to_vec(options).map_err(|source| PluginError::Protocol {
            plugin: plugin.name.clone(),
            op: "open",
            source,
        })?;
        let mut ptr = std::ptr::null_mut();
        let mut response = PluginBuffer::empty();
        // SAFETY: the options are lent for the call; `ptr` and `response`
        // are valid out-parameters; `open` was checked non-null at load.
        let status = unsafe { (plugin.open)(bytes.as_ptr(), bytes.len(), &mut ptr, &mut response) };
        let answer = take(&plugin, response);
        if status != STATUS_OK {
            return Err(error(&plugin, "open", status, &answer));
        }
        if ptr.is_null() {
            return Err(failed(&plugin, "open", "the plugin returned no instance"));
        }
        let instance = Self { plugin, ptr };
        let opened = instance.decode("open", status, &answer)?;
        Ok((instance, opened))
    }

    /// Runs `request` and decodes its result.
    pub(crate) fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, PluginError> {
        let op = request.op();
        let bytes = serde_json::to_vec(request).map_err(|source| self.protocol(op, source))?;
        let mut response = PluginBuffer::empty();
        // SAFETY: `self.ptr` is a live instance of this plugin; the
        // request is lent for the call; `response` is a valid out-parameter.
        let status =
            unsafe { (self.plugin.call)(self.ptr, bytes.as_ptr(), bytes.len(), &mut response) };
        let answer = take(&self.plugin, response);
        self.decode(op, status, &answer)
    }

    /// Fills `buf` from `offset` of read handle `handle`.
    pub(crate) fn read_at(
        &self,
        handle: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), PluginError> {
        let mut error = PluginBuffer::empty();
        // SAFETY: `buf` is host memory valid for `buf.len()` writes for the
        // call; `self.ptr` is live; `error` is a valid out-parameter.
        let status = unsafe {
            (self.plugin.read_at)(
                self.ptr,
                handle,
                offset,
                buf.as_mut_ptr(),
                buf.len(),
                &mut error,
            )
        };
        let answer = take(&self.plugin, error);
        self.decode_unit("read_at", status, &answer)
    }

    /// Writes `data` at `offset` of write handle `handle`.
    pub(crate) fn write_at(
        &self,
        handle: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<(), PluginError> {
        let mut error = PluginBuffer::empty();
        // SAFETY: `data` is lent for the call; `self.ptr` is live; `error`
        // is a valid out-parameter.
        let status = unsafe {
            (self.plugin.write_at)(
                self.ptr,
                handle,
                offset,
                data.as_ptr(),
                data.len(),
                &mut error,
            )
        };
        let answer = take(&self.plugin, error);
        self.decode_unit("write_at", status, &answer)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        op: &'static str,
        status: i32,
        answer: &[u8],
    ) -> Result<T, PluginError> {
        if status != STATUS_OK {
            return Err(self.error(op, status, answer));
        }
        serde_json::from_slice(answer).map_err(|source| self.protocol(op, source))
    }

    fn decode_unit(&self, op: &'static str, status: i32, answer: &[u8]) -> Result<(), PluginError> {
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(self.error(op, status, answer))
        }
    }

    fn error(&self, op: &'static str, status: i32, answer: &[u8]) -> PluginError {
        error(&self.plugin, op, status, answer)
    }

    fn protocol(&self, op: &'static str, source: serde_json::Error) -> PluginError {
        PluginError::Protocol {
            plugin: self.plugin.name.clone(),
            op,
            source,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: `self.ptr` came from this plugin's `open`; every handle
        // holds the instance alive, so none is open any more, and this is
        // the only close.
        unsafe { (self.plugin.close)(self.ptr) };
    }
}

/// Copies a plugin buffer into host memory and gives it back.
fn take(plugin: &Plugin, buffer: PluginBuffer) -> Vec<u8> {
    let bytes = if buffer.ptr.is_null() || buffer.len == 0 {
        Vec::new()
    } else {
        // SAFETY: the plugin handed out `len` readable bytes at `ptr`,
        // owned by it until freed below.
        unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.len) }.to_vec()
    };
    // SAFETY: the buffer came from this plugin and is freed exactly once.
    unsafe { (plugin.free_buffer)(buffer) };
    bytes
}

/// The error a plugin answered with `status`.
fn error(plugin: &Plugin, op: &'static str, status: i32, answer: &[u8]) -> PluginError {
    let source = serde_json::from_slice::<WireError>(answer).unwrap_or_else(|_| WireError {
        kind: ErrorKind::Internal,
        message: format!(
            "status {status} with an unreadable error: {}",
            String::from_utf8_lossy(answer)
        ),
    });
    PluginError::Failed {
        plugin: plugin.name.clone(),
        op,
        source,
    }
}

fn failed(plugin: &Plugin, op: &'static str, message: &str) -> PluginError {
    PluginError::Failed {
        plugin: plugin.name.clone(),
        op,
        source: WireError {
            kind: ErrorKind::Internal,
            message: message.to_string(),
        },
    }
}
