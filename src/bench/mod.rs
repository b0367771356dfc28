//! `gru bench …`: measurements against running nodes (`relay` starts its own). Figures go to `docs/PERFORMANCE.md`
//! with the command that produced them.

pub(crate) mod connections;
pub(crate) mod idgen;
pub(crate) mod relay;
