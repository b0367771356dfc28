//! Node-to-node gRPC (tonic): the generated `proto/cluster.proto` types, a channel pool, the
//! control-plane client that follows leader redirects, and the servers.
//!
//! Everything here is cluster-internal: it binds only `listen.grpc`.

mod channels;
mod client;
mod convert;
mod id_stream;
mod raft_server;
mod server;

/// The generated protobuf types and service stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("gru.cluster.v1");
}

pub use channels::ChannelPool;
pub use client::{ClientError, ClusterClient};
pub use id_stream::IdStream;
pub use server::serve;

/// Metadata key of the leader's id in a not-leader answer.
pub(crate) const LEADER_ID_HEADER: &str = "gru-leader-id";
/// Metadata key of the leader's gRPC address in a not-leader answer.
pub(crate) const LEADER_GRPC_HEADER: &str = "gru-leader-grpc";
