//! The public HTTP port probed as an attacker would: silent and slow connections, one address
//! opening many, ticket floods, and requests that used to get plain-text or empty errors.

#[path = "../hostile_sio/node.rs"]
#[allow(dead_code)]
mod node;

mod admin_key_rotation;
mod bodies;
mod errors;
mod idempotency_bound;
mod public_tls;
mod server_api;
mod slow;
mod surfaces;
mod ticket_rate_limit;
