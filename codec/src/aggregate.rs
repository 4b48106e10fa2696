//! Aggregation: user records in, the Kinesis records Java KPL would put out, byte for byte.

use alloc::string::String;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use hashbrown::HashTable;

use crate::error::EncodeError;
use crate::hash_key::{
    canonical_decimal, hash_key, is_decimal_hash_key, parse_explicit_hash_key, write_decimal,
};
use crate::wire::{len_field_size, put_varint, varint_len};
use crate::{DIGEST_LEN, FRAME_OVERHEAD, MAGIC};

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
    /// Largest `max_size` and `max_record_size` accepted: 10 MiB.
    pub const MAX_LIMIT: usize = 10 * 1024 * 1024;
    /// Smallest `max_size` and `max_record_size` accepted.
    pub const MIN_LIMIT: usize = 64;

    /// Checks every limit against its allowed range.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if !(Self::MIN_LIMIT..=Self::MAX_LIMIT).contains(&self.max_size) {
            return Err(EncodeError::InvalidMaxSize {
                value: self.max_size as u64,
            });
        }
        if !(1..=u64::from(u32::MAX)).contains(&self.max_count) {
            return Err(EncodeError::InvalidMaxCount {
                value: self.max_count,
            });
        }
        if !(Self::MIN_LIMIT..=Self::MAX_LIMIT).contains(&self.max_record_size) {
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

    /// The hash key that decides the record's shard: the value of its explicit hash key
    /// when it has one, else the MD5 of its partition key. Fails when the explicit hash
    /// key is not valid (what [`Aggregator::add`] would refuse it for).
    ///
    /// ```
    /// use kpl_codec::{hash_key, InputRecord};
    ///
    /// assert_eq!(InputRecord::new("a", b"x").hash_key(), Ok(hash_key(b"a")));
    /// assert_eq!(InputRecord::new("a", b"x").with_explicit_hash_key("007").hash_key(), Ok(7));
    /// assert!(InputRecord::new("a", b"x").with_explicit_hash_key("-1").hash_key().is_err());
    /// ```
    pub fn hash_key(&self) -> Result<u128, EncodeError> {
        match self.explicit_hash_key {
            Some(text) => parse_explicit_hash_key(text),
            None => Ok(hash_key(self.partition_key.as_bytes())),
        }
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

/// A [`KinesisRecord`] whose aggregate does not carry its MD5 yet: the last 16 bytes of an
/// aggregate's data are zeros until it is sealed. [`Aggregator::add_unsealed`] and
/// [`Aggregator::flush_unsealed`] emit them; [`seal_all`] hashes the aggregates of a whole
/// batch (a PutRecords call) side by side, [`Unsealed::seal`] one alone. A raw record
/// (one user record) needs no digest and is sealed as it is.
///
/// ```
/// use kpl_codec::{seal_all, Aggregator, AggregatorConfig, InputRecord};
///
/// let config = AggregatorConfig { max_count: 2, ..AggregatorConfig::default() };
/// let (mut plain, mut deferred) = (Aggregator::new(config)?, Aggregator::new(config)?);
/// let (mut sealed, mut unsealed) = (Vec::new(), Vec::new());
/// for key in ["a", "b", "c", "d", "e"] {
///     sealed.extend(plain.add(InputRecord::new(key, b"data"))?);
///     unsealed.extend(deferred.add_unsealed(InputRecord::new(key, b"data"))?);
/// }
/// sealed.extend(plain.drain());
/// unsealed.extend(core::iter::from_fn(|| deferred.flush_unsealed()));
/// assert_eq!(seal_all(unsealed), sealed); // byte for byte
/// # Ok::<(), kpl_codec::EncodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed(KinesisRecord);

impl Unsealed {
    /// The record, its aggregate's digest still zeros: every field is final but the last
    /// 16 bytes of an aggregate's data (sizes, keys and hash keys can be read).
    pub fn record(&self) -> &KinesisRecord {
        &self.0
    }

    /// The protobuf to hash, if this is an aggregate.
    fn body(&self) -> Option<&[u8]> {
        let data = &self.0.data;
        if !self.0.is_aggregated() {
            return None;
        }
        data.get(MAGIC.len()..data.len().checked_sub(DIGEST_LEN)?)
    }

    /// Writes the digest (if this is an aggregate).
    fn sealed_with(mut self, digest: &[u8; DIGEST_LEN]) -> KinesisRecord {
        let len = self.0.data.len();
        if self.0.is_aggregated() {
            if let Some(slot) = self.0.data.get_mut(len.saturating_sub(DIGEST_LEN)..) {
                slot.copy_from_slice(digest);
            }
        }
        self.0
    }

    /// Seals this record alone (one MD5).
    pub fn seal(self) -> KinesisRecord {
        let digest = self.body().map(crate::md5).unwrap_or_default();
        self.sealed_with(&digest)
    }
}

/// Seals every record, in order, hashing all the aggregates in one call to
/// [`crate::md5_many`] (side by side in SIMD lanes with the `simd` feature). The result is
/// byte for byte what [`Aggregator::add`] and [`Aggregator::flush`] would have emitted.
pub fn seal_all(records: Vec<Unsealed>) -> Vec<KinesisRecord> {
    let bodies: Vec<&[u8]> = records.iter().filter_map(Unsealed::body).collect();
    let mut digests = alloc::vec![[0u8; DIGEST_LEN]; bodies.len()];
    crate::md5_many(&bodies, &mut digests);
    let mut digests = digests.into_iter();
    records
        .into_iter()
        .map(|record| {
            let digest = match record.body() {
                Some(_) => digests.next().unwrap_or_default(),
                None => [0; DIGEST_LEN],
            };
            record.sealed_with(&digest)
        })
        .collect()
}

/// One user record waiting in the container.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// End of this record's encoded `Record` field in `Container::records`.
    end: usize,
    /// Where its data starts in `Container::records`, and its length.
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

/// A table of distinct keys (partition keys, or canonical explicit hash keys) in
/// first-use order, stored contiguously, with a hash index for deduplication.
#[derive(Debug, Clone, Default)]
struct KeyTable {
    bytes: Vec<u8>,
    /// (start, len) of each entry in `bytes`.
    entries: Vec<(usize, usize)>,
    lookup: HashTable<u32>,
}

impl KeyTable {
    fn get(&self, index: u32) -> &[u8] {
        match self.entries.get(index as usize) {
            Some(&(start, len)) => self.bytes.get(start..start + len).unwrap_or(&[]),
            None => &[],
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.lookup.clear();
    }

    /// The index of `key`, and whether it was added now.
    fn index_of(&mut self, hasher: &impl BuildHasher, key: &[u8]) -> (u32, bool) {
        let hash = hasher.hash_one(key);
        let (bytes, entries) = (&self.bytes, &self.entries);
        let found = self.lookup.find(hash, |&i| {
            entries
                .get(i as usize)
                .and_then(|&(s, l)| bytes.get(s..s + l))
                == Some(key)
        });
        if let Some(&i) = found {
            return (i, false);
        }
        let i = self.entries.len() as u32;
        self.entries.push((self.bytes.len(), key.len()));
        self.bytes.extend_from_slice(key);
        let (bytes, entries) = (&self.bytes, &self.entries);
        self.lookup.insert_unique(hash, i, |&j| {
            let (s, l) = entries.get(j as usize).copied().unwrap_or((0, 0));
            hasher.hash_one(bytes.get(s..s + l).unwrap_or(&[]))
        });
        (i, true)
    }

    /// Appends the first `n` entries as length-delimited fields with the one-byte `tag`.
    fn write(&self, out: &mut Vec<u8>, tag: u8, n: u32) {
        for index in 0..n {
            let key = self.get(index);
            out.push(tag);
            put_varint(out, key.len() as u64);
            out.extend_from_slice(key);
        }
    }
}

/// The contents of one KPL container: the `Record` fields already encoded, one after the
/// other, and the tables they use.
#[derive(Debug, Clone, Default)]
struct Container {
    records: Vec<u8>,
    partition_keys: KeyTable,
    explicit_hash_keys: KeyTable,
    pending: Vec<Pending>,
    protobuf_size: usize,
    estimate: usize,
}

impl Container {
    fn data(&self, record: &Pending) -> &[u8] {
        self.records
            .get(record.data_start..record.data_start + record.data_len)
            .unwrap_or(&[])
    }

    fn clear(&mut self) {
        self.records.clear();
        self.partition_keys.clear();
        self.explicit_hash_keys.clear();
        self.pending.clear();
        self.protobuf_size = 0;
        self.estimate = 0;
    }

    /// Adds a validated user record (explicit hash key in canonical decimal), encoding
    /// its `Record` field at once and keeping the sizes up to date in O(1).
    fn push(&mut self, hasher: &impl BuildHasher, pk: &[u8], ehk: Option<&[u8]>, data: &[u8]) {
        let (pk_index, new_pk) = self.partition_keys.index_of(hasher, pk);
        if new_pk {
            self.protobuf_size += len_field_size(pk.len());
            self.estimate += pk.len() + 3;
        }
        let mut inner = 1 + varint_len(u64::from(pk_index)) + len_field_size(data.len());
        self.estimate += data.len() + 5;
        let ehk_index = ehk.map(|text| {
            let (index, new_ehk) = self.explicit_hash_keys.index_of(hasher, text);
            if new_ehk {
                self.protobuf_size += len_field_size(text.len());
                self.estimate += text.len() + 3;
            }
            inner += 1 + varint_len(u64::from(index));
            self.estimate += 2;
            index
        });
        self.protobuf_size += len_field_size(inner);
        let out = &mut self.records;
        out.push(0x1A);
        put_varint(out, inner as u64);
        out.push(0x08);
        put_varint(out, u64::from(pk_index));
        if let Some(e) = ehk_index {
            out.push(0x10);
            put_varint(out, u64::from(e));
        }
        out.push(0x1A);
        put_varint(out, data.len() as u64);
        let data_start = out.len();
        out.extend_from_slice(data);
        self.pending.push(Pending {
            end: out.len(),
            data_start,
            data_len: data.len(),
            pk: pk_index,
            ehk: ehk_index,
            cumulative: self.protobuf_size,
            pk_table_len: self.partition_keys.len() as u32,
            ehk_table_len: self.explicit_hash_keys.len() as u32,
        });
    }

    /// KPL's accurate size of the first `k` records: the raw data length for one, else
    /// 20 + protobuf length.
    fn accurate_size(&self, k: usize) -> usize {
        match k {
            0 => 0,
            1 => self.pending.first().map_or(0, |r| r.data_len),
            _ => self
                .pending
                .get(k - 1)
                .map_or(0, |r| FRAME_OVERHEAD + r.cumulative),
        }
    }

    /// KPL's size estimate of the whole container (accurate below two records).
    fn estimated_size(&self) -> usize {
        if self.pending.len() < 2 {
            self.accurate_size(self.pending.len())
        } else {
            self.estimate
        }
    }

    /// Serializes the first `k` records (k >= 1) as one Kinesis record: tables, then the
    /// records' bytes as they were encoded, then room for the MD5 (zeros: see [`Unsealed`]).
    fn serialize(&self, k: usize) -> Option<Unsealed> {
        let first = self.pending.first()?;
        let (hash, explicit_hash_key) = match first.ehk {
            Some(index) => {
                let text = self.explicit_hash_keys.get(index);
                let text = core::str::from_utf8(text).unwrap_or("0");
                (
                    parse_explicit_hash_key(text).unwrap_or(0),
                    String::from(text),
                )
            }
            None => {
                let hash = hash_key(self.partition_keys.get(first.pk));
                let mut digits = [0u8; 39];
                (hash, String::from(write_decimal(hash, &mut digits)))
            }
        };
        if k == 1 {
            return Some(Unsealed(KinesisRecord {
                partition_key: String::from_utf8_lossy(self.partition_keys.get(first.pk))
                    .into_owned(),
                explicit_hash_key,
                data: self.data(first).to_vec(),
                user_records: 1,
                hash_key: hash,
            }));
        }
        let last = self.pending.get(k - 1)?;
        let mut out = Vec::with_capacity(FRAME_OVERHEAD + last.cumulative);
        out.extend_from_slice(&MAGIC);
        self.partition_keys.write(&mut out, 0x0A, last.pk_table_len);
        self.explicit_hash_keys
            .write(&mut out, 0x12, last.ehk_table_len);
        out.extend_from_slice(self.records.get(..last.end)?);
        out.extend_from_slice(&[0; DIGEST_LEN]);
        debug_assert_eq!(out.len(), FRAME_OVERHEAD + last.cumulative);
        Some(Unsealed(KinesisRecord {
            partition_key: String::from("a"),
            explicit_hash_key,
            data: out,
            user_records: k,
            hash_key: hash,
        }))
    }
}

/// KPL's aggregation for one shard: user records in, the Kinesis records Java KPL would
/// put out, byte for byte.
///
/// It reproduces KPL's reducer: records are added in order;
/// after each add it flushes when the count reaches `max_count` or KPL's *estimated* size
/// reaches `max_size`; a flush emits the longest prefix whose *accurate* size and count
/// are within the limits (at least one record) and keeps the rest, in order, for the next
/// Kinesis record. A lone record goes out raw. Size bookkeeping is O(1) per record and the
/// output is written once, into one buffer, with one MD5 over the protobuf.
///
/// ```
/// use kpl_codec::{Aggregator, AggregatorConfig, InputRecord};
///
/// let mut aggregator = Aggregator::new(AggregatorConfig::default())?;
/// assert!(aggregator.add(InputRecord::new("a", b"x"))?.is_none());
/// assert!(aggregator.add(InputRecord::new("b", b"yz").with_explicit_hash_key("123"))?.is_none());
/// assert!(aggregator.add(InputRecord::new("a", b""))?.is_none());
/// let out: Vec<_> = aggregator.drain().collect();
/// // The worked example of the format notes: 54 bytes, outer key "a",
/// // explicit hash key = the first record's hash key.
/// assert_eq!(out.len(), 1);
/// assert_eq!(out[0].data.len(), 54);
/// assert_eq!(out[0].partition_key, "a");
/// assert_eq!(out[0].explicit_hash_key, kpl_codec::hash_key(b"a").to_string());
/// # Ok::<(), kpl_codec::EncodeError>(())
/// ```
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

    /// Validates a user record without adding it.
    pub fn check(&self, record: &InputRecord<'_>) -> Result<(), EncodeError> {
        self.validate(record).map(|_| ())
    }

    /// Validates a user record; returns its explicit hash key in canonical decimal.
    fn validate<'r>(&self, record: &InputRecord<'r>) -> Result<Option<&'r [u8]>, EncodeError> {
        if record.partition_key.is_empty() {
            return Err(EncodeError::EmptyPartitionKey);
        }
        if record.partition_key.len() > 256 {
            let utf16_units = record.partition_key.encode_utf16().count();
            if utf16_units > 256 {
                return Err(EncodeError::PartitionKeyTooLong { utf16_units });
            }
        }
        let ehk = match record.explicit_hash_key {
            None => None,
            Some(text) if is_decimal_hash_key(text.as_bytes()) => {
                Some(canonical_decimal(text.as_bytes()))
            }
            Some(text) => {
                return Err(parse_explicit_hash_key(text)
                    .err()
                    .unwrap_or(EncodeError::InvalidExplicitHashKey { offset: 0 }))
            }
        };
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
        Ok(self.add_unsealed(record)?.map(Unsealed::seal))
    }

    /// [`Aggregator::add`], the emitted record not hashed yet: seal it with [`seal_all`]
    /// together with the others of its batch.
    pub fn add_unsealed(
        &mut self,
        record: InputRecord<'_>,
    ) -> Result<Option<Unsealed>, EncodeError> {
        let ehk = self.validate(&record)?;
        self.container.push(
            &self.hasher,
            record.partition_key.as_bytes(),
            ehk,
            record.data,
        );
        let count = self.container.pending.len() as u64;
        if count >= self.config.max_count || self.container.estimated_size() >= self.limit {
            return Ok(self.flush_unsealed());
        }
        Ok(None)
    }

    /// One KPL flush (as at a deadline): emits the longest prefix within the limits, at
    /// least one record, and keeps the rest. `None` when empty.
    pub fn flush(&mut self) -> Option<KinesisRecord> {
        self.flush_unsealed().map(Unsealed::seal)
    }

    /// [`Aggregator::flush`], the emitted record not hashed yet (see [`Unsealed`]).
    pub fn flush_unsealed(&mut self) -> Option<Unsealed> {
        let n = self.container.pending.len();
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
        self.container.pending.len()
    }

    /// Whether no user record is waiting.
    pub fn is_empty(&self) -> bool {
        self.container.pending.is_empty()
    }

    /// KPL's accurate size of everything waiting (raw data length for one record, else
    /// 20 + protobuf length): exactly the length of the data [`Aggregator::flush`] would
    /// emit if it emitted everything.
    pub fn accurate_size(&self) -> usize {
        self.container.accurate_size(self.container.pending.len())
    }

    /// KPL's size estimate of everything waiting, the figure that triggers a flush.
    pub fn estimated_size(&self) -> usize {
        self.container.estimated_size()
    }

    /// Drops the first `k` records; the rest start a new container, as in KPL.
    fn keep_from(&mut self, k: usize) {
        if k >= self.container.pending.len() {
            self.container.clear();
            return;
        }
        self.spare.clear();
        core::mem::swap(&mut self.container, &mut self.spare);
        let old = &self.spare;
        for record in old.pending.iter().skip(k) {
            let ehk = record.ehk.map(|i| old.explicit_hash_keys.get(i));
            self.container.push(
                &self.hasher,
                old.partition_keys.get(record.pk),
                ehk,
                old.data(record),
            );
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
        assert!(Aggregator::new(config(AggregatorConfig::MAX_LIMIT + 1, 1)).is_err());
        assert!(Aggregator::new(config(1000, 0)).is_err());
    }
}
