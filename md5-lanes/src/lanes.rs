//! The lane scheduler (safe code): hands each lane of a kernel one message after
//! another, builds each message's padded tail, reads the digests out, and narrows the
//! kernel when few messages are left.
//!
//! A lane hashes its message's whole 64-byte blocks in place, then its last one or two
//! blocks, padded, from a per-lane scratch; the kernel switches from one to the other by
//! itself. The kernel runs as many blocks as the message closest to its end has left;
//! the lanes whose message is then done hand in their digest and take the next message
//! (lane refill), so no lane waits for the longest message of a group.
//!
//! A tail is copied only when a run reaches it, its cache lines prefetched when the
//! message starts (and those of the message a lane will take after it): copied at the
//! start, a batch larger than the caches paid a cache miss per message.

use crate::x86::{compress, Kernel, Segments};

/// The most lanes any kernel has.
pub(crate) const MAX_LANES: usize = 32;

/// The chaining values of every lane: `words[0][j]` is A of lane `j`, and so on.
pub(crate) struct State {
    pub(crate) words: [[u32; MAX_LANES]; 4],
}

/// MD5's initial chaining value.
const IV: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Where a busy lane is in its message.
#[derive(Clone, Copy)]
struct Lane {
    /// The message's index in the batch.
    message: usize,
    /// Blocks hashed so far.
    done: usize,
    /// Whole blocks of the message (read in place).
    whole: usize,
    /// Blocks in all, with the padded tail (1 or 2 more, in scratch).
    total: usize,
    /// Whether the tail is in the lane's scratch yet.
    tail_ready: bool,
}

impl Lane {
    /// What the lane hashes next: the rest of its whole blocks, then the rest of its tail.
    fn segments<'a>(&self, message: &'a [u8], scratch: &'a [u8; 128]) -> Segments<'a> {
        let first = message
            .get(self.done.min(self.whole) * 64..self.whole * 64)
            .unwrap_or(&[]);
        let tail_done = self.done.saturating_sub(self.whole);
        let then = scratch
            .get(tail_done * 64..(self.total - self.whole) * 64)
            .unwrap_or(&[]);
        Segments { first, then }
    }
}

/// Hashes every message of `messages` into the same index of `out`, with the kernels in
/// `kernels` (ascending lane counts).
pub(crate) fn digest_lanes(kernels: &[Kernel], messages: &[&[u8]], out: &mut [[u8; 16]]) {
    let Some(widest) = kernels.last() else {
        return;
    };
    let mut state = State {
        words: [[0; MAX_LANES]; 4],
    };
    let mut scratch = [[0u8; 128]; MAX_LANES];
    let mut lanes: [Option<Lane>; MAX_LANES] = [None; MAX_LANES];
    let mut next = 0usize;
    let mut width = narrowest(kernels, messages.len().min(widest.lanes()));
    let mut busy = 0usize;
    for slot in 0..width.lanes() {
        lanes[slot] = start(messages, &mut next, slot, &mut state);
        busy += usize::from(lanes[slot].is_some());
    }
    while busy > 0 {
        if next == messages.len() && busy < width.lanes() {
            let narrower = narrowest(kernels, busy);
            if narrower.lanes() < width.lanes() {
                compact(&mut lanes, &mut state, &mut scratch, width.lanes());
                width = narrower;
            }
        }
        // The fewest blocks any busy lane has left, then the tails that run reaches.
        let run = lanes[..width.lanes()]
            .iter()
            .flatten()
            .map(|lane| lane.total - lane.done)
            .min()
            .unwrap_or(1);
        for (lane, scratch) in lanes.iter_mut().zip(&mut scratch).take(width.lanes()) {
            if let Some(lane) = lane {
                if !lane.tail_ready && lane.done + run > lane.whole {
                    tail(messages[lane.message], scratch);
                    lane.tail_ready = true;
                }
            }
        }
        let mut segments: [Option<Segments<'_>>; MAX_LANES] = [None; MAX_LANES];
        for ((segments, lane), scratch) in segments
            .iter_mut()
            .zip(&lanes)
            .zip(&scratch)
            .take(width.lanes())
        {
            *segments = lane.map(|lane| lane.segments(messages[lane.message], scratch));
        }
        compress(width, &mut state, &segments, run);
        for slot in 0..width.lanes() {
            let Some(lane) = &mut lanes[slot] else {
                continue;
            };
            lane.done += run;
            if lane.done < lane.total {
                continue;
            }
            out[lane.message] = digest_of(&state, slot);
            lanes[slot] = start(messages, &mut next, slot, &mut state);
            busy -= usize::from(lanes[slot].is_none());
        }
    }
}

/// The narrowest kernel with at least `lanes` lanes, else the widest.
fn narrowest(kernels: &[Kernel], lanes: usize) -> Kernel {
    kernels
        .iter()
        .copied()
        .find(|kernel| kernel.lanes() >= lanes)
        .unwrap_or(kernels[kernels.len() - 1])
}

/// Starts the next message, if any, on lane `slot`: the initial chaining value.
fn start(messages: &[&[u8]], next: &mut usize, slot: usize, state: &mut State) -> Option<Lane> {
    let message = *next;
    let bytes = messages.get(message)?;
    *next += 1;
    for (column, iv) in state.words.iter_mut().zip(IV) {
        column[slot] = iv;
    }
    crate::x86::prefetch_tail(bytes);
    if let Some(later) = messages.get(message + MAX_LANES) {
        crate::x86::prefetch_tail(later);
    }
    let whole = bytes.len() / 64;
    let tail = if bytes.len() % 64 < 56 { 1 } else { 2 };
    Some(Lane {
        message,
        done: 0,
        whole,
        total: whole + tail,
        tail_ready: false,
    })
}

/// Writes the message's padded last block or two into `scratch`: the bytes after its
/// whole blocks, 0x80, zeros, and the length in bits (little-endian, modulo 2^64): one
/// block when fewer than 56 bytes are left after the whole blocks, else two.
fn tail(bytes: &[u8], scratch: &mut [u8; 128]) {
    let rest = &bytes[bytes.len() / 64 * 64..];
    let blocks = if rest.len() < 56 { 1 } else { 2 };
    let end = blocks * 64;
    // Zeroed whole (a fixed size: wide stores, no call), then written in place: building
    // it elsewhere and copying it would read back the narrow stores just made (a
    // store-forwarding stall).
    *scratch = [0; 128];
    scratch[..rest.len()].copy_from_slice(rest);
    scratch[rest.len()] = 0x80;
    let bits = (bytes.len() as u64).wrapping_mul(8);
    scratch[end - 8..end].copy_from_slice(&bits.to_le_bytes());
}

/// Moves the busy lanes among the first `width` to the lowest slots, with their state
/// and scratch.
fn compact(
    lanes: &mut [Option<Lane>; MAX_LANES],
    state: &mut State,
    scratch: &mut [[u8; 128]; MAX_LANES],
    width: usize,
) {
    let mut to = 0;
    for from in 0..width {
        if lanes[from].is_none() {
            continue;
        }
        if from != to {
            lanes[to] = lanes[from].take();
            scratch[to] = scratch[from];
            for column in &mut state.words {
                column[to] = column[from];
            }
        }
        to += 1;
    }
}

/// The digest of lane `slot`: A, B, C, D little-endian.
fn digest_of(state: &State, slot: usize) -> [u8; 16] {
    let mut digest = [0u8; 16];
    for (bytes, column) in digest.chunks_exact_mut(4).zip(&state.words) {
        bytes.copy_from_slice(&column[slot].to_le_bytes());
    }
    digest
}
