//! Known divergences of an implementation: `expectations/<name>.json`, an object mapping
//! `"<vector> [<implementation>]"` to the reason it is expected to fail. A result that
//! differs from the expectation in either direction is unexpected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::report::Report;

/// Expected failures and their reasons.
pub type Expectations = BTreeMap<String, String>;

/// `conformance/expectations` of this source tree.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations")
}

/// Loads an expectations file; a missing file means "everything passes".
pub fn load(path: &Path) -> Result<Expectations, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Expectations::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The key of an outcome in an expectations file.
pub fn key(vector: &str, implementation: &str) -> String {
    format!("{vector} [{implementation}]")
}

/// The keys whose result differs from `expectations`: unexpected failures, and expected
/// failures that now pass (listed with `"now passes"`). A key fails when any of its
/// outcomes fails (an encode vector is checked in several columns under one key).
pub fn surprises(report: &Report, expectations: &Expectations) -> Vec<(String, String)> {
    let mut failures: BTreeMap<String, Option<String>> = BTreeMap::new();
    for o in report.outcomes() {
        let entry = failures
            .entry(key(&o.vector, &o.implementation))
            .or_insert(None);
        if let (Err(reason), None) = (&o.result, entry.as_ref()) {
            *entry = Some(format!("{}: {reason}", o.category));
        }
    }
    let mut out = Vec::new();
    for (k, failure) in failures {
        match (failure, expectations.get(&k)) {
            (Some(reason), None) => out.push((k, format!("unexpected failure: {reason}"))),
            (None, Some(why)) => out.push((k, format!("now passes (expected to fail: {why})"))),
            _ => {}
        }
    }
    out
}
