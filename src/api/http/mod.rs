//! The public HTTP edge on `listen.http`: the node's own routes (`node.rs`), its Prometheus
//! exposition (`metrics.rs`), the stat API (`stat.rs`) with the monitor's pages on stat nodes
//! (`monitor/`), the ticket API (`ticket.rs`) and the server API business servers call on
//! spears (`server_api/`), with one error table ([`ApiError`]) for all of them.

mod admin;
mod control;
mod error;
mod metrics;
mod monitor;
mod node;
mod server_api;
mod stat;
pub mod surfaces;
mod ticket;

pub use admin::AdminGate;
pub use control::router as control_router;
pub use error::{
    loopback_host_only, read_body, retry_after, with_json_fallbacks, ApiError, QueryMap,
};
pub use metrics::{router as metrics_router, MetricsState};
pub use monitor::{router as monitor_router, Aggregator, MonitorSources, MonitorState};
pub use node::{health_router, router, ApiState, SpearProbe};
pub use server_api::{
    admin_users_router, batch_drafts, publish_drafts, router as server_api_router, ServerApiLimits,
    ServerApiState,
};
pub use stat::router as stat_router;
pub use ticket::{router as ticket_router, TicketState};
