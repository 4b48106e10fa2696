//! The aggregator against a naive reference model of KPL's reducer (format.md section 2,
//! rule 6) that computes every size from scratch with prost, plus round trips through the
//! strict decoder.

use kpl_codec::{deaggregate, Aggregator, AggregatorConfig, InputRecord, Options};
use kpl_oracle::reducer::{canonical, reference, User};
use proptest::prelude::*;

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
