//! What gru does for its users, built on `raft` and `net`. Each service reads like its job.

pub mod auth;
pub mod channel;
pub mod history;
pub mod idgen;
pub mod metrics;
pub mod publish;
pub mod relay;
pub mod spear;
pub mod stat;
pub mod ticket;
