//! A naive reference model of KPL's reducer (format.md section 2, rule 6): every size is
//! computed from scratch by serializing with prost, O(n^2) and obviously right.

use prost::Message;

use crate::{frame, AggregatedRecord, Record};

/// A user record: partition key, explicit hash key as the user wrote it, data.
#[derive(Debug, Clone)]
pub struct User {
    pub pk: String,
    pub ehk: Option<String>,
    pub data: Vec<u8>,
}

pub fn canonical(ehk: &str) -> String {
    let t = ehk.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

pub fn message(users: &[User]) -> AggregatedRecord {
    let mut m = AggregatedRecord::default();
    for u in users {
        let pk = u.pk.as_bytes().to_vec();
        let pi = match m.partition_key_table.iter().position(|k| *k == pk) {
            Some(i) => i,
            None => {
                m.partition_key_table.push(pk);
                m.partition_key_table.len() - 1
            }
        };
        let ei = u.ehk.as_deref().map(|e| {
            let e = canonical(e).into_bytes();
            match m.explicit_hash_key_table.iter().position(|k| *k == e) {
                Some(i) => i,
                None => {
                    m.explicit_hash_key_table.push(e);
                    m.explicit_hash_key_table.len() - 1
                }
            }
        });
        m.records.push(Record {
            partition_key_index: Some(pi as u64),
            explicit_hash_key_index: ei.map(|i| i as u64),
            data: Some(u.data.clone()),
            tags: vec![],
        });
    }
    m
}

pub fn accurate(users: &[User]) -> usize {
    match users.len() {
        0 => 0,
        1 => users[0].data.len(),
        _ => 20 + message(users).encoded_len(),
    }
}

pub fn estimate(users: &[User]) -> usize {
    if users.len() < 2 {
        return accurate(users);
    }
    let mut seen_pk: Vec<&str> = vec![];
    let mut seen_ehk: Vec<String> = vec![];
    let mut total = 0;
    for u in users {
        total += u.data.len() + 5;
        if !seen_pk.contains(&u.pk.as_str()) {
            seen_pk.push(&u.pk);
            total += u.pk.len() + 3;
        }
        if let Some(e) = &u.ehk {
            total += 2;
            let c = canonical(e);
            if !seen_ehk.contains(&c) {
                total += c.len() + 3;
                seen_ehk.push(c);
            }
        }
    }
    total
}

pub fn emit(users: &[User]) -> (String, String, Vec<u8>) {
    let first = &users[0];
    let ehk = match &first.ehk {
        Some(e) => canonical(e),
        None => md5_hash_key(first.pk.as_bytes()).to_string(),
    };
    if users.len() == 1 {
        (first.pk.clone(), ehk, first.data.clone())
    } else {
        ("a".into(), ehk, frame(&message(users).encode_to_vec()))
    }
}

pub fn reference(users: &[User], limit: usize, max_count: usize) -> Vec<(String, String, Vec<u8>)> {
    let mut out = vec![];
    let mut container: Vec<User> = vec![];
    let flush = |container: &mut Vec<User>, out: &mut Vec<_>| {
        let mut k = container.len();
        while k > 1 && (k > max_count || accurate(&container[..k]) > limit) {
            k -= 1;
        }
        out.push(emit(&container[..k]));
        container.drain(..k);
    };
    for u in users {
        container.push(u.clone());
        if container.len() >= max_count || estimate(&container) >= limit {
            flush(&mut container, &mut out);
        }
    }
    while !container.is_empty() {
        flush(&mut container, &mut out);
    }
    out
}

/// MD5 of the bytes as an unsigned big-endian 128-bit integer (format.md section 3).
pub fn md5_hash_key(bytes: &[u8]) -> u128 {
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(bytes).into())
}

/// Whether the rules accept a user record (format.md section 2): partition key of 1 to 256
/// UTF-16 code units; explicit hash key of 1+ ASCII digits worth at most 2^128 - 1; data
/// plus UTF-8 key within the record limit.
pub fn accepts(user: &User, max_record_size: usize) -> bool {
    let units = user.pk.encode_utf16().count();
    let ehk_ok = user.ehk.as_deref().is_none_or(|e| {
        let digits = canonical(e);
        !e.is_empty()
            && e.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() < 39
                || (digits.len() == 39
                    && digits.as_str() <= "340282366920938463463374607431768211455"))
    });
    (1..=256).contains(&units) && ehk_ok && user.data.len() + user.pk.len() <= max_record_size
}
