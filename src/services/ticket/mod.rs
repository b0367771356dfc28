//! ticket: the public entry. Checks the caller's token1, places the user on a live spear
//! (rendezvous hashing with a bounded-load cap) and signs the spear token.

pub mod directory;
pub mod issue;
pub mod placement;

pub use directory::{SpearDirectory, SpearEntry};
pub use issue::{Ticket, TicketError, TicketIssuer, TicketParams, GRU_PARAMS, MODERN_PARAMS};
pub use placement::{place, Placement, SpearSlot, BALANCE_FACTOR};
