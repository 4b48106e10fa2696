//! Which records of a chunk are already settled, so that a chunk Fluent Bit re-delivers
//! after `FLB_RETRY` (byte-identical, same tag) sends only the rest: a retry never
//! duplicates a record. Bounded, and forgotten once the chunk is done.

use std::collections::{HashMap, VecDeque};

use md5::{Digest, Md5};

/// A chunk's identity: the MD5 of its tag and bytes, and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    digest: [u8; 16],
    len: usize,
}

impl ChunkKey {
    /// The key of a chunk delivered under `tag`.
    pub fn of(tag: &[u8], chunk: &[u8]) -> ChunkKey {
        let mut h = Md5::new();
        h.update((tag.len() as u64).to_le_bytes());
        h.update(tag);
        h.update(chunk);
        ChunkKey {
            digest: h.finalize().into(),
            len: chunk.len(),
        }
    }
}

/// The events of one chunk that need no more sending (stored, or failed for good).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    bits: Vec<u64>,
}

impl Settled {
    /// Whether event `i` is settled.
    pub fn contains(&self, i: usize) -> bool {
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// Marks event `i` settled.
    pub fn insert(&mut self, i: usize) {
        if self.bits.len() <= i / 64 {
            self.bits.resize(i / 64 + 1, 0);
        }
        if let Some(w) = self.bits.get_mut(i / 64) {
            *w |= 1u64 << (i % 64);
        }
    }

    /// How many events are settled.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
}

/// The memory of an output instance: at most `capacity` chunks awaiting a retry; the
/// oldest is forgotten first (a retry of it would then re-send its settled records: the
/// only way this memory lets a duplicate through, and it is logged).
#[derive(Debug)]
pub struct RetryMemory {
    capacity: usize,
    chunks: HashMap<ChunkKey, Settled>,
    order: VecDeque<ChunkKey>,
}

impl RetryMemory {
    /// An empty memory of at most `capacity` chunks (at least 1).
    pub fn new(capacity: usize) -> RetryMemory {
        RetryMemory {
            capacity: capacity.max(1),
            chunks: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Takes what is remembered of a chunk (nothing for a first delivery); the caller gives
    /// it back with [`RetryMemory::remember`] if the chunk is to be retried.
    pub fn take(&mut self, key: &ChunkKey) -> Settled {
        match self.chunks.remove(key) {
            Some(settled) => {
                self.order.retain(|k| k != key);
                settled
            }
            None => Settled::default(),
        }
    }

    /// Remembers a chunk that returns `FLB_RETRY`; returns the key of a chunk forgotten to
    /// stay within the capacity, if any.
    pub fn remember(&mut self, key: ChunkKey, settled: Settled) -> Option<ChunkKey> {
        let mut evicted = None;
        if !self.chunks.contains_key(&key) && self.chunks.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.chunks.remove(&old);
                evicted = Some(old);
            }
        }
        if self.chunks.insert(key, settled).is_none() {
            self.order.push_back(key);
        }
        evicted
    }

    /// How many chunks are remembered.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_under_another_tag_are_another_chunk() {
        assert_eq!(ChunkKey::of(b"a", b"xyz"), ChunkKey::of(b"a", b"xyz"));
        assert_ne!(ChunkKey::of(b"a", b"xyz"), ChunkKey::of(b"b", b"xyz"));
        // The tag's length is hashed too: "ab"+"c" is not "a"+"bc".
        assert_ne!(ChunkKey::of(b"ab", b"c"), ChunkKey::of(b"a", b"bc"));
    }

    #[test]
    fn settled_events_survive_a_retry_and_are_forgotten_when_taken() {
        let mut m = RetryMemory::new(8);
        let k = ChunkKey::of(b"t", b"chunk");
        let mut s = m.take(&k);
        assert!(s.is_empty());
        s.insert(0);
        s.insert(130);
        assert_eq!(m.remember(k, s), None);
        let back = m.take(&k);
        assert!(back.contains(0) && back.contains(130) && !back.contains(1));
        assert_eq!(back.len(), 2);
        assert!(m.is_empty());
        assert!(m.take(&k).is_empty());
    }

    #[test]
    fn the_oldest_chunk_is_forgotten_beyond_capacity() {
        let mut m = RetryMemory::new(2);
        let keys: Vec<ChunkKey> = (0u8..3).map(|i| ChunkKey::of(b"t", &[i])).collect();
        let mut one = Settled::default();
        one.insert(3);
        assert_eq!(m.remember(keys[0], one.clone()), None);
        assert_eq!(m.remember(keys[1], one.clone()), None);
        // Remembering one already held evicts nothing.
        assert_eq!(m.remember(keys[1], one.clone()), None);
        assert_eq!(m.remember(keys[2], one.clone()), Some(keys[0]));
        assert_eq!(m.len(), 2);
        assert!(m.take(&keys[0]).is_empty());
        assert!(m.take(&keys[1]).contains(3));
    }
}
