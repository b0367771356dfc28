//! What this core node sees of the Raft leader, published over gossip so that members that
//! cannot reach the core (a spear whose lease renewals fail, a ticket node that cannot read the
//! registry) can tell "the cluster works without me" from "nobody has a leader".

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::config::NodeId;
use crate::net::gossip::Gossip;
use crate::raft::GruRaft;

/// The leader a core with these metrics sees live: itself while it leads with a quorum that
/// acknowledged it within `quorum_within_ms`, the leader it follows otherwise; none while an
/// election runs (or on a learner that knows of none).
pub fn seen_leader(
    me: NodeId,
    state: ServerState,
    current_leader: Option<NodeId>,
    millis_since_quorum_ack: Option<u64>,
    quorum_within_ms: u64,
) -> Option<NodeId> {
    match state {
        ServerState::Leader => millis_since_quorum_ack
            .filter(|ms| *ms <= quorum_within_ms)
            .map(|_| me),
        ServerState::Candidate | ServerState::Shutdown => None,
        ServerState::Follower | ServerState::Learner => current_leader.filter(|l| *l != me),
    }
}

/// Publishes this core's `(term, leader seen)` over gossip whenever Raft's metrics change,
/// and every `every` besides (a leader's quorum can go quiet without a change), until
/// `cancel` or Raft stops.
pub async fn publish_sightings(
    raft: GruRaft,
    gossip: Arc<Gossip>,
    me: NodeId,
    quorum_within: Duration,
    every: Duration,
    cancel: CancellationToken,
) {
    let quorum_within_ms = u64::try_from(quorum_within.as_millis()).unwrap_or(u64::MAX);
    let mut metrics = raft.metrics();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (term, leader) = {
            let m = metrics.borrow_and_update();
            let leader = seen_leader(
                me,
                m.state,
                m.current_leader,
                m.millis_since_quorum_ack,
                quorum_within_ms,
            );
            (m.current_term, leader)
        };
        gossip.set_raft_view(term, leader).await;
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = metrics.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
        }
    }
    // A stopping core sees no leader of its own any more.
    let term = raft.metrics().borrow().current_term;
    gossip.set_raft_view(term, None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_sees_itself_only_with_a_recent_quorum() {
        let lead = |ack| seen_leader(1, ServerState::Leader, Some(1), ack, 500);
        assert_eq!(lead(Some(40)), Some(1));
        assert_eq!(lead(Some(500)), Some(1));
        assert_eq!(lead(Some(501)), None);
        assert_eq!(lead(None), None);
    }

    #[test]
    fn followers_see_their_leader_and_candidates_none() {
        assert_eq!(
            seen_leader(2, ServerState::Follower, Some(1), None, 500),
            Some(1)
        );
        assert_eq!(seen_leader(2, ServerState::Follower, None, None, 500), None);
        assert_eq!(
            seen_leader(2, ServerState::Candidate, Some(1), None, 500),
            None
        );
        assert_eq!(
            seen_leader(4, ServerState::Learner, Some(1), None, 500),
            Some(1)
        );
        // A follower never names itself (a stale metric after stepping down).
        assert_eq!(
            seen_leader(2, ServerState::Follower, Some(2), None, 500),
            None
        );
    }
}
