//! Raft storage on sled: the log ([`log::LogStore`]) and the state machine
//! ([`state_machine::StateMachineStore`]) share one sled database in the node's data directory.
//!
//! Only this module touches sled.

// openraft fixes the storage error type (about 200 bytes); boxing it here would only move the
// allocation, so the size lint is off for the storage code.
#![allow(clippy::result_large_err)]

mod codec;
mod log;
mod state_machine;

use std::path::Path;

pub(crate) use self::log::LogStore;
pub use self::state_machine::StateHandle;
pub(crate) use self::state_machine::StateMachineStore;

/// The database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the database's lock: a node already runs on this data directory.
    #[error("another gru is using {path}")]
    Locked {
        /// The data directory.
        path: String,
    },
    /// Anything else.
    #[error("cannot open the Raft store in {path}: {source}")]
    Failed {
        /// The data directory.
        path: String,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
}

impl OpenError {
    fn of(dir: &Path, source: sled::Error) -> Self {
        let path = dir.display().to_string();
        // sled 0.34 reports a lock held elsewhere only by this message (an `Other` I/O error).
        let locked = matches!(&source, sled::Error::Io(e)
            if e.kind() == std::io::ErrorKind::Other
                && e.to_string().starts_with("could not acquire lock"));
        if locked {
            Self::Locked { path }
        } else {
            Self::Failed { path, source }
        }
    }
}

/// The two halves of a node's Raft storage.
pub struct RaftStore {
    /// The log and vote.
    pub(crate) log: LogStore,
    /// The state machine and snapshots.
    pub(crate) state_machine: StateMachineStore,
    /// Read access to the applied state, for everything outside Raft.
    pub state: StateHandle,
    db: sled::Db,
}

impl RaftStore {
    /// Opens (or creates) the store under `dir`, loading the applied state into memory.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let err = |source| OpenError::of(dir, source);
        let db = sled::Config::new()
            .path(dir.join("raft"))
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(err)?;
        let log = LogStore::open(&db).map_err(err)?;
        let state_machine = StateMachineStore::open(&db).map_err(err)?;
        let state = state_machine.handle();
        Ok(Self {
            log,
            state_machine,
            state,
            db,
        })
    }

    /// A handle to flush the database at shutdown.
    pub fn flusher(&self) -> StoreFlusher {
        StoreFlusher(self.db.clone())
    }
}

/// Flushes the sled database; used once at the end of an orderly shutdown.
#[derive(Clone)]
pub struct StoreFlusher(sled::Db);

impl StoreFlusher {
    /// Writes everything buffered to disk.
    pub async fn flush(&self) -> Result<usize, sled::Error> {
        self.0.flush_async().await
    }
}

#[cfg(test)]
mod suite_tests {
    use super::*;
    use crate::raft::types::{StorageError, TypeConfig};
    use openraft::testing::{StoreBuilder, Suite};

    struct SledBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir()
                .map_err(|e| openraft::StorageIOError::write(openraft::AnyError::new(&e)))?;
            let store = RaftStore::open(dir.path())
                .map_err(|e| openraft::StorageIOError::write(openraft::AnyError::new(&e)))?;
            Ok((dir, store.log, store.state_machine))
        }
    }

    /// openraft's own conformance suite against the sled store.
    #[test]
    fn sled_store_passes_openraft_suite() -> Result<(), StorageError> {
        Suite::test_all(SledBuilder)?;
        Ok(())
    }

    /// What was written survives closing and reopening the database.
    #[tokio::test]
    async fn vote_and_log_survive_reopen() -> anyhow::Result<()> {
        use openraft::storage::{RaftLogReader, RaftLogStorage};
        let dir = tempfile::tempdir()?;
        let vote = openraft::Vote::new_committed(3, 2);
        {
            let mut store = RaftStore::open(dir.path())?;
            store.log.save_vote(&vote).await?;
        }
        let mut store = RaftStore::open(dir.path())?;
        assert_eq!(store.log.read_vote().await?, Some(vote));
        assert!(store.log.try_get_log_entries(0..10).await?.is_empty());
        Ok(())
    }

    /// A store another process (here: another handle) has open is refused as in use, naming
    /// the directory, not with sled's lock error.
    #[test]
    fn a_locked_store_says_another_gru_uses_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let _first = RaftStore::open(dir.path())?;
        let Err(err) = RaftStore::open(dir.path()) else {
            panic!("a second handle opened a locked store");
        };
        assert!(matches!(err, OpenError::Locked { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("another gru is using {}", dir.path().display())
        );
        Ok(())
    }
}
