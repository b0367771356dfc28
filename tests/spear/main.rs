//! spear and ticket scenarios with real clients.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod discovery;
mod group_access;
mod node_clients;
mod rust_client;
mod secret_rotation;
mod support;
