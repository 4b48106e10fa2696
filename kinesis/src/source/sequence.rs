//! Kinesis sequence numbers (decimal strings of up to 128 bits) and checkpoints.

use core::cmp::Ordering;

/// Compares two sequence numbers as the decimal integers they are (`"9" < "10"`), not as
/// strings. Leading zeros are ignored.
///
/// ```
/// use kpl_kinesis::source::compare_sequence_numbers;
/// use std::cmp::Ordering;
/// assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
/// assert_eq!(compare_sequence_numbers("0042", "42"), Ordering::Equal);
/// ```
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Where a consumer got to in one shard: the last user record it processed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Checkpoint {
    /// The Kinesis record's sequence number.
    pub sequence_number: String,
    /// The user record's sub-sequence number inside it (0 for a plain record).
    pub sub_sequence_number: u64,
}

impl Checkpoint {
    /// A checkpoint at this user record.
    pub fn new(sequence_number: impl Into<String>, sub_sequence_number: u64) -> Self {
        Checkpoint {
            sequence_number: sequence_number.into(),
            sub_sequence_number,
        }
    }

    /// Whether the user record (`sequence_number`, `sub_sequence_number`) is at or before
    /// this checkpoint, so was processed already and must be skipped on resume.
    ///
    /// ```
    /// use kpl_kinesis::source::Checkpoint;
    /// let cp = Checkpoint::new("100", 2);
    /// assert!(cp.covers("99", 7));
    /// assert!(cp.covers("100", 2));
    /// assert!(!cp.covers("100", 3));
    /// assert!(!cp.covers("101", 0));
    /// ```
    pub fn covers(&self, sequence_number: &str, sub_sequence_number: u64) -> bool {
        match compare_sequence_numbers(sequence_number, &self.sequence_number) {
            Ordering::Less => true,
            Ordering::Equal => sub_sequence_number <= self.sub_sequence_number,
            Ordering::Greater => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order_for_real_lengths() {
        let a = "49590338271490256608559692538361571095921575989136588898";
        let b = "49590338271490256608559692540925702759324208523137515618";
        assert_eq!(compare_sequence_numbers(a, b), Ordering::Less);
        assert_eq!(compare_sequence_numbers(b, a), Ordering::Greater);
        assert_eq!(compare_sequence_numbers(a, a), Ordering::Equal);
        assert_eq!(compare_sequence_numbers("1000", "999"), Ordering::Greater);
        assert_eq!(compare_sequence_numbers("0", ""), Ordering::Equal);
    }
}
