//! Doubles as glibc's `printf` writes them (`%.16g`, `%.1f`, `%f`), and Fluent Bit's choice
//! between them. Rust's exact formatting rounds ties to even like glibc, so the digits come
//! from `format!` and only the layout rules of C are ours.

use std::io::Write;

/// A float as `msgpack2json` writes it on x86-64: `%.1f` when `(double)(long long)f == f`,
/// else `%.16g` (NaN and infinities too: `json.convert_nan_to_null` is off by default).
pub(crate) fn write_json_float(f: f64, out: &mut Vec<u8>) {
    if f == cvttsd2si(f) as f64 {
        let _ = write!(out, "{f:.1}");
    } else {
        write_g(f, 16, out);
    }
}

/// `(long long) f` as x86-64's `cvttsd2si` computes it: truncation, and `i64::MIN` for NaN and
/// anything out of range.
fn cvttsd2si(f: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if f.is_nan() || !(-LIMIT..LIMIT).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// glibc's `nan`, `-nan`, `inf`, `-inf`, or `None` for a finite value.
fn special(f: f64) -> Option<&'static str> {
    match (f.is_nan(), f.is_infinite(), f.is_sign_negative()) {
        (true, _, false) => Some("nan"),
        (true, _, true) => Some("-nan"),
        (_, true, false) => Some("inf"),
        (_, true, true) => Some("-inf"),
        _ => None,
    }
}

/// `%.<precision>g`.
pub(crate) fn write_g(f: f64, precision: usize, out: &mut Vec<u8>) {
    if let Some(text) = special(f) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let precision = precision.max(1);
    // The exponent after rounding to `precision` significant digits decides the style.
    let scientific = format!("{:.*e}", precision - 1, f);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i64 {
        out.extend_from_slice(strip_zeros(mantissa).as_bytes());
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    } else {
        let decimals = usize::try_from(precision as i64 - 1 - exponent).unwrap_or(0);
        let fixed = format!("{f:.decimals$}");
        out.extend_from_slice(strip_zeros(&fixed).as_bytes());
    }
}

/// `%g` drops trailing zeros of the fraction, and the point when nothing is left after it.
fn strip_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// `%f` (six decimals), as the record accessor prints floats.
pub(crate) fn write_f(f: f64, out: &mut Vec<u8>) {
    match special(f) {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => {
            let _ = write!(out, "{f:.6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn snprintf(buf: *mut u8, n: usize, format: *const u8, ...) -> i32;
    }

    fn c_format(format: &str, f: f64) -> String {
        let mut buf = vec![0u8; 512];
        let format = format!("{format}\0");
        // SAFETY: the buffer holds 512 bytes, the format is NUL-terminated and takes a double.
        let n = unsafe { snprintf(buf.as_mut_ptr(), buf.len(), format.as_ptr(), f) };
        buf.truncate(usize::try_from(n).unwrap().min(511));
        String::from_utf8(buf).unwrap()
    }

    fn ours(write: fn(f64, &mut Vec<u8>), f: f64) -> String {
        let mut out = Vec::new();
        write(f, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn samples() -> Vec<f64> {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            1.0,
            1e300,
            -1e300,
            1.5e-7,
            123_456_789.123_456_79,
            0.1,
            1e15,
            1e16,
            1e17,
            1e19,
            9.223_372_036_854_775e18,
            -(2f64.powi(63)),
            2f64.powi(63),
            1_125_899_906_842_624.5,
            2.5e-5,
            1e-4,
            1e-5,
            0.000_123_456_789_012_345_67,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from(0.1f32),
            f64::from(16_777_217f32),
            1234.5,
            999_999_999_999_999.9,
            9_999_999_999_999_999.0,
            0.999_999_999_999_999_9,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(f64::from_bits(x));
            // Short decimals, where ties and trailing zeros happen.
            values.push((x % 2_000_000) as f64 / 1024.0 - 900.0);
            values.push((x % 100_000_000_000) as f64 / 1000.0);
        }
        values
    }

    #[test]
    fn g16_matches_glibc() {
        for f in samples() {
            let mut out = Vec::new();
            write_g(f, 16, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                c_format("%.16g", f),
                "{f:e}"
            );
        }
    }

    #[test]
    fn json_float_matches_msgpack2json() {
        for f in samples() {
            let expected = if f == cvttsd2si(f) as f64 {
                c_format("%.1f", f)
            } else {
                c_format("%.16g", f)
            };
            assert_eq!(ours(write_json_float, f), expected, "{f:e}");
        }
        assert_eq!(ours(write_json_float, 1.0), "1.0");
        assert_eq!(ours(write_json_float, -0.0), "-0.0");
        assert_eq!(ours(write_json_float, 1e300), "1e+300");
        assert_eq!(ours(write_json_float, 1.5e-7), "1.5e-07");
        assert_eq!(
            ours(write_json_float, 123_456_789.123_456_79),
            "123456789.1234568"
        );
        assert_eq!(ours(write_json_float, 1e19), "1e+19");
        assert_eq!(ours(write_json_float, 1e18), "1000000000000000000.0");
    }

    #[test]
    fn f_matches_glibc() {
        for f in samples() {
            assert_eq!(ours(write_f, f), c_format("%f", f), "{f:e}");
        }
    }
}
