//! ticket: places users on spears and signs their spear tokens. So far: placement.

pub mod placement;

pub use placement::{place, Placement, SpearSlot, BALANCE_FACTOR};
