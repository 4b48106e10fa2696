//! # kpl-md5
//!
//! Multi-lane MD5: the digests of many independent messages at once. One MD5 is a chain
//! of dependent steps that no SIMD can shorten, but independent messages can share the
//! steps: each message gets one 32-bit lane of a SIMD register, 16 lanes in an AVX2
//! kernel (two sets of 8, interleaved), 32 in an AVX-512 kernel (two sets of 16). A lane
//! takes the next message as soon as its message is done, so messages of any lengths mix.
//!
//! ```
//! let messages: [&[u8]; 3] = [b"", b"abc", b"message digest"];
//! let mut digests = [[0u8; 16]; 3];
//! kpl_md5::digest_many(&messages, &mut digests);
//! assert_eq!(digests[1], kpl_md5::digest(b"abc"));
//! assert_eq!(
//!     digests[2],
//!     [0xf9, 0x6b, 0x69, 0x7d, 0x7c, 0xb7, 0x93, 0x8d, 0x52, 0x5a, 0x2f, 0x31, 0xaa, 0xf1, 0x61, 0xd0]
//! );
//! ```
//!
//! [`digest_many`] picks the [`Backend`] at run time (AVX-512 F+VL, then AVX2, then the
//! scalar [md-5](https://docs.rs/md-5) crate) and the kernel width by batch size (one or
//! two messages are hashed one at a time). [`digest_many_with`] forces a backend, for
//! tests and benchmarks; [`set_max_backend`] or the `KPL_MD5_BACKEND` environment
//! variable caps what [`digest_many`] uses, process-wide.
//!
//! All `unsafe` code of the crate is in one private module (the x86-64 kernels), behind a
//! safe function that checks the CPU's features and every lane's bounds. Without the `std`
//! feature there is no run-time detection: only the features the build targets
//! (`-C target-feature`) are used, otherwise the scalar path.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// The MD5 of one message (the md-5 crate).
pub fn digest(message: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(message).into()
}

/// A way of hashing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// One message at a time with the md-5 crate. Always supported.
    Scalar,
    /// AVX2 kernels: 8 lanes, or two interleaved sets of 8.
    Avx2,
    /// AVX-512 F+VL kernels: 8 lanes in 256-bit registers, 16, or two sets of 16.
    Avx512,
}

impl Backend {
    /// Every backend, slowest first.
    pub const ALL: [Backend; 3] = [Backend::Scalar, Backend::Avx2, Backend::Avx512];

    /// The backend's name: `scalar`, `avx2` or `avx512` (what [`Backend::from_name`] and
    /// `KPL_MD5_BACKEND` take).
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
        }
    }

    /// The backend named `name` (see [`Backend::name`]).
    ///
    /// ```
    /// use kpl_md5::Backend;
    /// assert_eq!(Backend::from_name("avx2"), Some(Backend::Avx2));
    /// assert_eq!(Backend::from_name("neon"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Messages hashed side by side at most.
    pub const fn lanes(self) -> usize {
        match self {
            Backend::Scalar => 1,
            Backend::Avx2 => 16,
            Backend::Avx512 => 32,
        }
    }

    /// Whether this CPU (and build) can run the backend.
    pub fn is_supported(self) -> bool {
        match self {
            Backend::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => x86::avx2_detected(),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => x86::avx512_detected(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest backend this CPU supports.
    pub fn detect() -> Backend {
        Backend::ALL
            .into_iter()
            .rev()
            .find(|b| b.is_supported())
            .unwrap_or(Backend::Scalar)
    }

    /// What [`digest_many`] uses: the fastest supported backend within the cap set by
    /// [`set_max_backend`] or, before any call to it, by the `KPL_MD5_BACKEND`
    /// environment variable (`scalar`, `avx2`, `avx512`; other values are ignored).
    pub fn active() -> Backend {
        let cap = max_backend();
        Backend::ALL
            .into_iter()
            .rev()
            .find(|b| *b <= cap && b.is_supported())
            .unwrap_or(Backend::Scalar)
    }

    #[cfg(target_arch = "x86_64")]
    fn kernels(self) -> &'static [x86::Kernel] {
        use x86::Kernel;
        match self {
            Backend::Scalar => &[],
            Backend::Avx2 => &[Kernel::Avx2x8, Kernel::Avx2x16],
            Backend::Avx512 => &[Kernel::Avx512x8, Kernel::Avx512x16, Kernel::Avx512x32],
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The cap on [`Backend::active`]: 0 before it is first read, else 1 + its index in
/// [`Backend::ALL`].
static MAX_BACKEND: AtomicU8 = AtomicU8::new(0);

/// Caps the backend [`digest_many`] uses, for the whole process (benchmarks, or a CPU
/// whose wide registers should be left alone). `Backend::Avx512` lifts the cap.
///
/// ```
/// use kpl_md5::{set_max_backend, Backend};
/// set_max_backend(Backend::Scalar);
/// assert_eq!(Backend::active(), Backend::Scalar);
/// set_max_backend(Backend::Avx512);
/// assert_eq!(Backend::active(), Backend::detect());
/// ```
pub fn set_max_backend(max: Backend) {
    MAX_BACKEND.store(encode(max), Ordering::Relaxed);
}

/// The cap set by [`set_max_backend`] or `KPL_MD5_BACKEND`; `Backend::Avx512` when none.
pub fn max_backend() -> Backend {
    let mut code = MAX_BACKEND.load(Ordering::Relaxed);
    if code == 0 {
        code = encode(from_environment().unwrap_or(Backend::Avx512));
        // A concurrent set_max_backend wins over the environment.
        code = match MAX_BACKEND.compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => code,
            Err(current) => current,
        };
    }
    Backend::ALL[usize::from(code - 1)]
}

fn encode(backend: Backend) -> u8 {
    backend as u8 + 1
}

#[cfg(feature = "std")]
fn from_environment() -> Option<Backend> {
    Backend::from_name(std::env::var("KPL_MD5_BACKEND").ok()?.trim())
}

#[cfg(not(feature = "std"))]
fn from_environment() -> Option<Backend> {
    None
}

/// Writes the MD5 of `messages[i]` to `out[i]` for every `i`, with the backend of
/// [`Backend::active`]; one or two messages are hashed one at a time.
///
/// # Panics
///
/// If `out` and `messages` differ in length.
pub fn digest_many(messages: &[&[u8]], out: &mut [[u8; 16]]) {
    let backend = if messages.len() <= 2 {
        Backend::Scalar
    } else {
        Backend::active()
    };
    run(backend, messages, out);
}

/// A backend that this CPU or build cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported(pub Backend);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} MD5 backend is not supported here", self.0)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Unsupported {}

/// [`digest_many`] with `backend`, whatever the batch size (a batch of one still goes
/// through the SIMD kernel, in one lane).
///
/// ```
/// use kpl_md5::{digest_many_with, Backend};
/// let mut out = [[0u8; 16]];
/// for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
///     digest_many_with(backend, &[b"abc"], &mut out)?;
///     assert_eq!(out[0], kpl_md5::digest(b"abc"));
/// }
/// # Ok::<(), kpl_md5::Unsupported>(())
/// ```
///
/// # Panics
///
/// If `out` and `messages` differ in length.
pub fn digest_many_with(
    backend: Backend,
    messages: &[&[u8]],
    out: &mut [[u8; 16]],
) -> Result<(), Unsupported> {
    if !backend.is_supported() {
        return Err(Unsupported(backend));
    }
    run(backend, messages, out);
    Ok(())
}

fn run(backend: Backend, messages: &[&[u8]], out: &mut [[u8; 16]]) {
    assert_eq!(
        messages.len(),
        out.len(),
        "kpl_md5: one output digest per message"
    );
    match backend {
        Backend::Scalar => {
            for (message, out) in messages.iter().zip(out) {
                *out = digest(message);
            }
        }
        #[cfg(target_arch = "x86_64")]
        _ => lanes::digest_lanes(backend.kernels(), messages, out),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar backend is supported off x86-64"),
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
