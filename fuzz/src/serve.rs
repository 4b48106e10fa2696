//! `kpl serve`'s request decoders, compiled from the CLI's own source file so that the
//! fuzz build does not pull in the AWS SDK and the HTTP stack.

#[path = "../../cli/src/serve/protocol.rs"]
#[allow(dead_code)]
mod protocol;

use protocol::{decode_put_record, decode_put_records, encode_error, encode_put_records, EntryAnswer, Protocol};

/// Decodes a request body; whatever it is, decoding returns (never panics), a decoded
/// request respects Kinesis's limits, and an error encodes.
pub fn serve_request(input: &[u8]) {
    let Some((&mode, body)) = input.split_first() else {
        return;
    };
    let protocol = if mode & 1 == 1 { Protocol::Cbor } else { Protocol::Json };
    let max = 1 << 20;
    let decoded = if mode & 2 == 2 {
        decode_put_record(protocol, body, max)
    } else {
        decode_put_records(protocol, body, max)
    };
    match decoded {
        Ok(request) => {
            assert!(!request.records.is_empty() && request.records.len() <= protocol::MAX_RECORDS);
            let total: usize = request
                .records
                .iter()
                .map(|r| r.data.len() + r.partition_key.len())
                .sum();
            assert!(total <= protocol::MAX_REQUEST_BYTES);
            for r in &request.records {
                let chars = r.partition_key.chars().count();
                assert!((1..=256).contains(&chars));
                assert!(r.data.len() <= max);
            }
            let answers: Vec<EntryAnswer> = request
                .records
                .iter()
                .map(|_| EntryAnswer::Stored {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: "1".into(),
                })
                .collect();
            assert!(!encode_put_records(protocol, &answers).is_empty());
        }
        Err(e) => {
            assert!(e.status >= 400);
            assert!(!encode_error(protocol, &e).is_empty());
        }
    }
}
