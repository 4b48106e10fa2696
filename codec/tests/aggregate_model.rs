//! The aggregator against a naive reference model of KPL's reducer (format.md section 2,
//! rule 6) that computes every size from scratch with prost, plus round trips through the
//! strict decoder.

mod oracle;

use kpl_codec::{deaggregate, hash_key, Aggregator, AggregatorConfig, InputRecord, Options};
use oracle::{frame, AggregatedRecord, Record};
use proptest::prelude::*;
use prost::Message;

#[derive(Debug, Clone)]
struct User {
    pk: String,
    ehk: Option<String>,
    data: Vec<u8>,
}

fn canonical(ehk: &str) -> String {
    let t = ehk.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

fn message(users: &[User]) -> AggregatedRecord {
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

fn accurate(users: &[User]) -> usize {
    match users.len() {
        0 => 0,
        1 => users[0].data.len(),
        _ => 20 + message(users).encoded_len(),
    }
}

fn estimate(users: &[User]) -> usize {
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

fn emit(users: &[User]) -> (String, String, Vec<u8>) {
    let first = &users[0];
    let ehk = match &first.ehk {
        Some(e) => canonical(e),
        None => hash_key(first.pk.as_bytes()).to_string(),
    };
    if users.len() == 1 {
        (first.pk.clone(), ehk, first.data.clone())
    } else {
        ("a".into(), ehk, frame(&message(users).encode_to_vec()))
    }
}

fn reference(users: &[User], limit: usize, max_count: usize) -> Vec<(String, String, Vec<u8>)> {
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

fn user() -> impl Strategy<Value = User> {
    (
        "[ab\u{e9}\u{1F600}]{1,3}",
        prop::option::weighted(0.3, prop_oneof!["0{0,2}[0-9]{1,4}", any::<u128>().prop_map(|v| v.to_string())]),
        prop_oneof![4 => proptest::collection::vec(any::<u8>(), 0..60), 1 => proptest::collection::vec(any::<u8>(), 100..400)],
    ).prop_map(|(pk, ehk, data)| User { pk, ehk, data })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn matches_the_reference_reducer_and_round_trips(
        users in proptest::collection::vec(user(), 0..40),
        max_size in prop_oneof![64usize..700, Just(51_200)],
        max_count in prop_oneof![1u64..6, Just(u64::from(u32::MAX))],
    ) {
        let config = AggregatorConfig { max_size, max_count, ..AggregatorConfig::default() };
        let mut aggregator = Aggregator::new(config).unwrap();
        let mut ours = vec![];
        for u in &users {
            let mut input = InputRecord::new(&u.pk, &u.data);
            if let Some(e) = &u.ehk { input = input.with_explicit_hash_key(e); }
            if let Some(out) = aggregator.add(input).unwrap() { ours.push(out); }
        }
        loop {
            let (waiting, predicted) = (aggregator.len(), aggregator.accurate_size());
            let Some(out) = aggregator.flush() else { break };
            if out.user_records == waiting {
                prop_assert_eq!(out.data.len(), predicted);
            }
            ours.push(out);
        }

        let expected = reference(&users, max_size, max_count as usize);
        let got: Vec<_> = ours.iter().map(|r| (r.partition_key.clone(), r.explicit_hash_key.clone(), r.data.clone())).collect();
        prop_assert_eq!(&got, &expected);

        // Round trip: strict decoding gives back every user record, in order, once.
        let mut back = vec![];
        for r in &ours {
            prop_assert!(r.user_records as u64 <= max_count);
            if r.is_aggregated() {
                prop_assert!(r.data.len() <= max_size);
            }
            let decoded: Vec<_> = deaggregate(&r.data, r.partition_key.as_bytes(), &Options::strict()).unwrap().collect();
            if r.is_aggregated() {
                prop_assert_eq!(decoded.len(), r.user_records);
                for d in decoded {
                    back.push((d.partition_key.to_vec(), d.explicit_hash_key.map(<[u8]>::to_vec), d.data.to_vec()));
                }
            } else {
                back.push((r.partition_key.as_bytes().to_vec(), None, r.data.clone()));
            }
        }
        let sent: Vec<_> = users.iter().zip(ours.iter().flat_map(|r| std::iter::repeat_n(r.is_aggregated(), r.user_records)))
            .map(|(u, aggregated)| (u.pk.as_bytes().to_vec(), if aggregated { u.ehk.as_deref().map(|e| canonical(e).into_bytes()) } else { None }, u.data.clone()))
            .collect();
        prop_assert_eq!(back, sent);
    }
}
