//! The aggregator against a naive reference model of KPL's reducer (format.md section 2,
//! rule 6) that computes every size from scratch with prost, plus round trips through the
//! strict decoder.

use kpl_codec::AggregatorConfig;
use kpl_oracle::differential::check_aggregation;
use kpl_oracle::reducer::User;
use proptest::prelude::*;

fn user() -> impl Strategy<Value = User> {
    (
        // Mostly valid; sometimes an empty key or a bad explicit hash key, to be rejected.
        prop_oneof![30 => "[ab\u{e9}\u{1F600}]{1,3}", 1 => Just(String::new())],
        prop::option::weighted(0.3, prop_oneof![
            10 => "0{0,2}[0-9]{1,4}",
            10 => any::<u128>().prop_map(|v| v.to_string()),
            1 => "[0-9+ a]{0,3}",
            1 => Just("340282366920938463463374607431768211456".to_string()),
        ]),
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
        prop_assert_eq!(check_aggregation(&users, config), Ok(()));
    }
}
