//! Across spears: the relay conformance suite against every backend (`conformance/`), and
//! whole-node scenarios — the Redis relay, live presence and the stat API — against real
//! `redis-server` processes (standalone and a 3-master Redis Cluster) that the tests start,
//! kill and restart; with the `rocketmq` feature, the RocketMQ relay against a real name
//! server and broker (`rocketmq.rs`).

mod cluster_append_once;
mod conformance;
mod crash_presence;
mod cross_node;
mod harness;
mod history_ttl;
mod history_uncertain;
mod redis_cluster;
mod redis_link;
mod redis_restart;
#[cfg(feature = "rocketmq")]
mod rocketmq;
