//! The public HTTP port probed as an attacker would: silent and slow connections, one address
//! opening many, ticket floods, and requests that used to get plain-text or empty errors.

#[path = "../common/mod.rs"]
mod common;
#[path = "../spear/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../hostile_sio/node.rs"]
#[allow(dead_code)]
mod node;

mod errors;
mod slow;
mod ticket_rate_limit;
