//! Differential checks of kpl-codec's strict decoder against the prost model, shared by
//! kpl-codec's tests and the fuzz targets.

use kpl_codec::{deaggregate, Aggregator, AggregatorConfig, DecodeError, InputRecord, Options};

use crate::reducer::{accepts, canonical, reference, User};
use crate::{frame, strict_expectation, AggregatedRecord, Owned};

/// What the strict decoder must give for a framed `protobuf` that prost decodes as `decoded`
/// (or fails to decode).
pub fn check_strict(
    protobuf: &[u8],
    decoded: Result<AggregatedRecord, prost::DecodeError>,
) -> Result<(), String> {
    let ours = decode_strict(&frame(protobuf));
    if protobuf.is_empty() {
        // 20 bytes in all: a framing defect before any protobuf is read.
        return expect(ours == Err(DecodeError::TooShort { offset: 4 }), &ours);
    }
    match decoded {
        Ok(decoded) => match strict_expectation(&decoded) {
            Some(expected) => expect(ours == Ok(expected), &ours),
            None => expect(matches!(&ours, Err(e) if is_semantic(e)), &ours),
        },
        // Defects are reported in byte order, so a semantic defect may come first.
        Err(_) => expect(ours.is_err(), &ours),
    }
}

fn expect(ok: bool, ours: &Result<Vec<Owned>, DecodeError>) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected result {ours:?}"))
    }
}

pub fn decode_strict(data: &[u8]) -> Result<Vec<Owned>, DecodeError> {
    Ok(deaggregate(data, b"outer", &Options::strict())?
        .map(|r| {
            (
                r.partition_key.to_vec(),
                r.explicit_hash_key.map(<[u8]>::to_vec),
                r.data.to_vec(),
            )
        })
        .collect())
}

/// Errors that prost does not detect, because they are rules beyond protobuf syntax.
pub fn is_semantic(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::MissingPartitionKeyIndex { .. }
            | DecodeError::MissingData { .. }
            | DecodeError::MissingTagKey { .. }
            | DecodeError::InvalidUtf8 { .. }
            | DecodeError::InvalidExplicitHashKey { .. }
            | DecodeError::PartitionKeyIndexOutOfRange { .. }
            | DecodeError::ExplicitHashKeyIndexOutOfRange { .. }
    )
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Aggregates `users` with kpl-codec under `config` and checks, against the naive
/// reference reducer: exactly the user records the rules accept are accepted; the Kinesis
/// records are byte-identical to the reference's, split at the same points; every
/// aggregate respects the limits; the predicted size equals the real length; and strict
/// decoding gives back every accepted user record, in order, exactly once.
pub fn check_aggregation(users: &[User], config: AggregatorConfig) -> Result<(), String> {
    let mut aggregator = Aggregator::new(config).map_err(|e| format!("config: {e}"))?;
    let mut ours = vec![];
    let mut accepted = vec![];
    for u in users {
        let mut input = InputRecord::new(&u.pk, &u.data);
        if let Some(e) = &u.ehk {
            input = input.with_explicit_hash_key(e);
        }
        let should_accept = accepts(u, config.max_record_size);
        match aggregator.add(input) {
            Ok(out) => {
                ensure!(should_accept, "accepted a record the rules reject: {u:?}");
                accepted.push(u.clone());
                ours.extend(out);
            }
            Err(e) => ensure!(!should_accept, "rejected a valid record ({e}): {u:?}"),
        }
    }
    loop {
        let (waiting, predicted) = (aggregator.len(), aggregator.accurate_size());
        let Some(out) = aggregator.flush() else { break };
        if out.user_records == waiting {
            ensure!(
                out.data.len() == predicted,
                "predicted {predicted} bytes, wrote {}",
                out.data.len()
            );
        }
        ours.push(out);
    }

    let limit = config.max_size.min(config.max_record_size - 1);
    let expected = reference(&accepted, limit, config.max_count as usize);
    let got: Vec<_> = ours
        .iter()
        .map(|r| {
            (
                r.partition_key.clone(),
                r.explicit_hash_key.clone(),
                r.data.clone(),
            )
        })
        .collect();
    ensure!(
        got == expected,
        "differs from the reference reducer:\n ours {got:?}\n reference {expected:?}"
    );

    let mut back = vec![];
    for r in &ours {
        ensure!(
            r.user_records as u64 <= config.max_count,
            "count {} over max_count",
            r.user_records
        );
        if r.is_aggregated() {
            ensure!(
                r.data.len() <= limit,
                "aggregate of {} bytes over the limit {limit}",
                r.data.len()
            );
        }
        ensure!(
            r.data.len() + r.partition_key.len() <= config.max_record_size,
            "Kinesis record over the record limit"
        );
        let decoded = deaggregate(&r.data, r.partition_key.as_bytes(), &Options::strict())
            .map_err(|e| format!("our own aggregate does not decode: {e}"))?;
        if r.is_aggregated() {
            ensure!(decoded.len() == r.user_records, "user record count differs");
            for d in decoded {
                back.push((
                    d.partition_key.to_vec(),
                    d.explicit_hash_key.map(<[u8]>::to_vec),
                    d.data.to_vec(),
                ));
            }
        } else {
            back.push((r.partition_key.as_bytes().to_vec(), None, r.data.clone()));
        }
    }
    let sent: Vec<Owned> = accepted
        .iter()
        .zip(
            ours.iter()
                .flat_map(|r| std::iter::repeat_n(r.is_aggregated(), r.user_records)),
        )
        .map(|(u, aggregated)| {
            let ehk = if aggregated {
                u.ehk.as_deref().map(|e| canonical(e).into_bytes())
            } else {
                None
            };
            (u.pk.as_bytes().to_vec(), ehk, u.data.clone())
        })
        .collect();
    ensure!(
        back == sent,
        "round trip lost, duplicated or changed user records"
    );
    Ok(())
}
