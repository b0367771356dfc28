//! Every connection of this spear and the channels each is live on: found by id (deadlines,
//! the server API), taken a wave at a time (drain), and delivered to a channel at a time.
//! A channel's delivery is encoded once per transport: socketioxide's rooms hold the
//! connections it carries (its broadcast encodes a packet once for all of them); the lean
//! WebSocket transport's connections are held here, and a message goes to all of them as one
//! prepared frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use socketioxide::SocketIo;

use super::link::{Link, Unsent};
use super::transport::ws::{self, WsConn};
use super::ConnId;
use crate::services::channel::Channel;

/// The socket.io room of a channel on this spear (every connection of a user, or every member
/// of a group): the channel's name.
fn room(channel: Channel) -> String {
    channel.to_string()
}

/// This spear's connections.
#[derive(Clone)]
pub struct Links {
    io: SocketIo,
    lean: Arc<Lean>,
}

/// The lean transport's connections, and the channels each is live on.
#[derive(Default)]
struct Lean {
    conns: Mutex<HashMap<ConnId, Arc<WsConn>>>,
    channels: Mutex<HashMap<Channel, HashMap<ConnId, Arc<WsConn>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Maps of handles: nothing is left half-done by a panic that matters more than delivery.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Links {
    /// The connections `io` serves, and those of the lean transport.
    pub fn new(io: SocketIo) -> Self {
        Self {
            io,
            lean: Arc::default(),
        }
    }

    /// Counts `link` in (lean connections; socketioxide keeps its own).
    pub(super) fn add(&self, link: &Link) {
        if let Link::Ws(conn) = link {
            lock(&self.lean.conns).insert(conn.id(), conn.clone());
        }
    }

    /// Takes `link` out, and off every channel it was live on.
    pub(super) fn remove(&self, link: &Link) {
        if let Link::Ws(conn) = link {
            lock(&self.lean.conns).remove(&conn.id());
            let mut channels = lock(&self.lean.channels);
            for channel in conn.take_channels() {
                if let Some(members) = channels.get_mut(&channel) {
                    members.remove(&conn.id());
                    if members.is_empty() {
                        channels.remove(&channel);
                    }
                }
            }
        }
    }

    /// The connection `id`, while it is open.
    pub fn get(&self, id: ConnId) -> Option<Link> {
        self.io
            .get_socket(id)
            .map(Link::Sio)
            .or_else(|| lock(&self.lean.conns).get(&id).cloned().map(Link::Ws))
    }

    /// Every open connection.
    pub fn all(&self) -> Vec<Link> {
        self.some(usize::MAX)
    }

    /// At most `n` open connections.
    pub fn some(&self, n: usize) -> Vec<Link> {
        let mut links: Vec<Link> = self
            .io
            .sockets()
            .into_iter()
            .take(n)
            .map(Link::Sio)
            .collect();
        let rest = n.saturating_sub(links.len());
        links.extend(
            lock(&self.lean.conns)
                .values()
                .take(rest)
                .cloned()
                .map(Link::Ws),
        );
        links
    }

    /// Makes `link` live on `channel`: what is delivered to the channel reaches it.
    pub fn join(&self, channel: Channel, link: &Link) {
        match link {
            Link::Sio(s) => s.join(room(channel)),
            Link::Ws(conn) => {
                lock(&self.lean.channels)
                    .entry(channel)
                    .or_default()
                    .insert(conn.id(), conn.clone());
                conn.joined(channel);
            }
        }
    }

    /// Takes `link` off `channel`.
    pub fn leave(&self, channel: Channel, link: &Link) {
        match link {
            Link::Sio(s) => s.leave(room(channel)),
            Link::Ws(conn) => {
                let mut channels = lock(&self.lean.channels);
                if let Some(members) = channels.get_mut(&channel) {
                    members.remove(&conn.id());
                    if members.is_empty() {
                        channels.remove(&channel);
                    }
                }
                conn.left(channel);
            }
        }
    }

    /// Sends event `event` with `data` to every connection live on `channel`; `Err(Full)` when
    /// some connection did not take it (its send queue is full: it does not read).
    pub async fn deliver<T: ?Sized + Serialize>(
        &self,
        channel: Channel,
        event: &str,
        data: &T,
    ) -> Result<(), Unsent> {
        let lean = self.deliver_lean(channel, event, data);
        let sio = self
            .io
            .to(room(channel))
            .emit(event, data)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "a delivery missed a client that does not read");
                Unsent::Full
            });
        lean.and(sio)
    }

    /// The lean transport's part of a delivery: one frame, written to every member.
    fn deliver_lean<T: ?Sized + Serialize>(
        &self,
        channel: Channel,
        event: &str,
        data: &T,
    ) -> Result<(), Unsent> {
        let members: Vec<Arc<WsConn>> = match lock(&self.lean.channels).get(&channel) {
            Some(members) => members.values().cloned().collect(),
            None => return Ok(()),
        };
        let Some(frame) = ws::event_frame(event, data) else {
            return Err(Unsent::Closed);
        };
        // A member whose queue is full misses this message alone (`docs/security.md`, "Slow
        // consumers") and is cut at once: left open, it would go on without the message and
        // without knowing (a client that reconnects resumes from its last place).
        let mut result = Ok(());
        for conn in members {
            if conn.send(frame.clone()) == Err(Unsent::Full) {
                tracing::info!(sid = %conn.id(), reason = "slow_consumer", "cutting connection");
                conn.kill();
                result = Err(Unsent::Full);
            }
        }
        result
    }
}
