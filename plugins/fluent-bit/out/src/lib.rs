//! `kpl_kinesis`, a Fluent Bit output plugin: KPL-aggregated records into a Kinesis data
//! stream through the `kpl-kinesis` sink (shard-aware aggregation, PutRecords batching,
//! rate limits, retries until `record_ttl`), loaded by Fluent Bit's Go proxy ABI
//! (`fluent-bit -e libkpl_fluent_bit_out.so`).
//!
//! The entry points below are the whole ABI surface. Each one catches panics (a panic
//! must never unwind into Fluent Bit) and does as little as possible on the host's thread:
//! every instance owns a thread with the sink, and a flush only copies its chunk there
//! and waits for the answer (see [`instance`]). The README's "Fluent Bit" section is the
//! user's guide.
#![deny(missing_docs)]

pub mod instance;
pub mod records;
pub mod retry_memory;
pub mod settings;
pub mod sink_log;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use kpl_fluent_bit::abi::{
    property, register, OutputPlugin, ProxyDef, FLB_ERROR, FLB_OK, FLB_RETRY, PROXY_OUTPUT_PLUGIN,
};
use kpl_fluent_bit::log::Logger;

use crate::instance::Instance;

/// The name users write in `[OUTPUT] name`.
pub const PLUGIN_NAME: &CStr = c"kpl_kinesis";
const DESCRIPTION: &CStr = c"Kinesis Data Streams with KPL aggregation (kpl)";

/// Instances started by this library, for log prefixes and thread names.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// Registers the plugin: type output, Go proxy, name and description. Writes nothing else
/// (the host sized `def` for its own version).
///
/// # Safety
/// `def` is the host's zeroed definition, at least 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut ProxyDef) -> c_int {
    // SAFETY: the host's definition, as required above.
    catch_unwind(|| unsafe { register(def, PROXY_OUTPUT_PLUGIN, PLUGIN_NAME, DESCRIPTION) })
        .unwrap_or(-1)
}

/// Starts one `[OUTPUT]` instance: reads and validates its properties, builds its sink
/// on its own thread, and stores it in the instance's context. Returns 1, or 0 (Init
/// failed: Fluent Bit stops) after logging which property is wrong.
///
/// # Safety
/// `plugin` is the host's output plugin structure for this Init.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut OutputPlugin) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: valid for the duration of this call; fields are copied out.
        let Some(plugin) = (unsafe { plugin.as_ref() }) else {
            return 0;
        };
        let api = plugin.api;
        let o_ins = plugin.o_ins;
        let context = plugin.context;
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the host's table and instance, alive until this instance's Exit.
        let log = unsafe {
            Logger::for_output(api, o_ins, format!("[output:kpl_kinesis:kpl_kinesis.{n}]"))
        };
        if context.is_null() {
            log.error("no instance context from the host");
            return 0;
        }
        // SAFETY: the host's table (read only) and instance, valid during Init.
        let get = |key: &str| unsafe {
            property(api.as_ref().and_then(|a| a.output_get_property), o_ins, key)
        };
        let read_file =
            |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
        let settings = match settings::parse(&get, &read_file) {
            Ok(s) => s,
            Err(e) => {
                log.error(&format!("{e}"));
                return 0;
            }
        };
        match Instance::start(settings, log.clone(), format!("kpl-kinesis.{n}")) {
            Ok(instance) => {
                let instance = Box::new(instance);
                // SAFETY: the host's per-instance context, writable; it hands this pointer
                // back to FlushCtx and ExitCtx.
                unsafe { (*context).remote_context = Box::into_raw(instance) as *mut c_void };
                1
            }
            Err(e) => {
                log.error(&format!("cannot start: {e}"));
                0
            }
        }
    }))
    .unwrap_or(0)
}

/// Sends a chunk: copies it to the instance's thread and waits for its code: `FLB_OK` once
/// every record is stored (or failed for good, logged), `FLB_RETRY` if some may still be
/// stored later (Fluent Bit re-delivers the same bytes; records already stored are not
/// sent again), `FLB_ERROR` for a malformed chunk.
///
/// # Safety
/// `remote_ctx` is what Init stored; `data[..len]` and `tag` are valid during the call.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    remote_ctx: *mut c_void,
    data: *const c_void,
    len: usize,
    tag: *const c_char,
) -> c_int {
    catch_unwind(|| {
        // SAFETY: Init stored a live Instance; it is freed only in ExitCtx, after the
        // host's last flush for this instance.
        let Some(instance) = (unsafe { (remote_ctx as *const Instance).as_ref() }) else {
            return FLB_ERROR;
        };
        let chunk: &[u8] = if data.is_null() || len == 0 {
            &[]
        } else {
            // SAFETY: the host's chunk, valid during the call.
            unsafe { std::slice::from_raw_parts(data as *const u8, len) }
        };
        let tag: &[u8] = if tag.is_null() {
            &[]
        } else {
            // SAFETY: NUL-terminated, valid during the call.
            unsafe { CStr::from_ptr(tag) }.to_bytes()
        };
        instance.flush(tag, chunk)
    })
    .unwrap_or(FLB_RETRY)
}

/// The older flush entry point, without a context: never called by a host that finds
/// [`FLBPluginFlushCtx`], exported so that no host calls a missing symbol.
///
/// # Safety
/// None needed: nothing is read.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlush(
    _data: *const c_void,
    _len: usize,
    _tag: *const c_char,
) -> c_int {
    FLB_ERROR
}

/// Stops an instance: its pending flushes finish, the sink sends what is buffered within
/// `exit_grace`, a summary line is logged, its thread is joined and its memory freed.
///
/// # Safety
/// `remote_ctx` is what Init stored, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginExitCtx(remote_ctx: *mut c_void) -> c_int {
    catch_unwind(|| {
        if remote_ctx.is_null() {
            return FLB_OK;
        }
        // SAFETY: Init made it with Box::into_raw; the host calls ExitCtx once.
        let instance = unsafe { Box::from_raw(remote_ctx as *mut Instance) };
        instance.exit();
        FLB_OK
    })
    .unwrap_or(FLB_ERROR)
}

/// Exit without a context: instances are stopped by [`FLBPluginExitCtx`].
#[no_mangle]
pub extern "C" fn FLBPluginExit() -> c_int {
    FLB_OK
}
