//! The public HTTP edge on `listen.http`: the node's own routes (`node.rs`), the stat API
//! (`stat.rs`) and the ticket API (`ticket.rs`), with one error table ([`ApiError`]) for all of
//! them.

mod error;
mod node;
mod stat;
mod ticket;

pub use error::{retry_after, with_json_fallbacks, ApiError, QueryMap};
pub use node::{router, ApiState};
pub use stat::router as stat_router;
pub use ticket::{router as ticket_router, TicketState};
