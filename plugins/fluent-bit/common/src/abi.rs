//! The Go proxy ABI as Fluent Bit 5.1.1 lays it out on x86_64 and aarch64 Linux (LP64),
//! written from `../shared/docs/fluent-bit.md` (the headers' field order, checked against
//! the running host). Only the fields a plugin may touch are typed; the rest stay opaque.

use core::ffi::{c_char, c_int, c_void};

/// `FLB_ERROR`: the chunk is dropped for this output, with no retry (and no log line at
/// Fluent Bit's default level: log before returning it).
pub const FLB_ERROR: c_int = 0;
/// `FLB_OK`: the chunk is done for this output.
pub const FLB_OK: c_int = 1;
/// `FLB_RETRY`: Fluent Bit calls the flush again later with byte-identical data, at most
/// `retry_limit` times.
pub const FLB_RETRY: c_int = 2;

/// `flb_plugin_proxy_def.type` of an input plugin.
pub const PROXY_INPUT_PLUGIN: c_int = 1;
/// `flb_plugin_proxy_def.type` of an output plugin.
pub const PROXY_OUTPUT_PLUGIN: c_int = 2;
/// `flb_plugin_proxy_def.proxy`: the Go proxy, the only kind Fluent Bit has.
pub const PROXY_GOLANG: c_int = 11;

/// Fluent Bit's log levels, as `log_print` and the `*_log_check` functions take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    /// `[error]`.
    Error = 1,
    /// `[ warn]`.
    Warn = 2,
    /// `[ info]`.
    Info = 3,
    /// `[debug]`.
    Debug = 4,
    /// `[trace]`.
    Trace = 5,
}

/// What `FLBPluginRegister` receives. The host allocates it with its own size (32 bytes
/// before Fluent Bit 5.0, 48 on 5.1.1) and zeroes it, so a plugin writes only these five
/// fields: the later ones (`event_type`, `config_map`) may lie beyond an older host's
/// allocation, and zero is what they should hold anyway.
#[repr(C)]
#[derive(Debug)]
pub struct ProxyDef {
    /// [`PROXY_OUTPUT_PLUGIN`] or [`PROXY_INPUT_PLUGIN`].
    pub kind: c_int,
    /// [`PROXY_GOLANG`].
    pub proxy: c_int,
    /// Plugin flags (0).
    pub flags: c_int,
    /// The plugin's name; the host copies it.
    pub name: *mut c_char,
    /// Its description; the host keeps the pointer, so it must be static.
    pub description: *mut c_char,
}

/// `output_get_property(key, o_ins)`.
pub type GetPropertyFn = unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char;
/// `log_print(level, file, line, fmt, ...)`: C-variadic; called with `"%s"` and one string.
pub type LogPrintFn = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...);
/// `output_log_check(o_ins, level)` / `input_log_check(i_ins, level)`.
pub type LogCheckFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;

/// Fluent Bit's function table for proxy plugins (append-only in the host).
#[repr(C)]
#[derive(Debug)]
pub struct Api {
    /// A property of an output instance: a host-owned string or NULL.
    pub output_get_property: Option<GetPropertyFn>,
    /// A property of an input instance.
    pub input_get_property: Option<GetPropertyFn>,
    /// Opaque (cmetrics of an output).
    pub output_get_cmt_instance: *mut c_void,
    /// Opaque (cmetrics of an input).
    pub input_get_cmt_instance: *mut c_void,
    /// Fluent Bit's logger.
    pub log_print: Option<LogPrintFn>,
    /// Whether an input instance logs at a level (1) or not (0).
    pub input_log_check: Option<LogCheckFn>,
    /// Whether an output instance logs at a level (1) or not (0).
    pub output_log_check: Option<LogCheckFn>,
}

/// The per-instance context the host allocates for an output; the plugin stores its
/// instance pointer in `remote_context` during Init and receives it back in every
/// `FLBPluginFlushCtx` and `FLBPluginExitCtx`.
#[repr(C)]
#[derive(Debug)]
pub struct OutputContext {
    /// The plugin's instance (NULL on entry to Init).
    pub remote_context: *mut c_void,
    /// Host-private.
    pub proxy: *mut c_void,
}

/// What `FLBPluginInit` of an output receives. One per `.so`, shared by every instance:
/// the host rewrites `o_ins` and `context` before each Init, so copy them, never keep this.
#[repr(C)]
#[derive(Debug)]
pub struct OutputPlugin {
    /// The plugin's name.
    pub name: *mut c_char,
    /// The function table.
    pub api: *mut Api,
    /// The output instance (opaque), for `output_get_property` and `output_log_check`.
    pub o_ins: *mut c_void,
    /// The instance's context.
    pub context: *mut OutputContext,
}

/// The per-instance context of an input: unlike the output's, the plugin's pointer is at
/// offset 8.
#[repr(C)]
#[derive(Debug)]
pub struct InputContext {
    /// The collector's fd (host-private).
    pub coll_fd: c_int,
    /// The plugin's instance.
    pub remote_context: *mut c_void,
    /// Host-private.
    pub proxy: *mut c_void,
}

/// What `FLBPluginInit` of an input receives (shared by every instance, like the output's).
#[repr(C)]
#[derive(Debug)]
pub struct InputPlugin {
    /// The plugin's name.
    pub name: *mut c_char,
    /// The function table.
    pub api: *mut Api,
    /// The input instance (opaque).
    pub i_ins: *mut c_void,
    /// The instance's context.
    pub context: *mut InputContext,
}

/// Fills a definition in `FLBPluginRegister`: only the five fields every host version
/// allocates (see [`ProxyDef`]). Returns 0, or -1 for a NULL definition.
///
/// # Safety
/// `def` is NULL or the host's zeroed, writable definition.
pub unsafe fn register(
    def: *mut ProxyDef,
    kind: c_int,
    name: &'static core::ffi::CStr,
    description: &'static core::ffi::CStr,
) -> c_int {
    // SAFETY: the caller vouches for `def`.
    let Some(def) = (unsafe { def.as_mut() }) else {
        return -1;
    };
    def.kind = kind;
    def.proxy = PROXY_GOLANG;
    // Not FLB_INPUT_CORO for inputs: their callbacks stay on a normal thread stack.
    def.flags = 0;
    // The host copies the name and keeps the description pointer: both are static.
    def.name = name.as_ptr() as *mut c_char;
    def.description = description.as_ptr() as *mut c_char;
    0
}

/// A property of an instance through the host's getter (`output_get_property` or
/// `input_get_property`): its value, or `None` when unset (or a core key such as `match`).
///
/// # Safety
/// `get` and `instance` are the host's, valid during the call.
pub unsafe fn property(
    get: Option<GetPropertyFn>,
    instance: *mut c_void,
    key: &str,
) -> Option<String> {
    let get = get?;
    let key = std::ffi::CString::new(key).ok()?;
    // SAFETY: the host's function; it returns a host-owned string or NULL.
    let value = unsafe { get(key.as_ptr(), instance) };
    if value.is_null() {
        return None;
    }
    // SAFETY: NUL-terminated, owned by the host.
    Some(
        unsafe { core::ffi::CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    // Offsets as fluent-bit.md gives them for 5.1.1 (x86_64, LP64).
    #[test]
    fn layouts_match_fluent_bit_5_1_1() {
        assert_eq!(offset_of!(ProxyDef, kind), 0);
        assert_eq!(offset_of!(ProxyDef, proxy), 4);
        assert_eq!(offset_of!(ProxyDef, flags), 8);
        assert_eq!(offset_of!(ProxyDef, name), 16);
        assert_eq!(offset_of!(ProxyDef, description), 24);
        // What the plugin writes fits in the 32 bytes of the oldest host.
        assert_eq!(size_of::<ProxyDef>(), 32);
        assert_eq!(offset_of!(OutputPlugin, api), 8);
        assert_eq!(offset_of!(OutputPlugin, o_ins), 16);
        assert_eq!(offset_of!(OutputPlugin, context), 24);
        assert_eq!(offset_of!(OutputContext, remote_context), 0);
        assert_eq!(offset_of!(InputContext, remote_context), 8);
        assert_eq!(offset_of!(InputPlugin, i_ins), 16);
        assert_eq!(offset_of!(Api, output_get_property), 0);
        assert_eq!(offset_of!(Api, input_get_property), 8);
        assert_eq!(offset_of!(Api, log_print), 32);
        assert_eq!(offset_of!(Api, input_log_check), 40);
        assert_eq!(offset_of!(Api, output_log_check), 48);
    }
}
