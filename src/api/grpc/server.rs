//! The internal gRPC server: ids on every node; Raft transport and control plane on core nodes;
//! a spear's clients (for the server API) and its drain (`gru drain`) on spear nodes; all on
//! `listen.grpc`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio_util::sync::CancellationToken;
use tonic::transport::ServerTlsConfig;
use tonic::{Request, Response, Status, Streaming};

use super::raft_server::RaftService;
use crate::net::grpc::pb;
use crate::net::grpc::pb::control_plane_server::{
    ControlPlane as ControlPlaneRpc, ControlPlaneServer,
};
use crate::net::grpc::pb::id_gen_server::{IdGen, IdGenServer};
use crate::net::grpc::pb::raft_transport_server::RaftTransportServer;
use crate::net::grpc::pb::spear_sessions_server::{
    SpearSessions as SpearSessionsRpc, SpearSessionsServer,
};
use crate::net::grpc::pb::{
    drain_request, Ack, ClusterViewRequest, ConnectionsReply, DrainReply, DrainRequest,
    GetMetaRequest, IdsReply, JsonReply, LeaseReply, MetaEntry, MetaReply, NextIdsRequest, NodeRef,
    NodeStatusReply, NodeStatusRequest, SpearHeartbeatRequest, UserSessionsRequest, WorkerReply,
};
use crate::raft::{ControlPlane, Member};
use crate::services::idgen::IdService;
use crate::services::spear::{ConnectionInfo, Drain, DrainPlan, LocalSessions, SpearCounters};

/// Largest Raft message accepted (snapshots travel whole).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

struct ControlService {
    control: Arc<ControlPlane>,
}

#[tonic::async_trait]
impl ControlPlaneRpc for ControlService {
    async fn node_status(
        &self,
        _: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeStatusReply>, Status> {
        Ok(Response::new(self.control.node_status().into()))
    }

    async fn cluster_view(
        &self,
        req: Request<ClusterViewRequest>,
    ) -> Result<Response<JsonReply>, Status> {
        let view = self
            .control
            .cluster_view(req.into_inner().linearizable)
            .await?;
        let json = serde_json::to_vec(&view).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(JsonReply { json }))
    }

    async fn announce_member(&self, req: Request<pb::Member>) -> Result<Response<Ack>, Status> {
        let member = Member::try_from(req.into_inner())?;
        self.control.announce_member(member).await?;
        Ok(Response::new(Ack {}))
    }

    async fn spear_heartbeat(
        &self,
        req: Request<SpearHeartbeatRequest>,
    ) -> Result<Response<LeaseReply>, Status> {
        let spear = req
            .into_inner()
            .spear
            .ok_or_else(|| Status::invalid_argument("spear is required"))?;
        let lease = self
            .control
            .spear_heartbeat(Member::try_from(spear)?)
            .await?;
        Ok(Response::new(LeaseReply {
            ttl_ms: u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX),
            registered_at_ms: lease.registered_at_ms,
        }))
    }

    async fn deregister_spear(&self, req: Request<NodeRef>) -> Result<Response<Ack>, Status> {
        self.control.deregister_spear(req.into_inner().id).await?;
        Ok(Response::new(Ack {}))
    }

    async fn join_core(&self, req: Request<pb::Member>) -> Result<Response<Ack>, Status> {
        let member = Member::try_from(req.into_inner())?;
        self.control.join_core(member).await?;
        Ok(Response::new(Ack {}))
    }

    async fn remove_node(&self, req: Request<NodeRef>) -> Result<Response<Ack>, Status> {
        self.control.remove_node(req.into_inner().id).await?;
        Ok(Response::new(Ack {}))
    }

    async fn put_meta(&self, req: Request<MetaEntry>) -> Result<Response<Ack>, Status> {
        let MetaEntry { key, value } = req.into_inner();
        self.control.put_meta(key, value).await?;
        Ok(Response::new(Ack {}))
    }

    async fn assign_worker(&self, req: Request<NodeRef>) -> Result<Response<WorkerReply>, Status> {
        let worker = self.control.assign_worker(req.into_inner().id).await?;
        Ok(Response::new(WorkerReply {
            worker_id: u32::from(worker),
        }))
    }

    async fn get_meta(&self, req: Request<GetMetaRequest>) -> Result<Response<MetaReply>, Status> {
        let req = req.into_inner();
        let key = Some(req.key.as_str()).filter(|k| !k.is_empty());
        let entries = self
            .control
            .get_meta(key, req.linearizable)
            .await?
            .into_iter()
            .map(|(key, value)| MetaEntry { key, value })
            .collect();
        Ok(Response::new(MetaReply { entries }))
    }
}

/// What a spear serves over the internal API: its clients (asked by the node that took a
/// server-API request) and its drain (`gru drain`).
#[derive(Clone)]
pub struct SpearRpc {
    /// The spear's clients.
    pub sessions: Arc<dyn LocalSessions>,
    /// Its drain state.
    pub drain: Arc<Drain>,
    /// Its connection count.
    pub counters: Arc<SpearCounters>,
}

struct SessionsService {
    spear: SpearRpc,
}

impl SessionsService {
    fn drain_reply(&self) -> Response<DrainReply> {
        Response::new(DrainReply {
            draining: self.spear.drain.is_draining(),
            connections: self.spear.counters.connections(),
            moved: self.spear.drain.moved_count(),
        })
    }
}

fn connections(found: Vec<ConnectionInfo>) -> Response<ConnectionsReply> {
    Response::new(ConnectionsReply {
        connections: found.into_iter().map(Into::into).collect(),
    })
}

#[tonic::async_trait]
impl SpearSessionsRpc for SessionsService {
    async fn user_connections(
        &self,
        req: Request<UserSessionsRequest>,
    ) -> Result<Response<ConnectionsReply>, Status> {
        Ok(connections(
            self.spear.sessions.list(req.into_inner().user_id),
        ))
    }

    async fn disconnect_user(
        &self,
        req: Request<UserSessionsRequest>,
    ) -> Result<Response<ConnectionsReply>, Status> {
        let req = req.into_inner();
        Ok(connections(
            self.spear.sessions.disconnect(req.user_id, &req.reason),
        ))
    }

    async fn drain(&self, req: Request<DrainRequest>) -> Result<Response<DrainReply>, Status> {
        let req = req.into_inner();
        match drain_request::Action::try_from(req.action) {
            Ok(drain_request::Action::Status) => {}
            Ok(drain_request::Action::Start) => {
                let plan = DrainPlan::new(req.wave, Duration::from_millis(req.every_ms))
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                self.spear.drain.start(plan);
            }
            Ok(drain_request::Action::Stop) => self.spear.drain.stop(),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown drain action {}",
                    req.action
                )))
            }
        }
        Ok(self.drain_reply())
    }
}

struct IdGenService {
    ids: Arc<IdService>,
    /// The server's shutdown: open id streams end with it, or the server's graceful stop
    /// would wait for them while this node (perhaps the leader) serves nobody.
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl IdGen for IdGenService {
    async fn next(&self, req: Request<NextIdsRequest>) -> Result<Response<IdsReply>, Status> {
        let req = req.into_inner();
        let blocks = self.ids.issue_local_with(req.count, req.bounded).await?;
        Ok(Response::new(IdsReply {
            blocks: blocks.into_iter().map(Into::into).collect(),
        }))
    }

    type NextStreamStream = IdReplies;

    async fn next_stream(
        &self,
        req: Request<Streaming<NextIdsRequest>>,
    ) -> Result<Response<IdReplies>, Status> {
        Ok(Response::new(id_replies(
            self.ids.clone(),
            req.into_inner(),
            self.shutdown.clone(),
        )))
    }
}

/// The answers of an id stream.
type IdReplies = Pin<Box<dyn Stream<Item = Result<IdsReply, Status>> + Send>>;

/// Answers each request of `inbound` in order, polled by the stream's own HTTP/2 task (no task
/// per request). The first refusal is the stream's last item: tonic sends it as the trailing
/// status, and the client falls back to `Next`, which follows redirects. So is `shutdown`,
/// whether the stream waits for a request or for ids.
fn id_replies(
    ids: Arc<IdService>,
    inbound: Streaming<NextIdsRequest>,
    shutdown: CancellationToken,
) -> IdReplies {
    Box::pin(futures_util::stream::unfold(
        Some((ids, inbound, shutdown)),
        |state| async move {
            let (ids, mut inbound, shutdown) = state?;
            let next = async {
                // A broken or finished request stream ends the answers; there is nobody to
                // tell.
                let req = inbound.message().await.ok().flatten()?;
                Some(ids.issue_local(req.count).await)
            };
            let Some(issued) = shutdown.run_until_cancelled(next).await else {
                let stopping = Status::unavailable("this node is shutting down");
                return Some((Err(stopping), None));
            };
            match issued? {
                Ok(blocks) => Some((
                    Ok(IdsReply {
                        blocks: blocks.into_iter().map(Into::into).collect(),
                    }),
                    Some((ids, inbound, shutdown)),
                )),
                Err(e) => Some((Err(Status::from(e)), None)),
            }
        },
    ))
}

/// Serves the internal API on `listener` until `shutdown` fires: idgen on every node, Raft and
/// the control plane on core nodes (`control`), a spear's clients on spear nodes (`sessions`);
/// with `tls`, only to peers with a certificate of the cluster CA (mutual TLS).
pub async fn serve(
    listener: tokio::net::TcpListener,
    (control, spear): (Option<Arc<ControlPlane>>, Option<SpearRpc>),
    (ids, tls): (Arc<IdService>, Option<ServerTlsConfig>),
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?local, mutual_tls = tls.is_some(), "internal gRPC listening");
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let mut router = builder.add_service(IdGenServer::new(IdGenService {
        ids,
        shutdown: shutdown.clone(),
    }));
    if let Some(control) = control {
        let raft = RaftTransportServer::new(RaftService {
            raft: control.raft().clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
        router = router
            .add_service(raft)
            .add_service(ControlPlaneServer::new(ControlService { control }));
    }
    if let Some(spear) = spear {
        router = router.add_service(SpearSessionsServer::new(SessionsService { spear }));
    }
    router
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}
