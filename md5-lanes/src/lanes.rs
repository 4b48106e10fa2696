//! The lane scheduler (safe code): hands each lane of a kernel one message after
//! another, builds each message's padded tail, reads the digests out, and narrows the
//! kernel when few messages are left.
//!
//! A lane works through one *segment* at a time: the message's whole 64-byte blocks (read
//! in place), then its last one or two blocks, padded, in a per-lane scratch. The kernel
//! runs as many blocks as the shortest segment among the busy lanes has; the lanes whose
//! segment ends then move to their tail, or hand in their digest and take the next
//! message (lane refill), so no lane waits for the longest message of a group.

use crate::x86::{compress, Kernel};

/// The most lanes any kernel has.
pub(crate) const MAX_LANES: usize = 32;

/// The chaining values of every lane: `words[0][j]` is A of lane `j`, and so on.
pub(crate) struct State {
    pub(crate) words: [[u32; MAX_LANES]; 4],
}

/// MD5's initial chaining value.
const IV: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Where a busy lane is.
#[derive(Clone, Copy)]
struct Lane {
    /// The message's index in the batch.
    message: usize,
    /// In the message's whole blocks (`true`) or in its padded tail in scratch.
    in_body: bool,
    /// Byte offset of the next block in the segment.
    offset: usize,
    /// Blocks left in the segment.
    blocks: usize,
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
        lanes[slot] = start(messages, &mut next, slot, &mut state, &mut scratch);
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
        // One pass: each busy lane's segment, and the shortest of them.
        let mut run = usize::MAX;
        let mut segments: [Option<&[u8]>; MAX_LANES] = [None; MAX_LANES];
        for ((segment, lane), scratch) in segments
            .iter_mut()
            .zip(&lanes)
            .zip(&scratch)
            .take(width.lanes())
        {
            if let Some(lane) = lane {
                run = run.min(lane.blocks);
                let bytes = if lane.in_body {
                    messages[lane.message]
                } else {
                    &scratch[..]
                };
                *segment = bytes.get(lane.offset..);
            }
        }
        compress(width, &mut state, &segments, run);
        for slot in 0..width.lanes() {
            let Some(lane) = &mut lanes[slot] else {
                continue;
            };
            lane.blocks -= run;
            lane.offset += run * 64;
            if lane.blocks > 0 {
                continue;
            }
            if lane.in_body {
                *lane = tail(messages[lane.message], lane.message, &mut scratch[slot]);
            } else {
                out[lane.message] = digest_of(&state, slot);
                lanes[slot] = start(messages, &mut next, slot, &mut state, &mut scratch);
                busy -= usize::from(lanes[slot].is_none());
            }
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

/// Starts the next message, if any, on lane `slot`.
fn start(
    messages: &[&[u8]],
    next: &mut usize,
    slot: usize,
    state: &mut State,
    scratch: &mut [[u8; 128]; MAX_LANES],
) -> Option<Lane> {
    let message = *next;
    let bytes = messages.get(message)?;
    *next += 1;
    for (column, iv) in state.words.iter_mut().zip(IV) {
        column[slot] = iv;
    }
    let whole = bytes.len() / 64;
    if whole > 0 {
        Some(Lane {
            message,
            in_body: true,
            offset: 0,
            blocks: whole,
        })
    } else {
        Some(tail(bytes, message, &mut scratch[slot]))
    }
}

/// Writes the message's padded last block or two into `scratch`: the bytes after its
/// whole blocks, 0x80, zeros, and the length in bits (little-endian, modulo 2^64).
fn tail(bytes: &[u8], message: usize, scratch: &mut [u8; 128]) -> Lane {
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
    Lane {
        message,
        in_body: false,
        offset: 0,
        blocks,
    }
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
