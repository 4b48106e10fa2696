//! One Fluent Bit event as one Kinesis user record: its data (what `kinesis_streams` would
//! send), its partition key (an accessor, `$TAG` included, or random) and its explicit hash
//! key.

use kpl_fluent_bit::accessor::Accessor;
use kpl_fluent_bit::json::{kinesis_streams_data, FormatOptions};
use kpl_fluent_bit::msgpack::Event;
use kpl_kinesis::sink::UserRecord;

/// Kinesis's limit on a partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Turns events into user records; one per instance, shared by its flushes.
#[derive(Debug, Clone)]
pub struct Shaper {
    /// Where the partition key comes from (`None`: random).
    pub partition_key: Option<Accessor>,
    /// Where the explicit hash key comes from.
    pub explicit_hash_key: Option<Accessor>,
    /// How the data is written.
    pub format: FormatOptions,
}

/// A small, fast generator for random partition keys (splitmix64): keys only need to
/// spread evenly over shards, not to be secret.
#[derive(Debug, Clone)]
pub struct KeyGen(u64);

impl KeyGen {
    /// A generator from a seed.
    pub fn new(seed: u64) -> KeyGen {
        KeyGen(seed)
    }

    /// The next key: 16 hexadecimal digits.
    pub fn next_key(&mut self) -> String {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        format!("{:016x}", z ^ (z >> 31))
    }
}

impl Shaper {
    /// The user record for an event, or why it can never be sent (the caller logs it).
    pub fn shape(
        &self,
        event: &Event<'_>,
        tag: &[u8],
        keys: &mut KeyGen,
    ) -> Result<UserRecord, String> {
        let mut data = Vec::new();
        kinesis_streams_data(event, &self.format, &mut data).map_err(|e| e.message)?;
        let partition_key = self
            .partition_key
            .as_ref()
            .and_then(|a| a.render_with_tag(&event.record, Some(tag)))
            .map(|bytes| partition_key_text(&bytes))
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| keys.next_key());
        let mut record = UserRecord::new(partition_key, data);
        if let Some(accessor) = &self.explicit_hash_key {
            if let Some(ehk) = accessor.render_with_tag(&event.record, Some(tag)) {
                let ehk = String::from_utf8(ehk)
                    .map_err(|_| "explicit_hash_key is not UTF-8 text".to_owned())?;
                record = record.with_explicit_hash_key(ehk);
            }
        }
        Ok(record)
    }
}

/// A rendered key as text Kinesis takes: invalid UTF-8 replaced, cut to 256 characters
/// (Kinesis refuses longer keys; the cut keeps equal values on equal shards).
fn partition_key_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX_PARTITION_KEY_CHARS) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_cut_at_256_characters_not_bytes() {
        let long = "é".repeat(300);
        let key = partition_key_text(long.as_bytes());
        assert_eq!(key.chars().count(), 256);
        assert_eq!(partition_key_text(b"pod-1"), "pod-1");
        assert_eq!(partition_key_text(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn random_keys_differ_and_have_16_hex_digits() {
        let mut g = KeyGen::new(7);
        let a = g.next_key();
        let b = g.next_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
