//! Aggregation: user records in, the Kinesis records Java KPL would put out, byte for byte.
//!
//! The [`Aggregator`] reproduces KPL's reducer for one shard: records are added in order;
//! after each add it flushes when the count reaches `max_count` or KPL's *estimated* size
//! reaches `max_size`; a flush emits the longest prefix whose *accurate* size and count
//! are within the limits (at least one record) and keeps the rest, in order, for the next
//! Kinesis record. A lone record goes out raw. Size bookkeeping is O(1) per record and the
//! output is written once, into one buffer, with one MD5 over the protobuf.
//!
//! ```
//! use kpl_codec::{Aggregator, AggregatorConfig, InputRecord};
//!
//! let mut aggregator = Aggregator::new(AggregatorConfig::default())?;
//! assert!(aggregator.add(InputRecord::new("a", b"x"))?.is_none());
//! assert!(aggregator.add(InputRecord::new("b", b"yz").with_explicit_hash_key("123"))?.is_none());
//! assert!(aggregator.add(InputRecord::new("a", b""))?.is_none());
//! let out: Vec<_> = aggregator.drain().collect();
//! // The worked example of the format notes: 54 bytes, outer key "a",
//! // explicit hash key = the first record's hash key.
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].data.len(), 54);
//! assert_eq!(out[0].partition_key, "a");
//! assert_eq!(out[0].explicit_hash_key, kpl_codec::hash_key(b"a").to_string());
//! # Ok::<(), kpl_codec::EncodeError>(())
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use hashbrown::HashTable;

use crate::error::EncodeError;
use crate::hash_key::{hash_key, parse_explicit_hash_key, write_decimal};
use crate::wire::{len_field_size, put_varint, varint_len};
use crate::{FRAME_OVERHEAD, MAGIC};

/// Largest `max_size` and `max_record_size` accepted: 10 MiB.
pub const MAX_LIMIT: usize = 10 * 1024 * 1024;
/// Smallest `max_size` and `max_record_size` accepted.
pub const MIN_LIMIT: usize = 64;

/// Limits of an [`Aggregator`], with KPL's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AggregatorConfig {
    /// KPL's `AggregationMaxSize`: the largest aggregate, counted as 20 + protobuf length
    /// (default 51,200; 64..=10,485,760).
    pub max_size: usize,
    /// KPL's `AggregationMaxCount`: most user records per aggregate (default 4,294,967,295).
    pub max_count: u64,
    /// The stream's Kinesis record limit, data plus partition key (default 1 MiB, up to
    /// 10 MiB). Aggregates are also kept within it (with their 1-byte key `"a"`).
    pub max_record_size: usize,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            max_size: 51_200,
            max_count: u64::from(u32::MAX),
            max_record_size: 1024 * 1024,
        }
    }
}

impl AggregatorConfig {
    /// Checks every limit against its allowed range.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if !(MIN_LIMIT..=MAX_LIMIT).contains(&self.max_size) {
            return Err(EncodeError::InvalidMaxSize {
                value: self.max_size as u64,
            });
        }
        if !(1..=u64::from(u32::MAX)).contains(&self.max_count) {
            return Err(EncodeError::InvalidMaxCount {
                value: self.max_count,
            });
        }
        if !(MIN_LIMIT..=MAX_LIMIT).contains(&self.max_record_size) {
            return Err(EncodeError::InvalidMaxRecordSize {
                value: self.max_record_size as u64,
            });
        }
        Ok(())
    }
}

/// A user record to aggregate, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputRecord<'a> {
    /// 1 to 256 characters (UTF-16 code units, as KPL counts them).
    pub partition_key: &'a str,
    /// Decimal digits, at most 2^128 - 1; canonicalised (leading zeros dropped).
    pub explicit_hash_key: Option<&'a str>,
    /// The user's data.
    pub data: &'a [u8],
}

impl<'a> InputRecord<'a> {
    /// A record with a partition key and data, no explicit hash key.
    pub const fn new(partition_key: &'a str, data: &'a [u8]) -> Self {
        InputRecord {
            partition_key,
            explicit_hash_key: None,
            data,
        }
    }

    /// The same record with an explicit hash key.
    pub const fn with_explicit_hash_key(mut self, explicit_hash_key: &'a str) -> Self {
        self.explicit_hash_key = Some(explicit_hash_key);
        self
    }
}

/// A record to put to Kinesis: an aggregate of two or more user records, or one raw user
/// record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// `"a"` for an aggregate, the user's key for a raw record.
    pub partition_key: String,
    /// Always set: the first user record's hash key, in canonical decimal.
    pub explicit_hash_key: String,
    /// The framed aggregate, or the user's raw data.
    pub data: Vec<u8>,
    /// How many user records it carries.
    pub user_records: usize,
    /// The value of `explicit_hash_key`, where the record lands.
    pub hash_key: u128,
}

impl KinesisRecord {
    /// Whether this is an aggregate (two or more user records).
    pub fn is_aggregated(&self) -> bool {
        self.user_records > 1
    }
}

/// One user record waiting in the container.
#[derive(Debug, Clone, Copy)]
struct Pending {
    data_start: usize,
    data_len: usize,
    pk: u32,
    ehk: Option<u32>,
    /// Protobuf bytes of the container up to and including this record.
    cumulative: usize,
    /// Table lengths once this record was added.
    pk_table_len: u32,
    ehk_table_len: u32,
}

/// The contents of one KPL container: user records and the tables they use, stored
/// contiguously.
#[derive(Debug, Clone, Default)]
struct Container {
    data: Vec<u8>,
    keys: Vec<u8>,
    /// (start, len) of each partition key in `keys`, in first-use order.
    pk_table: Vec<(usize, usize)>,
    /// Explicit hash key values, in first-use order.
    ehk_table: Vec<u128>,
    pk_lookup: HashTable<u32>,
    ehk_lookup: HashTable<u32>,
    records: Vec<Pending>,
    protobuf_size: usize,
    estimate: usize,
}

impl Container {
    fn pk(&self, index: u32) -> &[u8] {
        match self.pk_table.get(index as usize) {
            Some(&(start, len)) => self.keys.get(start..start + len).unwrap_or(&[]),
            None => &[],
        }
    }

    fn data(&self, record: &Pending) -> &[u8] {
        self.data
            .get(record.data_start..record.data_start + record.data_len)
            .unwrap_or(&[])
    }

    fn clear(&mut self) {
        self.data.clear();
        self.keys.clear();
        self.pk_table.clear();
        self.ehk_table.clear();
        self.pk_lookup.clear();
        self.ehk_lookup.clear();
        self.records.clear();
        self.protobuf_size = 0;
        self.estimate = 0;
    }

    /// Adds a validated user record, keeping the sizes up to date in O(1).
    fn push(&mut self, hasher: &impl BuildHasher, pk: &[u8], ehk: Option<u128>, data: &[u8]) {
        let pk_hash = hasher.hash_one(pk);
        let existing = {
            let (keys, table) = (&self.keys, &self.pk_table);
            self.pk_lookup
                .find(pk_hash, |&i| {
                    table.get(i as usize).and_then(|&(s, l)| keys.get(s..s + l)) == Some(pk)
                })
                .copied()
        };
        let pk_index = match existing {
            Some(i) => i,
            None => {
                let i = self.pk_table.len() as u32;
                self.pk_table.push((self.keys.len(), pk.len()));
                self.keys.extend_from_slice(pk);
                let (keys, table) = (&self.keys, &self.pk_table);
                self.pk_lookup.insert_unique(pk_hash, i, |&j| {
                    let (s, l) = table.get(j as usize).copied().unwrap_or((0, 0));
                    hasher.hash_one(keys.get(s..s + l).unwrap_or(&[]))
                });
                self.protobuf_size += len_field_size(pk.len());
                self.estimate += pk.len() + 3;
                i
            }
        };
        let mut inner = 1 + varint_len(u64::from(pk_index)) + len_field_size(data.len());
        self.estimate += data.len() + 5;
        let ehk_index = ehk.map(|value| {
            let h = hasher.hash_one(value);
            let table = &self.ehk_table;
            let existing = self
                .ehk_lookup
                .find(h, |&i| table.get(i as usize) == Some(&value))
                .copied();
            let index = match existing {
                Some(i) => i,
                None => {
                    let i = self.ehk_table.len() as u32;
                    self.ehk_table.push(value);
                    let table = &self.ehk_table;
                    self.ehk_lookup.insert_unique(h, i, |&j| {
                        hasher.hash_one(table.get(j as usize).copied().unwrap_or(0))
                    });
                    let digits = decimal_len(value);
                    self.protobuf_size += len_field_size(digits);
                    self.estimate += digits + 3;
                    i
                }
            };
            inner += 1 + varint_len(u64::from(index));
            self.estimate += 2;
            index
        });
        self.protobuf_size += len_field_size(inner);
        let data_start = self.data.len();
        self.data.extend_from_slice(data);
        self.records.push(Pending {
            data_start,
            data_len: data.len(),
            pk: pk_index,
            ehk: ehk_index,
            cumulative: self.protobuf_size,
            pk_table_len: self.pk_table.len() as u32,
            ehk_table_len: self.ehk_table.len() as u32,
        });
    }

    /// KPL's accurate size of the first `k` records: the raw data length for one, else
    /// 20 + protobuf length.
    fn accurate_size(&self, k: usize) -> usize {
        match k {
            0 => 0,
            1 => self.records.first().map_or(0, |r| r.data_len),
            _ => self
                .records
                .get(k - 1)
                .map_or(0, |r| FRAME_OVERHEAD + r.cumulative),
        }
    }

    /// KPL's size estimate of the whole container (accurate below two records).
    fn estimated_size(&self) -> usize {
        if self.records.len() < 2 {
            self.accurate_size(self.records.len())
        } else {
            self.estimate
        }
    }

    /// The effective hash key of record `i`.
    fn hash_key_of(&self, record: &Pending) -> u128 {
        match record.ehk.and_then(|i| self.ehk_table.get(i as usize)) {
            Some(&value) => value,
            None => hash_key(self.pk(record.pk)),
        }
    }

    /// Serializes the first `k` records (k >= 1) as one Kinesis record.
    fn serialize(&self, k: usize) -> Option<KinesisRecord> {
        let first = self.records.first()?;
        let hash = self.hash_key_of(first);
        let mut digits = [0u8; 39];
        let explicit_hash_key = String::from(write_decimal(hash, &mut digits));
        if k == 1 {
            return Some(KinesisRecord {
                partition_key: String::from_utf8_lossy(self.pk(first.pk)).into_owned(),
                explicit_hash_key,
                data: self.data(first).to_vec(),
                user_records: 1,
                hash_key: hash,
            });
        }
        let last = self.records.get(k - 1)?;
        let mut out = Vec::with_capacity(FRAME_OVERHEAD + last.cumulative);
        out.extend_from_slice(&MAGIC);
        for index in 0..last.pk_table_len {
            let key = self.pk(index);
            out.push(0x0A);
            put_varint(&mut out, key.len() as u64);
            out.extend_from_slice(key);
        }
        for value in self.ehk_table.iter().take(last.ehk_table_len as usize) {
            let text = write_decimal(*value, &mut digits);
            out.push(0x12);
            put_varint(&mut out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        for record in self.records.iter().take(k) {
            let mut inner = 1 + varint_len(u64::from(record.pk)) + len_field_size(record.data_len);
            if let Some(e) = record.ehk {
                inner += 1 + varint_len(u64::from(e));
            }
            out.push(0x1A);
            put_varint(&mut out, inner as u64);
            out.push(0x08);
            put_varint(&mut out, u64::from(record.pk));
            if let Some(e) = record.ehk {
                out.push(0x10);
                put_varint(&mut out, u64::from(e));
            }
            out.push(0x1A);
            put_varint(&mut out, record.data_len as u64);
            out.extend_from_slice(self.data(record));
        }
        let digest = crate::md5(out.get(MAGIC.len()..).unwrap_or(&[]));
        out.extend_from_slice(&digest);
        debug_assert_eq!(out.len(), FRAME_OVERHEAD + last.cumulative);
        Some(KinesisRecord {
            partition_key: String::from("a"),
            explicit_hash_key,
            data: out,
            user_records: k,
            hash_key: hash,
        })
    }
}

/// Number of decimal digits of `value`.
fn decimal_len(value: u128) -> usize {
    let mut digits = 1;
    let mut v = value / 10;
    while v > 0 {
        digits += 1;
        v /= 10;
    }
    digits
}

/// KPL's aggregation for one shard (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Aggregator {
    config: AggregatorConfig,
    limit: usize,
    hasher: hashbrown::DefaultHashBuilder,
    container: Container,
    spare: Container,
}

impl Aggregator {
    /// An empty aggregator; fails if a limit is out of range.
    pub fn new(config: AggregatorConfig) -> Result<Self, EncodeError> {
        config.validate()?;
        Ok(Aggregator {
            config,
            // The outer partition key "a" counts against the Kinesis record limit.
            limit: config.max_size.min(config.max_record_size - 1),
            hasher: hashbrown::DefaultHashBuilder::default(),
            container: Container::default(),
            spare: Container::default(),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &AggregatorConfig {
        &self.config
    }

    /// Validates a user record without adding it. Returns the explicit hash key's value.
    pub fn check(&self, record: &InputRecord<'_>) -> Result<Option<u128>, EncodeError> {
        if record.partition_key.is_empty() {
            return Err(EncodeError::EmptyPartitionKey);
        }
        if record.partition_key.len() > 256 {
            let utf16_units = record.partition_key.encode_utf16().count();
            if utf16_units > 256 {
                return Err(EncodeError::PartitionKeyTooLong { utf16_units });
            }
        }
        let ehk = record
            .explicit_hash_key
            .map(parse_explicit_hash_key)
            .transpose()?;
        let size = record.data.len().saturating_add(record.partition_key.len());
        if size > self.config.max_record_size {
            return Err(EncodeError::RecordTooLarge {
                size,
                limit: self.config.max_record_size,
            });
        }
        Ok(ehk)
    }

    /// Adds a user record. Returns the Kinesis record KPL would emit at this point, if the
    /// add reached a limit. A rejected record leaves the aggregator unchanged.
    pub fn add(&mut self, record: InputRecord<'_>) -> Result<Option<KinesisRecord>, EncodeError> {
        let ehk = self.check(&record)?;
        self.container.push(
            &self.hasher,
            record.partition_key.as_bytes(),
            ehk,
            record.data,
        );
        let count = self.container.records.len() as u64;
        if count >= self.config.max_count || self.container.estimated_size() >= self.limit {
            return Ok(self.flush());
        }
        Ok(None)
    }

    /// One KPL flush (as at a deadline): emits the longest prefix within the limits, at
    /// least one record, and keeps the rest. `None` when empty.
    pub fn flush(&mut self) -> Option<KinesisRecord> {
        let n = self.container.records.len();
        if n == 0 {
            return None;
        }
        let mut k = n;
        while k > 1
            && (k as u64 > self.config.max_count || self.container.accurate_size(k) > self.limit)
        {
            k -= 1;
        }
        let out = self.container.serialize(k);
        self.keep_from(k);
        out
    }

    /// Flushes until empty, as at shutdown.
    pub fn drain(&mut self) -> impl Iterator<Item = KinesisRecord> + '_ {
        core::iter::from_fn(move || self.flush())
    }

    /// User records waiting.
    pub fn len(&self) -> usize {
        self.container.records.len()
    }

    /// Whether no user record is waiting.
    pub fn is_empty(&self) -> bool {
        self.container.records.is_empty()
    }

    /// KPL's accurate size of everything waiting (raw data length for one record, else
    /// 20 + protobuf length): exactly the length of the data [`Aggregator::flush`] would
    /// emit if it emitted everything.
    pub fn accurate_size(&self) -> usize {
        self.container.accurate_size(self.container.records.len())
    }

    /// KPL's size estimate of everything waiting, the figure that triggers a flush.
    pub fn estimated_size(&self) -> usize {
        self.container.estimated_size()
    }

    /// Drops the first `k` records; the rest start a new container, as in KPL.
    fn keep_from(&mut self, k: usize) {
        if k >= self.container.records.len() {
            self.container.clear();
            return;
        }
        self.spare.clear();
        core::mem::swap(&mut self.container, &mut self.spare);
        let old = &self.spare;
        for record in old.records.iter().skip(k) {
            let ehk = record
                .ehk
                .and_then(|i| old.ehk_table.get(i as usize).copied());
            self.container
                .push(&self.hasher, old.pk(record.pk), ehk, old.data(record));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn config(max_size: usize, max_count: u64) -> AggregatorConfig {
        AggregatorConfig {
            max_size,
            max_count,
            ..AggregatorConfig::default()
        }
    }

    #[test]
    fn worked_example_bytes() {
        let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
        agg.add(InputRecord::new("a", b"x")).unwrap();
        agg.add(InputRecord::new("b", b"yz").with_explicit_hash_key("0123"))
            .unwrap();
        agg.add(InputRecord::new("a", b"")).unwrap();
        assert_eq!(agg.accurate_size(), 54);
        let out: Vec<_> = agg.drain().collect();
        let protobuf: [u8; 34] = [
            0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62, 0x12, 0x03, 0x31, 0x32, 0x33, 0x1a, 0x05, 0x08,
            0x00, 0x1a, 0x01, 0x78, 0x1a, 0x08, 0x08, 0x01, 0x10, 0x00, 0x1a, 0x02, 0x79, 0x7a,
            0x1a, 0x04, 0x08, 0x00, 0x1a, 0x00,
        ];
        assert_eq!(&out[0].data[4..38], &protobuf);
        assert_eq!(
            &out[0].data[38..],
            &[
                0x50, 0xfb, 0x67, 0x61, 0xda, 0x66, 0xaa, 0x19, 0x6a, 0x30, 0x88, 0x4d, 0x63, 0x11,
                0xe0, 0xd4
            ]
        );
        assert!(agg.is_empty());
    }

    #[test]
    fn lone_record_goes_raw_with_its_hash_key() {
        let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
        agg.add(InputRecord::new("abcd", b"data")).unwrap();
        let out = agg.flush().unwrap();
        assert_eq!(out.data, b"data");
        assert_eq!(out.partition_key, "abcd");
        assert_eq!(out.hash_key, 0xE2FC714C4727EE9395F324CD2E7F331F);
        assert_eq!(out.explicit_hash_key, out.hash_key.to_string());
    }

    #[test]
    fn max_count_splits() {
        let mut agg = Aggregator::new(config(51_200, 2)).unwrap();
        assert!(agg.add(InputRecord::new("k", b"1")).unwrap().is_none());
        let first = agg.add(InputRecord::new("k", b"2")).unwrap().unwrap();
        assert_eq!(first.user_records, 2);
        assert!(agg.is_empty());
    }

    #[test]
    fn aggregates_never_exceed_max_size() {
        let mut agg = Aggregator::new(config(200, u64::from(u32::MAX))).unwrap();
        let mut out = Vec::new();
        for i in 0..50u32 {
            let key = alloc::format!("key-{}", i % 7);
            if let Some(r) = agg.add(InputRecord::new(&key, &[i as u8; 17])).unwrap() {
                out.push(r);
            }
        }
        out.extend(agg.drain());
        assert_eq!(out.iter().map(|r| r.user_records).sum::<usize>(), 50);
        for r in &out {
            if r.is_aggregated() {
                assert!(r.data.len() <= 200, "{}", r.data.len());
            }
        }
    }

    #[test]
    fn rejected_records_leave_state_unchanged() {
        let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
        agg.add(InputRecord::new("a", b"x")).unwrap();
        assert_eq!(
            agg.add(InputRecord::new("", b"x")),
            Err(EncodeError::EmptyPartitionKey)
        );
        let long = "é".repeat(257);
        assert_eq!(
            agg.add(InputRecord::new(&long, b"x")),
            Err(EncodeError::PartitionKeyTooLong { utf16_units: 257 })
        );
        let emoji = "😀".repeat(128);
        assert!(agg.check(&InputRecord::new(&emoji, b"x")).is_ok());
        assert_eq!(
            agg.add(InputRecord::new("a", b"x").with_explicit_hash_key("1a")),
            Err(EncodeError::InvalidExplicitHashKey { offset: 1 })
        );
        let big = alloc::vec![0u8; 1024 * 1024];
        assert_eq!(
            agg.add(InputRecord::new("a", &big)),
            Err(EncodeError::RecordTooLarge {
                size: 1024 * 1024 + 1,
                limit: 1024 * 1024
            })
        );
        assert_eq!(agg.len(), 1);
    }

    #[test]
    fn config_ranges() {
        assert!(Aggregator::new(config(63, 1)).is_err());
        assert!(Aggregator::new(config(64, 1)).is_ok());
        assert!(Aggregator::new(config(MAX_LIMIT + 1, 1)).is_err());
        assert!(Aggregator::new(config(1000, 0)).is_err());
    }
}
