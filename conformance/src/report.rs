//! Outcomes of checks and the compatibility matrix built from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The result of checking one implementation against one vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Who was checked, e.g. `kpl-codec (kcl)`.
    pub implementation: String,
    /// The vector's category, e.g. `malformed`.
    pub category: String,
    /// The vector's name, e.g. `malformed/md5-mismatch`.
    pub vector: String,
    /// `Ok` when the implementation gave the expected answer, else a one-line reason.
    pub result: Result<(), String>,
}

/// All outcomes of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    outcomes: Vec<Outcome>,
}

impl Report {
    /// Adds an outcome.
    pub fn push(&mut self, outcome: Outcome) {
        self.outcomes.push(outcome);
    }

    /// Every outcome, in the order they were added.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The failed outcomes.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.result.is_err())
    }

    /// (passed, total) per implementation and category.
    pub fn matrix(&self) -> BTreeMap<&str, BTreeMap<&str, (usize, usize)>> {
        let mut matrix: BTreeMap<&str, BTreeMap<&str, (usize, usize)>> = BTreeMap::new();
        for o in &self.outcomes {
            let cell = matrix
                .entry(o.implementation.as_str())
                .or_default()
                .entry(o.category.as_str())
                .or_default();
            cell.1 += 1;
            if o.result.is_ok() {
                cell.0 += 1;
            }
        }
        matrix
    }

    /// Every outcome as JSON: `[{"implementation", "category", "vector", "passed",
    /// "reason"}]`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.outcomes
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "implementation": o.implementation,
                        "category": o.category,
                        "vector": o.vector,
                        "passed": o.result.is_ok(),
                        "reason": o.result.as_ref().err(),
                    })
                })
                .collect(),
        )
    }

    /// The matrix as a Markdown table (rows: implementations, columns: categories, cells
    /// `passed/total`), followed by the failing vectors with their reasons.
    pub fn render_text(&self) -> String {
        let matrix = self.matrix();
        let mut categories: Vec<&str> = matrix.values().flat_map(|m| m.keys().copied()).collect();
        categories.sort_unstable();
        categories.dedup();
        let mut out = String::new();
        let _ = write!(out, "| implementation |");
        for c in &categories {
            let _ = write!(out, " {c} |");
        }
        out.push_str("\n|---|");
        for _ in &categories {
            out.push_str("---|");
        }
        out.push('\n');
        for (implementation, cells) in &matrix {
            let _ = write!(out, "| {implementation} |");
            for c in &categories {
                match cells.get(c) {
                    Some((passed, total)) => {
                        let _ = write!(out, " {passed}/{total} |");
                    }
                    None => out.push_str(" - |"),
                }
            }
            out.push('\n');
        }
        let failures: Vec<_> = self.failures().collect();
        if failures.is_empty() {
            let _ = writeln!(out, "\nAll {} checks passed.", self.outcomes.len());
        } else {
            let _ = writeln!(
                out,
                "\n{} of {} checks failed:",
                failures.len(),
                self.outcomes.len()
            );
            for f in failures {
                let reason = f.result.as_ref().err().map_or("", String::as_str);
                let _ = writeln!(out, "- {} [{}]: {}", f.vector, f.implementation, reason);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_counts_and_lists_failures() {
        let mut report = Report::default();
        for (vector, result) in [
            ("decode/a", Ok(())),
            ("decode/b", Err("wrong data".to_string())),
        ] {
            report.push(Outcome {
                implementation: "x".into(),
                category: "decode".into(),
                vector: vector.into(),
                result,
            });
        }
        assert_eq!(report.matrix()["x"]["decode"], (1, 2));
        let text = report.render_text();
        assert!(text.contains("| x | 1/2 |"), "{text}");
        assert!(text.contains("- decode/b [x]: wrong data"), "{text}");
    }
}
