//! Deaggregation: one Kinesis record's data in, user records out, under a [`Policy`].
//!
//! ```
//! use kpl_codec::{deaggregate, HashRange, Options, Verdict};
//!
//! // A record without the magic is a plain record under both policies.
//! let mut records = deaggregate(b"just bytes", b"pk", &Options::strict())?;
//! assert!(matches!(records.verdict(), Verdict::Plain(_)));
//! let only = records.next().unwrap();
//! assert_eq!((only.data, only.aggregated, only.sub_sequence_number), (&b"just bytes"[..], false, 0));
//!
//! // A shard's range can be applied, all-or-nothing as KCL does.
//! let options = Options::kcl().with_shard_range(HashRange::new(0, 1));
//! assert_eq!(deaggregate(b"plain", b"pk", &options)?.count(), 1); // plain records are never filtered
//! # Ok::<(), kpl_codec::DecodeError>(())
//! ```

use alloc::vec::Vec;

use crate::error::DecodeError;
use crate::hash_key::{hash_key, parse_explicit_hash_key, HashRange};
use crate::java::{self, BigIntegerParse};
use crate::view::{Aggregate, Dialect, Frame, RawRecord, RawRecords};

/// How to treat what follows the magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Exactly KCL 2.x/3.x's `AggregatorUtil`: anything unparseable is passed through as
    /// one plain record; a bad index keeps the records emitted so far and drops the rest;
    /// a hash key outside the range drops the whole aggregate. Never an error.
    #[default]
    Kcl,
    /// Anything wrong after the magic is a [`DecodeError`] naming the defect and its byte
    /// offset; nothing is ever dropped silently. Records without the magic are plain.
    Strict,
}

/// What [`deaggregate`] should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    /// The policy.
    pub policy: Policy,
    /// Whether to check the MD5 (on by default; turn off only for trusted input).
    pub verify_md5: bool,
    /// The shard's hash range, for KCL's all-or-nothing filter. `None` means the full range
    /// (which KCL still applies to explicit hash keys: a negative or too large one drops
    /// the aggregate).
    pub shard_range: Option<HashRange>,
}

impl Default for Options {
    fn default() -> Self {
        Options::kcl()
    }
}

impl Options {
    /// KCL policy, MD5 verified, no shard range.
    pub const fn kcl() -> Self {
        Options {
            policy: Policy::Kcl,
            verify_md5: true,
            shard_range: None,
        }
    }

    /// Strict policy, MD5 verified, no shard range.
    pub const fn strict() -> Self {
        Options {
            policy: Policy::Strict,
            verify_md5: true,
            shard_range: None,
        }
    }

    /// The same options with the shard's hash range set.
    pub const fn with_shard_range(mut self, range: HashRange) -> Self {
        self.shard_range = Some(range);
        self
    }

    /// The same options with MD5 verification switched off.
    pub const fn without_md5_check(mut self) -> Self {
        self.verify_md5 = false;
        self
    }
}

/// Why a record was treated as a plain (not aggregated) record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlainReason {
    /// No magic (or shorter than the magic).
    NoMagic,
    /// The magic, followed by 16 bytes or fewer (KCL only; strict reports an error).
    TooShort,
    /// The MD5 does not match (KCL only).
    Md5Mismatch,
    /// The protobuf does not parse (KCL only).
    Unparseable(DecodeError),
}

/// What deaggregation concluded about the Kinesis record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Passed through as one plain record.
    Plain(PlainReason),
    /// A valid aggregate.
    Aggregated {
        /// `Record` entries in the aggregate.
        records: usize,
        /// User records that are emitted.
        emitted: usize,
        /// Why the others were dropped (KCL only): a bad index, an unparseable explicit
        /// hash key, or a hash key outside the range (which drops everything).
        dropped: Option<DecodeError>,
    },
}

/// One user record, borrowing from the Kinesis record's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord<'a> {
    /// The partition key's bytes (see [`UserRecord::partition_key_str`]).
    pub partition_key: &'a [u8],
    /// The explicit hash key's text as stored, when the record has one.
    pub explicit_hash_key: Option<&'a [u8]>,
    /// The user's data.
    pub data: &'a [u8],
    /// Position among the user records emitted for this Kinesis record: 0, 1, 2...
    pub sub_sequence_number: u64,
    /// Whether it came out of an aggregate (`false` for a plain record).
    pub aggregated: bool,
    explicit_hash_key_value: Option<u128>,
}

impl<'a> UserRecord<'a> {
    /// The partition key as text, if it is valid UTF-8.
    pub fn partition_key_str(&self) -> Result<&'a str, core::str::Utf8Error> {
        core::str::from_utf8(self.partition_key)
    }

    /// The explicit hash key as text, if present and valid UTF-8.
    pub fn explicit_hash_key_str(&self) -> Option<Result<&'a str, core::str::Utf8Error>> {
        self.explicit_hash_key.map(core::str::from_utf8)
    }

    /// The effective hash key: the explicit hash key's value, or the MD5 of the partition
    /// key (after Java's lossy UTF-8 decoding when it is not valid UTF-8, as KCL does).
    pub fn hash_key(&self) -> u128 {
        match self.explicit_hash_key_value {
            Some(value) => value,
            None => hash_key(java::utf8_lossy(self.partition_key).as_bytes()),
        }
    }
}

/// The user records of one Kinesis record: an iterator, plus the [`Verdict`].
#[derive(Debug, Clone)]
pub struct Deaggregated<'a> {
    verdict: Verdict,
    state: State<'a>,
}

#[derive(Debug, Clone)]
enum State<'a> {
    Plain(Option<UserRecord<'a>>),
    Aggregate {
        aggregate: Aggregate<'a>,
        records: RawRecords<'a>,
        remaining: usize,
        next: u64,
        explicit_hash_keys: Vec<BigIntegerParse>,
        policy: Policy,
    },
}

impl<'a> Deaggregated<'a> {
    /// What deaggregation concluded.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    fn plain(data: &'a [u8], partition_key: &'a [u8], reason: PlainReason) -> Self {
        Deaggregated {
            verdict: Verdict::Plain(reason),
            state: State::Plain(Some(UserRecord {
                partition_key,
                explicit_hash_key: None,
                data,
                sub_sequence_number: 0,
                aggregated: false,
                explicit_hash_key_value: None,
            })),
        }
    }
}

impl<'a> Iterator for Deaggregated<'a> {
    type Item = UserRecord<'a>;

    fn next(&mut self) -> Option<UserRecord<'a>> {
        match &mut self.state {
            State::Plain(record) => record.take(),
            State::Aggregate {
                aggregate,
                records,
                remaining,
                next,
                explicit_hash_keys,
                policy,
            } => {
                if *remaining == 0 {
                    return None;
                }
                let raw = records.next()?;
                let resolved = resolve(aggregate, &raw, *policy)?;
                let explicit_hash_key_value = match resolved.1 {
                    None => None,
                    Some(j) => match explicit_hash_keys.get(j) {
                        Some(BigIntegerParse::Value(v)) => Some(*v),
                        _ => return None,
                    },
                };
                *remaining -= 1;
                let sub_sequence_number = *next;
                *next += 1;
                Some(UserRecord {
                    partition_key: resolved.0,
                    explicit_hash_key: resolved.1.and_then(|j| aggregate.explicit_hash_keys().get(j).copied()),
                    data: raw.data,
                    sub_sequence_number,
                    aggregated: true,
                    explicit_hash_key_value,
                })
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.state {
            State::Plain(record) => usize::from(record.is_some()),
            State::Aggregate { remaining, .. } => *remaining,
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Deaggregated<'_> {}

/// Resolves a record's indices: (partition key, explicit hash key table index).
/// `None` when an index is outside its table. KCL casts indices to a 32-bit int first.
fn resolve<'a>(
    aggregate: &Aggregate<'a>,
    raw: &RawRecord<'a>,
    policy: Policy,
) -> Option<(&'a [u8], Option<usize>)> {
    let index = |value: u64| -> Option<usize> {
        match policy {
            Policy::Kcl => usize::try_from(value as u32 as i32).ok(),
            Policy::Strict => usize::try_from(value).ok(),
        }
    };
    let pk = *aggregate
        .partition_keys()
        .get(index(raw.partition_key_index)?)?;
    let ehk = match raw.explicit_hash_key_index {
        None => None,
        Some(v) => {
            let j = index(v)?;
            if j >= aggregate.explicit_hash_keys().len() {
                return None;
            }
            Some(j)
        }
    };
    Some((pk, ehk))
}

/// Turns one Kinesis record's data into user records under `options`.
///
/// `partition_key` is the Kinesis record's own partition key, returned with the data when
/// the record is plain. Under [`Policy::Kcl`] this never fails; under [`Policy::Strict`]
/// it fails on the first defect after the magic. The returned iterator does not allocate.
pub fn deaggregate<'a>(
    data: &'a [u8],
    partition_key: &'a [u8],
    options: &Options,
) -> Result<Deaggregated<'a>, DecodeError> {
    let strict = options.policy == Policy::Strict;
    let (protobuf, digest) = match Frame::split(data) {
        Frame::NoMagic => return Ok(Deaggregated::plain(data, partition_key, PlainReason::NoMagic)),
        Frame::TooShort if strict => return Err(DecodeError::TooShort { offset: 4 }),
        Frame::TooShort => return Ok(Deaggregated::plain(data, partition_key, PlainReason::TooShort)),
        Frame::Framed { protobuf, digest } => (protobuf, digest),
    };
    if options.verify_md5 && crate::md5(protobuf) != *digest {
        if strict {
            return Err(DecodeError::Md5Mismatch {
                offset: data.len() - crate::DIGEST_LEN,
            });
        }
        return Ok(Deaggregated::plain(data, partition_key, PlainReason::Md5Mismatch));
    }
    let dialect = if strict { Dialect::Strict } else { Dialect::Java };
    let aggregate = match Aggregate::parse(protobuf, dialect) {
        Ok(aggregate) => aggregate,
        Err(e) if strict => return Err(e),
        Err(e) => {
            return Ok(Deaggregated::plain(
                data,
                partition_key,
                PlainReason::Unparseable(e),
            ))
        }
    };
    let explicit_hash_keys: Vec<BigIntegerParse> = aggregate
        .explicit_hash_keys()
        .iter()
        .map(|key| {
            if strict {
                // Validated by the strict parse: ASCII digits within range.
                match core::str::from_utf8(key).ok().map(parse_explicit_hash_key) {
                    Some(Ok(v)) => BigIntegerParse::Value(v),
                    _ => BigIntegerParse::Invalid,
                }
            } else {
                java::parse_big_integer(&java::utf8_lossy(key))
            }
        })
        .collect();
    let (emitted, dropped) = plan(&aggregate, &explicit_hash_keys, options)?;
    Ok(Deaggregated {
        verdict: Verdict::Aggregated {
            records: aggregate.record_count(),
            emitted,
            dropped,
        },
        state: State::Aggregate {
            records: aggregate.records(),
            aggregate,
            remaining: emitted,
            next: 0,
            explicit_hash_keys,
            policy: options.policy,
        },
    })
}

/// Decides how many records are emitted, and why the rest are not (KCL), or finds the
/// first index or range defect (strict).
fn plan(
    aggregate: &Aggregate<'_>,
    explicit_hash_keys: &[BigIntegerParse],
    options: &Options,
) -> Result<(usize, Option<DecodeError>), DecodeError> {
    let strict = options.policy == Policy::Strict;
    let range = options.shard_range;
    let mut pk_hashes: Vec<Option<u128>> = Vec::new();
    if range.is_some() {
        pk_hashes.resize(aggregate.partition_keys().len(), None);
    }
    let mut emitted = 0usize;
    for raw in aggregate.records() {
        let offset = raw.offset;
        let Some((pk, ehk)) = resolve(aggregate, &raw, options.policy) else {
            let pk_ok = resolve_pk_only(aggregate, &raw, options.policy);
            let defect = if pk_ok {
                DecodeError::ExplicitHashKeyIndexOutOfRange {
                    offset,
                    index: raw.explicit_hash_key_index.unwrap_or(0),
                }
            } else {
                DecodeError::PartitionKeyIndexOutOfRange {
                    offset,
                    index: raw.partition_key_index,
                }
            };
            if strict {
                return Err(defect);
            }
            return Ok((emitted, Some(defect)));
        };
        let hash = match ehk.map(|j| explicit_hash_keys.get(j).copied()) {
            Some(Some(BigIntegerParse::Value(v))) => Some(v),
            Some(Some(BigIntegerParse::OutOfRange)) => {
                // Outside even the full range: KCL drops the whole aggregate.
                return Ok((0, Some(DecodeError::OutsideShardRange { offset })));
            }
            Some(_) => {
                let defect = DecodeError::InvalidExplicitHashKey { offset };
                if strict {
                    return Err(defect);
                }
                return Ok((emitted, Some(defect)));
            }
            None => None,
        };
        if let Some(range) = range {
            let key = match hash {
                Some(v) => v,
                None => pk_hash(&mut pk_hashes, &raw, pk, options.policy),
            };
            if !range.contains(key) {
                let defect = DecodeError::OutsideShardRange { offset };
                if strict {
                    return Err(defect);
                }
                return Ok((0, Some(defect)));
            }
        }
        emitted += 1;
    }
    Ok((emitted, None))
}

fn resolve_pk_only(aggregate: &Aggregate<'_>, raw: &RawRecord<'_>, policy: Policy) -> bool {
    let stripped = RawRecord {
        explicit_hash_key_index: None,
        ..*raw
    };
    resolve(aggregate, &stripped, policy).is_some()
}

/// The MD5 hash key of a record's partition key, computed once per table entry.
fn pk_hash(cache: &mut [Option<u128>], raw: &RawRecord<'_>, pk: &[u8], policy: Policy) -> u128 {
    let slot = match policy {
        Policy::Kcl => raw.partition_key_index as u32 as usize,
        Policy::Strict => usize::try_from(raw.partition_key_index).unwrap_or(usize::MAX),
    };
    if let Some(Some(v)) = cache.get(slot) {
        return *v;
    }
    let v = hash_key(java::utf8_lossy(pk).as_bytes());
    if let Some(entry) = cache.get_mut(slot) {
        *entry = Some(v);
    }
    v
}
