//! The control-plane client: speaks protobuf only (callers convert their types, see
//! `crate::raft::wire`), finds the leader, follows redirects a bounded number of times,
//! and retries through elections until its deadline.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::id_stream::{id_blocks, IdStream};
use super::pb::control_plane_client::ControlPlaneClient;
use super::pb::id_gen_client::IdGenClient;
use super::pb::spear_sessions_client::SpearSessionsClient;
use super::pb::NextIdsRequest;
use super::pb::{
    ClusterViewRequest, ConnectionInfo, DrainReply, DrainRequest, GetMetaRequest, Member,
    MetaEntry, NodeRef, NodeStatusReply, NodeStatusRequest, SpearHeartbeatRequest,
    UserSessionsRequest,
};
use super::{ChannelPool, LEADER_GRPC_HEADER};
use crate::config::NodeId;

/// Redirects followed in a row before trying the seeds again.
const MAX_REDIRECTS: usize = 3;
/// Pause after a full round of failed attempts (an election is probably running).
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// A spear's lease, as the leader granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The lease's length.
    pub ttl: Duration,
    /// When this registration began (Unix ms, leader's clock; renewals keep it): a new value
    /// means the spear's earlier registration had ended. 0 from a leader that does not say.
    pub registered_at_ms: u64,
}

/// Why a control-plane call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No node answered as leader before the deadline.
    #[error("no leader reachable within {deadline:?} (last error: {last})")]
    NoLeader {
        /// The deadline that passed.
        deadline: Duration,
        /// The last failure seen.
        last: String,
    },
    /// The leader refused the request.
    #[error("{code:?}: {message}")]
    Rejected {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The server's answer could not be understood.
    #[error("bad reply: {0}")]
    BadReply(String),
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        Self::Rejected {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// A client of the control plane reached through any of a set of seed addresses.
pub struct ClusterClient {
    seeds: Vec<String>,
    next_seed: AtomicUsize,
    leader_hint: Mutex<Option<String>>,
    pool: ChannelPool,
    rpc_timeout: Duration,
    deadline: Duration,
}

enum Outcome<T> {
    Done(T),
    Redirect(String),
    TryElsewhere(String),
    Fail(ClientError),
}

impl ClusterClient {
    /// A client that starts from `seeds` (core nodes' gRPC addresses). Each RPC may take
    /// `rpc_timeout`; a whole call, with redirects and retries, gives up after `deadline`.
    pub fn new(
        seeds: Vec<String>,
        pool: ChannelPool,
        rpc_timeout: Duration,
        deadline: Duration,
    ) -> Self {
        Self {
            seeds,
            next_seed: AtomicUsize::new(0),
            leader_hint: Mutex::new(None),
            pool,
            rpc_timeout,
            deadline,
        }
    }

    /// A client of the core nodes of `config`, as tools (the benchmark) use it: with the
    /// cluster's tool certificate (`client.pem`) when cluster TLS is on.
    pub fn for_cluster(
        config: &crate::config::ClusterConfig,
        deadline: Duration,
    ) -> Result<Self, crate::net::tls::TlsError> {
        let timeout = Duration::from_millis(config.raft.rpc_timeout_ms);
        let seeds = config
            .core_nodes()
            .map(crate::config::NodeConfig::advertised_grpc)
            .collect();
        let tls = crate::net::tls::ClusterTls::for_tool(&config.cluster_tls)?;
        let pool = ChannelPool::new(timeout).with_tls(tls.map(|t| t.client));
        Ok(Self::new(seeds, pool, timeout, deadline))
    }

    fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        self.pool
            .get(addr)
            .map_err(|e| ClientError::BadReply(e.to_string()))
    }

    fn client(&self, addr: &str) -> Result<ControlPlaneClient<Channel>, ClientError> {
        self.channel(addr).map(ControlPlaneClient::new)
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.rpc_timeout);
        req
    }

    fn pick_target(&self) -> Option<String> {
        if let Some(hint) = self
            .leader_hint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Some(hint);
        }
        if self.seeds.is_empty() {
            return None;
        }
        let i = self.next_seed.fetch_add(1, Ordering::Relaxed) % self.seeds.len();
        Some(self.seeds[i].clone())
    }

    fn set_hint(&self, hint: Option<String>) {
        *self.leader_hint.lock().unwrap_or_else(|e| e.into_inner()) = hint;
    }

    fn classify<T>(result: Result<tonic::Response<T>, Status>) -> Outcome<T> {
        match result {
            Ok(resp) => Outcome::Done(resp.into_inner()),
            Err(status) if status.code() == Code::FailedPrecondition => {
                let leader = status
                    .metadata()
                    .get(LEADER_GRPC_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
                match leader {
                    Some(addr) => Outcome::Redirect(addr),
                    None => Outcome::TryElsewhere(status.message().to_string()),
                }
            }
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
                ) =>
            {
                Outcome::TryElsewhere(format!("{:?}: {}", status.code(), status.message()))
            }
            Err(status) => Outcome::Fail(status.into()),
        }
    }

    /// Runs `call` against the leader: follows up to [`MAX_REDIRECTS`] redirects in a row, moves
    /// on to the next seed when a node is down or knows no leader, until the deadline.
    async fn on_leader<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let start = Instant::now();
        let mut last = String::from("no seed addresses");
        let mut redirects = 0;
        let mut failures_this_round = 0;
        while start.elapsed() < self.deadline {
            let Some(target) = self.pick_target() else {
                break;
            };
            match Self::classify(call(self.channel(&target)?).await) {
                Outcome::Done(value) => {
                    self.set_hint(Some(target));
                    return Ok(value);
                }
                Outcome::Redirect(addr) if redirects < MAX_REDIRECTS && addr != target => {
                    redirects += 1;
                    self.set_hint(Some(addr));
                    continue;
                }
                Outcome::Redirect(addr) => {
                    last = format!("redirect loop ending at {addr}");
                }
                Outcome::TryElsewhere(why) => last = format!("{target}: {why}"),
                Outcome::Fail(e) => return Err(e),
            }
            redirects = 0;
            self.set_hint(None);
            failures_this_round += 1;
            if failures_this_round >= self.seeds.len().max(1) {
                failures_this_round = 0;
                tokio::time::sleep(ROUND_PAUSE).await;
            }
        }
        Err(ClientError::NoLeader {
            deadline: self.deadline,
            last,
        })
    }

    /// The Raft status of the core node at `addr` (no redirects).
    pub async fn node_status(&self, addr: &str) -> Result<NodeStatusReply, ClientError> {
        let mut client = self.client(addr)?;
        let reply = client
            .node_status(self.request(NodeStatusRequest {}))
            .await
            .map_err(ClientError::from)?;
        Ok(reply.into_inner())
    }

    /// User `user_id`'s connections on the spear at `addr` (no redirects).
    pub async fn user_connections(
        &self,
        addr: &str,
        user_id: u64,
    ) -> Result<Vec<ConnectionInfo>, ClientError> {
        let mut client = SpearSessionsClient::new(self.channel(addr)?);
        let req = UserSessionsRequest {
            user_id,
            reason: String::new(),
        };
        let reply = client.user_connections(self.request(req)).await?;
        Ok(reply.into_inner().connections)
    }

    /// Closes user `user_id`'s connections on the spear at `addr`, telling them `reason`;
    /// returns those it closed.
    pub async fn disconnect_user(
        &self,
        addr: &str,
        user_id: u64,
        reason: &str,
    ) -> Result<Vec<ConnectionInfo>, ClientError> {
        let mut client = SpearSessionsClient::new(self.channel(addr)?);
        let req = UserSessionsRequest {
            user_id,
            reason: reason.to_string(),
        };
        let reply = client.disconnect_user(self.request(req)).await?;
        Ok(reply.into_inner().connections)
    }

    /// Starts, stops or reads the drain of the spear at `addr` (no redirects).
    pub async fn drain(&self, addr: &str, req: DrainRequest) -> Result<DrainReply, ClientError> {
        let mut client = SpearSessionsClient::new(self.channel(addr)?);
        Ok(client.drain(self.request(req)).await?.into_inner())
    }

    /// The cluster view from any core node, or from the leader when `linearizable`, decoded from
    /// its JSON form into `V` (Raft's `ClusterView`; this layer does not know it).
    pub async fn cluster_view<V: serde::de::DeserializeOwned>(
        &self,
        linearizable: bool,
    ) -> Result<V, ClientError> {
        let reply = self
            .on_leader(|ch| async move {
                ControlPlaneClient::new(ch)
                    .cluster_view(self.request(ClusterViewRequest { linearizable }))
                    .await
            })
            .await?;
        serde_json::from_slice(&reply.json).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// Records `member` in the member table.
    pub async fn announce_member(&self, msg: Member) -> Result<(), ClientError> {
        self.on_leader(|ch| {
            let msg = msg.clone();
            async move {
                ControlPlaneClient::new(ch)
                    .announce_member(self.request(msg))
                    .await
            }
        })
        .await
        .map(|_| ())
    }

    /// Registers or renews a spear's lease; returns the lease length the leader granted.
    pub async fn spear_heartbeat(&self, spear: Member) -> Result<LeaseGrant, ClientError> {
        let msg = SpearHeartbeatRequest { spear: Some(spear) };
        let reply = self
            .on_leader(|ch| {
                let msg = msg.clone();
                async move {
                    ControlPlaneClient::new(ch)
                        .spear_heartbeat(self.request(msg))
                        .await
                }
            })
            .await?;
        Ok(LeaseGrant {
            ttl: Duration::from_millis(reply.ttl_ms),
            registered_at_ms: reply.registered_at_ms,
        })
    }

    /// Removes a spear from the registry.
    pub async fn deregister_spear(&self, id: NodeId) -> Result<(), ClientError> {
        self.on_leader(|ch| async move {
            ControlPlaneClient::new(ch)
                .deregister_spear(self.request(NodeRef { id }))
                .await
        })
        .await
        .map(|_| ())
    }

    /// Adds a core node (learner, catch up, voter).
    pub async fn join_core(&self, msg: Member) -> Result<(), ClientError> {
        self.on_leader(|ch| {
            let mut req = tonic::Request::new(msg.clone());
            // Catching up may take a while; the leader answers once the node is a voter.
            req.set_timeout(self.deadline);
            async move { ControlPlaneClient::new(ch).join_core(req).await }
        })
        .await
        .map(|_| ())
    }

    /// Removes a node from the group and the member table.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), ClientError> {
        self.on_leader(|ch| async move {
            ControlPlaneClient::new(ch)
                .remove_node(self.request(NodeRef { id }))
                .await
        })
        .await
        .map(|_| ())
    }

    /// Sets a metadata entry.
    pub async fn put_meta(&self, key: &str, value: &str) -> Result<(), ClientError> {
        let msg = MetaEntry {
            key: key.to_string(),
            value: value.to_string(),
        };
        self.on_leader(|ch| {
            let msg = msg.clone();
            async move {
                ControlPlaneClient::new(ch)
                    .put_meta(self.request(msg))
                    .await
            }
        })
        .await
        .map(|_| ())
    }

    /// Reads metadata through the leader (linearizable) or any node.
    pub async fn get_meta(
        &self,
        key: Option<&str>,
        linearizable: bool,
    ) -> Result<Vec<(String, String)>, ClientError> {
        let msg = GetMetaRequest {
            key: key.unwrap_or_default().to_string(),
            linearizable,
        };
        let reply = self
            .on_leader(|ch| {
                let msg = msg.clone();
                async move {
                    ControlPlaneClient::new(ch)
                        .get_meta(self.request(msg))
                        .await
                }
            })
            .await?;
        Ok(reply
            .entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect())
    }

    /// `count` ids from the leader (strict mode) or any node (unique mode), as
    /// `(first, count)` blocks.
    pub async fn next_ids(&self, count: u32) -> Result<Vec<(u64, u32)>, ClientError> {
        self.next_ids_with(count, false).await
    }

    /// [`Self::next_ids`], refused by a strict leader (`RESOURCE_EXHAUSTED`) rather than run
    /// its issuer more than half its window ahead of its clock.
    pub async fn next_ids_bounded(&self, count: u32) -> Result<Vec<(u64, u32)>, ClientError> {
        self.next_ids_with(count, true).await
    }

    async fn next_ids_with(
        &self,
        count: u32,
        bounded: bool,
    ) -> Result<Vec<(u64, u32)>, ClientError> {
        self.on_leader(|ch| async move {
            IdGenClient::new(ch)
                .next(self.request(NextIdsRequest { count, bounded }))
                .await
        })
        .await
        .map(id_blocks)
    }

    /// Opens an id stream to the node this client last found leading (the next seed when it
    /// knows none). It does not follow redirects: a stream to a node that does not issue ids
    /// ends at its first request, and the caller goes back to [`Self::next_ids`].
    pub async fn open_id_stream(&self) -> Result<IdStream, ClientError> {
        let target = self
            .pick_target()
            .ok_or_else(|| ClientError::BadReply("no seed addresses".into()))?;
        IdStream::open(self.channel(&target)?).await
    }

    /// How long one RPC may take.
    pub fn rpc_timeout(&self) -> Duration {
        self.rpc_timeout
    }

    /// The snowflake worker id of node `id`, assigned by the leader.
    pub async fn assign_worker(&self, id: NodeId) -> Result<u16, ClientError> {
        let reply = self
            .on_leader(|ch| async move {
                ControlPlaneClient::new(ch)
                    .assign_worker(self.request(NodeRef { id }))
                    .await
            })
            .await?;
        u16::try_from(reply.worker_id).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// Reads metadata from the node at `addr` as it has applied it (no redirects, not linearizable).
    pub async fn get_meta_local(&self, addr: &str) -> Result<Vec<(String, String)>, ClientError> {
        let mut client = self.client(addr)?;
        let reply = client
            .get_meta(self.request(GetMetaRequest::default()))
            .await
            .map_err(ClientError::from)?;
        Ok(reply
            .into_inner()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect())
    }
}
