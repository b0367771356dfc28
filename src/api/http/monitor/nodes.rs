//! Every node on the dashboard, whatever its roles: what the cluster view's member table says
//! of it (roles, part in Raft, addresses) and whether its admin surface answered the
//! aggregator just now. A node that left the view stays listed, down, for a while, as spears
//! do; a node without an admin surface is not asked and shows as unknown unless it is a Raft
//! member whose state the view carries.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::snapshot::NodePart;
use crate::config::{NodeId, Role};
use crate::raft::{ClusterView, RaftRole};

/// What the aggregator remembers of a node between gatherings.
#[derive(Debug, Clone)]
pub(super) struct KnownNode {
    roles: Vec<Role>,
    raft: RaftRole,
    http: String,
    /// Its admin surface: where it is asked whether it is up.
    pub(super) admin: Option<String>,
    seen: Instant,
}

/// The nodes seen in the cluster view, by id.
#[derive(Debug, Default)]
pub(super) struct KnownNodes(BTreeMap<NodeId, KnownNode>);

impl KnownNodes {
    /// Takes in the nodes of `view` (seen at `now`) and forgets those not seen for `keep`.
    pub(super) fn update(&mut self, view: Option<&ClusterView>, now: Instant, keep: Duration) {
        for node in view.map(|v| v.nodes.as_slice()).unwrap_or_default() {
            self.0.insert(
                node.id,
                KnownNode {
                    roles: node.roles.clone(),
                    raft: node.raft,
                    http: node.http.clone(),
                    admin: node.admin.clone(),
                    seen: now,
                },
            );
        }
        self.0
            .retain(|_, n| now.saturating_duration_since(n.seen) < keep);
    }

    /// Each node and its admin surface, to be asked.
    pub(super) fn iter(&self) -> impl Iterator<Item = (NodeId, &KnownNode)> {
        self.0.iter().map(|(id, n)| (*id, n))
    }

    /// Whether node `id` is a Raft member (voter or learner), as last seen.
    pub(super) fn is_raft_member(&self, id: NodeId) -> bool {
        self.0.get(&id).is_some_and(|n| n.raft != RaftRole::None)
    }

    /// The dashboard's list: every known node with whether it answered (`answers`, by node,
    /// `Err` saying why not); the Raft state of the view decides for members without an admin
    /// surface.
    pub(super) fn parts(
        &self,
        view: Option<&ClusterView>,
        answers: &BTreeMap<NodeId, Result<(), String>>,
    ) -> Vec<NodePart> {
        self.0
            .iter()
            .map(|(id, known)| {
                let in_view = view.and_then(|v| v.node(*id));
                let (up, error) = match (answers.get(id), in_view) {
                    (Some(Ok(())), _) => (Some(true), None),
                    (Some(Err(e)), _) => (Some(false), Some(e.clone())),
                    // Not asked: no admin surface. A Raft member's own state still tells.
                    (None, Some(n)) if n.raft != RaftRole::None => match &n.unreachable {
                        Some(e) => (Some(false), Some(e.clone())),
                        None => (Some(n.status.is_some()), None),
                    },
                    (None, Some(_)) => (None, Some("no admin surface to ask".to_string())),
                    (None, None) if view.is_some() => {
                        (Some(false), Some("not in the cluster view".to_string()))
                    }
                    (None, None) => (None, Some("no cluster view this time".to_string())),
                };
                NodePart {
                    id: *id,
                    roles: known.roles.clone(),
                    raft: known.raft,
                    http: known.http.clone(),
                    admin: known.admin.clone(),
                    in_view: in_view.is_some(),
                    up,
                    error,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::NodeView;

    fn node(id: NodeId, roles: &[Role], raft: RaftRole, admin: bool) -> NodeView {
        NodeView {
            id,
            roles: roles.to_vec(),
            grpc: format!("127.0.0.1:{}", 7000 + id),
            http: format!("127.0.0.1:{}", 8000 + id),
            admin: admin.then(|| format!("127.0.0.1:{}", 9000 + id)),
            raft,
            status: None,
            unreachable: (raft != RaftRole::None).then(|| "no answer".to_string()),
        }
    }

    fn view(nodes: Vec<NodeView>) -> ClusterView {
        ClusterView {
            served_by: 1,
            linearizable: false,
            leader_id: Some(1),
            term: 1,
            voters: vec![1],
            learners: Vec::new(),
            nodes,
            spears: Vec::new(),
            id_ceiling: 0,
            workers: BTreeMap::new(),
            problem: None,
        }
    }

    #[test]
    fn every_node_is_listed_up_down_or_unknown() {
        let v = view(vec![
            node(1, &[Role::Core], RaftRole::Voter, true),
            node(4, &[Role::Spear], RaftRole::None, true),
            node(6, &[Role::Ticket, Role::Stat], RaftRole::None, true),
            node(7, &[Role::Ticket], RaftRole::None, false),
            node(8, &[Role::Core], RaftRole::Voter, false),
        ]);
        let mut known = KnownNodes::default();
        let now = Instant::now();
        known.update(Some(&v), now, Duration::from_secs(300));
        assert!(known.is_raft_member(1) && !known.is_raft_member(6));
        let answers = BTreeMap::from([
            (1, Ok(())),
            (4, Err("connection refused".to_string())),
            (6, Ok(())),
        ]);
        let parts = known.parts(Some(&v), &answers);
        let by: BTreeMap<NodeId, &NodePart> = parts.iter().map(|p| (p.id, p)).collect();
        assert_eq!(by.len(), 5, "{parts:?}");
        assert_eq!(by[&1].up, Some(true));
        assert_eq!(by[&4].up, Some(false));
        assert_eq!(by[&4].error.as_deref(), Some("connection refused"));
        assert_eq!(
            (by[&6].up, &by[&6].roles),
            (Some(true), &vec![Role::Ticket, Role::Stat])
        );
        assert_eq!(by[&7].up, None, "no admin surface, not a member: unknown");
        assert_eq!(by[&8].up, Some(false), "a member the view could not reach");
    }

    #[test]
    fn a_node_that_left_the_view_stays_down_for_a_while() {
        let mut known = KnownNodes::default();
        let t0 = Instant::now();
        let keep = Duration::from_secs(300);
        known.update(
            Some(&view(vec![node(6, &[Role::Stat], RaftRole::None, true)])),
            t0,
            keep,
        );
        let empty = view(Vec::new());
        known.update(Some(&empty), t0 + Duration::from_secs(10), keep);
        let parts = known.parts(Some(&empty), &BTreeMap::new());
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].up, parts[0].in_view), (Some(false), false));
        known.update(None, t0 + keep, keep);
        assert!(known.parts(None, &BTreeMap::new()).is_empty(), "forgotten");
    }
}
