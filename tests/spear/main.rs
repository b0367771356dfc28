//! spear and ticket scenarios with real clients.

mod node_clients;
