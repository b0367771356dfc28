//! The fault suite of "nothing acknowledged is lost" (`docs/api.md`, "Resume"): real clusters,
//! real `redis-server`s, logical clients that reconnect and resume (`fleet.rs`), and a delivery
//! checker (`gru_testkit::delivery`) that proves every acknowledged message reached every
//! recipient exactly once, in channel order, and that every resync was justified.
//! `gossip_auth` belongs with them: a forger on the cluster's network, whose gossip must change
//! nothing ticket decides.

mod cluster_mtls;
mod epoch_change_after_outage;
mod fleet;
mod gossip_auth;
mod minority_partition;
mod quorum_loss;
mod redis_restart_resume;
mod rolling_restart;
mod scenario;
mod sdk_faults;
mod spear_kill_redis_down;
mod spear_kill_resume;
