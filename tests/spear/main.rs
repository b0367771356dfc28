//! spear and ticket scenarios with real clients.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod discovery;
mod node_clients;
mod rust_client;
mod support;
