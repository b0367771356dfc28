//! The Raft state machine in sled, with an in-memory copy for readers.
//!
//! Tree `raft_state`: one key per record of [`ClusterState`] (`member/…`, `spear/…`,
//! `worker/…`, `meta/…`, `id_ceiling`) plus `applied` and `membership`; every applied batch
//! of entries is written as one atomic sled batch. Tree `raft_snapshot`: the current
//! snapshot's meta and data.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::codec::{decode, encode, sled_err};
use crate::config::NodeId;
use crate::raft::command::CommandResponse;
use crate::raft::state::{ClusterState, Record, SpearLease};
use crate::raft::types::{
    Entry, LogId, Member, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";
const ID_CEILING: &str = "id_ceiling";
const SNAP_META: &str = "meta";
const SNAP_DATA: &str = "data";

fn member_key(id: NodeId) -> String {
    format!("member/{id:020}")
}
fn spear_key(id: NodeId) -> String {
    format!("spear/{id:020}")
}
fn worker_key(id: NodeId) -> String {
    format!("worker/{id:020}")
}
fn meta_key(key: &str) -> String {
    format!("meta/{key}")
}

/// Read access to the applied cluster state, shared with everything outside Raft.
#[derive(Clone)]
pub struct StateHandle(Arc<Shared>);

struct Shared {
    state: RwLock<ClusterState>,
    applied: watch::Sender<u64>,
}

impl StateHandle {
    /// Borrows the applied state; keep the guard short-lived.
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        // A poisoned lock means a panic while applying; the data is still the last good write.
        self.0.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes whenever entries are applied; the value is the last applied index.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.applied.subscribe()
    }

    fn replace(&self, state: ClusterState, applied: u64) {
        *self.0.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        self.0.applied.send_replace(applied);
    }
}

/// The snapshot's content.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    state: ClusterState,
}

/// The state machine half of the Raft store.
pub(crate) struct StateMachineStore {
    tree: sled::Tree,
    snapshots: sled::Tree,
    handle: StateHandle,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

type IoResult<T> = Result<T, StorageIOError<NodeId>>;

impl StateMachineStore {
    pub(super) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        let tree = db.open_tree("raft_state")?;
        let snapshots = db.open_tree("raft_snapshot")?;
        let loaded = load(&tree).map_err(|e| sled::Error::Unsupported(e.to_string()))?;
        let applied_index = loaded.last_applied.map_or(0, |id| id.index);
        let (tx, _) = watch::channel(applied_index);
        Ok(Self {
            tree,
            snapshots,
            handle: StateHandle(Arc::new(Shared {
                state: RwLock::new(loaded.state),
                applied: tx,
            })),
            last_applied: loaded.last_applied,
            membership: loaded.membership,
        })
    }

    /// A read handle on the applied state.
    pub(crate) fn handle(&self) -> StateHandle {
        self.handle.clone()
    }

    fn persist(&self, state: &ClusterState, touched: &[Record]) -> IoResult<()> {
        let enc_err = |e| StorageIOError::write_state_machine(e);
        let mut batch = sled::Batch::default();
        for record in touched {
            let (key, value) = match record {
                Record::Member(id) => (member_key(*id), opt(state.members.get(id), enc_err)?),
                Record::Spear(id) => (spear_key(*id), opt(state.spears.get(id), enc_err)?),
                Record::Worker(id) => (worker_key(*id), opt(state.workers.get(id), enc_err)?),
                Record::Meta(key) => (meta_key(key), opt(state.meta.get(key), enc_err)?),
                Record::IdCeiling => (
                    ID_CEILING.to_string(),
                    Some(encode(&state.id_ceiling, enc_err)?),
                ),
            };
            match value {
                Some(bytes) => batch.insert(key.as_bytes(), bytes),
                None => batch.remove(key.as_bytes()),
            }
        }
        batch.insert(APPLIED, encode(&self.last_applied, enc_err)?);
        batch.insert(MEMBERSHIP, encode(&self.membership, enc_err)?);
        self.tree.apply_batch(batch).map_err(sled_err(enc_err))
    }

    fn write_all(&self, body: &SnapshotBody) -> IoResult<()> {
        let enc_err = |e| StorageIOError::write_state_machine(e);
        let mut batch = sled::Batch::default();
        for item in self.tree.iter() {
            let (key, _) = item.map_err(sled_err(enc_err))?;
            batch.remove(key);
        }
        let state = &body.state;
        for (id, m) in &state.members {
            batch.insert(member_key(*id).as_bytes(), encode(m, enc_err)?);
        }
        for (id, s) in &state.spears {
            batch.insert(spear_key(*id).as_bytes(), encode(s, enc_err)?);
        }
        for (id, w) in &state.workers {
            batch.insert(worker_key(*id).as_bytes(), encode(w, enc_err)?);
        }
        for (k, v) in &state.meta {
            batch.insert(meta_key(k).as_bytes(), encode(v, enc_err)?);
        }
        batch.insert(ID_CEILING, encode(&state.id_ceiling, enc_err)?);
        batch.insert(APPLIED, encode(&body.last_applied, enc_err)?);
        batch.insert(MEMBERSHIP, encode(&body.membership, enc_err)?);
        self.tree.apply_batch(batch).map_err(sled_err(enc_err))
    }
}

fn opt<T: Serialize>(
    value: Option<&T>,
    on_err: fn(openraft::AnyError) -> StorageIOError<NodeId>,
) -> IoResult<Option<Vec<u8>>> {
    value.map(|v| encode(v, on_err)).transpose()
}

/// Reads the whole persisted state machine.
fn load(tree: &sled::Tree) -> IoResult<SnapshotBody> {
    let rd = |e| StorageIOError::read_state_machine(e);
    let mut body = SnapshotBody {
        last_applied: None,
        membership: StoredMembership::default(),
        state: ClusterState::default(),
    };
    for item in tree.iter() {
        let (key, value) = item.map_err(sled_err(rd))?;
        let key = String::from_utf8_lossy(&key);
        if key == APPLIED {
            body.last_applied = decode(&value, rd)?;
        } else if key == MEMBERSHIP {
            body.membership = decode(&value, rd)?;
        } else if key == ID_CEILING {
            body.state.id_ceiling = decode(&value, rd)?;
        } else if let Some(k) = key.strip_prefix("meta/") {
            body.state.meta.insert(k.to_string(), decode(&value, rd)?);
        } else if key.starts_with("member/") {
            let m: Member = decode(&value, rd)?;
            body.state.members.insert(m.id, m);
        } else if key.starts_with("spear/") {
            let s: SpearLease = decode(&value, rd)?;
            body.state.spears.insert(s.spear.id, s);
        } else if let Some(id) = key.strip_prefix("worker/") {
            let id: NodeId = id.parse().map_err(|e| rd(openraft::AnyError::new(&e)))?;
            body.state.workers.insert(id, decode(&value, rd)?);
        }
    }
    Ok(body)
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut touched = Vec::new();
        let mut state = self
            .handle
            .0
            .state
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => CommandResponse::Done,
                EntryPayload::Normal(cmd) => state.apply(&cmd, &mut touched),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResponse::Done
                }
            };
            responses.push(response);
        }
        self.persist(&state, &touched)?;
        drop(state);
        self.handle
            .0
            .applied
            .send_replace(self.last_applied.map_or(0, |id| id.index));
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            body: SnapshotBody {
                last_applied: self.last_applied,
                membership: self.membership.clone(),
                state: self.handle.read().clone(),
            },
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let sig = Some(meta.signature());
        let body: SnapshotBody = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(sig.clone(), openraft::AnyError::new(&e)))?;
        self.write_all(&body)?;
        store_snapshot(&self.snapshots, meta, &data)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.handle
            .replace(body.state, meta.last_log_id.map_or(0, |id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let rd = |e| StorageIOError::read_snapshot(None, e);
        let meta = self.snapshots.get(SNAP_META).map_err(sled_err(rd))?;
        let data = self.snapshots.get(SNAP_DATA).map_err(sled_err(rd))?;
        match (meta, data) {
            (Some(meta), Some(data)) => Ok(Some(Snapshot {
                meta: decode(&meta, rd)?,
                snapshot: Box::new(Cursor::new(data.to_vec())),
            })),
            _ => Ok(None),
        }
    }
}

fn store_snapshot(tree: &sled::Tree, meta: &SnapshotMeta, data: &[u8]) -> IoResult<()> {
    let wr = |e| StorageIOError::write_snapshot(None, e);
    let mut batch = sled::Batch::default();
    batch.insert(SNAP_META, encode(meta, wr)?);
    batch.insert(SNAP_DATA, data);
    tree.apply_batch(batch).map_err(sled_err(wr))
}

/// Builds a snapshot from a copy of the state taken when openraft asked for a builder.
pub(crate) struct SnapshotBuilder {
    body: SnapshotBody,
    snapshots: sled::Tree,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let wr = |e| StorageIOError::write_snapshot(None, e);
        let data = encode(&self.body, wr)?;
        let snapshot_id = match self.body.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term,
                id.index,
                crate::clock::unix_ms()
            ),
            None => format!("empty-{}", crate::clock::unix_ms()),
        };
        let meta = SnapshotMeta {
            last_log_id: self.body.last_applied,
            last_membership: self.body.membership.clone(),
            snapshot_id,
        };
        store_snapshot(&self.snapshots, &meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
