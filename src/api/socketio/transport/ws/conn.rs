//! One connection of gru's own WebSocket transport, as everyone but its task sees it: a
//! bounded queue of ready frames (`spear.send_queue_packets`) in front of the write half, which
//! the connection's task flushes, as many frames per write as wait. The queue holds memory only
//! while frames wait (it is freed once written), so an idle connection holds none; a message to
//! many connections is the same bytes in each queue; and under load one wake of the task writes
//! every message that came meanwhile in one call.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, WriteHalf};
use tokio::sync::Notify;

use crate::api::serve::Conn;
use crate::api::socketio::conn::ConnState;
use crate::api::socketio::link::Unsent;
use crate::api::socketio::ConnId;
use crate::services::channel::Channel;

/// The connection's byte stream after the upgrade.
pub(super) type Io = TokioIo<Upgraded>;

/// Frames written in one call when several wait.
const WRITE_AT_ONCE: usize = 64;

/// Which engine.io protocol the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::api::socketio) enum Eio {
    /// engine.io 3 (socket.io-client 2, socket.io protocol 4): the client pings, and the
    /// default namespace is joined without a connect packet.
    V3,
    /// engine.io 4 (socket.io-client 3 and 4, socket.io protocol 5): the server pings.
    V4,
}

/// A connection of the lean WebSocket transport.
pub struct WsConn {
    id: ConnId,
    /// The TCP connection (its peer, and the switch that cuts it).
    tcp: Option<Conn>,
    pub(super) eio: Eio,
    pub(super) state: ConnState,
    out: Mutex<Out>,
    /// Tells the connection's task that frames wait or that it must close.
    pub(super) wake: Notify,
}

/// The write side.
struct Out {
    /// `None` once the connection is over.
    writer: Option<WriteHalf<Io>>,
    /// Frames not yet written whole; the first may be partly written already.
    queue: VecDeque<Bytes>,
    /// Most frames the queue (and `held`) holds.
    max: usize,
    /// socket.io packets wait here until the namespace's connect packet is out (a client
    /// drops what comes before it); engine.io's own (pings) do not.
    gated: bool,
    held: VecDeque<Bytes>,
    /// The namespace is open: not before its connect packet, not after a disconnect.
    open: bool,
    /// Close once the queue is written.
    closing: Option<u16>,
    /// The channels the connection is live on, to leave them when it ends.
    channels: Vec<Channel>,
}

impl WsConn {
    /// A connection writing to `writer`, queueing up to `max` frames.
    pub(super) fn new(
        id: ConnId,
        tcp: Option<Conn>,
        eio: Eio,
        state: ConnState,
        writer: WriteHalf<Io>,
        max: usize,
    ) -> Self {
        Self {
            id,
            tcp,
            eio,
            state,
            out: Mutex::new(Out {
                writer: Some(writer),
                queue: VecDeque::new(),
                max,
                gated: true,
                held: VecDeque::new(),
                open: false,
                closing: None,
                channels: Vec::new(),
            }),
            wake: Notify::new(),
        }
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The TCP connection under it.
    pub fn tcp(&self) -> Option<&Conn> {
        self.tcp.as_ref()
    }

    /// What the spear keeps of the connection.
    pub(in crate::api::socketio) fn state(&self) -> &ConnState {
        &self.state
    }

    /// Whether the namespace is open.
    pub fn is_open(&self) -> bool {
        self.out().open
    }

    /// Sends socket.io packet `frame`: queued for the task to write (held until the
    /// namespace's connect packet is out). `Err(Full)` when `spear.send_queue_packets` frames
    /// wait.
    pub fn send(&self, frame: Bytes) -> Result<(), Unsent> {
        let mut out = self.out();
        if out.gated && out.writer.is_some() && out.closing.is_none() {
            if out.held.len() >= out.max {
                return Err(Unsent::Full);
            }
            out.held.push_back(frame);
            return Ok(());
        }
        drop(out);
        self.send_engine(frame)
    }

    /// Sends engine.io packet `frame` (the open packet, a ping or pong), gate or not.
    pub(super) fn send_engine(&self, frame: Bytes) -> Result<(), Unsent> {
        self.push(frame, true)
    }

    /// Queues a frame of the connection's own task (a ping, a pong): no wake, the task
    /// flushes its queue before it waits again.
    pub(super) fn queue_own(&self, frame: Bytes) -> Result<(), Unsent> {
        self.push(frame, false)
    }

    fn push(&self, frame: Bytes, wake: bool) -> Result<(), Unsent> {
        let mut guard = self.out();
        let out = &mut *guard;
        if out.writer.is_none() || out.closing.is_some() {
            return Err(Unsent::Closed);
        }
        if out.queue.len() >= out.max {
            return Err(Unsent::Full);
        }
        let was_empty = out.queue.is_empty();
        out.queue.push_back(frame);
        drop(guard);
        // The task flushes until the queue is empty: only the first frame needs to wake it, and
        // what comes while it writes goes out with the same write.
        if was_empty && wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Writes the namespace's connect packet ahead of everything that waited for it, and
    /// opens the namespace.
    pub(super) fn open_namespace(&self, connect: Bytes) {
        let mut out = self.out();
        out.queue.push_back(connect);
        let held = std::mem::take(&mut out.held);
        out.queue.extend(held);
        out.gated = false;
        out.open = true;
        drop(out);
        self.wake.notify_one();
    }

    /// Sends `last` (a disconnect packet, when there is one), then a close frame with `code`;
    /// the task ends the connection once they are written. `Err(Full)` when not even `last`
    /// fits: the connection is cut instead.
    pub(super) fn close_with(&self, last: Option<Bytes>, code: u16) -> Result<(), Unsent> {
        let mut out = self.out();
        if out.writer.is_none() || out.closing.is_some() {
            return Ok(());
        }
        out.open = false;
        out.gated = false;
        out.held = VecDeque::new();
        let full = out.queue.len() >= out.max;
        if let Some(last) = last.filter(|_| !full) {
            out.queue.push_back(last);
        }
        out.closing = Some(code);
        drop(out);
        self.wake.notify_one();
        if full {
            self.kill();
            return Err(Unsent::Full);
        }
        Ok(())
    }

    /// Cuts the TCP connection now.
    pub fn kill(&self) {
        if let Some(tcp) = &self.tcp {
            tcp.kill();
        }
        self.wake.notify_one();
    }

    /// Notes that the connection is live on `channel`.
    pub(in crate::api::socketio) fn joined(&self, channel: Channel) {
        let mut out = self.out();
        if !out.channels.contains(&channel) {
            out.channels.push(channel);
        }
    }

    /// Notes that the connection left `channel`.
    pub(in crate::api::socketio) fn left(&self, channel: Channel) {
        self.out().channels.retain(|c| *c != channel);
    }

    /// The channels the connection is live on (it ends: they are left).
    pub(in crate::api::socketio) fn take_channels(&self) -> Vec<Channel> {
        std::mem::take(&mut self.out().channels)
    }

    /// Whether frames wait to be written (the task flushes them).
    pub(super) fn has_pending(&self) -> bool {
        !self.out().queue.is_empty()
    }

    /// The close code to end with once everything queued is out, if closing.
    pub(super) fn closing(&self) -> Option<u16> {
        let out = self.out();
        out.closing.filter(|_| out.queue.is_empty())
    }

    /// Writes what waits, several frames per write; ready when the queue is empty (its memory
    /// is released then). Run by the connection's task with its waker.
    pub(super) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut guard = self.out();
        let out = &mut *guard;
        let Some(writer) = out.writer.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !out.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_AT_ONCE];
            let mut n = 0;
            for (slot, frame) in slices.iter_mut().zip(&out.queue) {
                *slot = IoSlice::new(frame);
                n += 1;
            }
            let written = match Pin::new(&mut *writer).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            consume(&mut out.queue, written);
        }
        if out.queue.is_empty() {
            out.queue = VecDeque::new();
        }
        Pin::new(&mut *writer).poll_flush(cx)
    }

    /// Writes a frame of the task's own (a pong, a close) after what waits, and flushes.
    pub(super) fn poll_write_last(
        &self,
        cx: &mut Context<'_>,
        frame: &mut Bytes,
    ) -> Poll<std::io::Result<()>> {
        if self.poll_flush(cx)?.is_pending() {
            return Poll::Pending;
        }
        let mut out = self.out();
        let Some(writer) = out.writer.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !frame.is_empty() {
            match Pin::new(&mut *writer).poll_write(cx, frame) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => frame.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut *writer).poll_flush(cx)
    }

    /// The connection is over: the write half is dropped and nothing more is taken.
    pub(super) fn end(&self) -> Option<WriteHalf<Io>> {
        let mut out = self.out();
        out.open = false;
        out.queue = VecDeque::new();
        out.held = VecDeque::new();
        out.writer.take()
    }
}

/// Drops `written` bytes off the front of the queue.
fn consume(queue: &mut VecDeque<Bytes>, mut written: usize) {
    while written > 0 {
        let Some(front) = queue.front_mut() else {
            return;
        };
        if written >= front.len() {
            written -= front.len();
            queue.pop_front();
        } else {
            front.advance(written);
            written = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_ends_inside_a_frame_keeps_the_rest_of_it() {
        let mut queue: VecDeque<Bytes> = [&b"abc"[..], b"de", b"fgh"]
            .into_iter()
            .map(Bytes::from_static)
            .collect();
        consume(&mut queue, 4);
        let left: Vec<&[u8]> = queue.iter().map(|b| &b[..]).collect();
        assert_eq!(left, [&b"e"[..], &b"fgh"[..]]);
        consume(&mut queue, 4);
        assert!(queue.is_empty());
    }
}
