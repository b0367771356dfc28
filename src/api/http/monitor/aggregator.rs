//! Gathers the dashboard's [`Snapshot`] once per interval, on the stat node, for every viewer at
//! once: the cluster view (Raft group, every node, spear registry), stat's presence (users and
//! groups per spear, the biggest groups), each spear's counters and every node's id report
//! over its admin surface with a short timeout — a node that does not answer is shown down.
//! Nothing is gathered while nobody watches: the loop runs while an SSE viewer is subscribed or
//! a snapshot was asked for lately.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::{watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::nodes::KnownNodes;
use super::snapshot::{
    GroupPart, IdgenAnswer, IdgenPart, MemberPart, RaftPart, Snapshot, SpearAnswer, SpearPart,
    StatPart, TOP_GROUPS,
};
use crate::config::{IdgenMode, NodeId};
use crate::net::grpc::ClusterClient;
use crate::raft::{ClusterView, ControlError, ControlPlane, RaftRole};
use crate::services::auth::AuthStore;
use crate::services::stat::{Presence, SpearStat};

/// How often a snapshot is gathered while someone watches.
pub(super) const INTERVAL: Duration = Duration::from_secs(1);
/// How long a node has to answer one of the aggregator's requests.
const ASK_TIMEOUT: Duration = Duration::from_millis(800);
/// How long the cluster view may take (it asks every core for its Raft state).
const VIEW_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long after the last `GET …/snapshot` the aggregator keeps gathering without viewers.
const WANTED_FOR: Duration = Duration::from_secs(30);
/// A spear that left the registry (a node that left the cluster view) stays on the dashboard,
/// down, for this long.
const REMEMBER: Duration = Duration::from_secs(300);

/// Where the aggregator reads from.
pub struct Sources {
    /// This (stat) node.
    pub node_id: NodeId,
    /// The local control plane, on core nodes.
    pub control: Option<Arc<ControlPlane>>,
    /// The way to the leader.
    pub client: Arc<ClusterClient>,
    /// stat's presence.
    pub presence: Presence,
    /// The cluster's idgen mode (`[idgen]`).
    pub idgen_mode: IdgenMode,
    /// The keys in force: reads of other nodes' admin surfaces (spears' counters, the issuers'
    /// reports) present its `peer_admin_key`.
    pub auth: AuthStore,
}

/// A snapshot and when it was gathered.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// When it was published.
    pub at: Instant,
    /// The snapshot.
    pub snapshot: Arc<Snapshot>,
}

/// The one gatherer of a stat node, shared by the snapshot route and every SSE viewer.
pub struct Aggregator {
    sources: Sources,
    http: reqwest::Client,
    latest: watch::Sender<Option<Stamped>>,
    wanted_until: Mutex<Option<Instant>>,
    wake: Notify,
}

/// What the loop remembers between gatherings: totals for rates, spears seen.
#[derive(Default)]
struct Memory {
    spear_totals: HashMap<NodeId, (Instant, u64, u64)>,
    ids: Option<(Instant, BTreeMap<NodeId, u64>)>,
    known: BTreeMap<NodeId, KnownSpear>,
    nodes: KnownNodes,
}

struct KnownSpear {
    http: String,
    admin: Option<String>,
    sio: Option<String>,
    seen: Instant,
}

impl Aggregator {
    /// An aggregator over `sources`; [`Aggregator::run`] gathers.
    pub fn new(sources: Sources) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(ASK_TIMEOUT)
            .connect_timeout(ASK_TIMEOUT)
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            sources,
            http,
            latest: watch::channel(None).0,
            wanted_until: Mutex::new(None),
            wake: Notify::new(),
        })
    }

    /// Gathers once per [`INTERVAL`] while watched, until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut memory = Memory::default();
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
            }
            if !self.watched() {
                continue;
            }
            let snapshot = tokio::select! {
                () = cancel.cancelled() => return,
                s = self.gather(&mut memory) => s,
            };
            self.latest.send_replace(Some(Stamped {
                at: Instant::now(),
                snapshot: Arc::new(snapshot),
            }));
        }
    }

    /// A receiver of every new snapshot; while one is held the loop keeps gathering.
    pub fn subscribe(&self) -> watch::Receiver<Option<Stamped>> {
        let rx = self.latest.subscribe();
        // An idle loop gathers at once for its first viewer; a busy one is not hurried, so
        // viewers arriving in a burst cost no extra gathering.
        if !fresh(&self.latest.borrow(), Instant::now()) {
            self.wake.notify_one();
        }
        rx
    }

    /// The latest snapshot if it is fresh, else the next one (none if gathering takes longer
    /// than `wait`).
    pub async fn current(&self, wait: Duration) -> Option<Arc<Snapshot>> {
        let now = Instant::now();
        *self.wanted_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + WANTED_FOR);
        let mut rx = self.subscribe();
        let found = tokio::time::timeout(wait, rx.wait_for(|s| fresh(s, now))).await;
        let stamped = found.ok()?.ok()?.clone();
        stamped.map(|s| s.snapshot)
    }

    fn watched(&self) -> bool {
        let wanted = self
            .wanted_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until);
        wanted || self.latest.receiver_count() > 0
    }

    async fn gather(&self, memory: &mut Memory) -> Snapshot {
        let at_ms = crate::clock::unix_ms();
        let started = Instant::now();
        let mut errors = Vec::new();
        let view = match tokio::time::timeout(VIEW_TIMEOUT, self.cluster_view()).await {
            Ok(Ok(view)) => Some(view),
            Ok(Err(e)) => {
                errors.push(format!("cluster view: {e}"));
                None
            }
            Err(_) => {
                errors.push("cluster view: no answer in time".to_string());
                None
            }
        };
        if let Some(view) = &view {
            for spear in &view.spears {
                memory.known.insert(
                    spear.id,
                    KnownSpear {
                        http: spear.http.clone(),
                        admin: spear.admin.clone(),
                        sio: spear.sio.clone(),
                        seen: started,
                    },
                );
            }
        }
        memory
            .known
            .retain(|_, k| started.saturating_duration_since(k.seen) < REMEMBER);
        memory.nodes.update(view.as_ref(), started, REMEMBER);

        let spear_asks = memory
            .known
            .iter()
            .map(|(id, k)| self.ask_spear(*id, k.admin.clone()));
        // Every node with an admin surface is asked for its id report: the answer says it is
        // up, and the issuers' answers make the idgen panel.
        let node_asks = memory
            .nodes
            .iter()
            .filter_map(|(id, n)| Some((id, n.admin.clone()?)))
            .map(|(id, admin)| self.ask_idgen(id, admin));
        let (stat, answers, reports) =
            tokio::join!(self.stat(), join_all(spear_asks), join_all(node_asks));
        let (stat, groups) = match stat {
            Ok(pair) => pair,
            Err(e) => {
                errors.push(e);
                (Vec::new(), Vec::new())
            }
        };
        let spears = spears(view.as_ref(), memory, answers, &stat, at_ms, started);
        let mode = self.sources.idgen_mode;
        let mut up = BTreeMap::new();
        let mut counted = Vec::new();
        for (id, report) in reports {
            up.insert(id, report.as_ref().map(|_| ()).map_err(Clone::clone));
            // Strict mode: the cores issue (one of them, the leader); unique: every node.
            let counts = mode == IdgenMode::Unique || memory.nodes.is_raft_member(id);
            if let (Ok(report), true) = (report, counts) {
                counted.push(report);
            }
        }
        let nodes = memory.nodes.parts(view.as_ref(), &up);
        let idgen = idgen_part(mode, counted, memory, started);
        Snapshot {
            at_ms,
            gathered_by: self.sources.node_id,
            interval_ms: u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX),
            raft: view.as_ref().map(raft_part).unwrap_or_default(),
            nodes,
            spears,
            idgen,
            groups,
            errors,
        }
    }

    async fn cluster_view(&self) -> Result<ClusterView, String> {
        if let Some(control) = &self.sources.control {
            match control.cluster_view(false).await {
                Ok(view) => return Ok(view),
                Err(ControlError::NotLeader { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        self.sources
            .client
            .cluster_view::<ClusterView>(false)
            .await
            .map_err(|e| e.to_string())
    }

    /// stat's spears and the biggest groups over them.
    async fn stat(&self) -> Result<(Vec<SpearStat>, Vec<GroupPart>), String> {
        let presence = &self.sources.presence;
        let spears = presence.spears().await.map_err(|e| e.to_string())?;
        let lists = join_all(spears.iter().map(|s| presence.spear_groups(s.node_id))).await;
        let mut groups: BTreeMap<u64, GroupPart> = BTreeMap::new();
        for (spear, list) in spears.iter().zip(lists) {
            for group in list.map_err(|e| e.to_string())? {
                let part = groups.entry(group.group_id).or_insert_with(|| GroupPart {
                    group_id: group.group_id,
                    users: 0,
                    by_spear: BTreeMap::new(),
                });
                part.users += group.users;
                part.by_spear.insert(spear.node_id, group.users);
            }
        }
        let mut groups: Vec<GroupPart> = groups.into_values().collect();
        groups.sort_by(|a, b| b.users.cmp(&a.users).then(a.group_id.cmp(&b.group_id)));
        groups.truncate(TOP_GROUPS);
        Ok((spears, groups))
    }

    /// `GET /api/v1/spear` on a spear's admin surface.
    async fn ask_spear(
        &self,
        id: NodeId,
        admin: Option<String>,
    ) -> (NodeId, Result<SpearAnswer, String>) {
        let answer = self
            .get_json(admin.as_deref(), "/api/v1/spear")
            .await
            .and_then(|v| serde_json::from_value(v).map_err(|e| format!("bad answer: {e}")));
        (id, answer)
    }

    /// `GET /api/v1/idgen` on node `id`'s admin surface.
    async fn ask_idgen(&self, id: NodeId, admin: String) -> (NodeId, Result<IdgenAnswer, String>) {
        let answer = self
            .get_json(Some(&admin), "/api/v1/idgen")
            .await
            .and_then(|v| serde_json::from_value(v).map_err(|e| format!("bad answer: {e}")));
        (id, answer)
    }

    /// `GET path` on the admin surface at `admin`, with the admin key.
    async fn get_json(&self, admin: Option<&str>, path: &str) -> Result<serde_json::Value, String> {
        let Some(admin) = admin else {
            return Err("no admin surface (listen.admin)".into());
        };
        let mut request = self.http.get(format!("http://{admin}{path}"));
        if let Some(key) = &self.sources.auth.current().peer_admin_key {
            request = request.bearer_auth(key);
        }
        let resp = request.send().await.map_err(|e| unreachable_reason(&e))?;
        if !resp.status().is_success() {
            return Err(format!("{path} answered {}", resp.status()));
        }
        resp.json().await.map_err(|e| format!("bad answer: {e}"))
    }
}

/// Whether `latest` was gathered less than two intervals before `now`.
fn fresh(latest: &Option<Stamped>, now: Instant) -> bool {
    latest
        .as_ref()
        .is_some_and(|s| now.saturating_duration_since(s.at) < INTERVAL * 2)
}

fn unreachable_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        "unreachable".into()
    }
}

fn raft_part(view: &ClusterView) -> RaftPart {
    let leader_last = view
        .leader_id
        .and_then(|id| view.node(id))
        .and_then(|n| n.status.as_ref())
        .map(|s| s.last_log_index);
    let members = view
        .nodes
        .iter()
        .filter(|n| n.raft != RaftRole::None)
        .map(|n| {
            let status = n.status.as_ref();
            MemberPart {
                id: n.id,
                raft: n.raft,
                state: status.map(|s| s.server_state.clone()),
                healthy: status.is_some() && n.unreachable.is_none(),
                term: status.map(|s| s.term),
                last_log_index: status.map(|s| s.last_log_index),
                applied_index: status.map(|s| s.applied_index),
                lag: leader_last
                    .zip(status)
                    .map(|(last, s)| last.saturating_sub(s.applied_index)),
                error: n.unreachable.clone(),
            }
        })
        .collect();
    RaftPart {
        served_by: Some(view.served_by),
        leader_id: view.leader_id,
        term: view.term,
        leader_last_log_index: leader_last,
        members,
    }
}

fn spears(
    view: Option<&ClusterView>,
    memory: &mut Memory,
    answers: Vec<(NodeId, Result<SpearAnswer, String>)>,
    stat: &[SpearStat],
    at_ms: u64,
    now: Instant,
) -> Vec<SpearPart> {
    let answers: BTreeMap<NodeId, Result<SpearAnswer, String>> = answers.into_iter().collect();
    let mut ids: Vec<NodeId> = memory.known.keys().copied().collect();
    ids.extend(stat.iter().map(|s| s.node_id));
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let registered = view.and_then(|v| v.spears.iter().find(|s| s.id == id));
            let known = memory.known.get(&id);
            let stat = stat.iter().find(|s| s.node_id == id).map(|s| StatPart {
                users: s.users,
                groups: s.groups,
            });
            let (answer, error) = match answers.get(&id) {
                Some(Ok(a)) => (Some(a.clone()), None),
                Some(Err(e)) => (None, Some(e.clone())),
                None => (None, Some("not in the spear registry".to_string())),
            };
            let mut part = SpearPart {
                id,
                sio: known.and_then(|k| k.sio.clone()),
                http: known.map(|k| k.http.clone()).unwrap_or_default(),
                registered: registered.is_some(),
                lease_left_ms: registered.map(|s| {
                    i64::try_from(s.expires_at_ms).unwrap_or(i64::MAX)
                        - i64::try_from(at_ms).unwrap_or(i64::MAX)
                }),
                up: answer.is_some(),
                error,
                connections: None,
                users: stat.map(|s| s.users),
                groups: stat.map(|s| s.groups),
                messages_in: None,
                messages_out: None,
                in_per_sec: None,
                out_per_sec: None,
                draining: None,
                standing: None,
                standing_reason: None,
                relay: None,
                stat,
            };
            if let Some(a) = answer {
                part.connections = a.connections;
                part.users = a.users.or(part.users);
                part.groups = a.groups.or(part.groups);
                part.messages_in = a.messages_in;
                part.messages_out = a.messages_out;
                part.draining = a.draining;
                if let Some(s) = a.standing {
                    part.standing = Some(s.state);
                    part.standing_reason = Some(s.reason);
                }
                part.relay = a.relay;
                if let (Some(i), Some(o)) = (a.messages_in, a.messages_out) {
                    if let Some((then, pi, po)) = memory.spear_totals.insert(id, (now, i, o)) {
                        part.in_per_sec = rate(then, now, pi, i);
                        part.out_per_sec = rate(then, now, po, o);
                    }
                }
            } else {
                memory.spear_totals.remove(&id);
            }
            part
        })
        .collect()
}

fn idgen_part(
    mode: IdgenMode,
    nodes: Vec<IdgenAnswer>,
    memory: &mut Memory,
    now: Instant,
) -> IdgenPart {
    let issuing: Vec<&IdgenAnswer> = nodes.iter().filter(|n| n.issuing).collect();
    let totals: BTreeMap<NodeId, u64> = nodes.iter().map(|n| (n.node_id, n.ids_issued)).collect();
    let ids_per_sec = memory.ids.as_ref().and_then(|(then, before)| {
        let issued: u64 = totals
            .iter()
            .filter_map(|(id, now_total)| before.get(id).map(|b| now_total.saturating_sub(*b)))
            .sum();
        rate(*then, now, 0, issued)
    });
    let part = IdgenPart {
        mode,
        issuers: issuing.iter().map(|n| n.node_id).collect(),
        ids_issued: (!issuing.is_empty()).then(|| issuing.iter().map(|n| n.ids_issued).sum()),
        ids_per_sec: ids_per_sec.filter(|_| !nodes.is_empty()),
        leader_changes: nodes.iter().map(|n| n.leader_changes).max(),
        issuer_since_ms: issuing.iter().filter_map(|n| n.issuer_since_ms).min(),
        nodes,
    };
    memory.ids = (!totals.is_empty()).then_some((now, totals));
    part
}

/// Per second from `before` to `after` over `then..now`; none over an empty interval or when
/// the count went back (the node restarted).
fn rate(then: Instant, now: Instant, before: u64, after: u64) -> Option<f64> {
    let secs = now.saturating_duration_since(then).as_secs_f64();
    (secs > 0.0 && after >= before).then(|| (after - before) as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(node_id: NodeId, issuing: bool, ids_issued: u64) -> IdgenAnswer {
        IdgenAnswer {
            node_id,
            mode: IdgenMode::Strict,
            issuing,
            ids_issued,
            leader_changes: 1,
            issuer_since_ms: issuing.then_some(1_000),
        }
    }

    #[test]
    fn ids_per_second_come_from_two_gatherings() {
        let mut memory = Memory::default();
        let t0 = Instant::now();
        let first = idgen_part(
            IdgenMode::Strict,
            vec![answer(1, true, 100), answer(2, false, 0)],
            &mut memory,
            t0,
        );
        assert_eq!(first.ids_per_sec, None, "one gathering has no rate");
        assert_eq!(first.issuers, vec![1]);
        let second = idgen_part(
            IdgenMode::Strict,
            vec![answer(1, true, 300), answer(2, false, 0)],
            &mut memory,
            t0 + Duration::from_secs(2),
        );
        assert_eq!(second.ids_per_sec, Some(100.0));
        assert_eq!(second.ids_issued, Some(300));
        assert_eq!(second.issuer_since_ms, Some(1_000));
    }

    #[test]
    fn a_count_that_went_back_has_no_rate() {
        let t0 = Instant::now();
        assert_eq!(rate(t0, t0 + Duration::from_secs(1), 10, 5), None);
        assert_eq!(rate(t0, t0, 0, 5), None);
        assert_eq!(rate(t0, t0 + Duration::from_millis(500), 0, 5), Some(10.0));
    }
}
