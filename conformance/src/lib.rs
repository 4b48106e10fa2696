//! # kpl-conformance
//!
//! Checks implementations of the KPL aggregated record format against the golden vectors
//! of `kpl-vectors`, and renders the results as a compatibility matrix.
//!
//! The built-in implementation, kpl-codec under both of its deaggregation policies
//! ([`builtin`]), and implementations behind adapters ([`peer`], `conformance/PROTOCOL.md`)
//! give the same [`Outcome`] and [`Report`] types. [`run`] makes whole runs as
//! `kpl conformance` does: the matrix with adapters, their expectations and stored
//! captures; decoder captures; timing.
//!
//! ```
//! let vectors = kpl_vectors::load_all()?;
//! let report = kpl_conformance::run_builtin(&vectors);
//! assert!(report.failures().next().is_none());
//! print!("{}", report.render_text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod adapter;
pub mod bench_corpus;
pub mod builtin;
pub mod capture;
pub mod expectations;
pub mod peer;
mod report;
pub mod run;
pub mod shards;
pub mod throughput;

pub use report::{Outcome, Report};

/// Runs every vector against kpl-codec (every check that applies to the vector's kind:
/// encode, encode for 4 shards, decode under each policy, hash keys) and collects the
/// outcomes.
pub fn run_builtin(vectors: &[kpl_vectors::Vector]) -> Report {
    let mut report = Report::default();
    for vector in vectors {
        for (implementation, result) in builtin::check_all(vector) {
            let category = if implementation == builtin::CODEC_SHARDS {
                peer::column::SHARD_SAFETY
            } else {
                category_of(&vector.name)
            };
            report.push(Outcome {
                implementation: implementation.to_string(),
                category: category.to_string(),
                vector: vector.name.clone(),
                result,
            });
        }
    }
    report
}

/// The category of a vector: the first segment of its name (`decode/...` -> `decode`).
pub fn category_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// Today's date (UTC) as `YYYY-MM-DD`, for reports.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
