//! The stored decoder captures (`vectors/captured/decoders`, written by
//! `vectors/capture/decoders/capture.sh`): our KCL policy against what the real KCL
//! returned, record by record, and our own stored policies against kpl-codec today. Rust
//! only: no peer runs here.

use std::collections::BTreeSet;

use kpl_codec::kcl_text;
use kpl_codec::{deaggregate, Policy};
use kpl_conformance::capture::{self, Capture};
use kpl_vectors::{Case, DecodeCase, Vector};
use serde_json::Value;

const RECAPTURE: &str = "re-run vectors/capture/decoders/capture.sh";

fn decode_vectors() -> Vec<(String, DecodeCase)> {
    let mut vectors: Vec<Vector> = kpl_vectors::load_all().unwrap();
    vectors.extend(kpl_vectors::load_captured().unwrap());
    vectors
        .into_iter()
        .filter_map(|v| match v.case {
            Case::Decode(case) => Some((v.name, case)),
            _ => None,
        })
        .collect()
}

fn load(name: &str) -> Capture {
    let path = capture::default_dir().join(format!("{name}.json"));
    Capture::load(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("{} is missing: {RECAPTURE}", path.display()))
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

#[test]
fn kcl_policy_equals_the_real_kcl_capture_record_by_record() {
    let kcl = load("kcl");
    let (name, version) = kcl.name_version();
    assert_eq!(name, "amazon-kinesis-client");
    assert_ne!(version, "?");
    let mut compared = 0;
    let mut records = 0;
    for (vector, case) in decode_vectors() {
        let answer = kcl
            .answers
            .get(&vector)
            .and_then(|p| p.get("kcl"))
            .unwrap_or_else(|| panic!("{vector}: not in the KCL capture: {RECAPTURE}"));
        if let Some(reason) = text(answer, "not_sent") {
            // KCL always checks the MD5: only those vectors are not sent to it.
            assert!(!case.verify_md5, "{vector}: not sent to KCL ({reason})");
            continue;
        }
        let theirs = answer
            .get("records")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{vector}: KCL answered {answer}, not records"));
        let ours: Vec<_> = deaggregate(
            &case.data,
            case.partition_key.as_bytes(),
            &capture::options(&case, Policy::Kcl),
        )
        .unwrap_or_else(|e| panic!("{vector}: our KCL policy failed: {e}"))
        .collect();
        assert_eq!(ours.len(), theirs.len(), "{vector}: number of user records");
        for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
            let at = format!("{vector}, user record {i}");
            // KCL hands out keys as Java strings: compare with our key decoded as Java does.
            assert_eq!(
                text(t, "partition_key"),
                Some(&*kcl_text(o.partition_key)),
                "{at}: partition key"
            );
            assert_eq!(
                text(t, "explicit_hash_key"),
                o.explicit_hash_key.map(kcl_text).as_deref(),
                "{at}: explicit hash key"
            );
            assert_eq!(
                text(t, "data"),
                Some(
                    capture::user_records_json([*o])[0]["data"]
                        .as_str()
                        .unwrap_or("")
                ),
                "{at}: data"
            );
            assert_eq!(
                t.get("sub_sequence_number").and_then(Value::as_u64),
                Some(o.sub_sequence_number),
                "{at}: sub-sequence number"
            );
            assert_eq!(
                t.get("aggregated").and_then(Value::as_bool),
                Some(o.aggregated),
                "{at}: aggregated"
            );
            records += 1;
        }
        compared += 1;
    }
    // Every decode vector but the one KCL cannot run (verify_md5: false), and over a hundred
    // user records among them.
    assert!(compared >= 85, "only {compared} vectors compared");
    assert!(records >= 100, "only {records} user records compared");
}

#[test]
fn our_stored_policies_are_what_kpl_codec_answers_today() {
    let stored = load(capture::BUILTIN_FILE);
    let vectors: Vec<Vector> = {
        let mut v = kpl_vectors::load_all().unwrap();
        v.extend(kpl_vectors::load_captured().unwrap());
        v
    };
    let now = capture::builtin_answers(&vectors);
    let differences = capture::differences(&stored, &now);
    assert!(
        differences.is_empty(),
        "kpl-codec.json is stale ({RECAPTURE}, or `kpl conformance --capture-decoders DIR` \
         without adapters for this file alone): {differences:#?}"
    );
}

#[test]
fn every_capture_is_well_formed_and_covers_every_decode_vector() {
    let names: BTreeSet<String> = decode_vectors().into_iter().map(|(n, _)| n).collect();
    let mut files = 0;
    for entry in std::fs::read_dir(capture::default_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        files += 1;
        let c = Capture::load(&path).unwrap().unwrap();
        let shown = path.display();
        assert_eq!(
            path.file_stem().and_then(|s| s.to_str()),
            Some(c.adapter.as_str()),
            "{shown}"
        );
        let (name, version) = c.name_version();
        assert!(name != "?" && version != "?", "{shown}: {name} {version}");
        let date = c.date.as_bytes();
        assert!(
            date.len() == 10 && date[4] == b'-' && date[7] == b'-',
            "{shown}: date {}",
            c.date
        );
        let captured: BTreeSet<String> = c.answers.keys().cloned().collect();
        assert_eq!(
            captured, names,
            "{shown} does not cover the corpus: {RECAPTURE}"
        );
        for (vector, policies) in &c.answers {
            assert!(!policies.is_empty(), "{shown}: {vector}");
            for answer in policies.values() {
                let kind = answer.as_object().map(|o| o.keys().collect::<Vec<_>>());
                assert!(
                    matches!(kind.as_deref(), Some([k]) if ["records", "error", "crash", "timeout", "malformed", "not_sent"].contains(&k.as_str())),
                    "{shown}: {vector}: {answer}"
                );
            }
        }
    }
    // kpl-codec and at least the four decoders of the issue: Go, KCL, Python, Node.
    assert!(files >= 5, "only {files} capture files");
}
