//! A Fluent Bit output plugin (Go proxy ABI, Rust cdylib, std only) that appends every chunk
//! it is flushed, exactly as Fluent Bit hands it to outputs, to the file named by
//! `KPL_CAPTURE_DUMP`: per flush a little-endian u32 tag length, the tag, a little-endian
//! u64 chunk length, the chunk. Built by `capture.sh` with plain `rustc`; test tooling only.
#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::Write;

/// The first fields of `struct flb_plugin_proxy_def` (the only ones written: see
/// `shared/docs/fluent-bit.md`).
#[repr(C)]
pub struct ProxyDef {
    kind: c_int,
    proxy: c_int,
    flags: c_int,
    name: *const c_char,
    description: *const c_char,
}

#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut ProxyDef) -> c_int {
    if def.is_null() {
        return -1;
    }
    (*def).kind = 2; // output
    (*def).proxy = 11; // FLB_PROXY_GOLANG
    (*def).flags = 0;
    (*def).name = c"kpl_capture_dump".as_ptr();
    (*def).description = c"kpl capture: dump chunks".as_ptr();
    0
}

#[no_mangle]
pub extern "C" fn FLBPluginInit(_plugin: *mut c_void) -> c_int {
    1
}

#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    _context: *mut c_void,
    data: *const u8,
    len: usize,
    tag: *const c_char,
) -> c_int {
    let result = std::panic::catch_unwind(|| {
        let chunk = if data.is_null() { &[][..] } else { std::slice::from_raw_parts(data, len) };
        let tag = if tag.is_null() { &[][..] } else { CStr::from_ptr(tag).to_bytes() };
        let Some(path) = std::env::var_os("KPL_CAPTURE_DUMP") else {
            return 0;
        };
        let mut record = Vec::with_capacity(12 + tag.len() + chunk.len());
        record.extend_from_slice(&(tag.len() as u32).to_le_bytes());
        record.extend_from_slice(tag);
        record.extend_from_slice(&(chunk.len() as u64).to_le_bytes());
        record.extend_from_slice(chunk);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        match file.and_then(|mut f| f.write_all(&record)) {
            Ok(()) => 1,
            Err(_) => 0,
        }
    });
    result.unwrap_or(0)
}

#[no_mangle]
pub extern "C" fn FLBPluginExitCtx(_context: *mut c_void) -> c_int {
    0
}
