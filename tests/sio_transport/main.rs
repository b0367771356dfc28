//! The engine.io behaviour of gru's own WebSocket transport (`spear.websocket = "gru"`), each
//! case run against socketioxide's too (`"socketioxide"`) and required to give the same
//! observable result: the open packet, both heartbeats, the limits a client meets, close codes,
//! a client that stops reading, and the memory of connections that came and went.

mod engine;
mod limits;
mod memory;
mod node;
mod raw;
