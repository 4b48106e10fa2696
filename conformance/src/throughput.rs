//! `kpl conformance --bench`: every implementation decodes the same corpus (the
//! benchmarks' `small` shape) on the same machine in one run.

use std::path::Path;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kpl_codec::{deaggregate_batch, KinesisRecord, Options};
use serde_json::{json, Value};

use crate::adapter::{AdapterProcess, Answer};

/// One implementation's figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    /// Who.
    pub implementation: String,
    /// Seconds for all iterations, or why there is no figure.
    pub seconds: Result<f64, String>,
    /// User records decoded over all iterations.
    pub user_records: u64,
}

/// Writes `records` as the NDJSON corpus the `bench` request names.
pub fn write_corpus(records: &[KinesisRecord], path: &Path) -> std::io::Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(
            &json!({"data": BASE64.encode(&r.data), "partition_key": r.partition_key}).to_string(),
        );
        text.push('\n');
    }
    std::fs::write(path, text)
}

/// Decodes every `(data, partition key)` record `iterations` times under the KCL policy
/// (MD5 verified), iterating every user record: (seconds, user records). The records are
/// one batch ([`deaggregate_batch`]: their MD5s computed side by side in SIMD lanes), as a
/// consumer decodes a GetRecords page. The timing that both `kpl conformance --bench` and
/// `kpl-adapter`'s `bench` report.
pub fn decode_timed<'a, I>(records: I, iterations: u64) -> (f64, u64)
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let options = Options::kcl();
    let batch: Vec<(&[u8], &[u8])> = records.collect();
    let start = Instant::now();
    let mut user_records = 0;
    for _ in 0..iterations {
        // The KCL policy never fails; `flatten` keeps that without an unwrap.
        for users in deaggregate_batch(&batch, &options).into_iter().flatten() {
            for u in users {
                std::hint::black_box(u.data);
                user_records += 1;
            }
        }
    }
    (start.elapsed().as_secs_f64(), user_records)
}

/// kpl-codec in this process: KCL policy, MD5 verified, every user record iterated.
pub fn builtin(records: &[KinesisRecord], iterations: u64) -> Throughput {
    let pairs = records
        .iter()
        .map(|r| (r.data.as_slice(), r.partition_key.as_bytes()));
    let (seconds, user_records) = decode_timed(pairs, iterations);
    Throughput {
        implementation: "kpl-codec (in process)".into(),
        seconds: Ok(seconds),
        user_records,
    }
}

/// An adapter's own timing of the same corpus.
pub fn adapter(
    adapter: &mut AdapterProcess,
    name: &str,
    corpus: &Path,
    iterations: u64,
) -> Throughput {
    let request =
        json!({"op": "bench", "file": corpus.display().to_string(), "iterations": iterations});
    let (seconds, user_records) = match adapter.request(&request) {
        Answer::Ok(v) => match v.get("seconds").and_then(Value::as_f64) {
            Some(s) => (
                Ok(s),
                v.get("user_records").and_then(Value::as_u64).unwrap_or(0),
            ),
            None => (Err("no seconds in the answer".to_string()), 0),
        },
        other => (Err(other.describe()), 0),
    };
    Throughput {
        implementation: name.to_string(),
        seconds,
        user_records,
    }
}

/// The table: MB/s, user records/s and the ratio to the first row.
pub fn render(rows: &[Throughput], bytes_per_iteration: u64, iterations: u64) -> String {
    let mb = (bytes_per_iteration * iterations) as f64 / 1e6;
    let base = rows.first().and_then(|r| r.seconds.as_ref().ok().copied());
    let mut out = String::from(
        "| implementation | MB/s | user records/s | x kpl-codec |\n|---|--:|--:|--:|\n",
    );
    for r in rows {
        match &r.seconds {
            Ok(s) if *s > 0.0 => {
                let ratio = base.map_or(String::from("-"), |b| format!("{:.2}", b / s));
                out.push_str(&format!(
                    "| {} | {:.0} | {:.0} | {} |\n",
                    r.implementation,
                    mb / s,
                    r.user_records as f64 / s,
                    ratio
                ));
            }
            Ok(_) => out.push_str(&format!("| {} | - | - | - |\n", r.implementation)),
            Err(e) => out.push_str(&format!("| {} | no figure: {e} | | |\n", r.implementation)),
        }
    }
    out
}
