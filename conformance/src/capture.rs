//! Stored per-consumer decode answers: `vectors/captured/decoders/<name>.json`, one file
//! per decoder, holding what it returned for every decode vector (records, error text,
//! crash, timeout), with its name, version and the date (format in `vectors/FORMAT.md`).
//! Written by `kpl conformance --capture-decoders` (`vectors/capture/decoders/capture.sh`),
//! never by hand; the live matrix compares each peer's answers with its file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kpl_codec::{deaggregate, HashRange, Options, Policy, UserRecord};
use kpl_vectors::{Case, DecodeCase, Vector};
use serde_json::{json, Map, Value};

use crate::adapter::Answer;

/// The format id of a capture file.
pub const FORMAT_ID: &str = "kpl-decoder-capture/1";

/// The file of kpl-codec's own two policies.
pub const BUILTIN_FILE: &str = "kpl-codec";

/// Decode answers: vector name, then policy, then the answer (see [`answer_json`]).
pub type Answers = BTreeMap<String, BTreeMap<String, Value>>;

/// `vectors/captured/decoders` of this source tree.
pub fn default_dir() -> PathBuf {
    kpl_vectors::captured_dir().join("decoders")
}

/// The answer to one decode request as stored: `{"records": [...]}` (each record's
/// `partition_key` or `partition_key_b64`, `explicit_hash_key`, `data`,
/// `sub_sequence_number`, `aggregated`), `{"error": text}`, `{"crash": text}`,
/// `{"timeout": true}` or `{"malformed": line}`.
pub fn answer_json(answer: &Answer) -> Value {
    match answer {
        Answer::Ok(v) => match v.get("records").and_then(Value::as_array) {
            Some(records) => {
                json!({"records": records.iter().map(record_json).collect::<Vec<_>>()})
            }
            None => json!({"malformed": v.to_string()}),
        },
        Answer::Refused(e) => json!({"error": e}),
        Answer::Crash(e) => json!({"crash": e}),
        Answer::Timeout => json!({"timeout": true}),
        Answer::Malformed(line) => json!({"malformed": line}),
    }
}

/// A request that was not sent, because the decoder lacks a capability it needs.
pub fn not_sent(reason: &str) -> Value {
    json!({"not_sent": reason})
}

/// The protocol fields of one answered user record (others dropped, absent ones null,
/// `partition_key_b64` kept only when given).
fn record_json(r: &Value) -> Value {
    let mut out = Map::new();
    for field in [
        "partition_key",
        "explicit_hash_key",
        "data",
        "sub_sequence_number",
        "aggregated",
    ] {
        out.insert(
            field.to_string(),
            r.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    if let Some(b64) = r.get("partition_key_b64").filter(|v| !v.is_null()) {
        out.insert("partition_key_b64".into(), b64.clone());
        if out.get("partition_key") == Some(&Value::Null) {
            out.remove("partition_key");
        }
    }
    Value::Object(out)
}

/// User records as the protocol's decode answer carries them (`partition_key_b64` for a
/// key that is not UTF-8).
pub fn user_records_json<'a>(records: impl IntoIterator<Item = UserRecord<'a>>) -> Vec<Value> {
    records
        .into_iter()
        .map(|r| {
            let mut v = json!({
                "explicit_hash_key": r.explicit_hash_key.map(|k| String::from_utf8_lossy(k).into_owned()),
                "data": BASE64.encode(r.data),
                "sub_sequence_number": r.sub_sequence_number,
                "aggregated": r.aggregated,
            });
            match r.partition_key_str() {
                Ok(text) => v["partition_key"] = json!(text),
                Err(_) => v["partition_key_b64"] = json!(BASE64.encode(r.partition_key)),
            }
            v
        })
        .collect()
}

/// The options kpl-codec decodes a vector with under `policy`.
pub fn options(case: &DecodeCase, policy: Policy) -> Options {
    Options {
        policy,
        verify_md5: case.verify_md5,
        shard_range: case.shard_range.map(|r| HashRange::new(r.start, r.end)),
    }
}

/// kpl-codec's answer for a decode vector under `policy`, in the stored form.
pub fn builtin_answer(case: &DecodeCase, policy: Policy) -> Value {
    match deaggregate(
        &case.data,
        case.partition_key.as_bytes(),
        &options(case, policy),
    ) {
        Ok(records) => answer_json(&Answer::Ok(
            json!({"ok": true, "records": user_records_json(records)}),
        )),
        Err(e) => json!({"error": format!("{} at byte {}: {e}", e.kind(), e.offset())}),
    }
}

/// kpl-codec's answers for every decode vector, under the `kcl` and `strict` policies.
pub fn builtin_answers(vectors: &[Vector]) -> Answers {
    let mut out = Answers::new();
    for v in vectors {
        if let Case::Decode(case) = &v.case {
            let entry = out.entry(v.name.clone()).or_default();
            entry.insert("kcl".into(), builtin_answer(case, Policy::Kcl));
            entry.insert("strict".into(), builtin_answer(case, Policy::Strict));
        }
    }
    out
}

/// One capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The adapter's name in `ci/adapters.sh` (`kcl`), or `kpl-codec` for the built-in.
    pub adapter: String,
    /// What the decoder said about itself: at least `name` and `version` (its hello).
    pub implementation: Value,
    /// When it was captured, `YYYY-MM-DD`.
    pub date: String,
    /// How: the command that wrote the file.
    pub method: String,
    /// The answers.
    pub answers: Answers,
}

impl Capture {
    /// `implementation.name` and `implementation.version`.
    pub fn name_version(&self) -> (String, String) {
        let text = |k: &str| {
            self.implementation
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        (text("name"), text("version"))
    }

    /// The file's JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "format": FORMAT_ID,
            "adapter": self.adapter,
            "implementation": self.implementation,
            "captured": {"date": self.date, "method": self.method},
            "answers": self.answers,
        })
    }

    /// The file's text: sorted keys, 2-space indent, trailing newline.
    pub fn to_text(&self) -> String {
        format!("{:#}\n", self.to_json())
    }

    /// Reads a capture file's JSON.
    pub fn from_json(v: &Value) -> Result<Capture, String> {
        if v.get("format").and_then(Value::as_str) != Some(FORMAT_ID) {
            return Err(format!("not a {FORMAT_ID} file"));
        }
        let text = |p: &str| -> Result<String, String> {
            v.pointer(p)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| format!("{p}: missing"))
        };
        let answers: Answers =
            serde_json::from_value(v.get("answers").cloned().unwrap_or_default())
                .map_err(|e| format!("/answers: {e}"))?;
        Ok(Capture {
            adapter: text("/adapter")?,
            implementation: v.get("implementation").cloned().unwrap_or_default(),
            date: text("/captured/date")?,
            method: text("/captured/method")?,
            answers,
        })
    }

    /// Loads a capture file; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Capture>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Capture::from_json(&v)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// One difference between live answers and a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The vector's name.
    pub vector: String,
    /// The decode policy.
    pub policy: String,
    /// What changed, in one line.
    pub what: String,
}

/// Where `live` answers differ from the `stored` capture, including requests answered now
/// but not captured, and captured but not sent now.
pub fn differences(stored: &Capture, live: &Answers) -> Vec<Difference> {
    let mut out = Vec::new();
    let when = format!("the capture of {}", stored.date);
    let mut push = |vector: &str, policy: &str, what: String| {
        out.push(Difference {
            vector: vector.to_string(),
            policy: policy.to_string(),
            what,
        })
    };
    for (vector, policies) in live {
        for (policy, now) in policies {
            match stored.answers.get(vector).and_then(|p| p.get(policy)) {
                None => push(
                    vector,
                    policy,
                    format!("{} now, not in {when}", describe(now)),
                ),
                Some(was) if was != now => push(
                    vector,
                    policy,
                    format!("{} (in {when})", difference(was, now)),
                ),
                Some(_) => {}
            }
        }
    }
    for (vector, policies) in &stored.answers {
        for policy in policies.keys() {
            if live.get(vector).and_then(|p| p.get(policy)).is_none() {
                push(vector, policy, format!("in {when}, not sent now"));
            }
        }
    }
    out
}

/// A stored answer in a few words.
pub fn describe(answer: &Value) -> String {
    let text = |k: &str| answer.get(k).and_then(Value::as_str).map(String::from);
    if let Some(records) = answer.get("records").and_then(Value::as_array) {
        format!("{} user records", records.len())
    } else if let Some(e) = text("error") {
        format!("error {e:?}")
    } else if let Some(e) = text("crash") {
        format!("crash ({e})")
    } else if answer.get("timeout").is_some() {
        "timeout".into()
    } else if let Some(r) = text("not_sent") {
        format!("not sent ({r})")
    } else {
        format!("malformed answer {}", answer)
    }
}

/// How `now` differs from `was`, in one line: the first differing user record and field
/// when both are records of the same count, else both answers described.
pub fn difference(was: &Value, now: &Value) -> String {
    if let (Some(a), Some(b)) = (
        was.get("records").and_then(Value::as_array),
        now.get("records").and_then(Value::as_array),
    ) {
        if a.len() == b.len() {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let mut fields: Vec<&String> = x
                    .as_object()
                    .into_iter()
                    .chain(y.as_object())
                    .flat_map(|o| o.keys())
                    .collect();
                fields.sort();
                fields.dedup();
                for f in fields {
                    let (p, q) = (x.get(f), y.get(f));
                    if p != q {
                        let show = |v: Option<&Value>| v.map_or("absent".into(), Value::to_string);
                        return format!("user record {i}: {f} was {}, now {}", show(p), show(q));
                    }
                }
            }
        }
    }
    format!("was {}, now {}", describe(was), describe(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(answers: Answers) -> Capture {
        Capture {
            adapter: "x".into(),
            implementation: json!({"name": "x", "version": "1"}),
            date: "2026-01-02".into(),
            method: "test".into(),
            answers,
        }
    }

    fn answers(entries: &[(&str, &str, Value)]) -> Answers {
        let mut out = Answers::new();
        for (v, p, a) in entries {
            out.entry(v.to_string())
                .or_default()
                .insert(p.to_string(), a.clone());
        }
        out
    }

    #[test]
    fn answers_are_stored_in_one_form() {
        let ok = Answer::Ok(json!({"ok": true, "records": [
            {"partition_key": "a", "data": "eA==", "sub_sequence_number": 0, "aggregated": true, "extra": 1},
            {"partition_key_b64": "/w==", "explicit_hash_key": "5", "data": "", "sub_sequence_number": 1, "aggregated": true}]}));
        assert_eq!(
            answer_json(&ok),
            json!({"records": [
                {"partition_key": "a", "explicit_hash_key": null, "data": "eA==", "sub_sequence_number": 0, "aggregated": true},
                {"partition_key_b64": "/w==", "explicit_hash_key": "5", "data": "", "sub_sequence_number": 1, "aggregated": true}]})
        );
        assert_eq!(
            answer_json(&Answer::Refused("bad".into())),
            json!({"error": "bad"})
        );
        assert_eq!(answer_json(&Answer::Timeout), json!({"timeout": true}));
        assert_eq!(
            answer_json(&Answer::Ok(json!({"ok": true}))),
            json!({"malformed": "{\"ok\":true}"})
        );
    }

    #[test]
    fn a_capture_round_trips_through_its_text() {
        let c = capture(answers(&[("decode/a", "kcl", json!({"records": []}))]));
        let back: Value = serde_json::from_str(&c.to_text()).unwrap();
        assert_eq!(Capture::from_json(&back), Ok(c));
        assert!(Capture::from_json(&json!({"format": "other"})).is_err());
    }

    #[test]
    fn differences_name_the_vector_policy_and_what_changed() {
        let rec = |data: &str| json!({"partition_key": "a", "explicit_hash_key": null, "data": data, "sub_sequence_number": 0, "aggregated": true});
        let stored = capture(answers(&[
            ("decode/same", "native", json!({"records": [rec("eA==")]})),
            ("decode/data", "native", json!({"records": [rec("eA==")]})),
            ("decode/kind", "native", json!({"records": [rec("eA==")]})),
            ("decode/gone", "native", json!({"error": "x"})),
        ]));
        let live = answers(&[
            ("decode/same", "native", json!({"records": [rec("eA==")]})),
            ("decode/data", "native", json!({"records": [rec("eQ==")]})),
            ("decode/kind", "native", json!({"error": "boom"})),
            ("decode/new", "native", json!({"timeout": true})),
        ]);
        let got: Vec<_> = differences(&stored, &live)
            .into_iter()
            .map(|d| {
                assert_eq!(d.policy, "native");
                (d.vector, d.what)
            })
            .collect();
        let when = "the capture of 2026-01-02";
        assert_eq!(
            got,
            [
                (
                    "decode/data".to_string(),
                    format!("user record 0: data was \"eA==\", now \"eQ==\" (in {when})")
                ),
                (
                    "decode/kind".to_string(),
                    format!("was 1 user records, now error \"boom\" (in {when})")
                ),
                (
                    "decode/new".to_string(),
                    format!("timeout now, not in {when}")
                ),
                (
                    "decode/gone".to_string(),
                    format!("in {when}, not sent now")
                ),
            ]
        );
    }
}
