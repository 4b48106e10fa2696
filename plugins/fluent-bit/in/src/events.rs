//! A user record read from Kinesis as a Fluent Bit event: its data as the record (a JSON
//! object's fields, or `{"data": ...}`), its place in the stream under the metadata key,
//! and its arrival time as the event time.

use std::time::SystemTime;

use kpl_fluent_bit::pack::Packer;
use kpl_kinesis::source::SourceRecord;
use serde_json::Value;

use crate::settings::Format;

/// Appends the event for `record` to `p`.
pub fn pack_event(p: &mut Packer, record: &SourceRecord, format: Format, metadata_key: &str) {
    let time = record.approximate_arrival.unwrap_or_else(SystemTime::now);
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    p.event_header(
        u32::try_from(since.as_secs()).unwrap_or(u32::MAX),
        since.subsec_nanos(),
    );
    let object = match format {
        Format::Json => match serde_json::from_slice::<Value>(&record.data) {
            Ok(Value::Object(map)) if !map.contains_key(metadata_key) => Some(map),
            _ => None,
        },
        Format::Raw => None,
    };
    match object {
        Some(map) => {
            p.map(map.len() + 1);
            for (k, v) in &map {
                p.str(k.as_bytes());
                pack_json(p, v, 0);
            }
        }
        None => {
            p.map(2);
            p.str(b"data");
            p.str(&record.data);
        }
    }
    p.str(metadata_key.as_bytes());
    p.map(if record.defect.is_some() { 6 } else { 5 });
    p.str(b"partition_key");
    p.str(record.partition_key.as_bytes());
    p.str(b"explicit_hash_key");
    match &record.explicit_hash_key {
        Some(k) => p.str(k.as_bytes()),
        None => p.nil(),
    }
    p.str(b"shard_id");
    p.str(record.shard_id.as_bytes());
    p.str(b"sequence_number");
    p.str(record.sequence_number.as_bytes());
    p.str(b"sub_sequence_number");
    p.uint(record.sub_sequence_number);
    if let Some(defect) = &record.defect {
        p.str(b"defect");
        p.str(defect.as_bytes());
    }
}

/// JSON nesting deeper than this is written as its JSON text (serde_json's own parser
/// stops at 128 levels, so this only bounds the recursion here).
const MAX_DEPTH: usize = 128;

fn pack_json(p: &mut Packer, v: &Value, depth: usize) {
    match v {
        Value::Null => p.nil(),
        Value::Bool(b) => p.bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                p.uint(u)
            } else if let Some(i) = n.as_i64() {
                p.int(i)
            } else {
                p.f64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => p.str(s.as_bytes()),
        _ if depth >= MAX_DEPTH => p.str(v.to_string().as_bytes()),
        Value::Array(a) => {
            p.array(a.len());
            for x in a {
                pack_json(p, x, depth + 1);
            }
        }
        Value::Object(o) => {
            p.map(o.len());
            for (k, x) in o {
                p.str(k.as_bytes());
                pack_json(p, x, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpl_fluent_bit::msgpack::{events, Value as Mp};
    use std::sync::Arc;

    fn record(data: &[u8]) -> SourceRecord {
        SourceRecord {
            shard_id: Arc::from("shardId-000000000001"),
            sequence_number: Arc::from("4959"),
            sub_sequence_number: 3,
            partition_key: "pk".into(),
            explicit_hash_key: None,
            data: data.to_vec(),
            aggregated: true,
            approximate_arrival: Some(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_250),
            ),
            defect: None,
        }
    }

    fn field<'a>(m: &'a Mp<'a>, key: &str) -> &'a Mp<'a> {
        let Mp::Map(entries) = m else {
            panic!("not a map")
        };
        &entries
            .iter()
            .find(|(k, _)| *k == Mp::Str(key.as_bytes()))
            .expect(key)
            .1
    }

    #[test]
    fn a_json_object_becomes_the_record_with_the_metadata_beside_it() {
        let mut p = Packer::new();
        pack_event(
            &mut p,
            &record(br#"{"msg":"hi","n":-2,"f":0.5,"a":[1,null]}"#),
            Format::Json,
            "kinesis",
        );
        let e = events(&p.buf).next().unwrap().unwrap();
        assert_eq!((e.seconds, e.nanoseconds), (1_700_000_000, 250_000_000));
        assert_eq!(field(&e.record, "msg"), &Mp::Str(b"hi"));
        assert_eq!(field(&e.record, "n"), &Mp::Int(-2));
        assert_eq!(field(&e.record, "f"), &Mp::F64(0.5));
        let meta = field(&e.record, "kinesis");
        assert_eq!(field(meta, "shard_id"), &Mp::Str(b"shardId-000000000001"));
        assert_eq!(field(meta, "sub_sequence_number"), &Mp::Uint(3));
        assert_eq!(field(meta, "explicit_hash_key"), &Mp::Nil);
    }

    #[test]
    fn a_defective_record_under_strict_carries_its_defect() {
        let mut r = record(b"\xf3\x89\x9a\xc2garbage");
        r.defect = Some("bad MD5 at byte 11".into());
        let mut p = Packer::new();
        pack_event(&mut p, &r, Format::Json, "kinesis");
        let e = events(&p.buf).next().unwrap().unwrap();
        assert_eq!(
            field(&e.record, "data"),
            &Mp::Str(b"\xf3\x89\x9a\xc2garbage")
        );
        assert_eq!(
            field(field(&e.record, "kinesis"), "defect"),
            &Mp::Str(b"bad MD5 at byte 11")
        );
    }

    #[test]
    fn anything_else_is_raw_data() {
        for (data, format) in [
            (&b"plain text"[..], Format::Json),
            (b"[1,2]", Format::Json),
            (br#"{"a":1}"#, Format::Raw),
        ] {
            let mut p = Packer::new();
            pack_event(&mut p, &record(data), format, "meta");
            let e = events(&p.buf).next().unwrap().unwrap();
            assert_eq!(field(&e.record, "data"), &Mp::Str(data));
            assert_eq!(
                field(field(&e.record, "meta"), "partition_key"),
                &Mp::Str(b"pk")
            );
        }
    }
}
