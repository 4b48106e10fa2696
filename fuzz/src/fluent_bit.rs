//! `fluent_bit_chunk`: kpl-fluent-bit on hostile chunks. Input: byte 0 = the pattern's length
//! n, then n bytes of record accessor pattern (lossy UTF-8; also used as a `time_key_format`),
//! then the chunk as `FLBPluginFlushCtx` would get it.

use kpl_fluent_bit::accessor::Accessor;
use kpl_fluent_bit::json::{kinesis_streams_data, kinesis_streams_records, FormatOptions};
use kpl_fluent_bit::msgpack::events;

/// Decodes every event, renders the accessor on each record, formats each event as
/// kinesis_streams would under four option sets. Never panics; events lie in the chunk, in
/// order, without overlap; an error ends the iteration and points inside the chunk; every
/// record sent is a line (ends with `\n`) inside the output; `kinesis_streams_data` agrees
/// with `kinesis_streams_records`.
pub fn fluent_bit_chunk(input: &[u8]) {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let (pattern, chunk) = rest.split_at(usize::from(n).min(rest.len()));
    let pattern = String::from_utf8_lossy(pattern);
    let accessor = Accessor::parse(&pattern);
    if let Err(error) = &accessor {
        assert!(
            error.offset <= pattern.len(),
            "accessor error past the pattern"
        );
    }
    let option_sets = [
        FormatOptions::default(),
        FormatOptions {
            log_key: Some("log".into()),
            ..FormatOptions::default()
        },
        FormatOptions {
            time_key: Some("time".into()),
            ..FormatOptions::default()
        },
        FormatOptions {
            time_key: Some("t".into()),
            time_key_format: Some(pattern.to_string()),
            ..FormatOptions::default()
        },
    ];
    let mut next_offset = 0;
    let mut failed = false;
    for event in events(chunk) {
        assert!(!failed, "an event after an error");
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                assert!(error.offset <= chunk.len(), "error offset past the chunk");
                assert!(error.offset >= next_offset, "error offset before the event");
                failed = true;
                continue;
            }
        };
        assert!(
            event.offset >= next_offset,
            "events overlap or go backwards"
        );
        let end = event.offset + event.raw.len();
        assert_eq!(
            chunk.get(event.offset..end),
            Some(event.raw),
            "raw is not the chunk's"
        );
        assert!(event.nanoseconds < 1_000_000_000);
        next_offset = end;
        if let Ok(accessor) = &accessor {
            let plain = accessor.render(&event.record);
            let tagged = accessor.render_with_tag(&event.record, Some(b"app.web.prod"));
            if plain.is_some() {
                assert_eq!(plain, tagged, "the tag changed a pattern without $TAG");
            }
        }
        for options in &option_sets {
            let (mut out, mut sent) = (b"x".to_vec(), Vec::new());
            let all = kinesis_streams_records(&event, options, &mut out, &mut sent);
            let records: Vec<Vec<u8>> = sent
                .iter()
                .flatten()
                .map(|range| {
                    let data = out.get(range.clone()).expect("a range outside the output");
                    assert_eq!(data.last(), Some(&b'\n'), "a record without its newline");
                    data.to_vec()
                })
                .collect();
            let mut single = b"y".to_vec();
            match kinesis_streams_data(&event, options, &mut single) {
                Ok(()) => {
                    assert!(all.is_ok());
                    assert_eq!(records.len(), 1);
                    assert_eq!(&single[1..], &records[0][..]);
                }
                Err(_) => {
                    assert_eq!(single, b"y", "an error left bytes behind");
                    assert!(all.is_err() || records.len() != 1);
                }
            }
        }
    }
}
