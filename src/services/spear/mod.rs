//! spear: the long-connection node. So far it registers itself with the Raft group.

mod registration;

pub use registration::run_registration;
