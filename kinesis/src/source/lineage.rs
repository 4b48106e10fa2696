//! Shard lineage: after a reshard, a child shard is read only once its parents are read to
//! their end, so that records of one partition key come out in order.

use std::collections::{BTreeMap, BTreeSet};

use kpl_codec::HashRange;

/// One shard from ListShards, with its parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardNode {
    /// `shardId-000000000003`.
    pub shard_id: String,
    /// The shard it was split from, or the first of the two merged into it.
    pub parent: Option<String>,
    /// The second shard merged into it.
    pub adjacent_parent: Option<String>,
    /// Its hash key range.
    pub range: HashRange,
    /// Whether it is open (no ending sequence number).
    pub open: bool,
}

/// The stream's shards and their lineage.
#[derive(Debug, Clone, Default)]
pub struct ShardTree {
    shards: BTreeMap<String, ShardNode>,
}

impl ShardTree {
    /// From ListShards' shards (every page).
    pub fn new(shards: impl IntoIterator<Item = ShardNode>) -> Self {
        ShardTree {
            shards: shards
                .into_iter()
                .map(|s| (s.shard_id.clone(), s))
                .collect(),
        }
    }

    /// A shard by id.
    pub fn get(&self, shard_id: &str) -> Option<&ShardNode> {
        self.shards.get(shard_id)
    }

    /// Every shard id, in id order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.shards.keys().map(String::as_str)
    }

    /// The shards that may be read now: not `finished`, and every parent either finished
    /// or gone from the listing (past the stream's retention). In id order.
    ///
    /// ```
    /// use kpl_kinesis::source::{ShardNode, ShardTree};
    /// use kpl_codec::HashRange;
    /// let node = |id: &str, parent: Option<&str>| ShardNode {
    ///     shard_id: id.into(), parent: parent.map(Into::into), adjacent_parent: None,
    ///     range: HashRange::FULL, open: true };
    /// let tree = ShardTree::new([node("s0", None), node("s1", Some("s0"))]);
    /// let mut finished = std::collections::BTreeSet::new();
    /// assert_eq!(tree.readable(&finished), vec!["s0"]);
    /// finished.insert("s0".to_string());
    /// assert_eq!(tree.readable(&finished), vec!["s1"]);
    /// ```
    pub fn readable(&self, finished: &BTreeSet<String>) -> Vec<&str> {
        let done = |parent: &Option<String>| match parent {
            None => true,
            Some(p) => finished.contains(p) || !self.shards.contains_key(p),
        };
        self.shards
            .values()
            .filter(|s| !finished.contains(&s.shard_id))
            .filter(|s| done(&s.parent) && done(&s.adjacent_parent))
            .map(|s| s.shard_id.as_str())
            .collect()
    }

    /// The shards descending from `shard_id` (children, grandchildren, ...), in id order.
    pub fn descendants(&self, shard_id: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![shard_id.to_owned()];
        while let Some(id) = frontier.pop() {
            for s in self.shards.values() {
                let child = s.parent.as_deref() == Some(id.as_str())
                    || s.adjacent_parent.as_deref() == Some(id.as_str());
                if child && found.insert(s.shard_id.clone()) {
                    frontier.push(s.shard_id.clone());
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardNode {
        ShardNode {
            shard_id: id.into(),
            parent: parent.map(Into::into),
            adjacent_parent: adjacent.map(Into::into),
            range: HashRange::FULL,
            open: true,
        }
    }

    #[test]
    fn split_then_merge_reads_in_lineage_order() {
        // s0 splits into s1 and s2, which merge into s3.
        let tree = ShardTree::new([
            node("s0", None, None),
            node("s1", Some("s0"), None),
            node("s2", Some("s0"), None),
            node("s3", Some("s1"), Some("s2")),
        ]);
        let mut finished = BTreeSet::new();
        assert_eq!(tree.readable(&finished), vec!["s0"]);
        finished.insert("s0".to_string());
        assert_eq!(tree.readable(&finished), vec!["s1", "s2"]);
        finished.insert("s1".to_string());
        assert_eq!(
            tree.readable(&finished),
            vec!["s2"],
            "s3 waits for both parents"
        );
        finished.insert("s2".to_string());
        assert_eq!(tree.readable(&finished), vec!["s3"]);
        assert_eq!(
            tree.descendants("s0").into_iter().collect::<Vec<_>>(),
            vec!["s1", "s2", "s3"]
        );
    }

    #[test]
    fn parents_past_retention_do_not_block() {
        let tree = ShardTree::new([node("s5", Some("s1"), Some("s2"))]);
        assert_eq!(tree.readable(&BTreeSet::new()), vec!["s5"]);
    }
}
