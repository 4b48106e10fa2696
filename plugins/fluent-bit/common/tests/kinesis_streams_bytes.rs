//! `kinesis_streams_records` against the real Fluent Bit 5.1.1: for every case of
//! `fixtures/kinesis_streams.json` (written by `capture/capture.sh` from what kinesis_streams
//! actually sent), the same events must give byte-identical Data.

use base64::{engine::general_purpose::STANDARD, Engine};
use kpl_fluent_bit::json::{kinesis_streams_records, FormatOptions};
use kpl_fluent_bit::msgpack::events;
use serde_json::Value as Json;

fn fixture(name: &str) -> Json {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn bytes(value: &Json) -> Vec<u8> {
    STANDARD.decode(value.as_str().unwrap()).unwrap()
}

fn option(options: &Json, key: &str) -> Option<String> {
    options.get(key).and_then(Json::as_str).map(String::from)
}

fn show(data: &[u8]) -> String {
    String::from_utf8_lossy(data).escape_debug().to_string()
}

#[test]
fn byte_identical_to_fluent_bit() {
    let fixture = fixture("kinesis_streams.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() > 300, "the fixture has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let options = FormatOptions {
            log_key: option(&case["options"], "log_key"),
            time_key: option(&case["options"], "time_key"),
            time_key_format: option(&case["options"], "time_key_format"),
        };
        let expected: Vec<Vec<u8>> = case["data"].as_array().unwrap().iter().map(bytes).collect();
        let mut got = Vec::new();
        for event in case["events"].as_array().unwrap() {
            let chunk = bytes(event);
            let decoded: Vec<_> = events(&chunk).collect();
            assert_eq!(decoded.len(), 1, "{name}: one event per fixture event");
            let event = decoded[0]
                .as_ref()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (mut out, mut sent) = (Vec::new(), Vec::new());
            // An error means kinesis_streams sends nothing for the event (log_key missing).
            if kinesis_streams_records(event, &options, &mut out, &mut sent).is_ok() {
                got.extend(sent.into_iter().flatten().map(|range| out[range].to_vec()));
            }
        }
        if got != expected {
            failures.push(format!(
                "{name}:\n  fluent bit: {:?}\n  ours:       {:?}",
                expected.iter().map(|d| show(d)).collect::<Vec<_>>(),
                got.iter().map(|d| show(d)).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
