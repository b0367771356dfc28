//! A spear probed as an attacker and a bad mobile network would (issue "spears no client can
//! hurt"): binary attachments, clients that never read, never authenticate or keep a closed
//! session open, floods, a stop with stuck clients. Each scenario runs a real `gru` process and
//! checks what the server did (closed the connection, kept its memory, answered the others).

mod binary;
mod deadlines;
mod history_flood;
mod limits;
mod node;
mod polling;
mod shutdown;
mod slow_consumer;
