//! [`Core::check_invariants`]: the core's bookkeeping, checked from scratch.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Instant;

use super::records::{Accepted, Meta, Outbound, Payload};
use super::Core;
use crate::sink::admission::RECORD_OVERHEAD;
use crate::sink::outcome::RecordId;

impl Core {
    /// Checks the core's bookkeeping from scratch, and describes the first rule it finds
    /// broken:
    /// - every user record accepted and without an outcome is in exactly one place: held
    ///   for a shard map, a shard's open aggregate, or a Kinesis record in a shard's ready
    ///   queue, the collector, a retry, a request in flight or parked; none has an outcome
    ///   waiting too, and `put` = stored + failed + [`Core::buffered_records`] in
    ///   [`Core::stats`];
    /// - [`Core::buffered_records`] and [`Core::buffered_bytes`] count exactly those
    ///   records, and each shard's admission account exactly those charged to it;
    /// - the limits hold: `MaxBufferedRecords`, `MaxBufferedBytes`, `MaxConnections`,
    ///   `CollectionMaxCount` per request, `MaxRecordSize` per Kinesis record,
    ///   `AggregationMaxSize` and `AggregationMaxCount` per aggregate;
    /// - shard safety: the user records of a shard's open aggregate and ready queue lie in
    ///   its range, and each aggregate in the collector fits the open shard its hash key
    ///   routes to;
    /// - what is kept alongside agrees with what it sums up: each aggregator's record
    ///   count, each Kinesis record's hash key, deadline and TTL, the collector's bytes,
    ///   earliest deadline and earliest TTL, the bytes in flight; the shards are the map's
    ///   open shards;
    /// - records wait for a map (held or parked) only while there is none or a fresh one is
    ///   wanted.
    ///
    /// A debugging aid, for tests and fuzzing: it walks everything buffered, in time and
    /// memory linear in the number of records. Builds with `debug_assertions` run it after
    /// every call that changes the core while it buffers at most 64 user records, and panic
    /// if it fails; release builds never run it unless asked.
    ///
    /// ```
    /// use std::time::Instant;
    /// use kpl_kinesis::sink::{Config, Core, ShardMap, UserRecord};
    ///
    /// let t0 = Instant::now();
    /// let mut core = Core::new(Config::default(), t0).unwrap();
    /// core.put(UserRecord::new("a", "held until a map comes"), t0).unwrap();
    /// core.set_shard_map(ShardMap::even(2), t0);
    /// assert_eq!(core.check_invariants(), Ok(()));
    /// ```
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut tally = Tally::new(self);
        self.check_places(&mut tally)?;
        self.check_totals(&tally)?;
        self.check_limits()
    }

    /// Walks every place a record can be, counting what is there.
    fn check_places<'a>(&'a self, tally: &mut Tally<'a>) -> Result<(), String> {
        if !self.held.is_empty() && self.map.is_some() && !self.wants_map {
            return Err(format!(
                "{} records held for a shard map, but one is installed and none wanted",
                self.held.len()
            ));
        }
        for accepted in &self.held {
            tally.visit_accepted(accepted, format_args!("held"))?;
        }
        self.check_shards(tally)?;
        self.check_collector(tally)?;
        for rec in self.retries.values() {
            self.check_outbound(rec, tally, format_args!("a retry"))?;
            check_sealed(rec, format_args!("a retry"))?;
        }
        let mut in_flight_bytes = 0;
        for (id, batch) in &self.in_flight {
            if id.0 >= self.next_request {
                return Err(format!("{id:?} in flight was never handed out"));
            }
            if batch.is_empty() || batch.len() > self.config.collection_max_count {
                return Err(format!(
                    "{id:?} in flight has {} Kinesis records (CollectionMaxCount {})",
                    batch.len(),
                    self.config.collection_max_count
                ));
            }
            for rec in batch {
                self.check_outbound(rec, tally, format_args!("{id:?} in flight"))?;
                check_sealed(rec, format_args!("{id:?} in flight"))?;
                in_flight_bytes += rec.size();
            }
        }
        if in_flight_bytes != self.in_flight_bytes {
            return Err(format!(
                "{in_flight_bytes} bytes in flight, counted as {}",
                self.in_flight_bytes
            ));
        }
        if !self.parked.is_empty() && !self.wants_map {
            return Err(format!(
                "{} aggregates parked, but no shard map wanted",
                self.parked.len()
            ));
        }
        for p in &self.parked {
            if !p.rec.is_aggregate() {
                return Err(format!("a record alone parked on {}", p.shard_id));
            }
            self.check_outbound(&p.rec, tally, format_args!("parked on {}", p.shard_id))?;
            check_sealed(&p.rec, format_args!("parked on {}", p.shard_id))?;
        }
        for (id, _) in &self.outcomes {
            if tally.seen.contains(id) {
                return Err(format!(
                    "{id:?} has an outcome waiting and is still buffered"
                ));
            }
        }
        Ok(())
    }

    /// The shards are the map's open shards; their open aggregates and ready queues.
    fn check_shards<'a>(&'a self, tally: &mut Tally<'a>) -> Result<(), String> {
        let open = self.map.as_ref().map_or(0, |m| m.len());
        if self.shards.len() != open {
            return Err(format!(
                "{} shards for a map of {open} open shards",
                self.shards.len()
            ));
        }
        for (i, shard) in self.shards.iter().enumerate() {
            let listed = self.map.as_ref().and_then(|m| m.open_shard(i));
            if listed != Some((&shard.id, shard.range)) {
                return Err(format!(
                    "shard {i} is {} {:?}, the map lists {listed:?}",
                    shard.id, shard.range
                ));
            }
            if shard.aggregator.len() != shard.open.len() {
                return Err(format!(
                    "the open aggregate of {} encodes {} records and holds {}",
                    shard.id,
                    shard.aggregator.len(),
                    shard.open.len()
                ));
            }
            if !shard.open.is_empty() && !self.config.aggregation_enabled {
                return Err(format!(
                    "an open aggregate on {} with aggregation off",
                    shard.id
                ));
            }
            for accepted in &shard.open {
                let meta = &accepted.meta;
                tally
                    .visit_accepted(accepted, format_args!("the open aggregate of {}", shard.id))?;
                if !shard.range.contains(meta.hash_key) {
                    return Err(format!(
                        "the open aggregate of {} {:?} holds {:?} with hash key {}",
                        shard.id, shard.range, meta.id, meta.hash_key
                    ));
                }
            }
            for rec in &shard.ready {
                self.check_outbound(rec, tally, format_args!("the ready queue of {}", shard.id))?;
                if !rec.fits(shard.range) {
                    return Err(format!(
                        "the ready queue of {} {:?} holds a Kinesis record with user records \
                         outside it",
                        shard.id, shard.range
                    ));
                }
            }
        }
        Ok(())
    }

    /// The collector's records, and the sums it keeps of them.
    fn check_collector<'a>(&'a self, tally: &mut Tally<'a>) -> Result<(), String> {
        let mut bytes = 0;
        let mut deadline: Option<Instant> = None;
        let mut expires: Option<Instant> = None;
        for rec in self.collector.iter() {
            self.check_outbound(rec, tally, format_args!("the collector"))?;
            bytes += rec.size();
            deadline = Some(deadline.map_or(rec.deadline, |d| d.min(rec.deadline)));
            expires = Some(expires.map_or(rec.expires, |e| e.min(rec.expires)));
            if rec.is_aggregate() {
                let shard = self
                    .map
                    .as_ref()
                    .and_then(|m| m.open_shard(m.route(rec.hash_key)));
                if !shard.is_some_and(|(_, range)| rec.fits(range)) {
                    return Err(format!(
                        "an aggregate in the collector does not fit the open shard its hash \
                         key {} routes to ({shard:?})",
                        rec.hash_key
                    ));
                }
            }
        }
        let kept = (
            self.collector.bytes(),
            self.collector.deadline(),
            self.collector.expires(),
        );
        if (bytes, deadline, expires) != kept {
            return Err(format!(
                "the collector holds {bytes} bytes, deadline {deadline:?}, earliest TTL \
                 {expires:?}; it counts {kept:?}"
            ));
        }
        Ok(())
    }

    /// One Kinesis record: within its limits, agreeing with its user records, which are
    /// counted.
    fn check_outbound<'a>(
        &'a self,
        rec: &'a Outbound,
        tally: &mut Tally<'a>,
        place: fmt::Arguments<'_>,
    ) -> Result<(), String> {
        match &rec.payload {
            Payload::Alone(accepted) => tally.visit_accepted(accepted, place)?,
            Payload::Aggregate { users, .. } => {
                for user in &users.users {
                    tally.visit(&user.meta, place)?;
                    if user.meta.size != user.partition_key_len + user.data_len {
                        return Err(format!(
                            "{:?} in {place} has size {}, its packed parts {} + {}",
                            user.meta.id, user.meta.size, user.partition_key_len, user.data_len
                        ));
                    }
                }
                let packed: usize = users.users.iter().map(|u| u.packed_len()).sum();
                if packed != users.bytes.len() {
                    return Err(format!(
                        "an aggregate in {place} packs {} bytes of user records, whose parts \
                         add up to {packed}",
                        users.bytes.len()
                    ));
                }
            }
        }
        let first = rec.metas().next().map(|u| u.hash_key);
        let ehk = kpl_codec::parse_explicit_hash_key(&rec.explicit_hash_key).ok();
        if first != Some(rec.hash_key) || ehk != Some(rec.hash_key) {
            return Err(format!(
                "a Kinesis record in {place} has hash key {} and explicit hash key {:?}; its \
                 first user record's is {first:?}",
                rec.hash_key, rec.explicit_hash_key
            ));
        }
        let earliest_ttl = rec.metas().map(|u| u.expires).min();
        let earliest_deadline = rec.metas().map(|u| u.deadline).min();
        if earliest_ttl != Some(rec.expires) || earliest_deadline.is_some_and(|d| rec.deadline > d)
        {
            return Err(format!(
                "a Kinesis record in {place} has deadline {:?} and TTL {:?}; its user records \
                 {earliest_deadline:?} and {earliest_ttl:?}",
                rec.deadline, rec.expires
            ));
        }
        if rec.size() > self.config.max_record_size {
            return Err(format!(
                "a Kinesis record of {} bytes in {place} (MaxRecordSize {})",
                rec.size(),
                self.config.max_record_size
            ));
        }
        if let Payload::Aggregate { data, .. } = &rec.payload {
            let bytes = data.bytes();
            let body = bytes
                .get(kpl_codec::MAGIC.len()..bytes.len().saturating_sub(kpl_codec::DIGEST_LEN));
            let digest = bytes.get(bytes.len().saturating_sub(kpl_codec::DIGEST_LEN)..);
            let framed = bytes.starts_with(&kpl_codec::MAGIC) && body.is_some();
            let digest_right = match data.is_sealed() {
                true => body.map(kpl_codec::md5).as_ref().map(|d| &d[..]) == digest,
                false => digest.is_some_and(|d| d.iter().all(|&b| b == 0)),
            };
            if !framed || !digest_right {
                return Err(format!(
                    "an aggregate of {} bytes in {place} ({}) is not framed with the MAGIC and \
                     {}",
                    bytes.len(),
                    if data.is_sealed() {
                        "sealed"
                    } else {
                        "unsealed"
                    },
                    if data.is_sealed() {
                        "its body's MD5"
                    } else {
                        "a zero digest"
                    },
                ));
            }
            let config = &self.config;
            let users = rec.user_records();
            if !config.aggregation_enabled
                || users < 2
                || users as u64 > config.aggregation_max_count
                || data.len() > config.aggregation_max_size
            {
                return Err(format!(
                    "an aggregate of {} user records and {} bytes in {place} (aggregation \
                     {}, AggregationMaxCount {}, AggregationMaxSize {})",
                    users,
                    data.len(),
                    if config.aggregation_enabled {
                        "on"
                    } else {
                        "off"
                    },
                    config.aggregation_max_count,
                    config.aggregation_max_size
                ));
            }
        }
        Ok(())
    }

    /// What was counted against the counters kept.
    fn check_totals(&self, tally: &Tally<'_>) -> Result<(), String> {
        if (tally.records, tally.bytes) != (self.buffered_records, self.buffered_bytes) {
            return Err(format!(
                "{} records of {} bytes buffered, counted as {} of {}",
                tally.records, tally.bytes, self.buffered_records, self.buffered_bytes
            ));
        }
        let s = &self.stats;
        let settled = s.user_records_stored + s.user_records_failed;
        if s.user_records_put != settled + self.buffered_records as u64 {
            return Err(format!(
                "{} records put, {} stored, {} failed, {} buffered",
                s.user_records_put,
                s.user_records_stored,
                s.user_records_failed,
                self.buffered_records
            ));
        }
        for (account, records, cost) in self.admission.charged() {
            let counted = tally.accounts.get(account).copied().unwrap_or((0, 0));
            if counted != (records, cost) {
                return Err(format!(
                    "the admission account {account:?} is charged {records} records costing \
                     {cost}; they are {counted:?}"
                ));
            }
        }
        for account in tally.accounts.keys() {
            if !self.admission.charged().any(|(a, _, _)| a == *account) {
                return Err(format!(
                    "no admission account {account:?} for records charged to it"
                ));
            }
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), String> {
        let c = &self.config;
        if self.buffered_records > c.max_buffered_records
            || self.buffered_bytes > c.max_buffered_bytes
        {
            return Err(format!(
                "{} records of {} bytes buffered (MaxBufferedRecords {}, MaxBufferedBytes {})",
                self.buffered_records,
                self.buffered_bytes,
                c.max_buffered_records,
                c.max_buffered_bytes
            ));
        }
        if self.in_flight.len() > c.max_connections {
            return Err(format!(
                "{} requests in flight (MaxConnections {})",
                self.in_flight.len(),
                c.max_connections
            ));
        }
        if !(1..=c.collection_max_size).contains(&self.batch_bytes) {
            return Err(format!(
                "requests of at most {} bytes (CollectionMaxSize {})",
                self.batch_bytes, c.collection_max_size
            ));
        }
        Ok(())
    }
}

/// The records found so far.
struct Tally<'a> {
    next_record: u64,
    seen: HashSet<RecordId>,
    records: usize,
    bytes: usize,
    /// Records and cost per admission account.
    accounts: BTreeMap<&'a str, (usize, usize)>,
}

impl<'a> Tally<'a> {
    fn new(core: &Core) -> Self {
        Tally {
            next_record: core.next_record,
            seen: HashSet::with_capacity(core.buffered_records),
            records: 0,
            bytes: 0,
            accounts: BTreeMap::new(),
        }
    }

    /// [`Tally::visit`], for a record kept as it was put.
    fn visit_accepted(
        &mut self,
        accepted: &'a Accepted,
        place: fmt::Arguments<'_>,
    ) -> Result<(), String> {
        let meta = &accepted.meta;
        if meta.size != accepted.record.size() {
            return Err(format!(
                "{:?} in {place} has size {}, counted as {}",
                meta.id,
                accepted.record.size(),
                meta.size
            ));
        }
        self.visit(meta, place)
    }

    /// Counts a record found in `place`; fails if it was found before or never put.
    fn visit(&mut self, meta: &'a Meta, place: fmt::Arguments<'_>) -> Result<(), String> {
        let id = meta.id;
        if id.0 >= self.next_record {
            return Err(format!("{id:?} in {place} was never put"));
        }
        if !self.seen.insert(id) {
            return Err(format!("{id:?} is in two places, one of them {place}"));
        }
        let size = meta.size;
        self.records += 1;
        self.bytes += size;
        let account = self.accounts.entry(&meta.account).or_default();
        account.0 += 1;
        account.1 += size + RECORD_OVERHEAD;
        Ok(())
    }
}

/// A Kinesis record that went out in a request (in flight, waiting for a retry, parked)
/// was sealed when it first did.
fn check_sealed(rec: &Outbound, place: fmt::Arguments<'_>) -> Result<(), String> {
    match &rec.payload {
        Payload::Aggregate { data, .. } if !data.is_sealed() => Err(format!(
            "an aggregate in {place} was never sealed (its MD5 not computed)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    //! The check finds what it claims to: each test breaks one rule by hand, in a core
    //! whose records sit in several places, and reads the description.

    use std::time::{Duration, Instant};

    use super::super::records::{Accepted, Frame, Meta, Outbound, Payload};
    use super::super::Core;
    use crate::sink::{Config, ShardMap, UserRecord};

    /// A core on two shards with an aggregate of two records (shard 0) and a record alone
    /// (shard 1) in the collector, and two records in shard 0's open aggregate.
    fn busy_core() -> (Core, Instant) {
        let t0 = Instant::now();
        let mut core = Core::new(Config::default(), t0).unwrap();
        core.set_shard_map(ShardMap::even(2), t0);
        let put = |core: &mut Core, key: &str, ehk: u128| {
            let record = UserRecord::new(key, "data").with_explicit_hash_key(ehk.to_string());
            core.put(record, t0).unwrap();
        };
        put(&mut core, "a", 1);
        put(&mut core, "b", 2);
        put(&mut core, "c", (1 << 127) + 1);
        core.flush(t0);
        core.handle_timeout(t0);
        put(&mut core, "d", 3);
        put(&mut core, "e", 4);
        assert_eq!(core.check_invariants(), Ok(()));
        assert!(!core.collector.is_empty());
        assert!(core.shards.iter().any(|s| !s.open.is_empty()));
        (core, t0)
    }

    fn broken(core: &Core) -> String {
        core.check_invariants()
            .expect_err("the check passes a broken core")
    }

    #[test]
    fn a_record_in_two_places() {
        let (mut core, t0) = busy_core();
        let (record, meta) = core
            .collector
            .iter()
            .find_map(|rec| match &rec.payload {
                Payload::Alone(a) => Some((a.record.clone(), &a.meta)),
                Payload::Aggregate { .. } => None,
            })
            .unwrap();
        let twin = Meta {
            id: meta.id,
            hash_key: meta.hash_key,
            size: meta.size,
            deadline: t0,
            expires: t0 + Duration::from_secs(30),
            attempts: 0,
            last_error: None,
            account: meta.account.clone(),
        };
        core.wants_map = true;
        core.held.push_back(Accepted { record, meta: twin });
        let e = broken(&core);
        assert!(e.contains("in two places"), "{e}");
    }

    #[test]
    fn packed_parts_that_do_not_add_up() {
        let (mut core, _) = busy_core();
        let mut all = core.collector.take_all();
        let aggregate = all.iter_mut().find(|r| r.is_aggregate()).unwrap();
        if let Payload::Aggregate { users, .. } = &mut aggregate.payload {
            users.bytes.pop();
        }
        for rec in all {
            core.collector.push(rec);
        }
        let e = broken(&core);
        assert!(e.contains("packs"), "{e}");
    }

    #[test]
    fn an_aggregate_sent_unsealed() {
        let (mut core, t0) = busy_core();
        let t = core.poll_transmit(t0).unwrap();
        assert_eq!(core.check_invariants(), Ok(()));
        let batch = core.in_flight.get_mut(&t.id).unwrap();
        let aggregate = batch.iter_mut().find(|r| r.is_aggregate()).unwrap();
        if let Payload::Aggregate { data, .. } = &mut aggregate.payload {
            // The same bytes, digest zeroed, as the aggregator emitted them.
            let mut agg = kpl_codec::Aggregator::new(core.config.aggregator()).unwrap();
            for key in ["a", "b"] {
                let ehk = if key == "a" { "1" } else { "2" };
                agg.add(kpl_codec::InputRecord::new(key, b"data").with_explicit_hash_key(ehk))
                    .unwrap();
            }
            let unsealed = agg.flush_unsealed().unwrap();
            assert_eq!(unsealed.clone().seal().data, data.bytes());
            *data = Frame::Unsealed(unsealed);
        }
        let e = broken(&core);
        assert!(e.contains("never sealed"), "{e}");
    }

    #[test]
    fn an_aggregate_with_a_wrong_digest() {
        let (mut core, t0) = busy_core();
        let t = core.poll_transmit(t0).unwrap();
        let batch = core.in_flight.get_mut(&t.id).unwrap();
        let aggregate = batch.iter_mut().find(|r| r.is_aggregate()).unwrap();
        if let Payload::Aggregate { data, .. } = &mut aggregate.payload {
            let mut bytes = data.bytes().to_vec();
            if let Some(last) = bytes.last_mut() {
                *last ^= 1;
            }
            *data = Frame::Sealed(bytes);
        }
        let e = broken(&core);
        assert!(e.contains("MD5"), "{e}");
    }

    #[test]
    fn a_record_lost() {
        let (mut core, _) = busy_core();
        let shard = core.shards.iter_mut().find(|s| !s.open.is_empty()).unwrap();
        shard.open.pop_back();
        let e = broken(&core);
        assert!(e.contains("encodes") && e.contains("holds"), "{e}");
    }

    #[test]
    fn counters_that_disagree() {
        let (mut core, _) = busy_core();
        core.buffered_bytes += 1;
        let e = broken(&core);
        assert!(e.contains("bytes buffered"), "{e}");
        core.buffered_bytes -= 1;
        core.stats.user_records_stored += 1;
        let e = broken(&core);
        assert!(e.contains("records put"), "{e}");
    }

    /// Takes the collector's first Kinesis record out, leaving the others.
    fn take_first_collected(core: &mut Core) -> Outbound {
        let mut all = core.collector.take_all();
        let first = all.pop_front().unwrap();
        for rec in all {
            core.collector.push(rec);
        }
        first
    }

    #[test]
    fn held_with_a_map_and_none_wanted() {
        let (mut core, _) = busy_core();
        let rec = take_first_collected(&mut core);
        core.held.extend(rec.into_accepted());
        let e = broken(&core);
        assert!(e.contains("held for a shard map"), "{e}");
        // Wanted, it is fine.
        core.wants_map = true;
        assert_eq!(core.check_invariants(), Ok(()));
    }

    #[test]
    fn a_record_on_the_wrong_shard() {
        let (mut core, _) = busy_core();
        let rec = take_first_collected(&mut core);
        let home = core.map.as_ref().unwrap().route(rec.hash_key);
        core.shards[1 - home].ready.push_back(rec);
        let e = broken(&core);
        assert!(e.contains("outside"), "{e}");
    }

    #[test]
    fn a_record_that_expires_sooner_than_counted() {
        let (mut core, _) = busy_core();
        let mut rec = take_first_collected(&mut core);
        rec.metas_mut().next().unwrap().expires -= Duration::from_millis(1);
        core.collector.push(rec);
        let e = broken(&core);
        assert!(e.contains("TTL"), "{e}");
    }

    #[test]
    fn bytes_in_flight_miscounted() {
        let (mut core, t0) = busy_core();
        let t = core.poll_transmit(t0).unwrap();
        assert_eq!(core.check_invariants(), Ok(()));
        core.in_flight_bytes -= t.size();
        let e = broken(&core);
        assert!(e.contains("bytes in flight"), "{e}");
    }
}
