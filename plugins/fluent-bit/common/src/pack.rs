//! Writing Fluent Bit events: msgpack values, and the event shape inputs hand to Fluent
//! Bit, `[[EventTime, {}], record]` with the time as ext type 0 (u32 BE seconds, u32 BE
//! nanoseconds), as Fluent Bit 5.1.1's own inputs write it.

/// Appends msgpack to a buffer.
#[derive(Debug, Default)]
pub struct Packer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Packer {
    /// An empty packer.
    pub fn new() -> Packer {
        Packer::default()
    }

    /// Starts an event: `[[time, {}], ` — the caller then writes the record (a map).
    pub fn event_header(&mut self, seconds: u32, nanoseconds: u32) {
        self.buf.extend_from_slice(&[0x92, 0x92, 0xd7, 0x00]);
        self.buf.extend_from_slice(&seconds.to_be_bytes());
        self.buf.extend_from_slice(&nanoseconds.to_be_bytes());
        self.buf.push(0x80);
    }

    /// `nil`.
    pub fn nil(&mut self) {
        self.buf.push(0xc0);
    }

    /// A boolean.
    pub fn bool(&mut self, b: bool) {
        self.buf.push(if b { 0xc3 } else { 0xc2 });
    }

    /// An unsigned integer, in its shortest form.
    pub fn uint(&mut self, n: u64) {
        match n {
            0..=0x7f => self.buf.push(n as u8),
            0x80..=0xff => self.buf.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                self.buf.push(0xcd);
                self.buf.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.buf.push(0xce);
                self.buf.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                self.buf.push(0xcf);
                self.buf.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    /// A signed integer (negative ones as int64; non-negative as unsigned, as msgpack-c).
    pub fn int(&mut self, n: i64) {
        if n >= 0 {
            self.uint(n as u64);
        } else if n >= -32 {
            self.buf.push(n as i8 as u8);
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// A float64.
    pub fn f64(&mut self, f: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&f.to_bits().to_be_bytes());
    }

    fn len_header(
        &mut self,
        len: usize,
        fix: u8,
        fix_max: usize,
        m8: Option<u8>,
        m16: u8,
        m32: u8,
    ) {
        if len <= fix_max {
            self.buf.push(fix | len as u8);
        } else if let (Some(m8), true) = (m8, len <= 0xff) {
            self.buf.extend_from_slice(&[m8, len as u8]);
        } else if len <= 0xffff {
            self.buf.push(m16);
            self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.buf.push(m32);
            self.buf
                .extend_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
        }
    }

    /// A str (the bytes as they are; msgpack does not check UTF-8). At most 4 GiB.
    pub fn str(&mut self, s: &[u8]) {
        self.len_header(s.len(), 0xa0, 31, Some(0xd9), 0xda, 0xdb);
        self.buf.extend_from_slice(s);
    }

    /// A bin.
    pub fn bin(&mut self, b: &[u8]) {
        match b.len() {
            n if n <= 0xff => self.buf.extend_from_slice(&[0xc4, n as u8]),
            n if n <= 0xffff => {
                self.buf.push(0xc5);
                self.buf.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.buf.push(0xc6);
                self.buf.extend_from_slice(&(n as u32).to_be_bytes());
            }
        }
        self.buf.extend_from_slice(b);
    }

    /// An array header of `len` elements (the caller writes them).
    pub fn array(&mut self, len: usize) {
        self.len_header(len, 0x90, 15, None, 0xdc, 0xdd);
    }

    /// A map header of `len` pairs (the caller writes them).
    pub fn map(&mut self, len: usize) {
        self.len_header(len, 0x80, 15, None, 0xde, 0xdf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::{events, Value};

    #[test]
    fn what_is_packed_decodes_back() {
        let mut p = Packer::new();
        p.event_header(1_700_000_000, 5);
        p.map(6);
        p.str(b"s");
        p.str("é".repeat(40).as_bytes());
        p.str(b"n");
        p.int(-70_000);
        p.str(b"u");
        p.uint(u64::MAX);
        p.str(b"f");
        p.f64(0.5);
        p.str(b"a");
        p.array(2);
        p.nil();
        p.bool(true);
        p.str(b"b");
        p.bin(&[0; 300]);
        let all: Vec<_> = events(&p.buf).collect();
        assert_eq!(all.len(), 1);
        let e = all[0].as_ref().unwrap();
        assert_eq!((e.seconds, e.nanoseconds), (1_700_000_000, 5));
        let Value::Map(m) = &e.record else { panic!() };
        assert_eq!(m.len(), 6);
        assert_eq!(m[1].1, Value::Int(-70_000));
        assert_eq!(m[2].1, Value::Uint(u64::MAX));
        assert_eq!(m[3].1, Value::F64(0.5));
        assert_eq!(m[4].1, Value::Array(vec![Value::Nil, Value::Bool(true)]));
        assert_eq!(m[5].1, Value::Bin(&[0; 300]));
    }
}
