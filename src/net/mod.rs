//! Transport clients, the bottom layer above `config`: the node-to-node gRPC client with its
//! channel pool and generated code ([`grpc`]) with its mutual TLS ([`tls`]), the Redis link
//! ([`redis`]) and gossip ([`gossip`]). Nothing here knows Raft's or a service's types: callers convert at their end.

pub mod gossip;
pub mod grpc;
pub mod redis;
pub mod tls;
