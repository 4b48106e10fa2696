//! Which shard a hash key lands on: the open shards' hash ranges from ListShards, searched
//! by binary search.

use core::fmt;
use std::sync::Arc;

use kpl_codec::HashRange;

/// One shard as ListShards describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// Inclusive hash key range.
    pub range: HashRange,
    /// Whether the shard is open (its `EndingSequenceNumber` absent or null).
    pub open: bool,
}

impl ShardInfo {
    /// Parses the decimal range strings ListShards returns.
    ///
    /// ```
    /// use kpl_kinesis::sink::ShardInfo;
    /// let s = ShardInfo::parse("shardId-000000000000", "0", "340282366920938463463374607431768211455", true).unwrap();
    /// assert!(s.range.contains(u128::MAX));
    /// ```
    pub fn parse(
        shard_id: &str,
        starting_hash_key: &str,
        ending_hash_key: &str,
        open: bool,
    ) -> Result<Self, ShardMapError> {
        let key = |text: &str| {
            kpl_codec::parse_explicit_hash_key(text).map_err(|_| ShardMapError::BadHashKey {
                shard_id: shard_id.to_owned(),
                text: text.to_owned(),
            })
        };
        Ok(ShardInfo {
            shard_id: shard_id.to_owned(),
            range: HashRange::new(key(starting_hash_key)?, key(ending_hash_key)?),
            open,
        })
    }
}

/// Why a list of shards cannot be used as a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardMapError {
    /// A hash key that is not a decimal number in `[0, 2^128 - 1]`.
    BadHashKey {
        /// The shard.
        shard_id: String,
        /// The text given.
        text: String,
    },
    /// The open shards do not tile `[0, 2^128 - 1]` (overlap or gap), as ListShards can
    /// show for a moment during a reshard. The map should be fetched again.
    NotATiling {
        /// The first hash key that is covered twice or not at all.
        at: u128,
    },
}

impl fmt::Display for ShardMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardMapError::BadHashKey { shard_id, text } => {
                write!(f, "shard {shard_id} has a bad hash key {text:?}")
            }
            ShardMapError::NotATiling { at } => {
                write!(
                    f,
                    "open shards do not cover the hash key space exactly (at {at})"
                )
            }
        }
    }
}

impl std::error::Error for ShardMapError {}

/// The stream's shards: open ones for routing, all of them (closed parents included) for
/// checking where an aggregate landed.
#[derive(Debug, Clone)]
pub struct ShardMap {
    /// Open shards sorted by starting hash key; they tile the key space.
    open: Vec<(HashRange, Arc<str>)>,
    /// Every shard listed, sorted by id, for lookups by id.
    all: Vec<(Arc<str>, HashRange)>,
}

impl ShardMap {
    /// Builds the map; fails unless the open shards cover every hash key exactly once.
    pub fn new(shards: &[ShardInfo]) -> Result<Self, ShardMapError> {
        let mut open: Vec<(HashRange, Arc<str>)> = shards
            .iter()
            .filter(|s| s.open)
            .map(|s| (s.range, Arc::from(s.shard_id.as_str())))
            .collect();
        open.sort_by_key(|(r, _)| r.start);
        let mut next: Option<u128> = Some(0);
        for (range, _) in &open {
            match next {
                Some(n) if range.start == n && range.end >= range.start => {
                    next = range.end.checked_add(1);
                }
                Some(n) => {
                    return Err(ShardMapError::NotATiling {
                        at: n.min(range.start),
                    })
                }
                None => return Err(ShardMapError::NotATiling { at: range.start }),
            }
        }
        if let Some(n) = next {
            return Err(ShardMapError::NotATiling { at: n });
        }
        let mut all: Vec<(Arc<str>, HashRange)> = shards
            .iter()
            .map(|s| (Arc::from(s.shard_id.as_str()), s.range))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        Ok(ShardMap { open, all })
    }

    /// A map of `n` open shards splitting the key space evenly as AWS does
    /// (`floor(2^128 / n) * i`), named `shardId-00000000000i`; for tests and examples.
    pub fn even(n: usize) -> Self {
        let n = n.max(1);
        let step = (u128::MAX / n as u128)
            .wrapping_add(u128::from(u128::MAX % n as u128 == n as u128 - 1));
        let shards: Vec<ShardInfo> = (0..n)
            .map(|i| {
                let start = step.saturating_mul(i as u128);
                let end = if i + 1 == n {
                    u128::MAX
                } else {
                    step.saturating_mul(i as u128 + 1) - 1
                };
                ShardInfo {
                    shard_id: format!("shardId-{i:012}"),
                    range: HashRange::new(start, end),
                    open: true,
                }
            })
            .collect();
        // The ranges tile by construction.
        ShardMap::new(&shards).unwrap_or_else(|_| ShardMap {
            open: Vec::new(),
            all: Vec::new(),
        })
    }

    /// Number of open shards.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether there is no open shard (never true for a map built by [`ShardMap::new`]).
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Index (in `0..len()`) of the open shard holding `hash_key`.
    pub fn route(&self, hash_key: u128) -> usize {
        self.open
            .partition_point(|(r, _)| r.start <= hash_key)
            .saturating_sub(1)
    }

    /// The open shard at `index`: its id and range.
    pub fn open_shard(&self, index: usize) -> Option<(&Arc<str>, HashRange)> {
        self.open.get(index).map(|(r, id)| (id, *r))
    }

    /// The range of any listed shard, open or closed.
    pub fn range_of(&self, shard_id: &str) -> Option<HashRange> {
        self.all
            .binary_search_by(|(id, _)| (**id).cmp(shard_id))
            .ok()
            .and_then(|i| self.all.get(i))
            .map(|(_, r)| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_map_matches_aws_arithmetic() {
        // AWS: shard i of n starts at floor(2^128 / n) * i; for 4 shards that is i * 2^126.
        let m = ShardMap::even(4);
        assert_eq!(m.len(), 4);
        for i in 0..4u128 {
            let (_, r) = m.open_shard(i as usize).unwrap();
            assert_eq!(r.start, i << 126);
        }
        assert_eq!(m.open_shard(3).unwrap().1.end, u128::MAX);
        let m3 = ShardMap::even(3);
        assert_eq!(m3.open_shard(1).unwrap().1.start, u128::MAX / 3);
    }

    #[test]
    fn routes_by_binary_search_with_inclusive_ends() {
        let m = ShardMap::even(4);
        assert_eq!(m.route(0), 0);
        assert_eq!(m.route((1 << 126) - 1), 0);
        assert_eq!(m.route(1 << 126), 1);
        assert_eq!(m.route(u128::MAX), 3);
        // "a" hashes to 16955237001963240173058271559858726497 (format.md section 3),
        // which is below 2^126 = 85070591730234615865843651857942052864.
        assert_eq!(m.route(kpl_codec::hash_key(b"a")), 0);
    }

    #[test]
    fn closed_shards_are_known_but_not_routed() {
        let shards = [
            ShardInfo::parse(
                "shardId-000000000000",
                "0",
                "340282366920938463463374607431768211455",
                false,
            )
            .unwrap(),
            ShardInfo::parse(
                "shardId-000000000001",
                "0",
                "170141183460469231731687303715884105727",
                true,
            )
            .unwrap(),
            ShardInfo::parse(
                "shardId-000000000002",
                "170141183460469231731687303715884105728",
                "340282366920938463463374607431768211455",
                true,
            )
            .unwrap(),
        ];
        let m = ShardMap::new(&shards).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.open_shard(m.route(u128::MAX)).unwrap().0.as_ref(),
            "shardId-000000000002"
        );
        assert_eq!(m.range_of("shardId-000000000000"), Some(HashRange::FULL));
        assert_eq!(m.range_of("shardId-000000000009"), None);
    }

    #[test]
    fn gaps_and_overlaps_are_refused() {
        let gap = [
            ShardInfo::parse("s0", "0", "10", true).unwrap(),
            ShardInfo::parse("s1", "12", "340282366920938463463374607431768211455", true).unwrap(),
        ];
        assert_eq!(
            ShardMap::new(&gap).unwrap_err(),
            ShardMapError::NotATiling { at: 11 }
        );
        let overlap = [
            ShardInfo::parse("s0", "0", "10", true).unwrap(),
            ShardInfo::parse("s1", "10", "340282366920938463463374607431768211455", true).unwrap(),
        ];
        assert!(ShardMap::new(&overlap).is_err());
        let short = [ShardInfo::parse("s0", "0", "10", true).unwrap()];
        assert_eq!(
            ShardMap::new(&short).unwrap_err(),
            ShardMapError::NotATiling { at: 11 }
        );
        assert!(ShardMap::new(&[]).is_err());
        assert!(ShardInfo::parse("s0", "-1", "10", true).is_err());
    }
}
