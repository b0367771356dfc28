//! What the Raft log carries: commands on the cluster state and their results.
//!
//! Commands are built only by the leader's control plane (never taken from the wire as they
//! are), so a command that needs a clock carries the leader's reading of it: applying a
//! command never looks at the local clock, which keeps every replica's state identical.

use serde::{Deserialize, Serialize};

use crate::config::NodeId;
use crate::raft::types::Member;

/// A change to the replicated cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Insert or replace a node's member record.
    UpsertMember(Member),
    /// Forget a node: its member record, spear lease and worker id.
    RemoveNode {
        /// The node to forget.
        id: NodeId,
    },
    /// Register a spear or renew its lease until `now_ms + ttl_ms`.
    SpearHeartbeat {
        /// The spear's member record (addresses clients are sent to).
        spear: Member,
        /// The leader's wall clock when it proposed the renewal, in Unix milliseconds.
        now_ms: u64,
        /// The lease's length.
        ttl_ms: u64,
    },
    /// Remove a spear at once (it is shutting down).
    DeregisterSpear {
        /// The spear.
        id: NodeId,
    },
    /// Remove every spear whose lease ended at or before `now_ms` (the leader's clock).
    ExpireSpears {
        /// The leader's wall clock in Unix milliseconds.
        now_ms: u64,
    },
    /// Raise the strict-idgen ceiling; a lower value leaves it unchanged.
    RaiseIdCeiling {
        /// The new ceiling: no id at or above it may be issued until a higher one is committed.
        ceiling: u64,
    },
    /// Give `node` a snowflake worker id (its existing one when it has one).
    AssignWorker {
        /// The node asking.
        node: NodeId,
    },
    /// Set an entry of the small metadata store.
    PutMeta {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// What applying a command produced; the leader hands it back to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Applied; nothing to report (also the result of blank and membership entries).
    Done,
    /// The spear's lease now ends at this time (Unix milliseconds, leader's clock).
    Lease {
        /// End of the lease.
        expires_at_ms: u64,
        /// When this registration began (unchanged by renewals).
        #[serde(default)]
        registered_at_ms: u64,
    },
    /// These spears' leases had ended and they were removed.
    Expired {
        /// The removed spears.
        ids: Vec<NodeId>,
    },
    /// The idgen ceiling before and after the command.
    IdCeiling {
        /// The ceiling before this command: every id issued so far is below it.
        previous: u64,
        /// The committed ceiling.
        ceiling: u64,
    },
    /// The node's worker id, or `None` when all 1,024 are taken.
    Worker {
        /// The worker id.
        id: Option<u16>,
    },
}
