//! Property values in Fluent Bit's syntax, each parser naming what it expected so that Init
//! can fail with a line that names the property and the value.

/// A property that is wrong: the plugin's Init fails with a line naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    /// The property, as the user writes it.
    pub property: String,
    /// What is wrong.
    pub message: String,
}

impl PropertyError {
    /// An error about `property`.
    pub fn new(property: &str, message: impl Into<String>) -> PropertyError {
        PropertyError {
            property: property.to_owned(),
            message: message.into(),
        }
    }
}

impl core::fmt::Display for PropertyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "property '{}': {}", self.property, self.message)
    }
}

impl std::error::Error for PropertyError {}

/// A boolean as Fluent Bit spells it: `true`/`on`/`yes`/`1` or `false`/`off`/`no`/`0`, any case.
///
/// ```
/// use kpl_fluent_bit::props::parse_bool;
/// assert_eq!(parse_bool("On"), Ok(true));
/// assert!(parse_bool("maybe").is_err());
/// ```
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on/off (true/false), got {value:?}")),
    }
}

/// A size in bytes: a number with an optional unit `K`, `M`, `G` (optionally followed by
/// `B`; powers of 1024, as Fluent Bit's `flb_utils_size_to_bytes`).
///
/// ```
/// use kpl_fluent_bit::props::parse_size;
/// assert_eq!(parse_size("51200"), Ok(51_200));
/// assert_eq!(parse_size("1M"), Ok(1_048_576));
/// assert_eq!(parse_size("10MB"), Ok(10_485_760));
/// assert!(parse_size("1X").is_err());
/// ```
pub fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = v.split_at(digits);
    let err = || format!("expected a size such as 51200, 512K or 1M, got {value:?}");
    let number: u64 = number.parse().map_err(|_| err())?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return Err(err()),
    };
    number.checked_mul(factor).ok_or_else(err)
}

/// A duration in milliseconds: a bare number is milliseconds (KPL's unit for
/// `RecordMaxBufferedTime` and `RecordTtl`), or a number with `ms`, `s`, `m` or `h`.
///
/// ```
/// use kpl_fluent_bit::props::parse_millis;
/// assert_eq!(parse_millis("100"), Ok(100));
/// assert_eq!(parse_millis("30s"), Ok(30_000));
/// assert_eq!(parse_millis("2m"), Ok(120_000));
/// assert!(parse_millis("soon").is_err());
/// ```
pub fn parse_millis(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = v.split_at(digits);
    let err = || format!("expected a time such as 100 (ms), 500ms, 30s or 1m, got {value:?}");
    let number: u64 = number.parse().map_err(|_| err())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(err()),
    };
    number.checked_mul(factor).ok_or_else(err)
}

/// A whole number.
///
/// ```
/// use kpl_fluent_bit::props::parse_count;
/// assert_eq!(parse_count("150"), Ok(150));
/// assert!(parse_count("-1").is_err());
/// ```
pub fn parse_count(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert!(parse_size("18446744073709551615G").is_err());
        assert!(parse_millis("18446744073709551615h").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_millis("").is_err());
    }
}
