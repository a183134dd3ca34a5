//! The exported table and its functions, generic over the store the
//! [`export_plugin!`](crate::export_plugin) macro names.

use std::ffi::{c_void, CString};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use kiln_core::{BackendError, Capabilities, ErrorKind, VolumeStore};
use kiln_plugin_abi::{
    capabilities_to_bits, HandleOpened, OpenResponse, PluginBuffer, PluginTable, Request,
    WireError, HOST_ABI_VERSION,
};

use crate::boundary::{answer, deliver, free_buffer, host_bytes, invalid, to_json, to_wire};
use crate::handles::{Handle, Instance};

/// The future a plugin's constructor returns.
pub type OpenFuture<S> = Pin<Box<dyn Future<Output = Result<S, BackendError>> + Send>>;

/// What [`export_plugin!`](crate::export_plugin) declares about a plugin;
/// implemented by the macro, not by hand.
pub trait Export: 'static {
    /// The store.
    type Store: VolumeStore;
    /// The plugin's name.
    const NAME: &'static str;
    /// The plugin's version.
    const VERSION: &'static str;
    /// What the plugin may do (each instance may narrow it).
    const CAPABILITIES: Capabilities;
    /// Makes a store from the pool's `options`.
    fn open(options: serde_json::Value) -> OpenFuture<Self::Store>;
}

/// Builds the table for `E` (called once, by the entry symbol).
pub fn table<E: Export>() -> PluginTable {
    let leak = |s: &str| {
        CString::new(s.replace('\0', ""))
            .unwrap_or_default()
            .into_raw()
    };
    PluginTable {
        abi_version: HOST_ABI_VERSION,
        abi_age: 0,
        name: leak(E::NAME),
        version: leak(E::VERSION),
        capabilities: capabilities_to_bits(E::CAPABILITIES),
        open: Some(open::<E>),
        close: Some(close::<E>),
        call: Some(call::<E>),
        read_at: Some(read_at::<E>),
        write_at: Some(write_at::<E>),
        free_buffer: Some(free_buffer),
    }
}

/// The plugin's own runtime, shared by its instances and started by the
/// first `open`.
fn runtime() -> Result<&'static tokio::runtime::Runtime, WireError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("kiln-plugin")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| WireError {
            kind: ErrorKind::Internal,
            message: format!("cannot start the plugin's runtime: {e}"),
        })
}

/// The instance behind a host pointer.
///
/// # Safety
///
/// `instance` came from [`open`] of the same `E` and was not closed.
unsafe fn instance<'a, E: Export>(instance: *mut c_void) -> &'a Instance<E::Store> {
    // SAFETY: guaranteed by the caller; instances are only ever shared.
    unsafe { &*instance.cast::<Instance<E::Store>>() }
}

unsafe extern "C" fn open<E: Export>(
    options: *const u8,
    options_len: usize,
    out_instance: *mut *mut c_void,
    response: *mut PluginBuffer,
) -> i32 {
    let result = answer("open", || {
        if out_instance.is_null() {
            return Err(invalid("open was given no place for the instance"));
        }
        // SAFETY: the ABI lends `options_len` bytes at `options`.
        let bytes = unsafe { host_bytes(options, options_len) };
        let options: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(bytes)
                .map_err(|e| invalid(format!("options are not JSON: {e}")))?
        };
        let rt = runtime()?;
        let store = rt.block_on(E::open(options)).map_err(|e| to_wire(&e))?;
        let capabilities = store.capabilities();
        let boxed = Box::new(Instance::new(store));
        // SAFETY: checked non-null; the ABI makes it valid for a write.
        unsafe { out_instance.write(Box::into_raw(boxed).cast()) };
        to_json(&OpenResponse { capabilities })
    });
    // SAFETY: the ABI makes `response` valid for a write.
    unsafe { deliver(response, result) }
}

unsafe extern "C" fn close<E: Export>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    let result = answer("close", || {
        let _ctx = runtime().map(|rt| rt.enter());
        // SAFETY: the instance came from `open::<E>` and the host closes
        // it once, after every other call on it returned.
        drop(unsafe { Box::from_raw(instance.cast::<Instance<E::Store>>()) });
        Ok(Vec::new())
    });
    // SAFETY: a null output frees the answer; nothing is written.
    unsafe { deliver(std::ptr::null_mut(), result) };
}

unsafe extern "C" fn call<E: Export>(
    inst: *mut c_void,
    request: *const u8,
    request_len: usize,
    response: *mut PluginBuffer,
) -> i32 {
    // SAFETY: the ABI lends `request_len` bytes at `request`.
    let bytes = unsafe { host_bytes(request, request_len) };
    let request: Result<Request, _> = serde_json::from_slice(bytes);
    let op = request.as_ref().map(Request::op).unwrap_or("request");
    let result = answer(op, || {
        let request = request.map_err(|e| WireError {
            kind: ErrorKind::Unsupported,
            message: format!("request not understood: {e}"),
        })?;
        // SAFETY: the host passes an instance `open::<E>` made.
        let inst = unsafe { instance::<E>(inst) };
        dispatch(inst, request)
    });
    // SAFETY: the ABI makes `response` valid for a write.
    unsafe { deliver(response, result) }
}

/// Runs one request: store methods on the plugin's runtime, handle
/// methods (synchronous) on the calling thread.
fn dispatch<S: VolumeStore>(inst: &Instance<S>, request: Request) -> Result<Vec<u8>, WireError> {
    let rt = runtime()?;
    let _ctx = rt.enter();
    let store = &inst.store;
    let wire = |e: BackendError| to_wire(&e);
    match request {
        Request::Create {
            id,
            size_mib,
            contents,
        } => to_json(
            &rt.block_on(store.create(&id, size_mib, contents))
                .map_err(wire)?,
        ),
        Request::Delete { id } => to_json(&rt.block_on(store.delete(&id)).map_err(wire)?),
        Request::Grow { id, new_size_mib } => {
            to_json(&rt.block_on(store.grow(&id, new_size_mib)).map_err(wire)?)
        }
        Request::CloneVolume { src, dst } => {
            to_json(&rt.block_on(store.clone_volume(&src, &dst)).map_err(wire)?)
        }
        Request::Snapshot { id, snap } => {
            to_json(&rt.block_on(store.snapshot(&id, &snap)).map_err(wire)?)
        }
        Request::DropSnapshot { id, snap } => {
            to_json(&rt.block_on(store.drop_snapshot(&id, &snap)).map_err(wire)?)
        }
        Request::OpenRead { id, snap } => {
            let r = rt
                .block_on(store.open_read(&id, snap.as_ref()))
                .map_err(wire)?;
            let len = r.len();
            let handle = inst.insert(Handle::Read(Arc::from(r)));
            to_json(&HandleOpened { handle, len })
        }
        Request::OpenWrite { id } => {
            let w = rt.block_on(store.open_write(&id)).map_err(wire)?;
            let len = w.len();
            let handle = inst.insert(Handle::Write(Arc::from(w)));
            to_json(&HandleOpened { handle, len })
        }
        Request::Allocated { handle } => to_json(&inst.reader(handle)?.allocated().map_err(wire)?),
        Request::ZeroRange {
            handle,
            offset,
            len,
        } => {
            let w = inst.writer(handle)?;
            check_range(w.len(), offset, len)?;
            to_json(&w.zero_range(offset, len).map_err(wire)?)
        }
        Request::Flush { handle } => to_json(&inst.writer(handle)?.flush().map_err(wire)?),
        Request::CloseHandle { handle } => {
            drop(inst.remove(handle)?);
            to_json(&())
        }
        Request::DevicePath { id } => {
            let path = rt.block_on(store.device_path(&id)).map_err(wire)?;
            let text = path.to_str().ok_or_else(|| WireError {
                kind: ErrorKind::Internal,
                message: format!("device path {} is not UTF-8", path.display()),
            })?;
            to_json(&text)
        }
        Request::CheckFilesystem { id } => {
            to_json(&rt.block_on(store.check_filesystem(&id)).map_err(wire)?)
        }
        Request::List => to_json(&rt.block_on(store.list()).map_err(wire)?),
        Request::Capacity => to_json(&rt.block_on(store.capacity()).map_err(wire)?),
    }
}

fn check_range(size: u64, offset: u64, len: u64) -> Result<(), WireError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(invalid(format!(
            "range {offset}+{len} is past the end of the volume ({size} bytes)"
        ))),
    }
}

unsafe extern "C" fn read_at<E: Export>(
    inst: *mut c_void,
    handle: u64,
    offset: u64,
    buf: *mut u8,
    len: usize,
    error: *mut PluginBuffer,
) -> i32 {
    let result = answer("read_at", || {
        // SAFETY: the host passes an instance `open::<E>` made.
        let inst = unsafe { instance::<E>(inst) };
        let r = inst.reader(handle)?;
        check_range(r.len(), offset, len as u64)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        if buf.is_null() {
            return Err(invalid("read_at was given no buffer"));
        }
        // SAFETY: the host owns `len` writable bytes at `buf` and does not
        // touch them until this call returns.
        let dst = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        let _ctx = runtime().map(|rt| rt.enter());
        r.read_at(offset, dst).map_err(|e| to_wire(&e))?;
        Ok(Vec::new())
    });
    // SAFETY: the ABI makes `error` valid for a write.
    unsafe { deliver(error, result) }
}

unsafe extern "C" fn write_at<E: Export>(
    inst: *mut c_void,
    handle: u64,
    offset: u64,
    data: *const u8,
    len: usize,
    error: *mut PluginBuffer,
) -> i32 {
    let result = answer("write_at", || {
        // SAFETY: the host passes an instance `open::<E>` made.
        let inst = unsafe { instance::<E>(inst) };
        let w = inst.writer(handle)?;
        check_range(w.len(), offset, len as u64)?;
        // SAFETY: the host lends `len` bytes at `data` for this call.
        let src = unsafe { host_bytes(data, len) };
        let _ctx = runtime().map(|rt| rt.enter());
        w.write_at(offset, src).map_err(|e| to_wire(&e))?;
        Ok(Vec::new())
    });
    // SAFETY: the ABI makes `error` valid for a write.
    unsafe { deliver(error, result) }
}

/// Exports a [`VolumeStore`](kiln_core::VolumeStore) as a kiln plugin.
///
/// ```text
/// export_plugin! {
///     name: "qcow2",                         // &'static str
///     version: env!("CARGO_PKG_VERSION"),    // &'static str
///     store: Qcow2Store,                     // the VolumeStore type
///     capabilities: Capabilities { .. },     // a const Capabilities
///     open: Qcow2Store::open,                // async fn(serde_json::Value)
///                                            //   -> Result<Store, BackendError>
/// }
/// ```
///
/// It defines the library's `kiln_plugin_entry` symbol, so it is used once
/// per library, in a crate built as a `cdylib`. See the crate docs for a
/// complete example.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        store: $store:ty,
        capabilities: $caps:expr,
        open: $open:expr $(,)?
    ) => {
        const _: () = {
            struct KilnPluginExport;

            impl $crate::__private::Export for KilnPluginExport {
                type Store = $store;
                const NAME: &'static str = $name;
                const VERSION: &'static str = $version;
                const CAPABILITIES: $crate::kiln_core::Capabilities = $caps;
                fn open(
                    options: $crate::serde_json::Value,
                ) -> $crate::__private::OpenFuture<$store> {
                    ::std::boxed::Box::pin($open(options))
                }
            }

            /// The kiln plugin entry point: returns the plugin's table.
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_plugin_entry() -> *const $crate::abi::PluginTable {
                static TABLE: ::std::sync::OnceLock<$crate::abi::PluginTable> =
                    ::std::sync::OnceLock::new();
                TABLE.get_or_init($crate::__private::table::<KilnPluginExport>)
            }
        };
    };
}
