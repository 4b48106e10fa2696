//! `md5_batch`: kpl-md5's multi-lane batch digests against the md-5 crate, one message at
//! a time, with every backend this CPU supports.

use kpl_md5::{digest, digest_many, digest_many_with, Backend};

/// Input: byte 0 = n, the number of messages; then n bytes, one per message: its length
/// (255 = all the rest); then the bytes the messages are cut from, one after the other,
/// wrapping around (so messages may repeat bytes or be empty). A message is cut short at
/// the end of the bytes. Many messages of one to four blocks exercise lane refill and the
/// narrowing of the kernels; lengths 55, 56, 63, 64, 119, 120 the padding.
pub fn md5_batch(input: &[u8]) {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let (lengths, bytes) = rest.split_at(usize::from(n).min(rest.len()));
    let mut messages: Vec<&[u8]> = Vec::with_capacity(lengths.len());
    let mut at = 0usize;
    for &length in lengths {
        let length = if length == 255 {
            bytes.len()
        } else {
            usize::from(length)
        };
        let start = if bytes.is_empty() {
            0
        } else {
            at % bytes.len()
        };
        let end = (start + length).min(bytes.len());
        messages.push(&bytes[start..end]);
        at = at.wrapping_add(length);
    }
    let want: Vec<[u8; 16]> = messages.iter().map(|m| digest(m)).collect();
    let mut out = vec![[0u8; 16]; messages.len()];
    for backend in Backend::ALL {
        out.fill([0; 16]);
        match digest_many_with(backend, &messages, &mut out) {
            Ok(()) => assert_eq!(out, want, "{backend}"),
            Err(_) => assert!(!backend.is_supported(), "{backend} refused"),
        }
    }
    out.fill([0; 16]);
    digest_many(&messages, &mut out);
    assert_eq!(out, want, "digest_many");
}

#[cfg(test)]
mod tests {
    #[test]
    fn boundary_lengths_in_one_batch() {
        let mut input = vec![10, 0, 55, 56, 63, 64, 119, 120, 127, 128, 255];
        input.extend((0..300).map(|i| i as u8));
        super::md5_batch(&input);
        super::md5_batch(&[]);
        super::md5_batch(&[3]);
    }
}
