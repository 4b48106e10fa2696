//! What the Fluent Bit plugins' tests share (included with `#[path]`): finding the real
//! Fluent Bit and the plugin libraries cargo built, and the fake host's logger.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `$FLUENT_BIT`, else `../shared/tools/fluent-bit/bin/fluent-bit` beside the workspace;
/// the error says how to get one.
pub fn find_fluent_bit() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FLUENT_BIT") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "FLUENT_BIT={} is not a file; point it at a Fluent Bit 5.1.1 binary built with FLB_PROXY_GO",
                path.display()
            ))
        };
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&manifest);
    let shared = root.join("../shared/tools/fluent-bit/bin/fluent-bit");
    if shared.is_file() {
        Ok(shared)
    } else {
        Err(format!(
            "Fluent Bit not found: set FLUENT_BIT=/path/to/fluent-bit, or install it at {}",
            shared.display()
        ))
    }
}

/// A plugin library cargo built for this test run: `cargo test` leaves it beside the test
/// binary in `target/<profile>/deps`; `cargo build` copies it up to `target/<profile>`
/// (where it may be older), the second choice.
pub fn plugin_library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let fresh = deps.join(name);
    if fresh.is_file() {
        return fresh;
    }
    deps.parent().map(|d| d.join(name)).unwrap_or(fresh)
}

/// Every line the plugin logged through the fake host: (level, text).
pub static LOG: Mutex<Vec<(c_int, String)>> = Mutex::new(Vec::new());

/// The fake host's `log_print`. The real one is C-variadic, which stable Rust cannot
/// define; the plugins always call it with `"%s"` and one string, and on the SysV x86_64
/// and AAPCS64 Linux ABIs those five arguments arrive in the same registers as in this
/// non-variadic function, so it stands in for it (see [`log_print_fn`]).
pub unsafe extern "C" fn log_print(
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    fmt: *const c_char,
    arg: *const c_char,
) {
    // SAFETY: the plugin passes NUL-terminated strings.
    let fmt = unsafe { CStr::from_ptr(fmt) }.to_string_lossy();
    assert_eq!(fmt, "%s", "the plugin must log through a fixed format");
    // SAFETY: as above.
    let text = unsafe { CStr::from_ptr(arg) }
        .to_string_lossy()
        .into_owned();
    eprintln!("[fake host log {level}] {text}");
    LOG.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((level, text));
}

/// [`log_print`] as the ABI's variadic function type.
pub fn log_print_fn() -> kpl_fluent_bit::abi::LogPrintFn {
    // SAFETY: see log_print: same registers for the calls the plugins make.
    unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, *const c_char),
            kpl_fluent_bit::abi::LogPrintFn,
        >(log_print)
    }
}
