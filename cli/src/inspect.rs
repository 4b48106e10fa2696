//! `kpl inspect`: a human-readable dump of Kinesis records, for the person debugging why
//! a consumer sees garbage.

use std::fmt::Write as _;
use std::io::{Read, Write};

use kpl_codec::view::{kcl_index, Aggregate, Dialect, Frame, PROTOBUF_OFFSET};
use kpl_codec::{
    deaggregate, md5, DecodeError, HashRange, Options, PlainReason, Verdict, DIGEST_LEN, MAGIC,
};

use crate::args::InspectArgs;
use crate::error::Stop;
use crate::input::{read_kinesis_records, KinesisInput};

/// How many bytes of data the previews show.
pub const PREVIEW_LEN: usize = 16;

/// Runs `kpl inspect`.
pub fn run(args: &InspectArgs, stdin: &mut dyn Read, out: &mut dyn Write) -> Result<(), Stop> {
    let records = read_kinesis_records(&args.source, stdin)?;
    if records.is_empty() {
        writeln!(out, "no Kinesis records in the input")?;
    }
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        out.write_all(inspect_record(index, record, args.source.shard_range).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("{n} {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

/// A key for people: quoted text, escaped; bytes that are not UTF-8 shown as `\xNN`.
pub fn show_key(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("\"{}\" (not valid UTF-8)", bytes.escape_ascii()),
    }
}

/// Hex of the first [`PREVIEW_LEN`] bytes, then the same bytes as escaped text.
pub fn preview(data: &[u8]) -> String {
    if data.is_empty() {
        return "(empty)".to_owned();
    }
    let shown = &data[..data.len().min(PREVIEW_LEN)];
    let more = if data.len() > PREVIEW_LEN { " ..." } else { "" };
    format!(
        "{}{more} | \"{}\"{more}",
        spaced_hex(shown),
        shown.escape_ascii()
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spaced_hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

fn defect(error: &DecodeError) -> String {
    format!("{} at byte {}: {error}", error.kind(), error.offset())
}

/// Where a record's index points: the entry's text, or that it is outside the table (and
/// what KCL, which casts indices to a Java int, reads instead).
fn entry(table: &[&[u8]], index: u64) -> String {
    match usize::try_from(index).ok().and_then(|i| table.get(i)) {
        Some(key) => format!("{index} = {}", show_key(key)),
        None => match kcl_index(index).and_then(|i| table.get(i).map(|key| (i, key))) {
            Some((i, key)) => format!(
                "{index} (OUTSIDE the table of {}; KCL casts it to int {i} = {})",
                table.len(),
                show_key(key)
            ),
            None => format!("{index} (OUTSIDE the table of {})", table.len()),
        },
    }
}

/// The full dump of one Kinesis record.
pub fn inspect_record(index: usize, record: &KinesisInput, range: Option<HashRange>) -> String {
    let mut s = String::new();
    let data = record.data.as_slice();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "Kinesis {}", record.label(index));
    let _ = writeln!(
        s,
        "  partition key: {}",
        show_key(record.partition_key.as_bytes())
    );
    let _ = writeln!(s, "  length: {}", count(data.len(), "byte"));
    if let Some(range) = range {
        let _ = writeln!(s, "  shard range: {}-{}", range.start, range.end);
    }
    describe_frame(&mut s, data);
    describe_verdicts(&mut s, record, range);
    s
}

fn describe_frame(s: &mut String, data: &[u8]) {
    match Frame::split(data) {
        Frame::NoMagic => {
            let start = &data[..data.len().min(MAGIC.len())];
            let why = if data.len() < MAGIC.len() {
                format!("shorter than the magic's {} bytes", MAGIC.len())
            } else {
                format!(
                    "starts {} instead of {}",
                    spaced_hex(start),
                    spaced_hex(&MAGIC)
                )
            };
            let _ = writeln!(s, "  magic: absent ({why})");
            let _ = writeln!(s, "  framing: none, a plain record");
            let _ = writeln!(s, "  data: {}", preview(data));
        }
        Frame::TooShort => {
            let _ = writeln!(s, "  magic: present ({})", spaced_hex(&MAGIC));
            let _ = writeln!(
                s,
                "  framing: broken: only {} after the magic, at least {} needed for a protobuf and its MD5",
                count(data.len() - MAGIC.len(), "byte"),
                DIGEST_LEN + 1
            );
            let _ = writeln!(s, "  data: {}", preview(data));
        }
        Frame::Framed { protobuf, digest } => {
            let digest_at = data.len() - DIGEST_LEN;
            let _ = writeln!(s, "  magic: present ({})", spaced_hex(&MAGIC));
            let _ = writeln!(
                s,
                "  framing: magic (bytes 0..4) + protobuf ({}, bytes {PROTOBUF_OFFSET}..{digest_at}) + MD5 (16 bytes, bytes {digest_at}..{})",
                count(protobuf.len(), "byte"),
                data.len()
            );
            let computed = md5(protobuf);
            let _ = writeln!(s, "  MD5 stored:   {}", hex(digest));
            let verdict = if computed == *digest {
                "match"
            } else {
                "MISMATCH"
            };
            let _ = writeln!(s, "  MD5 computed: {} ({verdict})", hex(&computed));
            describe_aggregate(s, protobuf);
        }
    }
}

fn describe_aggregate(s: &mut String, protobuf: &[u8]) {
    let aggregate = match Aggregate::parse(protobuf, Dialect::Java) {
        Ok(aggregate) => aggregate,
        Err(e) => {
            let _ = writeln!(
                s,
                "  protobuf: does not parse, even as protobuf-java reads it: {}",
                defect(&e)
            );
            return;
        }
    };
    let partition_keys = aggregate.partition_keys();
    let explicit_hash_keys = aggregate.explicit_hash_keys();
    let _ = writeln!(
        s,
        "  protobuf: parses as protobuf-java reads it: {}, {}, {}",
        count(partition_keys.len(), "partition key"),
        count(explicit_hash_keys.len(), "explicit hash key"),
        count(aggregate.record_count(), "record")
    );
    for (name, table) in [
        ("partition key table", partition_keys),
        ("explicit hash key table", explicit_hash_keys),
    ] {
        let _ = writeln!(s, "  {name} ({}):", entries(table.len()));
        for (i, key) in table.iter().enumerate() {
            let _ = writeln!(
                s,
                "    [{i}] at byte {}, {}: {}",
                aggregate.offset_of(key),
                count(key.len(), "byte"),
                show_key(key)
            );
        }
    }
    let _ = writeln!(s, "  records ({}):", aggregate.record_count());
    for (i, raw) in aggregate.records().enumerate() {
        let ehk = match raw.explicit_hash_key_index {
            Some(j) => entry(explicit_hash_keys, j),
            None => "none".to_owned(),
        };
        let _ = writeln!(
            s,
            "    #{i} at byte {}, {}: pk index {}, ehk index {}",
            raw.offset,
            count(raw.size, "byte"),
            entry(partition_keys, raw.partition_key_index),
            ehk
        );
        let _ = writeln!(
            s,
            "       data at byte {}, {}: {}",
            raw.data_offset,
            count(raw.data.len(), "byte"),
            preview(raw.data)
        );
    }
}

fn kcl_verdict(verdict: Verdict) -> String {
    match verdict {
        Verdict::Plain(reason) => {
            let why = match reason {
                PlainReason::NoMagic => "no magic".to_owned(),
                PlainReason::TooShort => "magic followed by 16 bytes or fewer".to_owned(),
                PlainReason::Md5Mismatch => "the MD5 does not match".to_owned(),
                PlainReason::Unparseable(e) => {
                    format!("the protobuf does not parse: {}", defect(&e))
                }
            };
            format!("passed through as one plain record ({why}): the application sees these bytes as they are")
        }
        Verdict::Aggregated {
            records,
            emitted,
            dropped: None,
        } => format!(
            "aggregated: {} (of {})",
            count(emitted, "user record"),
            count(records, "record")
        ),
        Verdict::Aggregated {
            records,
            emitted,
            dropped: Some(e),
        } => {
            let what = if emitted == 0 && matches!(e, DecodeError::OutsideShardRange { .. }) {
                "the whole aggregate is dropped".to_owned()
            } else {
                format!(
                    "{} kept, the other {} dropped",
                    count(emitted, "user record"),
                    records - emitted
                )
            };
            format!(
                "aggregated, {} in it, {what}: {}",
                count(records, "record"),
                defect(&e)
            )
        }
    }
}

fn describe_verdicts(s: &mut String, record: &KinesisInput, range: Option<HashRange>) {
    let with_range = |options: Options| match range {
        Some(range) => options.with_shard_range(range),
        None => options,
    };
    let pk = record.partition_key.as_bytes();
    let kcl = deaggregate(&record.data, pk, &with_range(Options::kcl()));
    let strict = deaggregate(&record.data, pk, &with_range(Options::strict()));
    let _ = writeln!(s, "  verdict:");
    match &kcl {
        Ok(users) => {
            let _ = writeln!(s, "    KCL: {}", kcl_verdict(users.verdict()));
        }
        // KCL never fails; say so if it ever did.
        Err(e) => {
            let _ = writeln!(s, "    KCL: error: {}", defect(e));
        }
    }
    let strict_line = match &strict {
        Ok(users) => match users.verdict() {
            Verdict::Plain(_) => "OK: a plain record (no magic), 1 user record".to_owned(),
            Verdict::Aggregated { emitted, .. } => {
                format!("OK: {}", count(emitted, "user record"))
            }
        },
        Err(e) => format!("error: {}", defect(e)),
    };
    let _ = writeln!(s, "    strict: {strict_line}");
    if let Ok(users) = kcl {
        let _ = writeln!(s, "  user records under KCL ({}):", users.len());
        for user in users {
            let ehk = match user.explicit_hash_key {
                Some(key) => show_key(key),
                None => "none".to_owned(),
            };
            let _ = writeln!(
                s,
                "    {}: pk {}, ehk {ehk}, hash key {}, data {}{}",
                user.sub_sequence_number,
                show_key(user.partition_key),
                user.hash_key(),
                count(user.data.len(), "byte"),
                if user.aggregated { "" } else { " (plain)" }
            );
        }
    }
}
