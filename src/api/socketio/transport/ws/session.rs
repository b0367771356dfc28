//! The one task of a lean WebSocket connection: it owns the read side and the heartbeat,
//! flushes what the write side could not write at once, and hands each event to the session
//! model (`events`). Reading holds no buffer between frames: bytes are read into the stack and
//! only an incomplete frame is kept.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use engineioxide_core::{Packet as EioPacket, Str};
use tokio::io::{AsyncRead, ReadBuf, ReadHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::conn::{Eio, Io, WsConn};
use super::frame::{close_frame, pong_frame, FrameError, Incoming, Reader};
use super::packets::{self, FromClient};
use super::WsSettings;
use crate::api::socketio::events::{self, Client};
use crate::api::socketio::link::{Ack, Link, Unsent};
use crate::api::socketio::transport::namespace_refusal;
use crate::api::socketio::SpearContext;

/// Bytes read from the socket per call, on the task's stack.
const READ_CHUNK: usize = 2048;

/// Heartbeat deadlines fall on a grid of this step (or of a sixteenth of the ping interval,
/// when that is shorter): the pings of several connections come due together, so an idle spear
/// wakes once for a few of them, and reads their pongs together, instead of once per
/// connection. Small, because a batch is work that messages wait behind: on a spear of 15,000
/// sessions under 1,000 msg/s, a 250 ms grid (150 pings a batch) saved a fifth of the idle CPU
/// and tripled the messages' p99 (3.1 → 10.8 ms); 25 ms (about 15 a batch) saved as much idle
/// CPU, p99 6.5 ms (`docs/performance.md`). A ping goes out at most one step late, well inside
/// the client's patience (`pingInterval + pingTimeout`).
const BEAT_GRID: Duration = Duration::from_millis(25);

/// How a connection ends; each as socketioxide ends it, so that both transports look the same
/// to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The socket ended or failed, or the client left the namespace: it is dropped.
    Gone,
    /// The server closed it (what was queued, then a close frame, went out).
    Closed,
    /// The client closed: its close frame is answered with its code.
    Echo(Option<u16>),
    /// The transport was misused (a frame or message over the limits, a packet engine.io does
    /// not take on a WebSocket): a close frame without a code.
    Transport,
    /// The session failed (a socket.io packet refused, a heartbeat missed, no connect in
    /// time): engine.io's close packet, then a close frame without a code.
    Session,
}

/// Where the namespace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    /// Waiting for the connect packet (socket.io 5), until the deadline.
    Awaited(Instant),
    /// Connected: events flow.
    Open,
    /// Connected once, then left by the client.
    Left,
    /// Refused (its connect error was sent): nothing more is taken.
    Refused,
}

impl Namespace {
    /// Whether the connection was connected, so counted among the spear's connections.
    fn was_open(self) -> bool {
        matches!(self, Namespace::Open | Namespace::Left)
    }
}

/// The heartbeat: engine.io 4 has the server ping; engine.io 3 has the client ping.
struct Heartbeat {
    eio: Eio,
    interval: Duration,
    timeout: Duration,
    /// The grid the deadlines fall on.
    step: Duration,
    /// When a ping was sent and no pong came yet (engine.io 4).
    awaiting: bool,
    next: Instant,
}

impl Heartbeat {
    fn new(eio: Eio, settings: &WsSettings) -> Self {
        let (interval, timeout) = (settings.open.ping_interval, settings.open.ping_timeout);
        // engine.io 4: the first ping at once, as socketioxide sends it.
        let first = match eio {
            Eio::V4 => Duration::ZERO,
            Eio::V3 => interval + timeout,
        };
        Self {
            eio,
            interval,
            timeout,
            step: BEAT_GRID.min(interval / 16),
            awaiting: false,
            next: Instant::now() + first,
        }
    }

    /// The timer fired: the ping to send, or `Err` when the client is gone.
    fn due(&mut self) -> Result<Bytes, End> {
        match (self.eio, self.awaiting) {
            (Eio::V4, false) => {
                self.awaiting = true;
                self.next = on_grid(Instant::now() + self.timeout, self.step);
                Ok(packets::engine_frame(EioPacket::Ping))
            }
            _ => Err(End::Session),
        }
    }

    /// The client answered (engine.io 4) or pinged (engine.io 3).
    fn heard(&mut self) {
        self.awaiting = false;
        let after = match self.eio {
            Eio::V4 => self.interval,
            Eio::V3 => self.interval + self.timeout,
        };
        self.next = on_grid(Instant::now() + after, self.step);
    }
}

/// The first point of the spear's heartbeat grid (of `step`) at or after `at`.
fn on_grid(at: Instant, step: Duration) -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = Instant::from_std(*ORIGIN.get_or_init(std::time::Instant::now));
    let step = step.as_nanos().max(1);
    let since = at.saturating_duration_since(origin).as_nanos();
    // Past what a u64 of nanoseconds holds (centuries), the deadline stays where it was.
    let Ok(up) = u64::try_from(since.div_ceil(step) * step) else {
        return at;
    };
    origin.checked_add(Duration::from_nanos(up)).unwrap_or(at)
}

/// A connection's session, as its task and its packets move it.
struct Session {
    conn: Arc<WsConn>,
    /// The same connection as the session model sees it.
    client: Client,
    ctx: Arc<SpearContext>,
    stopping: CancellationToken,
    heartbeat: Heartbeat,
    namespace: Namespace,
}

/// Runs connection `conn` until it ends, then takes it out of the spear.
pub(super) async fn run(
    conn: Arc<WsConn>,
    mut reader: ReadHalf<Io>,
    ctx: Arc<SpearContext>,
    settings: WsSettings,
    stopping: CancellationToken,
) {
    let mut session = Session {
        client: Client {
            link: Link::Ws(conn.clone()),
            state: conn.state().clone(),
        },
        heartbeat: Heartbeat::new(conn.eio, &settings),
        namespace: match conn.eio {
            Eio::V4 => Namespace::Awaited(Instant::now() + settings.connect_timeout),
            Eio::V3 => Namespace::Open,
        },
        conn,
        ctx,
        stopping,
    };
    let mut frames = Reader::new(settings.max_message);
    match session.conn.eio {
        // engine.io 4's first ping is due at once: queued behind the open packet, both go out
        // in the session's first write.
        Eio::V4 => {
            if let Ok(ping) = session.heartbeat.due() {
                let _ = session.conn.queue_own(ping);
            }
        }
        // socket.io 4 joins the default namespace with the session, without a connect packet.
        Eio::V3 => Box::pin(session.connect(None)).await,
    }
    let end = session.until_it_ends(&mut reader, &mut frames).await;
    let conn = &session.conn;
    match end {
        End::Echo(code) => finish(conn, None, close_frame(code)).await,
        End::Transport => finish(conn, None, close_frame(None)).await,
        End::Session => {
            let close = packets::engine_frame(EioPacket::Close);
            finish(conn, Some(close), close_frame(None)).await
        }
        End::Gone | End::Closed => end,
    };
    tracing::debug!(sid = %conn.id(), ?end, "lean WebSocket connection ended");
    drop(conn.end());
    if session.namespace.was_open() {
        events::closed(&session.client.link, &session.ctx);
    }
}

impl Session {
    /// The connection's loop: reads, the heartbeat, and the writes others queued.
    async fn until_it_ends(&mut self, reader: &mut ReadHalf<Io>, frames: &mut Reader) -> End {
        let conn = self.conn.clone();
        let timer = tokio::time::sleep_until(self.heartbeat.next);
        tokio::pin!(timer);
        // One registration with the connection's notifier, renewed when it fires, not on every
        // turn of the loop.
        let mut woken = pin!(conn.wake.notified());
        loop {
            let deadline = match self.namespace {
                Namespace::Awaited(at) => at.min(self.heartbeat.next),
                _ => self.heartbeat.next,
            };
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            let pending = conn.has_pending();
            let mut renew = false;
            tokio::select! {
                read = read_some(reader, frames) => {
                    if !read {
                        return End::Gone;
                    }
                    if let Err(end) = self.take_frames(frames).await {
                        return end;
                    }
                    frames.release();
                }
                () = &mut timer => {
                    if matches!(self.namespace, Namespace::Awaited(at) if at <= Instant::now()) {
                        return End::Session;
                    }
                    let ping = match self.heartbeat.due() {
                        Ok(ping) => ping,
                        Err(end) => return end,
                    };
                    // A ping that finds the connection closing is not sent: the close ends it.
                    // One that finds its queue full ends it now: the client does not read
                    // (`docs/security.md`, "Slow consumers"). Queued without a wake: the next
                    // turn of this loop writes it.
                    if conn.queue_own(ping) == Err(Unsent::Full) {
                        conn.kill();
                        return End::Gone;
                    }
                }
                () = &mut woken => renew = true,
                flushed = poll_fn(|cx| conn.poll_flush(cx)), if pending => {
                    if flushed.is_err() {
                        return End::Gone;
                    }
                }
            }
            if renew {
                woken.set(conn.wake.notified());
            }
            if let Some(code) = conn.closing() {
                return finish(&conn, None, close_frame(Some(code))).await;
            }
        }
    }

    /// Handles every whole frame read so far. The heartbeat and control frames are handled
    /// here; socket.io packets go to [`Self::socket_packet`].
    async fn take_frames(&mut self, frames: &mut Reader) -> Result<(), End> {
        loop {
            let incoming = match frames.next() {
                Ok(Some(incoming)) => incoming,
                Ok(None) => return Ok(()),
                Err(e) => return Err(refused(e)),
            };
            match incoming {
                Incoming::Ping(payload) => {
                    let _ = self.conn.queue_own(pong_frame(&payload));
                }
                Incoming::Pong => {}
                Incoming::Close(code) => return Err(End::Echo(code)),
                Incoming::Text(text) => self.engine_packet(Str::from(text)).await?,
            }
        }
    }

    /// One engine.io packet.
    async fn engine_packet(&mut self, text: Str) -> Result<(), End> {
        let eio = self.conn.eio;
        let packet = EioPacket::parse(eio.into(), text).map_err(|_| End::Transport)?;
        match (packet, eio) {
            (EioPacket::Pong, Eio::V4) => self.heartbeat.heard(),
            (EioPacket::Ping, Eio::V3) => {
                self.heartbeat.heard();
                let _ = self.conn.queue_own(packets::engine_frame(EioPacket::Pong));
            }
            (EioPacket::Close, _) => return Err(End::Transport),
            // Boxed: handling a socket.io packet awaits the session model (a handshake awaits
            // the relay and the history), a future far larger than the idle loop; inline, every
            // idle connection's task would carry its size.
            (EioPacket::Message(msg), _) => Box::pin(self.socket_packet(msg)).await?,
            // Upgrades, noops and binary packets have no place on a WebSocket session.
            _ => return Err(End::Transport),
        }
        Ok(())
    }

    /// One socket.io packet.
    async fn socket_packet(&mut self, msg: Str) -> Result<(), End> {
        let packet = packets::decode(msg).map_err(|e| {
            tracing::debug!(sid = %self.conn.id(), error = %e, "a packet refused");
            End::Session
        })?;
        match (packet, self.namespace) {
            (FromClient::Connect(auth), Namespace::Awaited(_)) => {
                self.connect(auth).await;
                Ok(())
            }
            (FromClient::Event { name, data, ack }, Namespace::Open) => {
                let ack = Ack::Ws {
                    conn: self.conn.clone(),
                    id: ack,
                };
                let (client, ctx) = (self.client.clone(), self.ctx.clone());
                tokio::spawn(async move { events::dispatch(client, &ctx, &name, data, ack).await });
                Ok(())
            }
            (FromClient::Ack, Namespace::Open) => Ok(()),
            // The client left the namespace, but not the session under it: that session has
            // nothing left to carry (as on socketioxide, it is ended).
            (FromClient::Disconnect, Namespace::Open) => {
                self.namespace = Namespace::Left;
                Err(End::Gone)
            }
            (FromClient::Disconnect, _) => Err(End::Gone),
            // A second connect, or packets before the connect or after a refusal.
            _ => Err(End::Session),
        }
    }

    /// Connects the namespace: the handshake's checks, then the connect packet (or the connect
    /// error that refuses it), then what follows a connect.
    async fn connect(&mut self, auth: Option<serde_json::Value>) {
        let (ctx, conn) = (&self.ctx, &self.conn);
        let checked = namespace_refusal(ctx, &self.stopping)
            .and_then(|()| events::check_handshake(ctx, auth));
        let auth = match checked {
            Ok(auth) => auth,
            Err(message) => {
                self.namespace = Namespace::Refused;
                let _ = conn.close_with(packets::connect_error_frame(&message), 1000);
                return;
            }
        };
        events::opened(&self.client.link, ctx);
        events::handshake(&self.client, ctx, auth).await;
        if let Some(connect) = packets::connect_frame(conn.eio, conn.id()) {
            conn.open_namespace(connect);
        }
        self.namespace = Namespace::Open;
        // The auth_result of a connection that goes live at once follows the connect packet
        // in the same write; a resume's backlog is brought apart from the reads.
        if let Some(from) = events::connected(&self.client, ctx) {
            let (client, ctx) = (self.client.clone(), ctx.clone());
            tokio::spawn(async move { events::resume_user_channel(&client, &ctx, from).await });
        }
    }
}

/// Writes what waits, then `last` (engine.io's close packet) when given, then the close frame.
async fn finish(conn: &WsConn, last: Option<Bytes>, close: Bytes) -> End {
    let mut out = match last {
        Some(last) => [last, close].concat().into(),
        None => close,
    };
    let written = tokio::time::timeout(
        Duration::from_secs(1),
        poll_fn(|cx| conn.poll_write_last(cx, &mut out)),
    )
    .await;
    if !matches!(written, Ok(Ok(()))) {
        conn.kill();
    }
    End::Closed
}

/// Reads what the socket has into `frames`; false when it ended or failed.
async fn read_some(reader: &mut ReadHalf<Io>, frames: &mut Reader) -> bool {
    poll_fn(|cx| {
        // Not zeroed: the socket writes what is read.
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(false),
            Poll::Ready(Ok(())) => {
                frames.feed(buf.filled());
                Poll::Ready(true)
            }
        }
    })
    .await
}

fn refused(e: FrameError) -> End {
    match e {
        // engine.io hands a binary frame to socket.io, which refuses it (no attachment waits).
        FrameError::Binary => End::Session,
        FrameError::Protocol | FrameError::TooLarge | FrameError::NotUtf8 => End::Transport,
    }
}

impl From<Eio> for engineioxide_core::ProtocolVersion {
    fn from(eio: Eio) -> Self {
        match eio {
            Eio::V3 => engineioxide_core::ProtocolVersion::V3,
            Eio::V4 => engineioxide_core::ProtocolVersion::V4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_deadlines_fall_on_the_grid_and_never_early() {
        let step = Duration::from_millis(250);
        let now = Instant::now();
        let points: Vec<Instant> = (0..40)
            .map(|ms| on_grid(now + Duration::from_millis(ms * 7), step))
            .collect();
        for (ms, point) in (0..40).zip(&points) {
            let at = now + Duration::from_millis(ms * 7);
            assert!(*point >= at, "a deadline moved earlier");
            assert!(
                *point < at + step,
                "a deadline moved by a whole step or more"
            );
        }
        // 280 ms of deadlines fall on at most three grid points: they wake the spear together.
        let mut distinct = points.clone();
        distinct.dedup();
        assert!(distinct.len() <= 3, "{} grid points", distinct.len());
    }
}
