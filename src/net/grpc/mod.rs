//! Node-to-node gRPC clients (tonic): the generated `proto/cluster.proto` types, a channel pool,
//! and the client that follows leader redirects. The servers are edges (`crate::api::grpc`); the
//! conversions of Raft's types live with Raft (`crate::raft`), so this layer knows only the wire.
//!
//! Everything here is cluster-internal: it binds only `listen.grpc`.

mod channels;
mod client;
mod id_stream;

/// The generated protobuf types and service stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("gru.cluster.v1");
}

pub use channels::ChannelPool;
pub use client::{ClientError, ClusterClient, LeaseGrant};
pub use id_stream::IdStream;

/// Metadata key of the leader's id in a not-leader answer.
pub const LEADER_ID_HEADER: &str = "gru-leader-id";
/// Metadata key of the leader's gRPC address in a not-leader answer.
pub const LEADER_GRPC_HEADER: &str = "gru-leader-grpc";
