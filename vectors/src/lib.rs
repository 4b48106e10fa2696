//! Golden test vectors for the KPL Aggregated Record Format.
//!
//! The corpus under `corpus/` is written by `vectors/derive/derive.py`, an independent
//! derivation from the format specification (never by running `kpl-codec`). This crate
//! only loads it: every `corpus/**/*.json` file (format id `kpl-vector/1`, described in
//! `vectors/FORMAT.md`) becomes a [`Vector`], with binary fields base64-decoded and
//! 128-bit hash keys parsed from decimal strings.
//!
//! ```no_run
//! for v in kpl_vectors::load_all().unwrap() {
//!     println!("{}: {}", v.name, v.description);
//! }
//! ```
#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// The format id every vector file carries.
pub const FORMAT_ID: &str = "kpl-vector/1";

/// Default `AggregationMaxSize` (bytes, counting `20 + N`).
pub const DEFAULT_MAX_SIZE: u64 = 51_200;
/// Default `AggregationMaxCount`.
pub const DEFAULT_MAX_COUNT: u64 = 4_294_967_295;
/// Default Kinesis record size limit (data plus partition key), 1 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: u64 = 1_048_576;

/// The `corpus/` directory of this crate.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Loads every `corpus/**/*.json` vector, sorted by name.
pub fn load_all() -> Result<Vec<Vector>, LoadError> {
    load_dir(&corpus_dir())
}

/// The `captured/` directory of this crate: vectors captured from real peers by the
/// harnesses in `capture/` (never edited by hand).
pub fn captured_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captured")
}

/// The folder of `captured/` that holds decoders' answers to the decode vectors
/// (`kpl-decoder-capture/1` files, see `FORMAT.md`), not vectors.
pub const DECODERS_DIR: &str = "decoders";

/// Loads every captured vector, named `captured/<peer>/<scenario>`, sorted by name
/// (every folder of `captured/` but [`DECODERS_DIR`]).
pub fn load_captured() -> Result<Vec<Vector>, LoadError> {
    let dir = captured_dir();
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| LoadError::new(&dir, format!("cannot read directory: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| LoadError::new(&dir, format!("cannot read directory: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(peer) = name.to_str() else {
            return Err(LoadError::new(&path, "file name is not UTF-8"));
        };
        if peer == DECODERS_DIR || !path.is_dir() {
            continue;
        }
        for mut v in load_dir(&path)? {
            v.name = format!("captured/{peer}/{}", v.name);
            out.push(v);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Loads every `**/*.json` vector below `root`, sorted by name (the path below `root`
/// without `.json`).
pub fn load_dir(root: &Path) -> Result<Vec<Vector>, LoadError> {
    let mut files = Vec::new();
    collect_json(root, root, &mut files)?;
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for (name, path) in files {
        out.push(load_file(&path, name)?);
    }
    Ok(out)
}

fn collect_json(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LoadError::new(dir, format!("cannot read directory: {e}")))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| LoadError::new(dir, format!("cannot read directory: {e}")))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| LoadError::new(&path, format!("cannot stat: {e}")))?;
        if ft.is_dir() {
            collect_json(root, &path, out)?;
        } else if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| LoadError::new(&path, "outside the corpus"))?;
            let mut parts = Vec::new();
            for c in rel.with_extension("").components() {
                match c.as_os_str().to_str() {
                    Some(s) => parts.push(s.to_owned()),
                    None => return Err(LoadError::new(&path, "file name is not UTF-8")),
                }
            }
            out.push((parts.join("/"), path));
        }
    }
    Ok(())
}

/// Loads one vector file; `name` becomes [`Vector::name`].
pub fn load_file(path: &Path, name: String) -> Result<Vector, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::new(path, format!("cannot read: {e}")))?;
    let raw: RawVector = serde_json::from_str(&text)
        .map_err(|e| LoadError::new(path, format!("invalid vector JSON: {e}")))?;
    convert(raw, name).map_err(|m| LoadError::new(path, m))
}

/// A vector file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl LoadError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        LoadError {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for LoadError {}

/// One test vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vector {
    /// Path under `corpus/` without `.json`, `/`-separated, e.g. `decode/kcl-zero-records`.
    pub name: String,
    /// What the vector checks and which peer bug (if any) it targets.
    pub description: String,
    /// References into format.md, e.g. `format.md 4: keep-then-drop`.
    pub rules: Vec<String>,
    /// Where the expected values come from.
    pub provenance: Provenance,
    /// The input and expected output.
    pub case: Case,
}

impl Vector {
    /// The category: the first path component of the name (`encode`, `decode`, `malformed`, `hash_key`).
    pub fn category(&self) -> &str {
        self.name.split('/').next().unwrap_or("")
    }
}

/// Where a vector's expected values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// `derived` (by derive.py from format.md), or a peer name for captured bytes.
    pub source: String,
    /// How the expectation was produced.
    pub method: String,
    /// A fixed date string.
    pub date: String,
}

/// The kinds of vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Case {
    /// User records in, Kinesis records (or an error) out.
    Encode(EncodeCase),
    /// One Kinesis record in, user records under the KCL and strict policies out.
    Decode(DecodeCase),
    /// Partition key bytes in, MD5 hash key out.
    HashKey(HashKeyCase),
    /// Explicit hash key text in, canonical decimal (or an error) out.
    ExplicitHashKey(ExplicitHashKeyCase),
}

/// Encoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeConfig {
    /// `AggregationMaxSize` (default 51,200).
    pub max_size: u64,
    /// `AggregationMaxCount` (default 4,294,967,295).
    pub max_count: u64,
    /// Kinesis record limit, data plus partition key (default 1,048,576).
    pub max_record_size: u64,
}

impl Default for EncodeConfig {
    fn default() -> Self {
        EncodeConfig {
            max_size: DEFAULT_MAX_SIZE,
            max_count: DEFAULT_MAX_COUNT,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }
    }
}

/// A user record given to the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// The partition key.
    pub partition_key: String,
    /// The explicit hash key as the user typed it (not necessarily canonical).
    pub explicit_hash_key: Option<String>,
    /// The data.
    pub data: Vec<u8>,
}

/// A Kinesis record the encoder must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// `a` for an aggregate, the user's key for a lone record.
    pub partition_key: String,
    /// Canonical decimal explicit hash key (always set).
    pub explicit_hash_key: String,
    /// The framed aggregate, or the user's raw bytes for a lone record.
    pub data: Vec<u8>,
    /// Number of user records carried.
    pub user_records: u64,
}

/// What an encode vector expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeExpected {
    /// The Kinesis records, in order.
    Records(Vec<OutputRecord>),
    /// An error for the input record at index `record` (the last input record).
    Error {
        /// Error kind, e.g. `PartitionKeyTooLong`.
        kind: String,
        /// Index of the first rejected input record.
        record: usize,
    },
}

/// An encode vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeCase {
    /// Encoder configuration (defaults filled in).
    pub config: EncodeConfig,
    /// The user records, added in order.
    pub records: Vec<InputRecord>,
    /// The expected result.
    pub expected: EncodeExpected,
}

/// An inclusive hash-key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRange {
    /// Starting hash key (inclusive).
    pub start: u128,
    /// Ending hash key (inclusive).
    pub end: u128,
}

/// A user record a decoder must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedUserRecord {
    /// The partition key bytes (table bytes as stored, or the outer key for a plain record).
    pub partition_key: Vec<u8>,
    /// The explicit hash key table string, or `None` when the record has none.
    pub explicit_hash_key: Option<String>,
    /// The data.
    pub data: Vec<u8>,
    /// Sub-sequence number.
    pub sub_sequence_number: u64,
    /// Whether it came out of an aggregate.
    pub aggregated: bool,
    /// The effective hash key.
    pub hash_key: u128,
}

/// What a decode policy must yield.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeExpected {
    /// The user records, in order (possibly none).
    Records(Vec<ExpectedUserRecord>),
    /// A strict-policy error (never used for the KCL policy).
    Error {
        /// Error kind, e.g. `Truncated`.
        kind: String,
        /// Byte offset from the start of the Kinesis record data.
        offset: usize,
    },
}

/// A decode vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeCase {
    /// The Kinesis record's data.
    pub data: Vec<u8>,
    /// The Kinesis record's (outer) partition key.
    pub partition_key: String,
    /// Whether the MD5 is checked (default true).
    pub verify_md5: bool,
    /// The shard's hash-key range, when known (KCL uses `[0, 2^128-1]` otherwise).
    pub shard_range: Option<ShardRange>,
    /// The KCL (AggregatorUtil) policy's result.
    pub kcl: DecodeExpected,
    /// The strict policy's result.
    pub strict: DecodeExpected,
}

/// A hash-key vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKeyCase {
    /// The partition key bytes.
    pub partition_key: Vec<u8>,
    /// MD5 of the bytes, unsigned big-endian.
    pub hash_key: u128,
}

/// An explicit-hash-key canonicalisation vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplicitHashKeyCase {
    /// The text as a user would give it.
    pub text: String,
    /// `Ok(canonical decimal)` or `Err(error kind)`.
    pub expected: Result<String, String>,
}

// ---------------------------------------------------------------------------
// Raw JSON shapes
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVector {
    format: String,
    kind: String,
    description: String,
    rules: Vec<String>,
    provenance: RawProvenance,
    input: serde_json::Value,
    expected: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvenance {
    source: String,
    method: String,
    date: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncodeInput {
    #[serde(default)]
    config: RawConfig,
    records: Vec<RawInputRecord>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    max_size: Option<u64>,
    max_count: Option<u64>,
    max_record_size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInputRecord {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncodeExpected {
    kinesis_records: Option<Vec<RawOutputRecord>>,
    error: Option<RawEncodeError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutputRecord {
    partition_key: String,
    explicit_hash_key: String,
    data: String,
    user_records: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncodeError {
    kind: String,
    record: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecodeInput {
    data: String,
    partition_key: String,
    verify_md5: Option<bool>,
    shard_range: Option<RawShardRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShardRange {
    start: String,
    end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecodeExpected {
    kcl: RawPolicy,
    strict: RawPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    records: Option<Vec<RawUserRecord>>,
    error: Option<RawDecodeError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecodeError {
    kind: String,
    offset: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUserRecord {
    partition_key: Option<String>,
    partition_key_b64: Option<String>,
    explicit_hash_key: Option<String>,
    data: String,
    sub_sequence_number: u64,
    aggregated: bool,
    hash_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    partition_key: Option<String>,
    partition_key_b64: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHashKeyExpected {
    hash_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEhkInput {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEhkExpected {
    canonical: Option<String>,
    error: Option<String>,
}

// ---------------------------------------------------------------------------
// Conversion
// ---------------------------------------------------------------------------

fn from_value<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    what: &str,
) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("invalid {what}: {e}"))
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("{what}: invalid base64 {s:?}: {e}"))
}

fn dec_u128(s: &str, what: &str) -> Result<u128, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what}: not a decimal string: {s:?}"));
    }
    s.parse::<u128>().map_err(|e| format!("{what}: {s:?}: {e}"))
}

fn key_bytes(
    text: Option<String>,
    b64_text: Option<String>,
    what: &str,
) -> Result<Vec<u8>, String> {
    match (text, b64_text) {
        (Some(t), None) => Ok(t.into_bytes()),
        (None, Some(b)) => b64(&b, &format!("{what}.partition_key_b64")),
        _ => Err(format!(
            "{what}: exactly one of partition_key and partition_key_b64 is required"
        )),
    }
}

fn convert(raw: RawVector, name: String) -> Result<Vector, String> {
    if raw.format != FORMAT_ID {
        return Err(format!(
            "unsupported format {:?} (expected {FORMAT_ID:?})",
            raw.format
        ));
    }
    let case = match raw.kind.as_str() {
        "encode" => Case::Encode(convert_encode(raw.input, raw.expected)?),
        "decode" => Case::Decode(convert_decode(raw.input, raw.expected)?),
        "hash_key" => {
            let k: RawKey = from_value(raw.input, "hash_key input")?;
            let e: RawHashKeyExpected = from_value(raw.expected, "hash_key expected")?;
            Case::HashKey(HashKeyCase {
                partition_key: key_bytes(k.partition_key, k.partition_key_b64, "input")?,
                hash_key: dec_u128(&e.hash_key, "expected.hash_key")?,
            })
        }
        "explicit_hash_key" => {
            let i: RawEhkInput = from_value(raw.input, "explicit_hash_key input")?;
            let e: RawEhkExpected = from_value(raw.expected, "explicit_hash_key expected")?;
            let expected = match (e.canonical, e.error) {
                (Some(c), None) => Ok(c),
                (None, Some(k)) => Err(k),
                _ => return Err("expected: exactly one of canonical and error is required".into()),
            };
            Case::ExplicitHashKey(ExplicitHashKeyCase {
                text: i.text,
                expected,
            })
        }
        other => return Err(format!("unknown kind {other:?}")),
    };
    Ok(Vector {
        name,
        description: raw.description,
        rules: raw.rules,
        provenance: Provenance {
            source: raw.provenance.source,
            method: raw.provenance.method,
            date: raw.provenance.date,
        },
        case,
    })
}

fn convert_encode(
    input: serde_json::Value,
    expected: serde_json::Value,
) -> Result<EncodeCase, String> {
    let i: RawEncodeInput = from_value(input, "encode input")?;
    let e: RawEncodeExpected = from_value(expected, "encode expected")?;
    let defaults = EncodeConfig::default();
    let config = EncodeConfig {
        max_size: i.config.max_size.unwrap_or(defaults.max_size),
        max_count: i.config.max_count.unwrap_or(defaults.max_count),
        max_record_size: i.config.max_record_size.unwrap_or(defaults.max_record_size),
    };
    let records = i
        .records
        .into_iter()
        .enumerate()
        .map(|(n, r)| {
            Ok(InputRecord {
                partition_key: r.partition_key,
                explicit_hash_key: r.explicit_hash_key,
                data: b64(&r.data, &format!("input.records[{n}].data"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let expected = match (e.kinesis_records, e.error) {
        (Some(recs), None) => EncodeExpected::Records(
            recs.into_iter()
                .enumerate()
                .map(|(n, r)| {
                    Ok(OutputRecord {
                        partition_key: r.partition_key,
                        explicit_hash_key: r.explicit_hash_key,
                        data: b64(&r.data, &format!("expected.kinesis_records[{n}].data"))?,
                        user_records: r.user_records,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
        ),
        (None, Some(err)) => {
            if err.record >= records.len() {
                return Err(format!("expected.error.record {} out of range", err.record));
            }
            EncodeExpected::Error {
                kind: err.kind,
                record: err.record,
            }
        }
        _ => return Err("expected: exactly one of kinesis_records and error is required".into()),
    };
    Ok(EncodeCase {
        config,
        records,
        expected,
    })
}

fn convert_policy(p: RawPolicy, what: &str) -> Result<DecodeExpected, String> {
    match (p.records, p.error) {
        (Some(recs), None) => Ok(DecodeExpected::Records(
            recs.into_iter()
                .enumerate()
                .map(|(n, r)| {
                    let w = format!("expected.{what}.records[{n}]");
                    Ok(ExpectedUserRecord {
                        partition_key: key_bytes(r.partition_key, r.partition_key_b64, &w)?,
                        explicit_hash_key: r.explicit_hash_key,
                        data: b64(&r.data, &format!("{w}.data"))?,
                        sub_sequence_number: r.sub_sequence_number,
                        aggregated: r.aggregated,
                        hash_key: dec_u128(&r.hash_key, &format!("{w}.hash_key"))?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
        )),
        (None, Some(e)) => Ok(DecodeExpected::Error {
            kind: e.kind,
            offset: e.offset,
        }),
        _ => Err(format!(
            "expected.{what}: exactly one of records and error is required"
        )),
    }
}

fn convert_decode(
    input: serde_json::Value,
    expected: serde_json::Value,
) -> Result<DecodeCase, String> {
    let i: RawDecodeInput = from_value(input, "decode input")?;
    let e: RawDecodeExpected = from_value(expected, "decode expected")?;
    let shard_range = match i.shard_range {
        None => None,
        Some(r) => Some(ShardRange {
            start: dec_u128(&r.start, "input.shard_range.start")?,
            end: dec_u128(&r.end, "input.shard_range.end")?,
        }),
    };
    let kcl = convert_policy(e.kcl, "kcl")?;
    if matches!(kcl, DecodeExpected::Error { .. }) {
        return Err("expected.kcl: the KCL policy never reports an error".into());
    }
    Ok(DecodeCase {
        data: b64(&i.data, "input.data")?,
        partition_key: i.partition_key,
        verify_md5: i.verify_md5.unwrap_or(true),
        shard_range,
        kcl,
        strict: convert_policy(e.strict, "strict")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn corpus_loads_with_unique_names_and_enough_vectors() {
        let all = load_all().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.len() >= 75, "only {} vectors", all.len());
        let names: HashSet<_> = all.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "duplicate names");
        let mut sorted: Vec<_> = all.iter().map(|v| v.name.clone()).collect();
        sorted.sort();
        assert_eq!(
            sorted,
            all.iter().map(|v| v.name.clone()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_kind_and_category_present() {
        let all = load_all().unwrap();
        let has = |f: &dyn Fn(&Case) -> bool| all.iter().any(|v| f(&v.case));
        assert!(has(&|c| matches!(
            c,
            Case::Encode(EncodeCase {
                expected: EncodeExpected::Records(_),
                ..
            })
        )));
        assert!(has(&|c| matches!(
            c,
            Case::Encode(EncodeCase {
                expected: EncodeExpected::Error { .. },
                ..
            })
        )));
        assert!(has(&|c| matches!(
            c,
            Case::Decode(DecodeCase {
                strict: DecodeExpected::Records(_),
                ..
            })
        )));
        assert!(has(&|c| matches!(
            c,
            Case::Decode(DecodeCase {
                strict: DecodeExpected::Error { .. },
                ..
            })
        )));
        assert!(has(&|c| matches!(c, Case::HashKey(_))));
        assert!(has(&|c| matches!(c, Case::ExplicitHashKey(_))));
        for cat in ["encode", "decode", "malformed", "hash_key"] {
            assert!(all.iter().any(|v| v.category() == cat), "no {cat} vectors");
        }
        for v in &all {
            let ok = matches!(
                (&v.case, v.category()),
                (Case::Encode(_), "encode")
                    | (Case::Decode(_), "decode" | "malformed")
                    | (Case::HashKey(_) | Case::ExplicitHashKey(_), "hash_key")
            );
            assert!(ok, "{} is in the wrong category", v.name);
            assert!(
                !v.rules.is_empty() && !v.description.is_empty(),
                "{}",
                v.name
            );
            assert_eq!(v.provenance.source, "derived", "{}", v.name);
        }
    }

    #[test]
    fn captured_vectors_load_and_say_where_they_come_from() {
        let captured = load_captured().unwrap();
        assert!(!captured.is_empty());
        for v in &captured {
            assert!(v.name.starts_with("captured/"), "{}", v.name);
            assert_eq!(v.provenance.source, "captured", "{}", v.name);
            assert!(v.provenance.method.contains("capture"), "{}", v.name);
        }
    }

    #[test]
    fn anchors_are_present() {
        let all = load_all().unwrap();
        let hk: Vec<_> = all
            .iter()
            .filter_map(|v| match &v.case {
                Case::HashKey(h) => Some(h),
                _ => None,
            })
            .collect();
        assert!(hk.iter().any(
            |h| h.partition_key == b"abcd" && h.hash_key == 0xE2FC714C4727EE9395F324CD2E7F331F
        ));
        assert!(hk.iter().any(
            |h| h.partition_key == b"a" && h.hash_key == 16955237001963240173058271559858726497
        ));
        let worked = all
            .iter()
            .find(|v| v.name == "encode/worked-example")
            .expect("worked example");
        match &worked.case {
            Case::Encode(EncodeCase {
                expected: EncodeExpected::Records(r),
                ..
            }) => {
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].data.len(), 54);
                assert_eq!(&r[0].data[..4], &[0xF3, 0x89, 0x9A, 0xC2]);
                assert_eq!(r[0].partition_key, "a");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_and_errors() {
        let dir = std::env::temp_dir().join(format!("kpl-vectors-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("v.json");
        std::fs::write(
            &p,
            r#"{"format":"kpl-vector/1","kind":"encode","description":"d","rules":["format.md 2.6"],
               "provenance":{"source":"derived","method":"m","date":"2026-11-26"},
               "input":{"records":[{"partition_key":"k","data":"eA=="}]},
               "expected":{"kinesis_records":[{"partition_key":"k","explicit_hash_key":"1","data":"eA==","user_records":1}]}}"#,
        )
        .unwrap();
        let v = load_file(&p, "encode/x".into()).unwrap();
        match v.case {
            Case::Encode(c) => {
                assert_eq!(c.config, EncodeConfig::default());
                assert_eq!(c.records[0].data, b"x");
                assert_eq!(c.records[0].explicit_hash_key, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        std::fs::write(
            &p,
            r#"{"format":"kpl-vector/1","kind":"decode","description":"d","rules":["r"],
               "provenance":{"source":"derived","method":"m","date":"2026-11-26"},
               "input":{"data":"eA==","partition_key":"k"},
               "expected":{"kcl":{"records":[]},"strict":{"records":[{"partition_key":"k","explicit_hash_key":null,
               "data":"eA==","sub_sequence_number":0,"aggregated":false,"hash_key":"-1"}]}}}"#,
        )
        .unwrap();
        let err = load_file(&p, "decode/x".into()).unwrap_err();
        assert!(
            err.to_string().contains("v.json") && err.message.contains("hash_key"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
