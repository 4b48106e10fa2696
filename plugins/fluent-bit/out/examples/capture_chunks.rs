//! `kpl_capture`, a test tool: a Fluent Bit output that writes every chunk it receives to
//! `<dir>/<n>.<tag>.msgpack`, byte for byte, and answers `FLB_OK`. It is how the fixtures
//! of `tests/fixtures` were taken from the real Fluent Bit 5.1.1 (see
//! `tests/fixtures/capture.sh`). Build: `cargo build -p kpl-fluent-bit-out --example
//! capture_chunks`.
#![allow(missing_docs)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::catch_unwind;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use kpl_fluent_bit::abi::{
    OutputPlugin, ProxyDef, FLB_ERROR, FLB_OK, PROXY_GOLANG, PROXY_OUTPUT_PLUGIN,
};

static CHUNKS: AtomicU64 = AtomicU64::new(0);

/// # Safety
/// The host's zeroed definition.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut ProxyDef) -> c_int {
    // SAFETY: the host's definition.
    let Some(def) = (unsafe { def.as_mut() }) else {
        return -1;
    };
    def.kind = PROXY_OUTPUT_PLUGIN;
    def.proxy = PROXY_GOLANG;
    def.name = c"kpl_capture".as_ptr() as *mut c_char;
    def.description = c"writes every chunk to a file (kpl test tool)".as_ptr() as *mut c_char;
    0
}

/// # Safety
/// The host's plugin structure.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut OutputPlugin) -> c_int {
    catch_unwind(|| {
        // SAFETY: the host's structures, valid during Init.
        let plugin = unsafe { &*plugin };
        let get = unsafe { (*plugin.api).output_get_property }?;
        let value = unsafe { get(c"dir".as_ptr(), plugin.o_ins) };
        if value.is_null() {
            return None;
        }
        let dir = unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned();
        std::fs::create_dir_all(&dir).ok()?;
        let dir = Box::into_raw(Box::new(PathBuf::from(dir)));
        // SAFETY: the instance's context.
        unsafe { (*plugin.context).remote_context = dir as *mut c_void };
        Some(())
    })
    .ok()
    .flatten()
    .map_or(0, |()| 1)
}

/// # Safety
/// `ctx` from Init; the chunk and tag valid during the call.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    ctx: *mut c_void,
    data: *const c_void,
    len: usize,
    tag: *const c_char,
) -> c_int {
    catch_unwind(|| {
        // SAFETY: as documented above.
        let dir = unsafe { &*(ctx as *const PathBuf) };
        let chunk = unsafe { std::slice::from_raw_parts(data as *const u8, len) };
        let tag = unsafe { CStr::from_ptr(tag) }.to_string_lossy();
        let n = CHUNKS.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{n}.{tag}.msgpack"));
        std::fs::write(path, chunk).map_or(FLB_ERROR, |()| FLB_OK)
    })
    .unwrap_or(FLB_ERROR)
}
