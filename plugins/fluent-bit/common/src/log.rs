//! Logging through Fluent Bit's own logger (`api->log_print`), with the level check of the
//! instance (`log_level` of the `[OUTPUT]` section, or the service's), so that plugin lines
//! look and filter like the host's own: `[ warn] [output:kpl_kinesis:kpl_kinesis.0] ...`.

use core::ffi::{c_char, c_int, c_void};
use std::ffi::CString;

use crate::abi::{Api, Level, LogCheckFn, LogPrintFn};

/// An instance's logger; cheap to clone, usable from any thread while the instance lives
/// (Fluent Bit's logger writes to its log pipe, or to stderr from threads it does not know).
#[derive(Clone)]
pub struct Logger {
    print: Option<LogPrintFn>,
    check: Option<LogCheckFn>,
    /// The instance pointer, as an address (the host owns it; it outlives the plugin's
    /// threads, which are joined in Exit).
    instance: usize,
    prefix: String,
}

impl core::fmt::Debug for Logger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Logger")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// A logger for an output instance. `prefix` is put before every message, in the
    /// host's style: `[output:kpl_kinesis:kpl_kinesis.0]`.
    ///
    /// # Safety
    /// `api` must be the host's function table (or NULL: then nothing is logged), and
    /// `o_ins` its output instance, valid for as long as the logger is used.
    pub unsafe fn for_output(api: *const Api, o_ins: *mut c_void, prefix: String) -> Logger {
        // SAFETY: the caller vouches for `api`; it is only read.
        let api = unsafe { api.as_ref() };
        Logger {
            print: api.and_then(|a| a.log_print),
            check: api.and_then(|a| a.output_log_check),
            instance: o_ins as usize,
            prefix,
        }
    }

    /// A logger for an input instance.
    ///
    /// # Safety
    /// As [`Logger::for_output`], with the input instance.
    pub unsafe fn for_input(api: *const Api, i_ins: *mut c_void, prefix: String) -> Logger {
        // SAFETY: the caller vouches for `api`; it is only read.
        let api = unsafe { api.as_ref() };
        Logger {
            print: api.and_then(|a| a.log_print),
            check: api.and_then(|a| a.input_log_check),
            instance: i_ins as usize,
            prefix,
        }
    }

    /// A logger that drops everything (tests, or a host without a logger).
    pub fn silent() -> Logger {
        Logger {
            print: None,
            check: None,
            instance: 0,
            prefix: String::new(),
        }
    }

    /// Whether a message at `level` would be printed.
    pub fn enabled(&self, level: Level) -> bool {
        match (self.print, self.check) {
            (None, _) => false,
            (Some(_), None) => level <= Level::Info,
            // SAFETY: the host's function, with the instance it gave us (see for_output).
            (Some(_), Some(check)) => unsafe {
                check(self.instance as *mut c_void, level as c_int) != 0
            },
        }
    }

    /// Logs a message (NUL bytes become spaces) if the level is enabled.
    pub fn log(&self, level: Level, message: &str) {
        let Some(print) = self.print else {
            return;
        };
        if !self.enabled(level) {
            return;
        }
        let mut line = String::with_capacity(self.prefix.len() + 1 + message.len());
        line.push_str(&self.prefix);
        line.push(' ');
        line.push_str(message);
        let line = CString::new(line.replace('\0', " ")).unwrap_or_default();
        // SAFETY: a C-variadic call with the format "%s" and one NUL-terminated string, as
        // Fluent Bit's own plugins make it; file NULL and line 0 as the Go proxy does.
        unsafe {
            print(
                level as c_int,
                core::ptr::null(),
                0,
                c"%s".as_ptr(),
                line.as_ptr() as *const c_char,
            )
        };
    }

    /// [`Level::Error`].
    pub fn error(&self, message: &str) {
        self.log(Level::Error, message)
    }

    /// [`Level::Warn`].
    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message)
    }

    /// [`Level::Info`].
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message)
    }

    /// [`Level::Debug`].
    pub fn debug(&self, message: &str) {
        self.log(Level::Debug, message)
    }
}
