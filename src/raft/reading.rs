//! What the Prometheus exposition shows of Raft on this node, read from openraft when it is
//! scraped: nothing is recorded as Raft works.

use std::time::Duration;

use crate::config::NodeId;
use crate::raft::GruRaft;

/// How long a scrape waits for Raft's core to say its commit index (it answers between two
/// of its own steps, in microseconds unless it is stuck).
const COMMITTED_WAIT: Duration = Duration::from_millis(500);

/// Raft on one core node, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftReading {
    /// The current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// Whether this node is that leader.
    pub is_leader: bool,
    /// The last index in this node's log (0: empty).
    pub last_log_index: u64,
    /// The last index this node knows to be committed; `None` when Raft's core did not
    /// answer in time.
    pub committed_index: Option<u64>,
    /// The last index applied to this node's state machine (0: none).
    pub applied_index: u64,
}

impl RaftReading {
    /// Reads `raft`, the Raft of node `me`.
    pub async fn read(raft: &GruRaft, me: NodeId) -> Self {
        let (term, leader, last_log_index, applied_index) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            (
                m.current_term,
                m.current_leader,
                m.last_log_index.unwrap_or(0),
                m.last_applied.map_or(0, |id| id.index),
            )
        };
        // openraft 0.9's metrics carry no commit index; its state does.
        let committed = raft.with_raft_state(|st| st.committed.map_or(0, |id| id.index));
        let committed_index = match tokio::time::timeout(COMMITTED_WAIT, committed).await {
            Ok(Ok(index)) => Some(index),
            Ok(Err(_)) | Err(_) => None,
        };
        Self {
            term,
            leader,
            is_leader: leader == Some(me),
            last_log_index,
            committed_index,
            applied_index,
        }
    }
}
