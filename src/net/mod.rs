//! Transports: node-to-node gRPC and the public HTTP API. Services use these through small
//! types (`ClusterClient`, routers); no service sees tonic or axum request plumbing.

pub mod gossip;
pub mod grpc;
pub mod http;
