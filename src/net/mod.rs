//! Transports: node-to-node gRPC, the public HTTP API and the Redis link. Services use these through small
//! types (`ClusterClient`, routers); no service sees tonic or axum request plumbing.

pub mod gossip;
pub mod grpc;
pub mod http;
pub mod redis;
pub mod serve;
