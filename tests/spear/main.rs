//! spear and ticket scenarios with real clients.

mod bad_input;
mod discovery;
mod group_access;
mod handshake_resume;
mod msg_client_id;
mod node_clients;
mod rust_client;
mod secret_rotation;
mod transports;
