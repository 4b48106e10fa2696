//! Deaggregation: one Kinesis record's data in, user records out, under a [`Policy`].

use alloc::vec::Vec;

use crate::error::DecodeError;
use crate::hash_key::{is_decimal_hash_key, kcl_hash_key, HashRange};
use crate::java::{self, BigIntegerParse};
use crate::view::{kcl_index, Aggregate, Dialect, Frame, RawRecord, RawRecords};

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

/// The text KCL hands to the application for a key's bytes: Java's lossy UTF-8 decoding
/// (`new String(bytes, UTF_8)`), which replaces an encoded surrogate such as `ED A0 80`
/// with ONE U+FFFD where Rust's `String::from_utf8_lossy` gives three. Borrows when the
/// bytes are valid UTF-8.
///
/// ```
/// use kpl_codec::kcl_text;
/// assert_eq!(kcl_text(b"key"), "key");
/// assert_eq!(kcl_text(&[0xED, 0xA0, 0x80]), "\u{FFFD}");
/// assert_eq!(kcl_text(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
/// ```
pub fn kcl_text(bytes: &[u8]) -> alloc::borrow::Cow<'_, str> {
    java::utf8_lossy(bytes)
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
    ///
    /// Computed on each call. Every record [`deaggregate`] emits has an explicit hash key
    /// that is a number in `[0, 2^128 - 1]` (as Java's `BigInteger` reads it) or none.
    pub fn hash_key(&self) -> u128 {
        match self.explicit_hash_key.map(explicit_hash_key_value) {
            Some(BigIntegerParse::Value(value)) => value,
            _ => kcl_hash_key(self.partition_key),
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
            })),
        }
    }
}

impl<'a> Iterator for Deaggregated<'a> {
    type Item = UserRecord<'a>;

    #[inline]
    fn next(&mut self) -> Option<UserRecord<'a>> {
        match &mut self.state {
            State::Plain(record) => record.take(),
            State::Aggregate {
                aggregate,
                records,
                remaining,
                next,
                policy,
            } => {
                if *remaining == 0 {
                    return None;
                }
                let raw = records.next()?;
                let resolved = resolve(aggregate, &raw, *policy)?;
                *remaining -= 1;
                let sub_sequence_number = *next;
                *next += 1;
                Some(UserRecord {
                    partition_key: resolved.0,
                    explicit_hash_key: resolved
                        .1
                        .and_then(|j| aggregate.explicit_hash_keys().get(j).copied()),
                    data: raw.data,
                    sub_sequence_number,
                    aggregated: true,
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

/// The value of an explicit hash key as KCL reads it (Java's lossy UTF-8, then
/// `new BigInteger`); for the plain decimal keys the strict parse accepts, the same value.
fn explicit_hash_key_value(text: &[u8]) -> BigIntegerParse {
    java::parse_big_integer(&java::utf8_lossy(text))
}

/// Resolves a record's indices: (partition key, explicit hash key table index).
/// `None` when an index is outside its table. KCL casts indices to a 32-bit int first.
#[inline(always)]
fn resolve<'a>(
    aggregate: &Aggregate<'a>,
    raw: &RawRecord<'a>,
    policy: Policy,
) -> Option<(&'a [u8], Option<usize>)> {
    let index = |value: u64| -> Option<usize> {
        match policy {
            Policy::Kcl => kcl_index(value),
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
/// [`deaggregate_batch`] does the same for many records, hashing them side by side.
pub fn deaggregate<'a>(
    data: &'a [u8],
    partition_key: &'a [u8],
    options: &Options,
) -> Result<Deaggregated<'a>, DecodeError> {
    match frame(data, options) {
        Framed::Plain(reason) => Ok(Deaggregated::plain(data, partition_key, reason)),
        Framed::Failed(e) => Err(e),
        Framed::Body { protobuf, digest } => {
            let md5_matches = !options.verify_md5 || crate::md5(protobuf) == *digest;
            after_md5(data, partition_key, protobuf, md5_matches, options)
        }
    }
}

/// [`deaggregate`] for each `(data, partition_key)` of `inputs`, in input order, with the
/// MD5 of every aggregate of the batch computed in one multi-lane call
/// ([`crate::md5_many`]): the same records, verdicts and errors as one call per input.
///
/// Consumers get Kinesis records in batches (a GetRecords page, a Lambda event); hashing
/// them side by side in SIMD lanes is what lifts verified decoding past the speed of one
/// MD5 at a time. The results borrow from the inputs; only the result vector and the
/// list of bodies to hash are allocated.
///
/// ```
/// use kpl_codec::{deaggregate, deaggregate_batch, Aggregator, AggregatorConfig, InputRecord, Options};
///
/// let config = AggregatorConfig { max_count: 2, ..AggregatorConfig::default() };
/// let mut aggregator = Aggregator::new(config)?;
/// let mut records = Vec::new();
/// for key in ["k1", "k2", "k3", "k4"] {
///     records.extend(aggregator.add(InputRecord::new(key, key.as_bytes()))?);
/// }
/// records.extend(aggregator.drain());
/// let mut inputs: Vec<(&[u8], &[u8])> =
///     records.iter().map(|r| (&r.data[..], r.partition_key.as_bytes())).collect();
/// inputs.push((b"plain bytes", b"pk"));
///
/// let results = deaggregate_batch(&inputs, &Options::strict());
/// assert_eq!(results.len(), 3); // two aggregates and a plain record
/// for ((data, key), batch) in inputs.iter().zip(results) {
///     let one = deaggregate(data, key, &Options::strict());
///     assert_eq!(batch?.collect::<Vec<_>>(), one?.collect::<Vec<_>>());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn deaggregate_batch<'a>(
    inputs: &[(&'a [u8], &'a [u8])],
    options: &Options,
) -> Vec<Result<Deaggregated<'a>, DecodeError>> {
    let framed: Vec<Framed<'a>> = inputs
        .iter()
        .map(|&(data, _)| frame(data, options))
        .collect();
    let bodies: Vec<&[u8]> = if options.verify_md5 {
        framed
            .iter()
            .filter_map(|framed| match framed {
                Framed::Body { protobuf, .. } => Some(*protobuf),
                Framed::Plain(_) | Framed::Failed(_) => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut digests = alloc::vec![[0u8; crate::DIGEST_LEN]; bodies.len()];
    crate::md5_many(&bodies, &mut digests);
    let mut computed = digests.iter();
    framed
        .into_iter()
        .zip(inputs)
        .map(|(framed, &(data, partition_key))| match framed {
            Framed::Plain(reason) => Ok(Deaggregated::plain(data, partition_key, reason)),
            Framed::Failed(e) => Err(e),
            Framed::Body { protobuf, digest } => {
                let md5_matches = !options.verify_md5 || computed.next() == Some(digest);
                after_md5(data, partition_key, protobuf, md5_matches, options)
            }
        })
        .collect()
}

/// A Kinesis record up to its MD5 check: decided already (plain, or too short for the
/// strict policy), or a framed protobuf with its stored digest.
enum Framed<'a> {
    Plain(PlainReason),
    Failed(DecodeError),
    Body {
        protobuf: &'a [u8],
        digest: &'a [u8; crate::DIGEST_LEN],
    },
}

/// Everything [`deaggregate`] decides before the MD5 check.
fn frame<'a>(data: &'a [u8], options: &Options) -> Framed<'a> {
    match Frame::split(data) {
        Frame::NoMagic => Framed::Plain(PlainReason::NoMagic),
        Frame::TooShort if options.policy == Policy::Strict => {
            Framed::Failed(DecodeError::TooShort { offset: 4 })
        }
        Frame::TooShort => Framed::Plain(PlainReason::TooShort),
        Frame::Framed { protobuf, digest } => Framed::Body { protobuf, digest },
    }
}

/// Everything [`deaggregate`] decides after the MD5 check of a framed record:
/// `md5_matches` is whether the computed digest equals the stored one (or the check is
/// off).
fn after_md5<'a>(
    data: &'a [u8],
    partition_key: &'a [u8],
    protobuf: &'a [u8],
    md5_matches: bool,
    options: &Options,
) -> Result<Deaggregated<'a>, DecodeError> {
    let strict = options.policy == Policy::Strict;
    if !md5_matches {
        if strict {
            return Err(DecodeError::Md5Mismatch {
                offset: data.len() - crate::DIGEST_LEN,
            });
        }
        return Ok(Deaggregated::plain(
            data,
            partition_key,
            PlainReason::Md5Mismatch,
        ));
    }
    let dialect = if strict {
        Dialect::Strict
    } else {
        Dialect::Java
    };
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
    let (emitted, dropped) = plan(&aggregate, options)?;
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
            policy: options.policy,
        },
    })
}

/// Decides how many records are emitted, and why the rest are not (KCL), or finds the
/// first index or range defect (strict).
fn plan(
    aggregate: &Aggregate<'_>,
    options: &Options,
) -> Result<(usize, Option<DecodeError>), DecodeError> {
    let strict = options.policy == Policy::Strict;
    let range = options.shard_range;
    // The common case needs no pass over the records: every index inside its table (so
    // the 32-bit cast changes nothing), every explicit hash key plain decimal digits in
    // range (checked by the strict parse already), and no shard range to check.
    if range.is_none()
        && aggregate.indices_in_range()
        && (strict
            || aggregate
                .explicit_hash_keys()
                .iter()
                .all(|k| is_decimal_hash_key(k)))
    {
        return Ok((aggregate.record_count(), None));
    }
    let explicit_hash_keys: Vec<BigIntegerParse> = aggregate
        .explicit_hash_keys()
        .iter()
        .map(|key| explicit_hash_key_value(key))
        .collect();
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
        Policy::Kcl => kcl_index(raw.partition_key_index).unwrap_or(usize::MAX),
        Policy::Strict => usize::try_from(raw.partition_key_index).unwrap_or(usize::MAX),
    };
    if let Some(Some(v)) = cache.get(slot) {
        return *v;
    }
    let v = kcl_hash_key(pk);
    if let Some(entry) = cache.get_mut(slot) {
        *entry = Some(v);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_key::hash_key;
    use alloc::vec;

    /// Frames a hand-written protobuf: magic, bytes, MD5.
    fn framed(protobuf: &[u8]) -> Vec<u8> {
        let mut out = crate::MAGIC.to_vec();
        out.extend_from_slice(protobuf);
        out.extend_from_slice(&crate::md5(protobuf));
        out
    }

    fn data_of<'a>(d: Deaggregated<'a>) -> Vec<&'a [u8]> {
        d.map(|r| r.data).collect()
    }

    /// pk table ["a"], then records with pk indices `indices` and data "0", "1", ...
    fn with_pk_indices(indices: &[&[u8]]) -> Vec<u8> {
        let mut pb = vec![0x0A, 0x01, b'a'];
        for (i, index) in indices.iter().enumerate() {
            let body_len = 1 + index.len() + 3;
            pb.extend_from_slice(&[0x1A, body_len as u8, 0x08]);
            pb.extend_from_slice(index);
            pb.extend_from_slice(&[0x1A, 0x01, b'0' + i as u8]);
        }
        framed(&pb)
    }

    #[test]
    fn kcl_keeps_records_before_a_bad_index_and_drops_the_rest() {
        let data = with_pk_indices(&[&[0x00], &[0x05], &[0x00]]);
        let kcl = deaggregate(&data, b"", &Options::kcl()).unwrap();
        // offsets: magic 4 + pk entry 3 = 7 for record 0; each record is 7 bytes.
        let bad = DecodeError::PartitionKeyIndexOutOfRange {
            offset: 14,
            index: 5,
        };
        assert_eq!(
            kcl.verdict(),
            Verdict::Aggregated {
                records: 3,
                emitted: 1,
                dropped: Some(bad)
            }
        );
        assert_eq!(data_of(kcl), vec![&b"0"[..]]);
        assert_eq!(deaggregate(&data, b"", &Options::strict()).err(), Some(bad));
    }

    #[test]
    fn kcl_casts_indices_to_32_bit_ints() {
        // 2^32 resolves to entry 0; 2^31 is a negative int, out of range.
        let two_32: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x10];
        let two_31: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x08];
        let data = with_pk_indices(&[two_32, two_31]);
        let kcl: Vec<_> = deaggregate(&data, b"", &Options::kcl()).unwrap().collect();
        assert_eq!(kcl.len(), 1);
        assert_eq!(kcl[0].partition_key, b"a");
        assert!(matches!(
            deaggregate(&data, b"", &Options::strict()),
            Err(DecodeError::PartitionKeyIndexOutOfRange {
                index: 4294967296,
                ..
            })
        ));
    }

    #[test]
    fn explicit_hash_key_comes_from_presence_not_from_index_zero() {
        // pk ["k"], ehk ["5"], record 0 without ehk index, record 1 with index 0.
        let pb = [
            0x0A, 0x01, b'k', 0x12, 0x01, b'5', 0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'x', 0x1A,
            0x07, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x01, b'y',
        ];
        let data = framed(&pb);
        for options in [Options::kcl(), Options::strict()] {
            let records: Vec<_> = deaggregate(&data, b"", &options).unwrap().collect();
            assert_eq!(records[0].explicit_hash_key, None);
            assert_eq!(records[0].hash_key(), hash_key(b"k"));
            assert_eq!(records[1].explicit_hash_key, Some(&b"5"[..]));
            assert_eq!(records[1].hash_key(), 5);
        }
    }

    #[test]
    fn hash_range_filter_is_all_or_nothing() {
        // ehk ["10", "20"]; records with ehk 10 then 20.
        let pb = [
            0x0A, 0x01, b'k', 0x12, 0x02, b'1', b'0', 0x12, 0x02, b'2', b'0', 0x1A, 0x07, 0x08,
            0x00, 0x10, 0x00, 0x1A, 0x01, b'x', 0x1A, 0x07, 0x08, 0x00, 0x10, 0x01, 0x1A, 0x01,
            b'y',
        ];
        let data = framed(&pb);
        let inside = Options::kcl().with_shard_range(HashRange::new(10, 20));
        assert_eq!(deaggregate(&data, b"", &inside).unwrap().count(), 2);
        let narrow = Options::kcl().with_shard_range(HashRange::new(0, 15));
        let d = deaggregate(&data, b"", &narrow).unwrap();
        assert!(matches!(
            d.verdict(),
            Verdict::Aggregated {
                emitted: 0,
                dropped: Some(DecodeError::OutsideShardRange { offset: 24 }),
                ..
            }
        ));
        assert_eq!(d.count(), 0);
        let strict = Options::strict().with_shard_range(HashRange::new(0, 15));
        assert_eq!(
            deaggregate(&data, b"", &strict).err(),
            Some(DecodeError::OutsideShardRange { offset: 24 })
        );
    }

    #[test]
    fn kcl_explicit_hash_keys_follow_java_big_integer() {
        // ehk table [X]; records: pk-only, then one using ehk 0.
        let with_ehk = |ehk: &[u8]| {
            let mut pb = vec![0x0A, 0x01, b'k', 0x12, ehk.len() as u8];
            pb.extend_from_slice(ehk);
            pb.extend_from_slice(&[0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'x']);
            pb.extend_from_slice(&[0x1A, 0x07, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x01, b'y']);
            framed(&pb)
        };
        let count = |ehk: &[u8]| {
            deaggregate(&with_ehk(ehk), b"", &Options::kcl())
                .unwrap()
                .count()
        };
        assert_eq!(count(b"+0042"), 2); // leading sign and zeros are fine for BigInteger
        assert_eq!(count(b"abc"), 1); // unparseable: keep what was emitted, drop the rest
        assert_eq!(count(b"-1"), 0); // parses, but outside [0, 2^128-1]: drop everything
        assert!(deaggregate(&with_ehk(b"+0042"), b"", &Options::strict()).is_err());
    }

    #[test]
    fn zero_record_aggregate_yields_nothing() {
        let data = framed(&[0x0A, 0x01, b'k']);
        for options in [Options::kcl(), Options::strict()] {
            let d = deaggregate(&data, b"", &options).unwrap();
            assert_eq!(
                d.verdict(),
                Verdict::Aggregated {
                    records: 0,
                    emitted: 0,
                    dropped: None
                }
            );
            assert_eq!(d.count(), 0);
        }
    }

    #[test]
    fn md5_mismatch_passes_through_or_fails_or_is_ignored() {
        let mut data = framed(&[0x0A, 0x01, b'k', 0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00]);
        let last = data.len() - 1;
        data[last] ^= 1;
        let kcl: Vec<_> = deaggregate(&data, b"outer", &Options::kcl())
            .unwrap()
            .collect();
        assert_eq!(kcl.len(), 1);
        assert!(!kcl[0].aggregated);
        assert_eq!(
            (kcl[0].partition_key, kcl[0].data),
            (&b"outer"[..], &data[..])
        );
        assert_eq!(
            deaggregate(&data, b"outer", &Options::strict()).err(),
            Some(DecodeError::Md5Mismatch { offset: 13 })
        );
        let unchecked = Options::strict().without_md5_check();
        assert_eq!(deaggregate(&data, b"outer", &unchecked).unwrap().count(), 1);
    }

    #[test]
    fn invalid_utf8_keys_hash_like_java() {
        // ED A0 80 (an encoded surrogate) becomes ONE U+FFFD in Java, so the hash is the
        // MD5 of EF BF BD.
        let data = framed(&[
            0x0A, 0x03, 0xED, 0xA0, 0x80, 0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00, 0x1A, 0x04, 0x08,
            0x00, 0x1A, 0x00,
        ]);
        let records: Vec<_> = deaggregate(&data, b"", &Options::kcl()).unwrap().collect();
        assert_eq!(records[0].partition_key, &[0xED, 0xA0, 0x80]);
        assert!(records[0].partition_key_str().is_err());
        assert_eq!(records[0].hash_key(), hash_key("\u{FFFD}".as_bytes()));
        assert_eq!(
            deaggregate(&data, b"", &Options::strict()).err(),
            Some(DecodeError::InvalidUtf8 { offset: 4 })
        );
    }

    #[test]
    fn returned_slices_borrow_from_the_input() {
        let data = framed(&[0x0A, 0x01, b'k', 0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'x']);
        let record = deaggregate(&data, b"", &Options::strict())
            .unwrap()
            .next()
            .unwrap();
        let range = data.as_ptr_range();
        assert!(range.contains(&record.data.as_ptr()));
        assert!(range.contains(&record.partition_key.as_ptr()));
    }
}
