//! What every exported function does at the boundary: catch panics, hand
//! out buffers, and put errors into their wire form.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use kiln_core::{BackendError, ErrorKind};
use kiln_plugin_abi::{PluginBuffer, WireError, STATUS_ERROR, STATUS_OK};

/// A status and the buffer to hand out with it.
pub(crate) struct Answer(i32, PluginBuffer);

/// Runs `body`, turning a panic into an internal error, and wraps its JSON
/// result or error for the host.
pub(crate) fn answer(op: &str, body: impl FnOnce() -> Result<Vec<u8>, WireError>) -> Answer {
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(bytes)) => (STATUS_OK, bytes),
        Ok(Err(e)) => (STATUS_ERROR, error_json(&e)),
        Err(payload) => (STATUS_ERROR, error_json(&panicked(op, payload.as_ref()))),
    };
    Answer(status, into_buffer(bytes))
}

/// Leaves the answer's buffer in `*out` (or frees it when `out` is null)
/// and returns its status.
///
/// # Safety
///
/// `out` is null or valid for one write of a `PluginBuffer`.
pub(crate) unsafe fn deliver(out: *mut PluginBuffer, answer: Answer) -> i32 {
    let Answer(status, buffer) = answer;
    if out.is_null() {
        // SAFETY: the buffer was just made by `into_buffer`.
        unsafe { free_buffer(buffer) };
    } else {
        // SAFETY: the caller guarantees `out` is valid for a write.
        unsafe { out.write(buffer) };
    }
    status
}

/// A wire error for a panic in `op`, keeping its message.
fn panicked(op: &str, payload: &(dyn Any + Send)) -> WireError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_string());
    tracing::error!(op, panic = %what, "plugin operation panicked");
    WireError {
        kind: ErrorKind::Internal,
        message: format!("plugin panicked in {op}: {what}"),
    }
}

fn error_json(e: &WireError) -> Vec<u8> {
    // A struct of a kind and a string always serializes; the fallback
    // keeps the boundary panic-free regardless.
    serde_json::to_vec(e).unwrap_or_else(|_| br#"{"kind":"internal","message":"?"}"#.to_vec())
}

/// A backend error in wire form: its kind, and its message with causes.
pub(crate) fn to_wire(e: &BackendError) -> WireError {
    let mut message = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(cause) = cur {
        let s = cause.to_string();
        if !message.contains(&s) {
            message.push_str(": ");
            message.push_str(&s);
        }
        cur = cause.source();
    }
    WireError {
        kind: e.kind(),
        message,
    }
}

/// An invalid-input wire error.
pub(crate) fn invalid(message: impl Into<String>) -> WireError {
    WireError {
        kind: ErrorKind::InvalidInput,
        message: message.into(),
    }
}

/// Serializes a result into JSON bytes.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(value).map_err(|e| WireError {
        kind: ErrorKind::Internal,
        message: format!("cannot encode the result: {e}"),
    })
}

/// Hands `bytes` to the host as a buffer it must give back to
/// [`free_buffer`].
pub(crate) fn into_buffer(bytes: Vec<u8>) -> PluginBuffer {
    if bytes.is_empty() {
        return PluginBuffer::empty();
    }
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    PluginBuffer {
        ptr: Box::into_raw(boxed).cast::<u8>(),
        len,
    }
}

/// The table's `free_buffer`.
///
/// # Safety
///
/// `buffer` came from [`into_buffer`] and is freed only once.
pub(crate) unsafe extern "C" fn free_buffer(buffer: PluginBuffer) {
    if buffer.ptr.is_null() {
        return;
    }
    // SAFETY: the buffer was made by `into_buffer` from a boxed slice of
    // exactly `len` bytes, and the host gives each buffer back once.
    let slice = std::ptr::slice_from_raw_parts_mut(buffer.ptr, buffer.len);
    drop(unsafe { Box::from_raw(slice) });
}

/// Borrows `len` bytes of host memory at `ptr` as a slice.
///
/// # Safety
///
/// `ptr` is valid for reads of `len` bytes for the duration of the call
/// (or `len` is 0).
pub(crate) unsafe fn host_bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let mut out = PluginBuffer::empty();
        // SAFETY: `out` is a local, valid for the write.
        let status = unsafe { deliver(&mut out, answer("grow", || panic!("boom"))) };
        assert_eq!(status, STATUS_ERROR);
        // SAFETY: `answer` filled `out` with a buffer of `len` bytes.
        let bytes = unsafe { host_bytes(out.ptr, out.len) }.to_vec();
        // SAFETY: `out` came from `into_buffer` and is freed once.
        unsafe { free_buffer(out) };
        let err: WireError = serde_json::from_slice(&bytes).expect("an error document");
        assert_eq!(err.kind, ErrorKind::Internal);
        assert_eq!(err.message, "plugin panicked in grow: boom");
    }

    #[test]
    fn results_and_errors_are_answered() {
        let mut out = PluginBuffer::empty();
        // SAFETY: `out` is a local, valid for the write.
        let status = unsafe { deliver(&mut out, answer("list", || to_json(&[1, 2]))) };
        assert_eq!(status, STATUS_OK);
        // SAFETY: as above.
        assert_eq!(unsafe { host_bytes(out.ptr, out.len) }, b"[1,2]");
        // SAFETY: as above.
        unsafe { free_buffer(out) };

        let mut out = PluginBuffer::empty();
        let e = BackendError::new(ErrorKind::NotFound, "volume vol-1 not found");
        // SAFETY: as above.
        let status = unsafe { deliver(&mut out, answer("delete", || Err(to_wire(&e)))) };
        assert_eq!(status, STATUS_ERROR);
        // SAFETY: as above.
        let err: WireError =
            serde_json::from_slice(unsafe { host_bytes(out.ptr, out.len) }).expect("an error");
        // SAFETY: as above.
        unsafe { free_buffer(out) };
        assert_eq!(err.kind, ErrorKind::NotFound);
    }
}
