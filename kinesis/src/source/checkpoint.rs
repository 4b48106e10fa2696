//! Where a consumer got to, per shard: a small trait and two stores (in memory, and a JSON
//! file replaced atomically on every save).

use core::fmt;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::sequence::Checkpoint;

/// A shard's saved position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardPosition {
    /// Every user record up to and including this one was processed.
    At(Checkpoint),
    /// The shard is closed and every record of it was processed: its children come next.
    Finished,
}

/// Why a checkpoint could not be loaded or saved.
#[derive(Debug)]
pub struct CheckpointError {
    /// What failed, with the path where there is one.
    pub message: String,
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CheckpointError {}

/// Stores shard positions. Saves must be durable when they return: a consumer restarted
/// after a save resumes after that record.
pub trait CheckpointStore: Send + Sync {
    /// Every saved position, by shard id.
    fn load(&self) -> Result<BTreeMap<String, ShardPosition>, CheckpointError>;
    /// Saves one shard's position.
    fn save(&self, shard_id: &str, position: &ShardPosition) -> Result<(), CheckpointError>;
}

/// Positions kept in memory (lost with the process): for tests, and for consumers that
/// only need the within-process bookkeeping.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    positions: Mutex<BTreeMap<String, ShardPosition>>,
}

impl MemoryCheckpoints {
    fn positions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ShardPosition>> {
        self.positions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CheckpointStore for MemoryCheckpoints {
    fn load(&self) -> Result<BTreeMap<String, ShardPosition>, CheckpointError> {
        Ok(self.positions().clone())
    }

    fn save(&self, shard_id: &str, position: &ShardPosition) -> Result<(), CheckpointError> {
        self.positions()
            .insert(shard_id.to_owned(), position.clone());
        Ok(())
    }
}

/// Positions in a JSON file (`{"shardId-...": {"At": {"SequenceNumber": "...",
/// "SubSequenceNumber": 0}}, "shardId-...": "Finished"}`), rewritten through a temporary
/// file and a rename on every save, so a crash leaves either the old or the new file.
///
/// ```
/// use kpl_kinesis::source::{Checkpoint, CheckpointStore, FileCheckpoints, ShardPosition};
/// let dir = std::env::temp_dir().join(format!("kpl-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let store = FileCheckpoints::new(dir.join("checkpoints.json"));
/// store.save("shardId-000000000000", &ShardPosition::At(Checkpoint::new("42", 3))).unwrap();
/// let again = FileCheckpoints::new(dir.join("checkpoints.json"));
/// assert_eq!(again.load().unwrap()["shardId-000000000000"], ShardPosition::At(Checkpoint::new("42", 3)));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct FileCheckpoints {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileCheckpoints {
    /// A store in this file (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpoints {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<BTreeMap<String, ShardPosition>, CheckpointError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CheckpointError {
                message: format!("{}: not a checkpoint file: {e}", self.path.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(CheckpointError {
                message: format!("cannot read {}: {e}", self.path.display()),
            }),
        }
    }
}

impl CheckpointStore for FileCheckpoints {
    fn load(&self) -> Result<BTreeMap<String, ShardPosition>, CheckpointError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.read()
    }

    fn save(&self, shard_id: &str, position: &ShardPosition) -> Result<(), CheckpointError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.read()?;
        all.insert(shard_id.to_owned(), position.clone());
        let fail = |what: &str, e: std::io::Error| CheckpointError {
            message: format!("cannot {what} {}: {e}", self.path.display()),
        };
        let json = serde_json::to_vec_pretty(&all).map_err(|e| CheckpointError {
            message: e.to_string(),
        })?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file =
            std::fs::File::create(&tmp).map_err(|e| fail("create a temporary file for", e))?;
        file.write_all(&json).map_err(|e| fail("write", e))?;
        file.sync_all().map_err(|e| fail("sync", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("replace", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_and_overwrites() {
        let dir = std::env::temp_dir().join(format!("kpl-cp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cp.json");
        let _ = std::fs::remove_file(&path);
        let store = FileCheckpoints::new(&path);
        assert!(store.load().unwrap().is_empty());
        store
            .save("s0", &ShardPosition::At(Checkpoint::new("1", 0)))
            .unwrap();
        store.save("s1", &ShardPosition::Finished).unwrap();
        store
            .save("s0", &ShardPosition::At(Checkpoint::new("17", 4)))
            .unwrap();
        let loaded = FileCheckpoints::new(&path).load().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["s0"], ShardPosition::At(Checkpoint::new("17", 4)));
        assert_eq!(loaded["s1"], ShardPosition::Finished);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"SequenceNumber\": \"17\""), "{text}");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(store
            .load()
            .unwrap_err()
            .message
            .contains("not a checkpoint file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn memory_store_keeps_the_last_save() {
        let store = MemoryCheckpoints::default();
        store
            .save("s0", &ShardPosition::At(Checkpoint::new("5", 1)))
            .unwrap();
        store.save("s0", &ShardPosition::Finished).unwrap();
        assert_eq!(store.load().unwrap()["s0"], ShardPosition::Finished);
    }
}
