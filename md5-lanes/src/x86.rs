//! The x86-64 kernels. Every `unsafe` of the crate is in this module: the SIMD intrinsics,
//! the raw-pointer block loads, and the calls into `#[target_feature]` functions, each
//! behind one safe function, [`compress`], that checks what the kernels rely on.
//!
//! A kernel runs `blocks` MD5 block compressions on each of its lanes at once: lane `j`
//! reads its blocks at `ptrs[j]`, `ptrs[j] + strides[j]`, ... (64 bytes each) and keeps its
//! chaining value in column `j` of [`State`]. The message words of a block are loaded lane
//! by lane (one row per lane) and transposed in registers, not gathered. Kernels with two
//! register sets (`K = 2`) run two independent groups of lanes through the same unrolled
//! steps, so that one group's dependency chain hides the other's latency.

use core::arch::x86_64::*;

use crate::lanes::{State, MAX_LANES};

/// What an idle lane reads: a block of zeros (its result is never used).
static ZERO_BLOCK: [u8; 64] = [0; 64];

/// The multi-lane kernels, by register width, lanes per register and register sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AVX2, one set of 8 lanes.
    Avx2x8,
    /// AVX2, two sets of 8 lanes.
    Avx2x16,
    /// AVX-512VL on 256-bit registers (ternary logic, rotate), one set of 8 lanes.
    Avx512x8,
    /// AVX-512F on 512-bit registers, one set of 16 lanes.
    Avx512x16,
    /// AVX-512F on 512-bit registers, two sets of 16 lanes.
    Avx512x32,
}

impl Kernel {
    /// The lanes the kernel hashes at once.
    pub(crate) const fn lanes(self) -> usize {
        match self {
            Kernel::Avx2x8 | Kernel::Avx512x8 => 8,
            Kernel::Avx2x16 | Kernel::Avx512x16 => 16,
            Kernel::Avx512x32 => 32,
        }
    }

    /// Whether this CPU has what the kernel uses.
    fn supported(self) -> bool {
        match self {
            Kernel::Avx2x8 | Kernel::Avx2x16 => avx2_detected(),
            Kernel::Avx512x8 | Kernel::Avx512x16 | Kernel::Avx512x32 => avx512_detected(),
        }
    }
}

/// Whether the CPU has AVX2.
pub(crate) fn avx2_detected() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx2")
    }
}

/// Whether the CPU has AVX-512 F and VL (what the AVX-512 kernels use).
pub(crate) fn avx512_detected() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "avx512f", target_feature = "avx512vl"))
    }
}

/// Asks the CPU to fetch the cache lines of `bytes` from its last whole block's end to its
/// last byte (where a message's tail is copied from), without waiting for them.
pub(crate) fn prefetch_tail(bytes: &[u8]) {
    let Some(last) = bytes.len().checked_sub(1) else {
        return;
    };
    let first = (bytes.len() / 64 * 64).min(last);
    for at in [first, last] {
        // SAFETY: SSE is part of x86-64; `at` is inside `bytes`; a prefetch reads nothing
        // architecturally and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(at).cast()) }
    }
}

/// What one lane hashes in a kernel call: the whole 64-byte blocks of `first`, then those
/// of `then` (a message's blocks read in place, then its padded tail).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segments<'a> {
    pub(crate) first: &'a [u8],
    pub(crate) then: &'a [u8],
}

/// Runs `blocks` block compressions on the first `kernel.lanes()` lanes of `state`: lane
/// `j` hashes the first `blocks` 64-byte blocks of `lanes[j]` (its `first` blocks, then its
/// `then` blocks), or zeros when it is `None` (an idle lane, whose column of `state` then
/// means nothing).
///
/// # Panics
///
/// If a lane holds fewer than `blocks` blocks, or the CPU lacks the kernel's features
/// (both would be bugs of the lane scheduler, which picks kernels from the detected
/// backend).
pub(crate) fn compress(
    kernel: Kernel,
    state: &mut State,
    lanes: &[Option<Segments<'_>>; MAX_LANES],
    blocks: usize,
) {
    let mut walk = Walk {
        ptrs: [ZERO_BLOCK.as_ptr(); MAX_LANES],
        thens: [ZERO_BLOCK.as_ptr(); MAX_LANES],
        switch: [usize::MAX; MAX_LANES],
        strides: [0; MAX_LANES],
    };
    for (j, lane) in lanes.iter().enumerate().take(kernel.lanes()) {
        if let Some(Segments { first, then }) = lane {
            let in_first = first.len() / 64;
            assert!(
                blocks <= in_first || blocks - in_first <= then.len() / 64,
                "lane shorter than the run"
            );
            walk.ptrs[j] = first.as_ptr();
            walk.thens[j] = then.as_ptr();
            walk.switch[j] = in_first;
            walk.strides[j] = 64;
        }
    }
    assert!(
        kernel.supported(),
        "kernel {kernel:?} without its CPU features"
    );
    // SAFETY: the CPU has the kernel's target features (checked above). Lane j reads
    // blocks i < switch[j] at ptrs[j] + 64 i, inside `first` for i < blocks, and blocks
    // switch[j] <= i < blocks at thens[j] + 64 (i - switch[j]), inside `then` (both
    // lengths were checked); an idle lane reads ZERO_BLOCK itself (stride 0, never
    // switching); lanes past the kernel's width are not read.
    unsafe {
        match kernel {
            Kernel::Avx2x8 => avx2_x8(state, &walk, blocks),
            Kernel::Avx2x16 => avx2_x16(state, &walk, blocks),
            Kernel::Avx512x8 => avx512_x8(state, &walk, blocks),
            Kernel::Avx512x16 => avx512_x16(state, &walk, blocks),
            Kernel::Avx512x32 => avx512_x32(state, &walk, blocks),
        }
    }
}

/// Where each lane reads: from `ptrs[j]` on, by `strides[j]` per block, and from
/// `thens[j]` on from block `switch[j]`.
struct Walk {
    ptrs: [*const u8; MAX_LANES],
    thens: [*const u8; MAX_LANES],
    switch: [usize; MAX_LANES],
    strides: [usize; MAX_LANES],
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_x8(state: &mut State, walk: &Walk, blocks: usize) {
    unsafe { run::<Avx2, 1>(state, walk, blocks) }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_x16(state: &mut State, walk: &Walk, blocks: usize) {
    unsafe { run::<Avx2, 2>(state, walk, blocks) }
}

#[target_feature(enable = "avx2,avx512f,avx512vl")]
unsafe fn avx512_x8(state: &mut State, walk: &Walk, blocks: usize) {
    unsafe { run::<Avx512Vl, 1>(state, walk, blocks) }
}

#[target_feature(enable = "avx2,avx512f,avx512vl")]
unsafe fn avx512_x16(state: &mut State, walk: &Walk, blocks: usize) {
    unsafe { run::<Avx512, 1>(state, walk, blocks) }
}

#[target_feature(enable = "avx2,avx512f,avx512vl")]
unsafe fn avx512_x32(state: &mut State, walk: &Walk, blocks: usize) {
    unsafe { run::<Avx512, 2>(state, walk, blocks) }
}

/// The lane operations of one register type. Every method needs the CPU features of its
/// implementation; they are only called from the `#[target_feature]` kernels above, into
/// which they are inlined.
trait Ops: Copy {
    /// 32-bit lanes per register.
    const LANES: usize;
    unsafe fn splat(x: u32) -> Self;
    /// Loads `LANES` words from `p` (unaligned).
    unsafe fn load(p: *const u32) -> Self;
    /// Stores `LANES` words to `p` (unaligned).
    unsafe fn store(self, p: *mut u32);
    unsafe fn add(self, other: Self) -> Self;
    /// MD5's F: `(b & c) | (!b & d)`.
    unsafe fn f(b: Self, c: Self, d: Self) -> Self;
    /// MD5's G: `(b & d) | (c & !d)`.
    unsafe fn g(b: Self, c: Self, d: Self) -> Self;
    /// MD5's H: `b ^ c ^ d`.
    unsafe fn h(b: Self, c: Self, d: Self) -> Self;
    /// MD5's I: `c ^ (b | !d)`.
    unsafe fn i(b: Self, c: Self, d: Self) -> Self;
    /// Rotates each lane left by `S` (`R` is `32 - S`).
    unsafe fn rotl<const S: i32, const R: i32>(self) -> Self;
    /// The 16 message words of one block for each lane, word `w` of lane `j` in lane `j`
    /// of element `w`: lane `j` reads 64 bytes at `ptrs[j]`.
    unsafe fn load_block(ptrs: &[*const u8]) -> [Self; 16];
}

#[derive(Clone, Copy)]
struct Avx2(__m256i);

#[derive(Clone, Copy)]
struct Avx512Vl(__m256i);

#[derive(Clone, Copy)]
struct Avx512(__m512i);

/// Transposes 8 rows of 8 words (row `i`: 8 consecutive words of lane `i`) into 8 words
/// of 8 lanes.
#[inline(always)]
unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    unsafe {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }
}

/// Words `offset / 4 ..` (8 of them) of 8 lanes, transposed.
#[inline(always)]
unsafe fn load_half8(ptrs: &[*const u8], offset: usize) -> [__m256i; 8] {
    unsafe {
        let mut rows = [_mm256_setzero_si256(); 8];
        for (row, ptr) in rows.iter_mut().zip(ptrs) {
            *row = _mm256_loadu_si256(ptr.add(offset).cast());
        }
        transpose8(rows)
    }
}

/// One block of 8 lanes as 16 words of 8 lanes each.
#[inline(always)]
unsafe fn load_block8(ptrs: &[*const u8]) -> [__m256i; 16] {
    unsafe {
        let low = load_half8(ptrs, 0);
        let high = load_half8(ptrs, 32);
        let mut words = [_mm256_setzero_si256(); 16];
        words[..8].copy_from_slice(&low);
        words[8..].copy_from_slice(&high);
        words
    }
}

impl Ops for Avx2 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        unsafe { Avx2(_mm256_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const u32) -> Self {
        unsafe { Avx2(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u32) {
        unsafe { _mm256_storeu_si256(p.cast(), self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        unsafe { Avx2(_mm256_add_epi32(self.0, other.0)) }
    }
    #[inline(always)]
    unsafe fn f(b: Self, c: Self, d: Self) -> Self {
        // d ^ (b & (c ^ d))
        unsafe {
            Avx2(_mm256_xor_si256(
                d.0,
                _mm256_and_si256(b.0, _mm256_xor_si256(c.0, d.0)),
            ))
        }
    }
    #[inline(always)]
    unsafe fn g(b: Self, c: Self, d: Self) -> Self {
        // (b & d) | (!d & c): the two sides have no bit in common.
        unsafe {
            Avx2(_mm256_or_si256(
                _mm256_and_si256(b.0, d.0),
                _mm256_andnot_si256(d.0, c.0),
            ))
        }
    }
    #[inline(always)]
    unsafe fn h(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx2(_mm256_xor_si256(_mm256_xor_si256(b.0, c.0), d.0)) }
    }
    #[inline(always)]
    unsafe fn i(b: Self, c: Self, d: Self) -> Self {
        unsafe {
            let not_d = _mm256_xor_si256(d.0, _mm256_set1_epi32(-1));
            Avx2(_mm256_xor_si256(c.0, _mm256_or_si256(b.0, not_d)))
        }
    }
    #[inline(always)]
    unsafe fn rotl<const S: i32, const R: i32>(self) -> Self {
        unsafe {
            Avx2(_mm256_or_si256(
                _mm256_slli_epi32::<S>(self.0),
                _mm256_srli_epi32::<R>(self.0),
            ))
        }
    }
    #[inline(always)]
    unsafe fn load_block(ptrs: &[*const u8]) -> [Self; 16] {
        unsafe {
            let words = load_block8(ptrs);
            let mut out = [Avx2(_mm256_setzero_si256()); 16];
            for (out, word) in out.iter_mut().zip(words) {
                out.0 = word;
            }
            out
        }
    }
}

impl Ops for Avx512Vl {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        unsafe { Avx512Vl(_mm256_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const u32) -> Self {
        unsafe { Avx512Vl(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u32) {
        unsafe { _mm256_storeu_si256(p.cast(), self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        unsafe { Avx512Vl(_mm256_add_epi32(self.0, other.0)) }
    }
    #[inline(always)]
    unsafe fn f(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512Vl(_mm256_ternarylogic_epi32::<0xCA>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn g(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512Vl(_mm256_ternarylogic_epi32::<0xE4>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn h(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512Vl(_mm256_ternarylogic_epi32::<0x96>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn i(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512Vl(_mm256_ternarylogic_epi32::<0x39>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn rotl<const S: i32, const R: i32>(self) -> Self {
        unsafe { Avx512Vl(_mm256_rol_epi32::<S>(self.0)) }
    }
    #[inline(always)]
    unsafe fn load_block(ptrs: &[*const u8]) -> [Self; 16] {
        unsafe {
            let words = load_block8(ptrs);
            let mut out = [Avx512Vl(_mm256_setzero_si256()); 16];
            for (out, word) in out.iter_mut().zip(words) {
                out.0 = word;
            }
            out
        }
    }
}

impl Ops for Avx512 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        unsafe { Avx512(_mm512_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const u32) -> Self {
        unsafe { Avx512(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u32) {
        unsafe { _mm512_storeu_si512(p.cast(), self.0) }
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        unsafe { Avx512(_mm512_add_epi32(self.0, other.0)) }
    }
    #[inline(always)]
    unsafe fn f(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512(_mm512_ternarylogic_epi32::<0xCA>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn g(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512(_mm512_ternarylogic_epi32::<0xE4>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn h(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512(_mm512_ternarylogic_epi32::<0x96>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn i(b: Self, c: Self, d: Self) -> Self {
        unsafe { Avx512(_mm512_ternarylogic_epi32::<0x39>(b.0, c.0, d.0)) }
    }
    #[inline(always)]
    unsafe fn rotl<const S: i32, const R: i32>(self) -> Self {
        unsafe { Avx512(_mm512_rol_epi32::<S>(self.0)) }
    }
    #[inline(always)]
    unsafe fn load_block(ptrs: &[*const u8]) -> [Self; 16] {
        unsafe {
            let low = load_block8(&ptrs[..8]);
            let high = load_block8(&ptrs[8..16]);
            let mut words = [Avx512(_mm512_setzero_si512()); 16];
            for ((word, low), high) in words.iter_mut().zip(low).zip(high) {
                word.0 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high);
            }
            words
        }
    }
}

/// One MD5 step on every set: `a = b + rotl(a + ROUND(b, c, d) + k + m[g], S)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn step<V: Ops, const K: usize, const ROUND: u8, const S: i32, const R: i32>(
    a: &mut [V; K],
    b: &[V; K],
    c: &[V; K],
    d: &[V; K],
    m: &[[V; 16]; K],
    g: usize,
    k: u32,
) {
    unsafe {
        let k = V::splat(k);
        for set in 0..K {
            let (b, c, d) = (b[set], c[set], d[set]);
            let mixed = match ROUND {
                0 => V::f(b, c, d),
                1 => V::g(b, c, d),
                2 => V::h(b, c, d),
                _ => V::i(b, c, d),
            };
            // a + k + m first: it does not wait for b, the previous step's result.
            let sum = a[set].add(k.add(m[set][g])).add(mixed);
            a[set] = b.add(sum.rotl::<S, R>());
        }
    }
}

/// The body of every kernel: `K` sets of `V::LANES` lanes, `blocks` blocks each.
#[inline(always)]
unsafe fn run<V: Ops, const K: usize>(state: &mut State, walk: &Walk, blocks: usize) {
    unsafe {
        let zero = V::splat(0);
        let mut a = [zero; K];
        let mut b = [zero; K];
        let mut c = [zero; K];
        let mut d = [zero; K];
        for set in 0..K {
            let lane = set * V::LANES;
            a[set] = V::load(state.words[0][lane..].as_ptr());
            b[set] = V::load(state.words[1][lane..].as_ptr());
            c[set] = V::load(state.words[2][lane..].as_ptr());
            d[set] = V::load(state.words[3][lane..].as_ptr());
        }
        let mut p = walk.ptrs;
        for block in 0..blocks {
            let lanes = p.iter_mut().zip(&walk.thens).zip(&walk.switch);
            for ((ptr, then), switch) in lanes.take(K * V::LANES) {
                if block == *switch {
                    *ptr = *then;
                }
            }
            // Built without a zeroed array first: K is 1 or 2.
            let mut m = [V::load_block(&p[..V::LANES]); K];
            for (set, words) in m.iter_mut().enumerate().skip(1) {
                *words = V::load_block(&p[set * V::LANES..(set + 1) * V::LANES]);
            }
            let (a0, b0, c0, d0) = (a, b, c, d);
            step::<V, K, 0, 7, 25>(&mut a, &b, &c, &d, &m, 0, 0xd76aa478);
            step::<V, K, 0, 12, 20>(&mut d, &a, &b, &c, &m, 1, 0xe8c7b756);
            step::<V, K, 0, 17, 15>(&mut c, &d, &a, &b, &m, 2, 0x242070db);
            step::<V, K, 0, 22, 10>(&mut b, &c, &d, &a, &m, 3, 0xc1bdceee);
            step::<V, K, 0, 7, 25>(&mut a, &b, &c, &d, &m, 4, 0xf57c0faf);
            step::<V, K, 0, 12, 20>(&mut d, &a, &b, &c, &m, 5, 0x4787c62a);
            step::<V, K, 0, 17, 15>(&mut c, &d, &a, &b, &m, 6, 0xa8304613);
            step::<V, K, 0, 22, 10>(&mut b, &c, &d, &a, &m, 7, 0xfd469501);
            step::<V, K, 0, 7, 25>(&mut a, &b, &c, &d, &m, 8, 0x698098d8);
            step::<V, K, 0, 12, 20>(&mut d, &a, &b, &c, &m, 9, 0x8b44f7af);
            step::<V, K, 0, 17, 15>(&mut c, &d, &a, &b, &m, 10, 0xffff5bb1);
            step::<V, K, 0, 22, 10>(&mut b, &c, &d, &a, &m, 11, 0x895cd7be);
            step::<V, K, 0, 7, 25>(&mut a, &b, &c, &d, &m, 12, 0x6b901122);
            step::<V, K, 0, 12, 20>(&mut d, &a, &b, &c, &m, 13, 0xfd987193);
            step::<V, K, 0, 17, 15>(&mut c, &d, &a, &b, &m, 14, 0xa679438e);
            step::<V, K, 0, 22, 10>(&mut b, &c, &d, &a, &m, 15, 0x49b40821);
            step::<V, K, 1, 5, 27>(&mut a, &b, &c, &d, &m, 1, 0xf61e2562);
            step::<V, K, 1, 9, 23>(&mut d, &a, &b, &c, &m, 6, 0xc040b340);
            step::<V, K, 1, 14, 18>(&mut c, &d, &a, &b, &m, 11, 0x265e5a51);
            step::<V, K, 1, 20, 12>(&mut b, &c, &d, &a, &m, 0, 0xe9b6c7aa);
            step::<V, K, 1, 5, 27>(&mut a, &b, &c, &d, &m, 5, 0xd62f105d);
            step::<V, K, 1, 9, 23>(&mut d, &a, &b, &c, &m, 10, 0x02441453);
            step::<V, K, 1, 14, 18>(&mut c, &d, &a, &b, &m, 15, 0xd8a1e681);
            step::<V, K, 1, 20, 12>(&mut b, &c, &d, &a, &m, 4, 0xe7d3fbc8);
            step::<V, K, 1, 5, 27>(&mut a, &b, &c, &d, &m, 9, 0x21e1cde6);
            step::<V, K, 1, 9, 23>(&mut d, &a, &b, &c, &m, 14, 0xc33707d6);
            step::<V, K, 1, 14, 18>(&mut c, &d, &a, &b, &m, 3, 0xf4d50d87);
            step::<V, K, 1, 20, 12>(&mut b, &c, &d, &a, &m, 8, 0x455a14ed);
            step::<V, K, 1, 5, 27>(&mut a, &b, &c, &d, &m, 13, 0xa9e3e905);
            step::<V, K, 1, 9, 23>(&mut d, &a, &b, &c, &m, 2, 0xfcefa3f8);
            step::<V, K, 1, 14, 18>(&mut c, &d, &a, &b, &m, 7, 0x676f02d9);
            step::<V, K, 1, 20, 12>(&mut b, &c, &d, &a, &m, 12, 0x8d2a4c8a);
            step::<V, K, 2, 4, 28>(&mut a, &b, &c, &d, &m, 5, 0xfffa3942);
            step::<V, K, 2, 11, 21>(&mut d, &a, &b, &c, &m, 8, 0x8771f681);
            step::<V, K, 2, 16, 16>(&mut c, &d, &a, &b, &m, 11, 0x6d9d6122);
            step::<V, K, 2, 23, 9>(&mut b, &c, &d, &a, &m, 14, 0xfde5380c);
            step::<V, K, 2, 4, 28>(&mut a, &b, &c, &d, &m, 1, 0xa4beea44);
            step::<V, K, 2, 11, 21>(&mut d, &a, &b, &c, &m, 4, 0x4bdecfa9);
            step::<V, K, 2, 16, 16>(&mut c, &d, &a, &b, &m, 7, 0xf6bb4b60);
            step::<V, K, 2, 23, 9>(&mut b, &c, &d, &a, &m, 10, 0xbebfbc70);
            step::<V, K, 2, 4, 28>(&mut a, &b, &c, &d, &m, 13, 0x289b7ec6);
            step::<V, K, 2, 11, 21>(&mut d, &a, &b, &c, &m, 0, 0xeaa127fa);
            step::<V, K, 2, 16, 16>(&mut c, &d, &a, &b, &m, 3, 0xd4ef3085);
            step::<V, K, 2, 23, 9>(&mut b, &c, &d, &a, &m, 6, 0x04881d05);
            step::<V, K, 2, 4, 28>(&mut a, &b, &c, &d, &m, 9, 0xd9d4d039);
            step::<V, K, 2, 11, 21>(&mut d, &a, &b, &c, &m, 12, 0xe6db99e5);
            step::<V, K, 2, 16, 16>(&mut c, &d, &a, &b, &m, 15, 0x1fa27cf8);
            step::<V, K, 2, 23, 9>(&mut b, &c, &d, &a, &m, 2, 0xc4ac5665);
            step::<V, K, 3, 6, 26>(&mut a, &b, &c, &d, &m, 0, 0xf4292244);
            step::<V, K, 3, 10, 22>(&mut d, &a, &b, &c, &m, 7, 0x432aff97);
            step::<V, K, 3, 15, 17>(&mut c, &d, &a, &b, &m, 14, 0xab9423a7);
            step::<V, K, 3, 21, 11>(&mut b, &c, &d, &a, &m, 5, 0xfc93a039);
            step::<V, K, 3, 6, 26>(&mut a, &b, &c, &d, &m, 12, 0x655b59c3);
            step::<V, K, 3, 10, 22>(&mut d, &a, &b, &c, &m, 3, 0x8f0ccc92);
            step::<V, K, 3, 15, 17>(&mut c, &d, &a, &b, &m, 10, 0xffeff47d);
            step::<V, K, 3, 21, 11>(&mut b, &c, &d, &a, &m, 1, 0x85845dd1);
            step::<V, K, 3, 6, 26>(&mut a, &b, &c, &d, &m, 8, 0x6fa87e4f);
            step::<V, K, 3, 10, 22>(&mut d, &a, &b, &c, &m, 15, 0xfe2ce6e0);
            step::<V, K, 3, 15, 17>(&mut c, &d, &a, &b, &m, 6, 0xa3014314);
            step::<V, K, 3, 21, 11>(&mut b, &c, &d, &a, &m, 13, 0x4e0811a1);
            step::<V, K, 3, 6, 26>(&mut a, &b, &c, &d, &m, 4, 0xf7537e82);
            step::<V, K, 3, 10, 22>(&mut d, &a, &b, &c, &m, 11, 0xbd3af235);
            step::<V, K, 3, 15, 17>(&mut c, &d, &a, &b, &m, 2, 0x2ad7d2bb);
            step::<V, K, 3, 21, 11>(&mut b, &c, &d, &a, &m, 9, 0xeb86d391);
            for set in 0..K {
                a[set] = a[set].add(a0[set]);
                b[set] = b[set].add(b0[set]);
                c[set] = c[set].add(c0[set]);
                d[set] = d[set].add(d0[set]);
            }
            for (ptr, stride) in p.iter_mut().zip(&walk.strides).take(K * V::LANES) {
                *ptr = ptr.wrapping_add(*stride);
            }
        }
        for (column, value) in state.words.iter_mut().zip([a, b, c, d]) {
            for (set, value) in value.iter().enumerate() {
                value.store(column[set * V::LANES..].as_mut_ptr());
            }
        }
    }
}
