//! A fake Fluent Bit 5.1.1: loads the built plugin with `dlopen` and makes the calls the
//! real host makes, in its order and with its layouts (`../shared/docs/fluent-bit.md`):
//! `FLBPluginRegister` with a zeroed 48-byte definition, `FLBPluginInit` once per instance
//! with one shared plugin structure whose `o_ins` and `context` are rewritten before each
//! Init, `FLBPluginFlushCtx` on a thread with a 64 KiB stack (the size of Fluent Bit's
//! coroutine stacks; this one has a guard page, so an overflow crashes instead of
//! corrupting), `FLBPluginExitCtx` once per instance.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicI32, Ordering};

use kpl_fluent_bit::abi::{Api, OutputContext, OutputPlugin, ProxyDef};

#[path = "../../../testing.rs"]
mod testing;
use libloading::{Library, Symbol};
pub use testing::LOG;

/// Fluent Bit's coroutine stack size.
pub const COROUTINE_STACK: usize = 64 * 1024;

/// The log lines so far, joined.
pub fn log_text() -> String {
    LOG.lock()
        .unwrap()
        .iter()
        .map(|(l, m)| format!("[{l}] {m}\n"))
        .collect()
}

/// The instances' `log_level`: 3 (info) unless a test raises it.
pub static LOG_LEVEL: AtomicI32 = AtomicI32::new(3);

unsafe extern "C" fn log_check(_ins: *mut c_void, level: c_int) -> c_int {
    c_int::from(level <= LOG_LEVEL.load(Ordering::SeqCst))
}

/// An output instance as the host holds it: its properties.
pub struct FakeInstance {
    props: Vec<(String, CString)>,
}

unsafe extern "C" fn get_property(key: *const c_char, o_ins: *mut c_void) -> *const c_char {
    let key = unsafe { CStr::from_ptr(key) }.to_string_lossy();
    let ins = unsafe { &*(o_ins as *const FakeInstance) };
    // Case-insensitive, host-owned strings, NULL when unset: as the real host.
    ins.props
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
        .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
}

/// A started instance.
pub struct Output {
    remote: usize,
    _instance: Box<FakeInstance>,
    _context: Box<OutputContext>,
}

// SAFETY: as for Host: the context is only written by Init.
unsafe impl Sync for Output {}
unsafe impl Send for Output {}

/// The loaded plugin.
pub struct Host {
    lib: Library,
    plugin: Box<OutputPlugin>,
    _api: Box<Api>,
    def: Vec<u64>,
}

// SAFETY: the raw pointers inside are the host's own structures, which the plugin only
// reads during Init; flushes from several threads use nothing but the library handle, as
// Fluent Bit's workers do.
unsafe impl Sync for Host {}
unsafe impl Send for Host {}

impl Host {
    /// dlopen + FLBPluginRegister, as the host does at load.
    pub fn load() -> Host {
        let lib = unsafe { Library::new(testing::plugin_library("libkpl_fluent_bit_out.so")) }
            .expect("dlopen the plugin");
        // 48 zeroed bytes: the 5.1.1 definition, calloc'd.
        let mut def = vec![0u64; 6];
        let code = unsafe {
            let register: Symbol<unsafe extern "C" fn(*mut ProxyDef) -> c_int> =
                lib.get(b"FLBPluginRegister").expect("FLBPluginRegister");
            register(def.as_mut_ptr() as *mut ProxyDef)
        };
        assert_eq!(code, 0, "Register");
        let log = testing::log_print_fn();
        let mut api = Box::new(Api {
            output_get_property: Some(get_property),
            input_get_property: None,
            output_get_cmt_instance: std::ptr::null_mut(),
            input_get_cmt_instance: std::ptr::null_mut(),
            log_print: Some(log),
            input_log_check: None,
            output_log_check: Some(log_check),
        });
        let plugin = Box::new(OutputPlugin {
            name: c"kpl_kinesis".as_ptr() as *mut c_char,
            api: &mut *api,
            o_ins: std::ptr::null_mut(),
            context: std::ptr::null_mut(),
        });
        Host {
            lib,
            plugin,
            _api: api,
            def,
        }
    }

    /// What Register wrote: (type, proxy, flags, name, description), and whether the
    /// bytes past the first 32 (event_type, config_map) are still zero.
    pub fn registered(&self) -> (c_int, c_int, c_int, String, String, bool) {
        let def = unsafe { &*(self.def.as_ptr() as *const ProxyDef) };
        let name = unsafe { CStr::from_ptr(def.name) }
            .to_string_lossy()
            .into_owned();
        let desc = unsafe { CStr::from_ptr(def.description) }
            .to_string_lossy()
            .into_owned();
        let tail_zero = self.def[4] == 0 && self.def[5] == 0;
        (def.kind, def.proxy, def.flags, name, desc, tail_zero)
    }

    /// FLBPluginInit for a new instance with these properties; the return code and the
    /// instance if it started.
    pub fn init(&mut self, props: &[(&str, &str)]) -> (c_int, Option<Output>) {
        let mut instance = Box::new(FakeInstance {
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), CString::new(*v).unwrap()))
                .collect(),
        });
        let mut context = Box::new(OutputContext {
            remote_context: std::ptr::null_mut(),
            proxy: std::ptr::null_mut(),
        });
        // The host rewrites the shared structure before each Init.
        self.plugin.o_ins = &mut *instance as *mut FakeInstance as *mut c_void;
        self.plugin.context = &mut *context;
        let code = unsafe {
            let init: Symbol<unsafe extern "C" fn(*mut OutputPlugin) -> c_int> =
                self.lib.get(b"FLBPluginInit").expect("FLBPluginInit");
            init(&mut *self.plugin)
        };
        let remote = context.remote_context as usize;
        if code <= 0 {
            assert_eq!(remote, 0, "a failed Init must not leave a context");
            return (code, None);
        }
        assert_ne!(remote, 0, "Init must store its instance in the context");
        let output = Output {
            remote,
            _instance: instance,
            _context: context,
        };
        (code, Some(output))
    }

    /// FLBPluginFlushCtx on a 64 KiB-stack thread, with the chunk and tag copied to
    /// buffers that are freed right after the call, as the host does.
    pub fn flush(&self, output: &Output, tag: &str, chunk: &[u8]) -> c_int {
        let flush: Symbol<
            unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_char) -> c_int,
        > = unsafe { self.lib.get(b"FLBPluginFlushCtx") }.expect("FLBPluginFlushCtx");
        let flush = *flush;
        let remote = output.remote;
        let data = chunk.to_vec();
        let tag = CString::new(tag).unwrap();
        std::thread::Builder::new()
            .name("flb-pipeline".into())
            .stack_size(COROUTINE_STACK)
            .spawn(move || {
                let tag = tag.into_raw();
                let code = unsafe {
                    flush(
                        remote as *mut c_void,
                        data.as_ptr() as *const c_void,
                        data.len(),
                        tag,
                    )
                };
                drop(unsafe { CString::from_raw(tag) });
                drop(data);
                code
            })
            .expect("spawn a 64 KiB thread")
            .join()
            .expect("the flush thread crashed")
    }

    /// FLBPluginExitCtx while another thread may still be in a flush of the instance (the
    /// output's memory stays with the caller).
    pub fn exit_ref(&self, output: &Output) -> c_int {
        let exit: Symbol<unsafe extern "C" fn(*mut c_void) -> c_int> =
            unsafe { self.lib.get(b"FLBPluginExitCtx") }.expect("FLBPluginExitCtx");
        unsafe { exit(output.remote as *mut c_void) }
    }

    /// FLBPluginExitCtx.
    pub fn exit(&self, output: Output) -> c_int {
        let exit: Symbol<unsafe extern "C" fn(*mut c_void) -> c_int> =
            unsafe { self.lib.get(b"FLBPluginExitCtx") }.expect("FLBPluginExitCtx");
        unsafe { exit(output.remote as *mut c_void) }
    }
}
