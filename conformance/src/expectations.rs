//! Known divergences of an implementation: `expectations/<name>.json`, an object mapping
//! `"<vector> [<implementation>]"` to the reason it is expected to fail. A result that
//! differs from the expectation in either direction is unexpected.

use std::collections::BTreeMap;
use std::path::Path;

use crate::report::Report;

/// Expected failures and their reasons.
pub type Expectations = BTreeMap<String, String>;

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

/// The outcomes that differ from `expectations`: unexpected failures, and expected
/// failures that now pass (listed with `"now passes"`).
pub fn surprises(report: &Report, expectations: &Expectations) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for o in report.outcomes() {
        let k = key(&o.vector, &o.implementation);
        match (&o.result, expectations.get(&k)) {
            (Err(reason), None) => out.push((k, format!("unexpected failure: {reason}"))),
            (Ok(()), Some(why)) => out.push((k, format!("now passes (expected to fail: {why})"))),
            _ => {}
        }
    }
    out
}
