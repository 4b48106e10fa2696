//! `time_key_format` as Fluent Bit 5.1.1's AWS outputs apply it (`flb_aws_strftime_precision`):
//! `%3N` becomes the milliseconds, `%9N` and `%L` the nanoseconds, then the result goes through
//! glibc's `strftime` (C locale) on `gmtime_r` of the event's seconds, into a buffer of
//! 12 × the format's length. This module is our own implementation of that glibc behaviour:
//! flags `_ - 0 ^ #`, field widths, the `E`/`O` modifiers, unknown conversions copied as they
//! are. `%s` assumes the process runs in UTC (glibc computes it with `mktime`, in local time).

/// The UTC broken-down time of `gmtime_r`, or `None` where glibc fails (a year that does not
/// fit `tm_year`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tm {
    seconds: i64,
    /// Full year (not minus 1900).
    year: i64,
    /// 0..=11.
    month: u32,
    /// 1..=31.
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday.
    weekday: u32,
    /// 0..=365.
    yearday: u32,
}

impl Tm {
    /// `gmtime_r(seconds)`.
    pub(crate) fn gmtime(seconds: i64) -> Option<Tm> {
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        // Days to civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // glibc fails with EOVERFLOW when tm_year (year - 1900) does not fit an int.
        i32::try_from(year - 1900).ok()?;
        let leap = is_leap(year);
        let before: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let month0 = usize::try_from(month - 1).ok()?;
        let yearday = before.get(month0)? + day - 1 + i64::from(leap && month > 2);
        Some(Tm {
            seconds,
            year,
            month: u32::try_from(month - 1).ok()?,
            day: u32::try_from(day).ok()?,
            hour: u32::try_from(in_day / 3600).ok()?,
            minute: u32::try_from(in_day % 3600 / 60).ok()?,
            second: u32::try_from(in_day % 60).ok()?,
            weekday: u32::try_from((days + 4).rem_euclid(7)).ok()?,
            yearday: u32::try_from(yearday).ok()?,
        })
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// `flb_aws_strftime_precision(format, seconds, nanoseconds)`: the text, or `None` where
/// Fluent Bit gets 0 (gmtime fails, the result is empty or does not fit 12 × the format's
/// length), in which case `kinesis_streams` sends the record without the time key.
pub(crate) fn aws_strftime_precision(format: &[u8], tm: &Tm, nanoseconds: u32) -> Option<Vec<u8>> {
    // The format is a C string: it ends at its first NUL.
    let format = format.split(|b| *b == 0).next().unwrap_or_default();
    let millis = format!("{:03}", nanoseconds / 1_000_000);
    let nanos = format!("{:09}", nanoseconds);
    let mut expanded = Vec::with_capacity(format.len() + 16);
    let mut i = 0;
    while let Some(rest) = format.get(i..).filter(|r| !r.is_empty()) {
        if rest.starts_with(b"%3N") {
            expanded.extend_from_slice(millis.as_bytes());
            i += 3;
        } else if rest.starts_with(b"%9N") {
            expanded.extend_from_slice(nanos.as_bytes());
            i += 3;
        } else if rest.starts_with(b"%L") {
            expanded.extend_from_slice(nanos.as_bytes());
            i += 2;
        } else {
            expanded.extend_from_slice(&rest[..1]);
            i += 1;
        }
    }
    let max = format.len().saturating_mul(12);
    let out = strftime(&expanded, tm, max)?;
    (!out.is_empty()).then_some(out)
}

/// glibc `strftime(buf, max, format, tm)` in the C locale: `None` where it returns 0 because
/// the text and its NUL do not fit `max` bytes.
pub(crate) fn strftime(format: &[u8], tm: &Tm, max: usize) -> Option<Vec<u8>> {
    let mut out = Writer {
        text: Vec::new(),
        max,
    };
    format_into(&mut out, format, tm, false)?;
    Some(out.text)
}

/// The output, failing as soon as it reaches `max` bytes (no room left for the NUL).
struct Writer {
    text: Vec<u8>,
    max: usize,
}

impl Writer {
    fn room(&self, n: usize) -> Option<()> {
        (self.text.len().checked_add(n)? < self.max).then_some(())
    }

    fn fill(&mut self, byte: u8, n: usize) -> Option<()> {
        self.room(n)?;
        self.text.resize(self.text.len() + n, byte);
        Some(())
    }
}

/// One conversion's flags.
#[derive(Clone, Copy)]
struct Spec {
    /// `_`, `-`, `0` or 0 (none).
    pad: u8,
    /// Field width, -1 when none.
    width: i64,
    upper: bool,
    lower: bool,
    swap: bool,
}

impl Spec {
    /// glibc's `cpy`/`add`: `text` padded on the left to the width, with case changes.
    fn copy(&self, out: &mut Writer, text: &[u8]) -> Option<()> {
        let delta = self.width.saturating_sub(text.len() as i64).max(0);
        let delta = usize::try_from(delta).ok()?;
        out.room(delta.checked_add(text.len())?)?;
        out.fill(if self.pad == b'0' { b'0' } else { b' ' }, delta)?;
        out.text.extend(text.iter().map(|b| {
            if self.lower {
                b.to_ascii_lowercase()
            } else if self.upper {
                b.to_ascii_uppercase()
            } else {
                *b
            }
        }));
        Some(())
    }

    /// glibc's `DO_NUMBER` (`space` for `DO_NUMBER_SPACEPAD`).
    fn number(mut self, out: &mut Writer, digits: i64, value: i64, space: bool) -> Option<()> {
        if space && self.pad != b'0' && self.pad != b'-' {
            self.pad = b'_';
        }
        let digits = digits.max(self.width);
        let text = value.unsigned_abs().to_string();
        let sign = usize::from(value < 0);
        let length = (text.len() + sign) as i64;
        let mut width = self.width;
        let mut body = Vec::with_capacity(text.len() + 1);
        if value < 0 {
            body.push(b'-');
        }
        body.extend_from_slice(text.as_bytes());
        if self.pad != b'-' {
            let padding = digits.saturating_sub(length);
            if padding > 0 {
                let padding = usize::try_from(padding).ok()?;
                if self.pad == b'_' {
                    out.fill(b' ', padding)?;
                    width = (width - padding as i64).max(0);
                } else {
                    out.room(usize::try_from(digits).ok()?)?;
                    if value < 0 {
                        out.text.push(b'-');
                        body.remove(0);
                    }
                    out.fill(b'0', padding)?;
                    width = 0;
                }
            }
        }
        Spec { width, ..self }.copy(out, &body)
    }
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Days since the start of the ISO week-based year's week 1 (glibc's `iso_week_days`).
fn iso_week_days(yearday: i64, weekday: i64) -> i64 {
    const BIG_ENOUGH_MULTIPLE_OF_7: i64 = (366 / 7 + 2) * 7;
    yearday - (yearday - weekday + 4 + BIG_ENOUGH_MULTIPLE_OF_7) % 7 + 4 - 1
}

fn format_into(out: &mut Writer, format: &[u8], tm: &Tm, upcase: bool) -> Option<()> {
    let mut f = 0;
    while let Some(&byte) = format.get(f) {
        if byte != b'%' {
            Spec {
                pad: 0,
                width: -1,
                upper: upcase,
                lower: false,
                swap: false,
            }
            .copy(out, &[byte])?;
            f += 1;
            continue;
        }
        let percent = f;
        let mut spec = Spec {
            pad: 0,
            width: -1,
            upper: upcase,
            lower: false,
            swap: false,
        };
        f += 1;
        loop {
            match format.get(f) {
                Some(&c @ (b'_' | b'-' | b'0')) => spec.pad = c,
                Some(b'^') => spec.upper = true,
                Some(b'#') => spec.swap = true,
                _ => break,
            }
            f += 1;
        }
        if format.get(f).is_some_and(u8::is_ascii_digit) {
            let mut width: i64 = 0;
            while let Some(&d) = format.get(f).filter(|d| d.is_ascii_digit()) {
                width = width
                    .saturating_mul(10)
                    .saturating_add(i64::from(d - b'0'))
                    .min(i64::from(i32::MAX));
                f += 1;
            }
            spec.width = width;
        }
        let modifier = match format.get(f) {
            Some(&m @ (b'E' | b'O')) => {
                f += 1;
                m
            }
            _ => 0,
        };
        let conversion = format.get(f).copied().unwrap_or(0);
        if conversion == 0 {
            // A '%' sequence at the end is copied as it is.
            spec.copy(out, format.get(percent..f).unwrap_or_default())?;
            break;
        }
        if !conversion_fits(conversion, modifier) {
            // glibc copies back to the last '%': all of it, or only "%" for "%E%".
            let from = if conversion == b'%' { f } else { percent };
            spec.copy(out, format.get(from..=f).unwrap_or_default())?;
            f += 1;
            continue;
        }
        convert(out, spec, conversion, tm)?;
        f += 1;
    }
    Some(())
}

/// Whether glibc 2.36 accepts this conversion with this modifier (others are copied as text).
fn conversion_fits(conversion: u8, modifier: u8) -> bool {
    let accepted: &[u8] = match modifier {
        0 => b"%ABCDFGHIMPRSTUVWXYZabcdeghjklmnprstuwxyz",
        b'E' => b"CPRTXYZcnprstuxyz",
        _ => b"BCGHIMPRSTUVWZbdeghjklmnprstuwyz",
    };
    accepted.contains(&conversion)
}

fn convert(out: &mut Writer, mut spec: Spec, conversion: u8, tm: &Tm) -> Option<()> {
    let hour12 = match tm.hour % 12 {
        0 => 12,
        h => h,
    };
    let weekday = WEEKDAYS.get(tm.weekday as usize)?;
    let month = MONTHS.get(tm.month as usize)?;
    let number = |out: &mut Writer, digits: i64, value: i64| spec.number(out, digits, value, false);
    let space = |out: &mut Writer, digits: i64, value: i64| spec.number(out, digits, value, true);
    let sub = |out: &mut Writer, format: &[u8]| -> Option<()> {
        let mut inner = Writer {
            text: Vec::new(),
            max: out.max,
        };
        format_into(&mut inner, format, tm, spec.upper)?;
        spec.copy(out, &inner.text)
    };
    match conversion {
        b'%' => spec.copy(out, b"%"),
        b'a' | b'A' | b'b' | b'h' | b'B' => {
            if spec.swap {
                spec.upper = true;
                spec.lower = false;
            }
            let text = match conversion {
                b'a' => weekday.get(..3)?,
                b'A' => weekday,
                b'B' => month,
                _ => month.get(..3)?,
            };
            spec.copy(out, text.as_bytes())
        }
        b'c' => sub(out, b"%a %b %e %H:%M:%S %Y"),
        b'x' | b'D' => sub(out, b"%m/%d/%y"),
        b'F' => sub(out, b"%Y-%m-%d"),
        b'R' => sub(out, b"%H:%M"),
        b'r' => sub(out, b"%I:%M:%S %p"),
        b'X' | b'T' => sub(out, b"%H:%M:%S"),
        b'C' => {
            let century = tm.year.div_euclid(100);
            number(out, 2, century)
        }
        b'd' => number(out, 2, i64::from(tm.day)),
        b'e' => space(out, 2, i64::from(tm.day)),
        b'H' => number(out, 2, i64::from(tm.hour)),
        b'I' => number(out, 2, i64::from(hour12)),
        b'k' => space(out, 2, i64::from(tm.hour)),
        b'l' => space(out, 2, i64::from(hour12)),
        b'j' => number(out, 3, i64::from(tm.yearday) + 1),
        b'M' => number(out, 2, i64::from(tm.minute)),
        b'm' => number(out, 2, i64::from(tm.month) + 1),
        b'n' => spec.copy(out, b"\n"),
        b't' => spec.copy(out, b"\t"),
        b'P' | b'p' => {
            if conversion == b'P' {
                spec.lower = true;
            }
            if spec.swap {
                spec.upper = false;
                spec.lower = true;
            }
            spec.copy(out, if tm.hour < 12 { b"AM" } else { b"PM" })
        }
        b'S' => number(out, 2, i64::from(tm.second)),
        // One digit at least, then the width as for text (spaces unless the `0` flag).
        b's' => spec.copy(out, tm.seconds.to_string().as_bytes()),
        b'u' => number(out, 1, (i64::from(tm.weekday) + 6) % 7 + 1),
        b'U' => number(
            out,
            2,
            (i64::from(tm.yearday) - i64::from(tm.weekday) + 7) / 7,
        ),
        b'W' => number(
            out,
            2,
            (i64::from(tm.yearday) - (i64::from(tm.weekday) + 6) % 7 + 7) / 7,
        ),
        b'w' => number(out, 1, i64::from(tm.weekday)),
        b'V' | b'g' | b'G' => {
            let mut year = tm.year;
            let yearday = i64::from(tm.yearday);
            let weekday = i64::from(tm.weekday);
            let mut days = iso_week_days(yearday, weekday);
            if days < 0 {
                year -= 1;
                days = iso_week_days(yearday + 365 + i64::from(is_leap(year)), weekday);
            } else {
                let next = iso_week_days(yearday - (365 + i64::from(is_leap(year))), weekday);
                if next >= 0 {
                    year += 1;
                    days = next;
                }
            }
            match conversion {
                b'g' => number(out, 2, (year % 100 + 100) % 100),
                b'G' => number(out, 1, year),
                _ => number(out, 2, days / 7 + 1),
            }
        }
        b'Y' => number(out, 1, tm.year),
        b'y' => number(out, 2, (tm.year % 100 + 100) % 100),
        b'Z' => {
            if spec.swap {
                spec.upper = false;
                spec.lower = true;
            }
            spec.copy(out, b"GMT")
        }
        b'z' => {
            spec.copy(out, b"+")?;
            number(out, 4, 0)
        }
        _ => Some(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc's own `gmtime_r` + `strftime`, to compare with.
    mod libc {
        #[repr(C)]
        #[derive(Default)]
        pub struct CTm {
            pub sec: i32,
            pub min: i32,
            pub hour: i32,
            pub mday: i32,
            pub mon: i32,
            pub year: i32,
            pub wday: i32,
            pub yday: i32,
            pub isdst: i32,
            pub gmtoff: i64,
            pub zone: usize,
        }
        extern "C" {
            pub fn gmtime_r(time: *const i64, tm: *mut CTm) -> *mut CTm;
            pub fn strftime(s: *mut u8, max: usize, format: *const u8, tm: *const CTm) -> usize;
        }
    }

    fn c_gmtime(seconds: i64) -> Option<libc::CTm> {
        let mut tm = libc::CTm::default();
        // SAFETY: both pointers are valid for the call.
        let ok = unsafe { !libc::gmtime_r(&seconds, &mut tm).is_null() };
        ok.then_some(tm)
    }

    fn c_strftime(format: &[u8], seconds: i64, max: usize) -> Option<Vec<u8>> {
        let tm = c_gmtime(seconds)?;
        let mut c_format = format.to_vec();
        c_format.push(0);
        let mut buf = vec![0u8; max + 1];
        // SAFETY: buf holds max bytes, the format is NUL-terminated, tm is valid.
        let n = unsafe { libc::strftime(buf.as_mut_ptr(), max, c_format.as_ptr(), &tm) };
        buf.truncate(n);
        (n > 0).then_some(buf)
    }

    const TIMES: [i64; 12] = [
        0,
        951_782_400,            // 2000-02-29
        1_700_000_000,          // a Tuesday afternoon
        1_704_067_199,          // 2023-12-31 23:59:59, ISO week 52 of 2023
        1_704_067_200,          // 2024-01-01 (Monday)
        1_735_603_200,          // 2024-12-31: ISO week 1 of 2025
        1_609_459_200,          // 2021-01-01: ISO week 53 of 2020
        4_102_444_800,          // 2100-01-01
        253_402_300_799,        // 9999-12-31 23:59:59
        253_402_300_800,        // 10000-01-01
        43_200,                 // noon
        67_767_976_233_316_799, // about the last second tm_year can hold
    ];

    #[test]
    fn gmtime_matches_glibc() {
        let mut seconds: Vec<i64> = TIMES.to_vec();
        seconds.extend([
            67_767_976_233_316_800,
            i64::MAX,
            86_399,
            31_535_999,
            68_169_600,
        ]);
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seconds.push((x % 20_000_000_000) as i64);
        }
        for s in seconds {
            let ours = Tm::gmtime(s);
            let theirs = c_gmtime(s);
            assert_eq!(ours.is_some(), theirs.is_some(), "{s}");
            if let (Some(o), Some(t)) = (ours, theirs) {
                let mapped = (
                    o.year - 1900,
                    o.month as i32,
                    o.day as i32,
                    o.hour as i32,
                    o.minute as i32,
                    o.second as i32,
                    o.weekday as i32,
                    o.yearday as i32,
                );
                assert_eq!(
                    mapped,
                    (
                        i64::from(t.year),
                        t.mon,
                        t.mday,
                        t.hour,
                        t.min,
                        t.sec,
                        t.wday,
                        t.yday
                    ),
                    "{s}"
                );
            }
        }
    }

    const FORMATS: [&str; 30] = [
        "%Y-%m-%dT%H:%M:%S",
        "%a %A %b %B %h %c",
        "%C %d %D %e %F %g %G %H %I %j %k %l %m %M",
        "%n%t%p %P %r %R %S %T %u %U %V %w %W %x %X %y %Y %z %Z %%",
        "%^a %^A %^b %#a %#A %#b %#B %#p %#P %#Z %^Z %^p %^c",
        "%-d %-m %-H %-j %_d %_m %_j %0e %0k %-e %_H %-y",
        "%10Y %10d %_10d %-10d %010d %10e %3a %08A %_8B %^10b %5%",
        "%Ec %EC %Ex %EX %Ey %EY %Od %Oe %OH %OI %Om %OM %OS %Ou %OU %OV %Ow %OW %Oy",
        "%Ea %Eb %Ed %Oa %OA %OY %Oc %Ox %OX %Oj %EH %OZ %Oz %O%",
        "%q %i %J %K %L %N %Q %v %0q %-5q %10q %^q",
        "%",
        "abc%",
        "abc%-",
        "abc%_5",
        "%E",
        "%O",
        "%5",
        "%+ %: %:z %# %^",
        "%6z %-z %_6z %06z",
        "%3c",
        "%40c",
        "%_40c %040c %-40c %^40c",
        "%4F %12F %_12F %12D %12T %12R %12r %12x %12X",
        "%1Y %2Y %3Y %4Y %5Y %05Y %_5Y %-5Y %1C %3C %_3C",
        "%3s %_20s %020s %-s %1G %5G %_5G %1g %3g %1V %3V %3U %3W %3u %3w",
        "%3n %3t %03n %_3t",
        "%2147483648Y",
        "%99999999999999999999d",
        "no conversions at all",
        "",
    ];

    #[test]
    fn strftime_matches_glibc() {
        for format in FORMATS {
            for seconds in TIMES {
                let tm = Tm::gmtime(seconds).unwrap();
                for max in [12 * format.len(), 4096, 5] {
                    assert_eq!(
                        strftime(format.as_bytes(), &tm, max).filter(|t| !t.is_empty()),
                        c_strftime(format.as_bytes(), seconds, max),
                        "format {format:?} at {seconds} max {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_conversion_and_modifier_matches_glibc() {
        let tm = Tm::gmtime(1_700_000_000).unwrap();
        let mut wrong = Vec::new();
        for c in 0x20u8..0x7f {
            for prefix in [
                "%", "%E", "%O", "%^", "%#", "%-", "%_", "%0", "%3", "%_3", "%-3E", "%03O",
            ] {
                let mut format = prefix.as_bytes().to_vec();
                format.push(c);
                format.extend_from_slice(b"|");
                let ours = strftime(&format, &tm, 100).filter(|t| !t.is_empty());
                let theirs = c_strftime(&format, 1_700_000_000, 100);
                if ours != theirs {
                    let show =
                        |t: Option<Vec<u8>>| t.map(|t| String::from_utf8_lossy(&t).into_owned());
                    wrong.push(format!(
                        "{:?}: ours {:?} glibc {:?}",
                        String::from_utf8_lossy(&format),
                        show(ours),
                        show(theirs)
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn precision() {
        let tm = Tm::gmtime(1_700_000_000).unwrap();
        let text = |format: &str, ns| {
            aws_strftime_precision(format.as_bytes(), &tm, ns)
                .map(|t| String::from_utf8(t).unwrap())
        };
        assert_eq!(
            text("%Y-%m-%dT%H:%M:%S.%3NZ", 123_456_789).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(
            text("%L|%9N|%3N", 5).as_deref(),
            Some("000000005|000000005|000")
        );
        assert_eq!(
            text("%Y-%m-%dT%H:%M:%S", 0).as_deref(),
            Some("2023-11-14T22:13:20")
        );
        // "%c" is 24 bytes: it does not fit 12 × 2 with its NUL.
        assert_eq!(text("%c", 0), None);
        assert_eq!(text("%c ", 0).as_deref(), Some("Tue Nov 14 22:13:20 2023 "));
        assert_eq!(text("", 0), None);
        // A format with a NUL ends there.
        assert_eq!(text("%Y\0%m", 0).as_deref(), Some("2023"));
        // "%%L": '%' is copied, then %L expands, then strftime reads "%<digits>".
        assert_eq!(
            text("%%L", 5),
            strftime(b"%000000005", &tm, 36)
                .filter(|t| !t.is_empty())
                .map(|t| String::from_utf8(t).unwrap())
        );
    }
}
