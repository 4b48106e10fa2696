//! `Accessor` against the real Fluent Bit 5.1.1: `fixtures/record_accessor.json` holds, for
//! each pattern, the tag Fluent Bit's forward output rendered with `tag <pattern>` for each
//! event (written by `capture/capture.sh`). Our `render_with_tag` must give the same bytes,
//! except where it gives `None` by design (nil, map, array or missing values, listed per case
//! by the capture), and we refuse only patterns Fluent Bit refuses or logs an error for.

use base64::{engine::general_purpose::STANDARD, Engine};
use kpl_fluent_bit::accessor::Accessor;
use kpl_fluent_bit::msgpack::events;
use serde_json::Value as Json;

fn bytes(value: &Json) -> Vec<u8> {
    STANDARD.decode(value.as_str().unwrap()).unwrap()
}

#[test]
fn renders_like_fluent_bit() {
    let path = format!(
        "{}/tests/fixtures/record_accessor.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() > 50);
    let mut failures = Vec::new();
    for case in cases {
        let pattern = case["pattern"].as_str().unwrap();
        let starts = case["fluent_bit_starts"].as_bool().unwrap();
        let logged = case["fluent_bit_logged_error"].as_bool().unwrap();
        let parsed = Accessor::parse(pattern);
        if case["we_refuse"].as_bool().unwrap() {
            assert!(
                !starts || logged,
                "{pattern:?}: Fluent Bit takes it without complaint"
            );
            if parsed.is_ok() {
                failures.push(format!("{pattern:?}: parses, but Fluent Bit refuses it"));
            }
            continue;
        }
        assert!(starts && !logged, "{pattern:?}: Fluent Bit complains");
        let accessor = match parsed {
            Ok(accessor) => accessor,
            Err(error) => {
                failures.push(format!("{pattern:?}: {error}, but Fluent Bit takes it"));
                continue;
            }
        };
        let tag = case["tag"].as_str().unwrap().as_bytes();
        let none: Vec<u64> = case["none_by_design"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect();
        let rendered = case["rendered"].as_array().unwrap();
        for (i, (event, fluent_bit)) in case["events"]
            .as_array()
            .unwrap()
            .iter()
            .zip(rendered)
            .enumerate()
        {
            let chunk = bytes(event);
            let event = events(&chunk).next().unwrap().unwrap();
            let ours = accessor.render_with_tag(&event.record, Some(tag));
            let expected = if none.contains(&(i as u64)) {
                None
            } else {
                Some(bytes(fluent_bit))
            };
            if ours != expected {
                failures.push(format!(
                    "{pattern:?} event {i}: ours {:?}, expected {:?} (Fluent Bit: {:?})",
                    ours.map(|o| String::from_utf8_lossy(&o).into_owned()),
                    expected.map(|o| String::from_utf8_lossy(&o).into_owned()),
                    String::from_utf8_lossy(&bytes(fluent_bit))
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
