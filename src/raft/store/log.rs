//! The Raft log and vote in sled.
//!
//! Tree `raft_log`: key = log index (8 bytes, big-endian, so sled's order is the log's order),
//! value = the entry. Tree `raft_meta`: the vote, the committed log id and the last purged log
//! id. Appends and votes are flushed to disk before openraft is told they are done.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};

use super::codec::{decode, encode, sled_err};
use crate::raft::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// The log store; cheap to clone (sled trees are shared handles).
#[derive(Clone)]
pub(crate) struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
}

impl LogStore {
    pub(super) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            db: db.clone(),
            log: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageIOError<crate::config::NodeId>> {
        let raw = self.meta.get(key).map_err(sled_err(StorageIOError::read))?;
        raw.map(|bytes| decode(&bytes, StorageIOError::read))
            .transpose()
    }

    fn write_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
    ) -> Result<(), StorageIOError<crate::config::NodeId>> {
        let bytes = encode(value, StorageIOError::write)?;
        self.meta
            .insert(key, bytes)
            .map_err(sled_err(StorageIOError::write))?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), StorageIOError<crate::config::NodeId>> {
        self.db
            .flush_async()
            .await
            .map_err(sled_err(StorageIOError::write))?;
        Ok(())
    }

    fn last_entry(&self) -> Result<Option<Entry>, StorageIOError<crate::config::NodeId>> {
        let last = self
            .log
            .last()
            .map_err(sled_err(StorageIOError::read_logs))?;
        last.map(|(_, bytes)| decode(&bytes, StorageIOError::read_logs))
            .transpose()
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for item in self.log.range::<[u8; 8], _>((start, end)) {
            let (_, bytes) = item.map_err(sled_err(StorageIOError::read_logs))?;
            entries.push(decode(&bytes, StorageIOError::read_logs)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED)?;
        let last_log_id = match self.last_entry()? {
            Some(entry) => Some(entry.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote)?;
        self.flush().await?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.read_meta(VOTE)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on its own: losing it only means re-applying a few entries on restart.
        self.write_meta(COMMITTED, &committed)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = encode(&entry, StorageIOError::write_logs)?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(sled_err(StorageIOError::write_logs))?;
        let flushed = self.db.flush_async().await;
        let outcome = flushed
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(outcome);
        flushed.map_err(sled_err(StorageIOError::write_logs))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Removes every entry at and after `log_id.index`.
        let mut batch = sled::Batch::default();
        for item in self.log.range(index_key(log_id.index)..) {
            let (key, _) = item.map_err(sled_err(StorageIOError::write_logs))?;
            batch.remove(key);
        }
        self.log
            .apply_batch(batch)
            .map_err(sled_err(StorageIOError::write_logs))?;
        self.flush().await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra entries, never a gap.
        self.write_meta(LAST_PURGED, &log_id)?;
        self.flush().await?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=index_key(log_id.index)) {
            let (key, _) = item.map_err(sled_err(StorageIOError::write_logs))?;
            batch.remove(key);
        }
        self.log
            .apply_batch(batch)
            .map_err(sled_err(StorageIOError::write_logs))?;
        Ok(())
    }
}
