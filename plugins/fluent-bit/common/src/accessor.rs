//! Fluent Bit record accessors: `$key`, `$key['sub'][0]`, and templates mixing text and
//! accessors (`app-$kubernetes['pod_name']`).
//!
//! Parsing follows Fluent Bit 5.1.1 (`flb_record_accessor.c`, `record_accessor/ra.l`, `ra.y`):
//! - a pattern is cut into text and accessors at each `$`; an accessor runs to the next `.`
//!   (one inside an odd number of `'` does not count), space, `,` or `"`, or to the end;
//!   so `$a.b` is `$a` then the text `.b`, and a key never holds a space, `,` or `"`;
//! - an accessor is `$` then a key of `[_A-Za-z][A-Za-z0-9_.\-/]*`, then any number of
//!   `['subkey']` (only single quotes, `''` for a quote) or `[index]` (`0` or `[1-9][0-9]*`);
//!   tabs and newlines between the parts are ignored;
//! - `$TAG` is the tag and `$TAG[n]` its n-th dot-separated part (see
//!   [`Accessor::render_with_tag`]); `$TAG` is matched first, so `$TAGS` is the tag then `S`;
//! - a pattern without `$` is all text; Fluent Bit drops a lone character after the last
//!   accessor (`$a.` is `$a`) and a `$` at the very end (except in a two-character pattern:
//!   `a$` stays `a$`), and so does this.
//!
//! Stricter than Fluent Bit, which logs an error and goes on: a character its lexer does not
//! know (`$a[-1]`, which Fluent Bit reads as `$a[1]`), an index of 2³¹ - 1 or more (Fluent
//! Bit wraps it), `$0`..`$9` (regex captures, meaningless in an output), double-quoted
//! subkeys (`$a["b"]`: the `"` ends the accessor, so Fluent Bit fails on `$a[` too) are
//! errors with their offset.
//!
//! Lookups follow `flb_ra_key.c`: the last entry with that str key wins; subkeys apply only
//! when the key's value is a map or an array (on a scalar they are ignored: `$a['x']` on
//! `{"a":"v"}` is `v`).

use core::fmt;

use crate::msgpack::Value;

/// A parsed record accessor or template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessor {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    Key { name: Vec<u8>, path: Vec<Step> },
    Tag,
    TagField(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(Vec<u8>),
    Index(usize),
}

/// Why an accessor does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessorError {
    /// Byte offset in the pattern.
    pub offset: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for AccessorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for AccessorError {}

fn error(offset: usize, message: &'static str) -> AccessorError {
    AccessorError { offset, message }
}

impl Accessor {
    /// Parses a pattern.
    pub fn parse(pattern: &str) -> Result<Accessor, AccessorError> {
        let buf = pattern.as_bytes();
        let len = buf.len();
        let mut parts = Vec::new();
        let text = |parts: &mut Vec<Part>, from: usize, to: usize| {
            parts.push(Part::Text(buf.get(from..to).unwrap_or_default().to_vec()));
        };
        // `ra_parse_buffer`'s cursor, text start and last accessor end (-1 after a `$TAG[`
        // without `]`).
        let (mut i, mut pre, mut end): (usize, usize, i64) = (0, 0, 0);
        while i < len {
            if buf.get(i) != Some(&b'$') {
                i += 1;
                continue;
            }
            if i > pre {
                text(&mut parts, pre, i);
            }
            pre = i;
            let n = i + 1;
            let Some(&next) = buf.get(n) else {
                break;
            };
            if next.is_ascii_digit() {
                return Err(error(i, "regex captures ($0..$9) have no meaning here"));
            }
            if buf.get(n..n + 3) == Some(b"TAG") {
                if n + 4 < len && buf.get(n + 3) == Some(&b'[') {
                    let t = n + 3;
                    let close = buf
                        .get(t..)
                        .and_then(|rest| rest.iter().position(|&b| b == b']'));
                    end = close.map_or(-1, |c| c as i64);
                    parts.push(Part::TagField(atoi(buf.get(t + 1..).unwrap_or_default())));
                    i = close.map_or(t, |c| t + c + 1);
                    pre = i;
                    i += 1;
                    continue;
                }
                parts.push(Part::Tag);
                i = n + 3;
                pre = i;
                i += 1;
                continue;
            }
            let mut quotes = 0;
            let mut stop = i + 1;
            while let Some(&c) = buf.get(stop) {
                if c == b'\'' {
                    quotes += 1;
                } else if c == b'.' && quotes % 2 == 1 {
                    // A '.' inside a quoted subkey.
                } else if matches!(c, b'.' | b' ' | b',' | b'"') {
                    break;
                }
                stop += 1;
            }
            parts.push(parse_key(buf.get(i..stop).unwrap_or_default(), i)?);
            pre = stop;
            end = stop as i64;
            i = stop + 1;
        }
        // The text after the last accessor, under Fluent Bit's condition.
        if (i as i64 - 1 > end && pre < i) || i == 1 {
            text(&mut parts, pre, len);
        }
        parts.retain(|part| !matches!(part, Part::Text(t) if t.is_empty()));
        Ok(Accessor { parts })
    }

    /// The pattern's value for a record as text: strings as they are, numbers and
    /// booleans as Fluent Bit prints them; `None` when a field is missing or is a map or array.
    ///
    /// Like Fluent Bit: a positive integer past `i64::MAX` prints as negative (it is read as
    /// an `int64_t`), a float as `%f` (`0.500000`), cut to 30 characters and a NUL byte when
    /// longer, a bin as lowercase hex. Unlike Fluent Bit, which prints `null`, a map's JSON
    /// or nothing: `nil`, maps, arrays, ext values and missing keys give `None`, and so does
    /// `$TAG` (use [`Accessor::render_with_tag`]).
    pub fn render(&self, record: &Value<'_>) -> Option<Vec<u8>> {
        self.render_with_tag(record, None)
    }

    /// [`Accessor::render`] with the chunk's tag for `$TAG` and `$TAG[n]` (a part that does
    /// not exist is empty, as in Fluent Bit).
    pub fn render_with_tag(&self, record: &Value<'_>, tag: Option<&[u8]>) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.extend_from_slice(text),
                Part::Key { name, path } => scalar_text(lookup(record, name, path)?, &mut out)?,
                Part::Tag => out.extend_from_slice(tag?),
                Part::TagField(id) => out.extend_from_slice(tag_part(tag?, *id)),
            }
        }
        Some(out)
    }

    /// Whether the pattern reads nothing from the record (text and tag only).
    pub fn is_static(&self) -> bool {
        !self.parts.iter().any(|p| matches!(p, Part::Key { .. }))
    }
}

/// glibc's `atoi`: spaces, a sign, digits; `strtol` saturates, then the `long` is cut to `int`.
fn atoi(text: &[u8]) -> i32 {
    let mut bytes = text
        .iter()
        .skip_while(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .peekable();
    let negative = match bytes.peek() {
        Some(b'-') => {
            bytes.next();
            true
        }
        Some(b'+') => {
            bytes.next();
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    for b in bytes.take_while(|b| b.is_ascii_digit()) {
        let digit = i64::from(b - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if negative {
                    v.checked_sub(digit)
                } else {
                    v.checked_add(digit)
                }
            })
            .unwrap_or(if negative { i64::MIN } else { i64::MAX });
    }
    value as i32
}

/// The n-th dot-separated part of a tag, as `ra_translate_tag_part` cuts it.
fn tag_part(tag: &[u8], id: i32) -> &[u8] {
    let mut i = 0;
    let mut index = -1;
    while i < tag.len() {
        let rest = tag.get(i..).unwrap_or_default();
        let length = match rest.iter().position(|&b| b == b'.') {
            Some(dot) => dot,
            None if i == 0 => break,
            None => rest.len(),
        };
        index += 1;
        if index == id {
            return rest.get(..length).unwrap_or_default();
        }
        i += length + 1;
    }
    if id == 0 && index == -1 && i < tag.len() {
        return tag;
    }
    &[]
}

/// An accessor (`$` to its end, at `base` in the pattern) as Fluent Bit's lexer and grammar
/// read it.
fn parse_key(meta: &[u8], base: usize) -> Result<Part, AccessorError> {
    let mut at = 1; // after '$'
    let skip_blanks = |at: &mut usize| {
        while matches!(meta.get(*at), Some(b'\t' | b'\n')) {
            *at += 1;
        }
    };
    skip_blanks(&mut at);
    let name_start = at;
    if !meta
        .get(at)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        return Err(error(base + at, "empty key after '$'"));
    }
    while meta
        .get(at)
        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/'))
    {
        at += 1;
    }
    let name = meta.get(name_start..at).unwrap_or_default().to_vec();
    let mut path = Vec::new();
    loop {
        skip_blanks(&mut at);
        let Some(&c) = meta.get(at) else {
            break;
        };
        if c != b'[' {
            return Err(error(
                base + at,
                "unexpected character after a key (only ['subkey'] or [index] may follow)",
            ));
        }
        let open = at;
        at += 1;
        skip_blanks(&mut at);
        match meta.get(at) {
            None => return Err(error(base + open, "unterminated bracket")),
            Some(b'\'') => {
                let quote = at;
                let mut key = Vec::new();
                at += 1;
                loop {
                    match (meta.get(at), meta.get(at + 1)) {
                        (None, _) => return Err(error(base + quote, "unterminated quote")),
                        (Some(b'\''), Some(b'\'')) => {
                            key.push(b'\'');
                            at += 2;
                        }
                        (Some(b'\''), _) => {
                            at += 1;
                            break;
                        }
                        (Some(&b), _) => {
                            key.push(b);
                            at += 1;
                        }
                    }
                }
                path.push(Step::Key(key));
            }
            Some(b'0'..=b'9') => {
                let digits = at;
                while meta.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
                let text = meta.get(digits..at).unwrap_or_default();
                if text.len() > 1 && text.first() == Some(&b'0') {
                    return Err(error(base + digits, "bad index (leading zero)"));
                }
                let index = core::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse::<i32>().ok())
                    .filter(|i| *i < i32::MAX)
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or(error(base + digits, "bad index (too large)"))?;
                path.push(Step::Index(index));
            }
            Some(_) => {
                return Err(error(
                    base + at,
                    "bad index: expected 'subkey' (single quotes) or a number",
                ))
            }
        }
        skip_blanks(&mut at);
        match meta.get(at) {
            Some(b']') => at += 1,
            None => return Err(error(base + open, "unterminated bracket")),
            Some(_) => return Err(error(base + at, "expected ']'")),
        }
    }
    Ok(Part::Key { name, path })
}

/// The value at `name` and `path` in a record, as `flb_ra_key_to_value_ext` finds it.
fn lookup<'r, 'a>(record: &'r Value<'a>, name: &[u8], path: &[Step]) -> Option<&'r Value<'a>> {
    let value = last_entry(record, name)?;
    if path.is_empty() || !matches!(value, Value::Map(_) | Value::Array(_)) {
        return Some(value);
    }
    path.iter().try_fold(value, |current, step| match step {
        Step::Key(key) => last_entry(current, key),
        Step::Index(index) => match current {
            Value::Array(items) => items.get(*index),
            _ => None,
        },
    })
}

/// The value of the last entry of a map with this str key.
fn last_entry<'r, 'a>(map: &'r Value<'a>, key: &[u8]) -> Option<&'r Value<'a>> {
    let Value::Map(entries) = map else {
        return None;
    };
    entries
        .iter()
        .rev()
        .find(|(k, _)| matches!(k, Value::Str(s) if *s == key))
        .map(|(_, v)| v)
}

/// A scalar as `ra_translate_keymap` prints it; `None` for what has no text here.
fn scalar_text(value: &Value<'_>, out: &mut Vec<u8>) -> Option<()> {
    use std::io::Write;
    match value {
        Value::Str(s) => out.extend_from_slice(s),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u) => {
            let _ = write!(out, "{}", *u as i64);
        }
        Value::F32(f) => float(f64::from(*f), out),
        Value::F64(f) => float(*f, out),
        Value::Bin(b) => {
            for byte in *b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        Value::Nil | Value::Map(_) | Value::Array(_) | Value::Ext(..) => return None,
    }
    Some(())
}

/// `snprintf(str, 31, "%f")` into a 32-byte buffer, then 31 bytes of it when the text is 31
/// bytes or longer: 30 characters and the NUL.
fn float(f: f64, out: &mut Vec<u8>) {
    let mut text = Vec::new();
    crate::json::write_f(f, &mut text);
    if text.len() >= 31 {
        text.truncate(30);
        text.push(0);
    }
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value<'_> {
        Value::Str(text.as_bytes())
    }

    fn record() -> Value<'static> {
        Value::Map(vec![
            (s("log"), s("hello")),
            (s("n"), Value::Uint(42)),
            (s("neg"), Value::Int(-7)),
            (s("big"), Value::Uint(u64::MAX)),
            (s("f"), Value::F64(0.5)),
            (s("f32"), Value::F32(0.1)),
            (s("huge"), Value::F64(1e24)),
            (s("ok"), Value::Bool(true)),
            (s("none"), Value::Nil),
            (s("bin"), Value::Bin(&[0x00, 0xab])),
            (s("ext"), Value::Ext(1, &[1])),
            (
                s("kubernetes"),
                Value::Map(vec![
                    (s("pod_name"), s("web-1")),
                    (
                        s("labels"),
                        Value::Map(vec![(s("app.kubernetes.io/name"), s("web"))]),
                    ),
                    (s("it's"), s("quoted")),
                ]),
            ),
            (
                s("arr"),
                Value::Array(vec![s("zero"), Value::Array(vec![Value::Uint(1)])]),
            ),
            (s("key-with/chars"), s("odd")),
            (s("dup"), s("first")),
            (Value::Uint(1), s("int key")),
            (s("dup"), s("last")),
        ])
    }

    fn render(pattern: &str) -> Option<String> {
        let accessor = Accessor::parse(pattern).unwrap();
        accessor
            .render_with_tag(&record(), Some(b"app.web.prod"))
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn keys_and_values() {
        assert_eq!(render("$log").as_deref(), Some("hello"));
        assert_eq!(render("$n").as_deref(), Some("42"));
        assert_eq!(render("$neg").as_deref(), Some("-7"));
        assert_eq!(render("$big").as_deref(), Some("-1"));
        assert_eq!(render("$f").as_deref(), Some("0.500000"));
        assert_eq!(render("$f32").as_deref(), Some("0.100000"));
        assert_eq!(
            render("$huge").as_deref(),
            Some("999999999999999983222784.00000\0")
        );
        assert_eq!(render("$ok").as_deref(), Some("true"));
        assert_eq!(render("$bin").as_deref(), Some("00ab"));
        assert_eq!(render("$dup").as_deref(), Some("last"));
        assert_eq!(render("$key-with/chars").as_deref(), Some("odd"));
        for none in [
            "$none",
            "$ext",
            "$kubernetes",
            "$arr",
            "$missing",
            "$arr[1]",
        ] {
            assert_eq!(render(none), None, "{none}");
        }
    }

    #[test]
    fn subkeys() {
        assert_eq!(render("$kubernetes['pod_name']").as_deref(), Some("web-1"));
        assert_eq!(
            render("$kubernetes['labels']['app.kubernetes.io/name']").as_deref(),
            Some("web")
        );
        assert_eq!(render("$kubernetes['it''s']").as_deref(), Some("quoted"));
        assert_eq!(render("$arr[0]").as_deref(), Some("zero"));
        assert_eq!(render("$arr[1][0]").as_deref(), Some("1"));
        assert_eq!(render("$arr\t[0]").as_deref(), Some("zero"));
        // Subkeys on a scalar are ignored; missing ones give None.
        assert_eq!(render("$log['x'][3]").as_deref(), Some("hello"));
        assert_eq!(render("$kubernetes['nope']"), None);
        assert_eq!(render("$arr[2]"), None);
        assert_eq!(render("$arr['x']"), None);
        assert_eq!(render("$kubernetes[0]"), None);
    }

    #[test]
    fn templates() {
        assert_eq!(
            render("app-$kubernetes['pod_name'] x").as_deref(),
            Some("app-web-1 x")
        );
        assert_eq!(render("$log.$n,$ok").as_deref(), Some("hello.42,true"));
        assert_eq!(render("no accessor").as_deref(), Some("no accessor"));
        assert_eq!(render("x").as_deref(), Some("x"));
        assert_eq!(render("").as_deref(), Some(""));
        assert_eq!(render("a-$missing-b"), None);
        // Fluent Bit's tail rules: one character after the last accessor is dropped, and a
        // final '$' too unless the pattern has two characters.
        assert_eq!(render("$log.").as_deref(), Some("hello"));
        assert_eq!(render("$log.x").as_deref(), Some("hello.x"));
        assert_eq!(render("ab$").as_deref(), Some("ab"));
        assert_eq!(render("a$").as_deref(), Some("a$"));
        assert_eq!(render("$").as_deref(), Some(""));
        // '"' ends an accessor.
        assert_eq!(render("$log\"x\"").as_deref(), Some("hello\"x\""));
    }

    #[test]
    fn tags() {
        assert_eq!(render("$TAG").as_deref(), Some("app.web.prod"));
        assert_eq!(render("$TAG[0]-$TAG[2]").as_deref(), Some("app-prod"));
        assert_eq!(render("$TAG[5]x").as_deref(), Some("x"));
        assert_eq!(render("$TAGS").as_deref(), Some("app.web.prodS"));
        assert_eq!(tag_part(b"nodots", 0), b"nodots");
        assert_eq!(tag_part(b"nodots", 1), b"");
        assert_eq!(tag_part(b".a..b", 0), b"");
        assert_eq!(tag_part(b".a..b", 1), b"a");
        assert_eq!(tag_part(b".a..b", 3), b"b");
        assert_eq!(tag_part(b"a.", 1), b"");
        let accessor = Accessor::parse("$TAG").unwrap();
        assert_eq!(accessor.render(&record()), None);
        assert!(accessor.is_static());
        assert!(!Accessor::parse("x$log").unwrap().is_static());
    }

    #[test]
    fn errors() {
        let e = |pattern: &str| {
            let error = Accessor::parse(pattern).unwrap_err();
            (error.offset, error.message)
        };
        assert_eq!(e("$ x"), (1, "empty key after '$'"));
        assert_eq!(e("x$,y"), (2, "empty key after '$'"));
        assert_eq!(e("$['a']"), (1, "empty key after '$'"));
        assert_eq!(e("$a['b"), (3, "unterminated quote"));
        assert_eq!(e("$a['b''"), (3, "unterminated quote"));
        assert_eq!(e("$a["), (2, "unterminated bracket"));
        assert_eq!(e("$a[0"), (2, "unterminated bracket"));
        assert_eq!(e("$a['b'"), (2, "unterminated bracket"));
        assert_eq!(e("$a[\"b\"]"), (2, "unterminated bracket"));
        assert_eq!(e("$a['b'x]"), (6, "expected ']'"));
        assert_eq!(e("$a[01]"), (3, "bad index (leading zero)"));
        assert_eq!(e("$a[2147483647]"), (3, "bad index (too large)"));
        assert_eq!(
            e("$a[-1]"),
            (
                3,
                "bad index: expected 'subkey' (single quotes) or a number"
            )
        );
        assert_eq!(e("$1"), (0, "regex captures ($0..$9) have no meaning here"));
        let unexpected = "unexpected character after a key (only ['subkey'] or [index] may follow)";
        assert_eq!(e("$a]"), (2, unexpected));
        assert_eq!(e("x $kübernetes"), (4, unexpected));
        assert_eq!(e("app-$kubernetes['pod_name']-x"), (27, unexpected));
        // A lone '$' and a '$' at the end are not errors (Fluent Bit drops them).
        assert!(Accessor::parse("$").is_ok());
        assert!(Accessor::parse("abc$").is_ok());
    }
}
