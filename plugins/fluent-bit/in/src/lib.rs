//! `kpl_kinesis`, a Fluent Bit input plugin: every shard of a Kinesis data stream (children
//! after their parents), user records deaggregated as KCL hands them over (MD5 checked,
//! each shard's hash-range filter), one Fluent Bit event each, with checkpoints in a file.
//! Loaded by Fluent Bit's Go proxy ABI: `fluent-bit -e libkpl_fluent_bit_in.so -i kpl_kinesis`.
//!
//! The input ABI differs from the output's (`../shared/docs/fluent-bit.md`): the plugin's
//! pointer lives at offset 8 of the context, Pause, Resume and Exit get no context, and
//! every callback of an instance comes on that instance's own thread. So the instance is
//! also kept in a thread-local, which those context-less callbacks use.
#![deny(missing_docs)]

pub mod events;
pub mod reader;
pub mod settings;

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use kpl_fluent_bit::abi::{property, register, InputPlugin, ProxyDef, PROXY_INPUT_PLUGIN};
use kpl_fluent_bit::log::Logger;

use crate::reader::Input;

/// The name users write in `[INPUT] name` (the output plugin has the same one, as Fluent
/// Bit's kafka input and output do).
pub const PLUGIN_NAME: &CStr = c"kpl_kinesis";
const DESCRIPTION: &CStr = c"Kinesis Data Streams, deaggregated like KCL (kpl)";

static INSTANCES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The instance whose thread this is.
    static CURRENT: Cell<*mut Input> = const { Cell::new(std::ptr::null_mut()) };
}

fn with_current(f: impl FnOnce(&mut Input)) {
    let p = CURRENT.with(Cell::get);
    // SAFETY: set by Init on this thread from Box::into_raw, cleared by Exit on this thread;
    // every callback of the instance runs on this thread, one at a time.
    if let Some(input) = unsafe { p.as_mut() } {
        f(input);
    }
}

/// Registers the input.
///
/// # Safety
/// `def` is the host's zeroed definition.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut ProxyDef) -> c_int {
    // SAFETY: the host's definition, as required above.
    catch_unwind(|| unsafe { register(def, PROXY_INPUT_PLUGIN, PLUGIN_NAME, DESCRIPTION) })
        .unwrap_or(-1)
}

/// Starts an instance: properties, reader thread. 1 on success, 0 after logging why not.
///
/// # Safety
/// `plugin` is the host's input plugin structure for this Init.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut InputPlugin) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: valid during the call; fields copied out.
        let Some(plugin) = (unsafe { plugin.as_ref() }) else {
            return 0;
        };
        let (api, i_ins, context) = (plugin.api, plugin.i_ins, plugin.context);
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the host's table and instance, alive until Exit.
        let log = unsafe {
            Logger::for_input(api, i_ins, format!("[input:kpl_kinesis:kpl_kinesis.{n}]"))
        };
        if context.is_null() {
            log.error("no instance context from the host");
            return 0;
        }
        // SAFETY: the host's table (read only) and instance, valid during Init.
        let get = |key: &str| unsafe {
            property(api.as_ref().and_then(|a| a.input_get_property), i_ins, key)
        };
        let settings = match settings::parse(&get) {
            Ok(s) => s,
            Err(e) => {
                log.error(&e.to_string());
                return 0;
            }
        };
        match Input::start(settings, log.clone(), format!("kpl-kinesis-in.{n}")) {
            Ok(input) => {
                let p = Box::into_raw(Box::new(input));
                CURRENT.with(|c| c.set(p));
                // SAFETY: the host's context, writable; handed back to the callbacks.
                unsafe { (*context).remote_context = p as *mut c_void };
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

/// The collect callback (once a second): the events read since the last call, as one
/// msgpack buffer the plugin owns until the cleanup callback; nothing while paused.
///
/// # Safety
/// `ctx` is what Init stored; `data` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInputCallbackCtx(
    ctx: *mut c_void,
    data: *mut *mut c_void,
    len: *mut usize,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        if data.is_null() || len.is_null() {
            return -1;
        }
        // SAFETY: writable out-parameters of the host.
        unsafe {
            *data = std::ptr::null_mut();
            *len = 0;
        }
        // SAFETY: Init's instance, used on its own thread only.
        let Some(input) = (unsafe { (ctx as *mut Input).as_mut() }) else {
            return 0;
        };
        let batch = input.collect();
        if !batch.is_empty() {
            // SAFETY: as above; the buffer stays alive until cleanup or the next collect.
            unsafe {
                *data = batch.as_ptr() as *mut c_void;
                *len = batch.len();
            }
        }
        0
    }))
    .unwrap_or(-1)
}

/// The host copied the batch.
///
/// # Safety
/// `ctx` is what Init stored.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInputCleanupCallbackCtx(
    ctx: *mut c_void,
    _data: *mut c_void,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Init's instance, on its own thread.
        if let Some(input) = unsafe { (ctx as *mut Input).as_mut() } {
            input.cleanup();
        }
        0
    }))
    .unwrap_or(-1)
}

/// Fluent Bit paused the input (`mem_buf_limit` reached): nothing is handed over until it
/// resumes (what Fluent Bit would receive meanwhile it would drop), and reading stops once
/// the plugin's own buffer is full.
#[no_mangle]
pub extern "C" fn FLBPluginInputPause() {
    let _ = catch_unwind(|| with_current(Input::pause));
}

/// Fluent Bit resumed the input.
#[no_mangle]
pub extern "C" fn FLBPluginInputResume() {
    let _ = catch_unwind(|| with_current(Input::resume));
}

/// Stops the instance of this thread: checkpoints what Fluent Bit took, joins the reader.
#[no_mangle]
pub extern "C" fn FLBPluginExit() -> c_int {
    let _ = catch_unwind(|| {
        let p = CURRENT.with(|c| c.replace(std::ptr::null_mut()));
        if !p.is_null() {
            // SAFETY: made by Init with Box::into_raw on this thread; taken once.
            let mut input = unsafe { Box::from_raw(p) };
            input.exit();
        }
    });
    0
}
