//! One accepted client connection: its IO wrapped so that a write that makes no progress for
//! too long, or an explicit [`Conn::kill`], ends it — whatever protocol runs on top (HTTP, or a
//! WebSocket after the upgrade, which hyper hands over with this same IO inside).
//!
//! A client that stops reading fills its TCP window; every write then stays pending, and a
//! library that awaits that write (engine.io's writer does, while holding the lock the
//! disconnect path waits for) would hold the connection, its buffers and its place in the
//! roster forever. The write deadline turns that into an error, and the error tears the
//! connection down through the library's own error path.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Why a connection was ended by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum KillReason {
    /// A write made no progress for the write timeout (the client does not read).
    WriteTimeout = 1,
    /// The application closed it (slow consumer, failed or missing authentication, expiry).
    Closed = 2,
    /// The server is stopping and the drain time is over.
    Shutdown = 3,
}

/// `Control::state` of a connection that is alive.
const ALIVE: u8 = 0;

impl KillReason {
    fn from_state(state: u8) -> Option<Self> {
        match state {
            ALIVE => None,
            s if s == KillReason::WriteTimeout as u8 => Some(KillReason::WriteTimeout),
            s if s == KillReason::Shutdown as u8 => Some(KillReason::Shutdown),
            _ => Some(KillReason::Closed),
        }
    }

    fn error(self) -> io::Error {
        match self {
            KillReason::WriteTimeout => io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read for the write timeout",
            ),
            KillReason::Closed => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            ),
            KillReason::Shutdown => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ),
        }
    }
}

/// What the IO and every handle of one connection share.
struct Control {
    id: u64,
    peer: SocketAddr,
    /// `ALIVE`, or the first [`KillReason`] that ended it.
    state: AtomicU8,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
}

impl Control {
    fn kill(&self, reason: KillReason) {
        // The first reason stays.
        let _ =
            self.state
                .compare_exchange(ALIVE, reason as u8, Ordering::AcqRel, Ordering::Acquire);
        // Whoever is parked on the socket must wake up to see the error.
        self.read_waker.wake();
        self.write_waker.wake();
    }

    fn reason(&self) -> Option<KillReason> {
        KillReason::from_state(self.state.load(Ordering::Acquire))
    }

    fn dead(&self) -> Option<io::Error> {
        self.reason().map(KillReason::error)
    }
}

/// A handle on one client connection, put into every request's extensions: the peer's
/// address, and a way to end the connection from anywhere.
#[derive(Clone)]
pub struct Conn(Arc<Control>);

impl Conn {
    /// The client's address as the TCP connection sees it.
    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// Ends the connection now: every read and write on it fails from here on, which makes
    /// the protocol on top (hyper, the WebSocket) drop it. Nothing more is sent.
    pub fn kill(&self) {
        self.0.kill(KillReason::Closed);
    }

    /// Why the server ended it, if it did.
    #[cfg(test)]
    fn kill_reason(&self) -> Option<KillReason> {
        self.0.reason()
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.0.id)
            .field("peer", &self.0.peer)
            .finish()
    }
}

/// Every open connection of one listener, with per-IP counts.
#[derive(Default)]
pub(super) struct Registry {
    next_id: AtomicU64,
    inner: Mutex<RegistryInner>,
    /// Woken when the last open connection is released.
    emptied: tokio::sync::Notify,
}

#[derive(Default)]
struct RegistryInner {
    open: HashMap<u64, Arc<Control>>,
    per_ip: HashMap<IpAddr, u32>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection from `peer` unless its IP already has `max_per_ip` open (0: no
    /// limit); `None` when refused.
    pub(super) fn admit(self: &Arc<Self>, peer: SocketAddr, max_per_ip: u32) -> Option<Conn> {
        let mut inner = self.lock();
        let open_here = inner.per_ip.get(&peer.ip()).copied().unwrap_or(0);
        if max_per_ip > 0 && open_here >= max_per_ip {
            return None;
        }
        inner.per_ip.insert(peer.ip(), open_here + 1);
        let control = Arc::new(Control {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            state: AtomicU8::new(ALIVE),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
        });
        inner.open.insert(control.id, control.clone());
        Some(Conn(control))
    }

    fn release(&self, control: &Control) {
        let mut inner = self.lock();
        inner.open.remove(&control.id);
        let ip = control.peer.ip();
        if let Some(count) = inner.per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.per_ip.remove(&ip);
            }
        }
        if inner.open.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Returns once no connection is open.
    pub(super) async fn all_closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            // Registered before the check, so a release in between is not missed.
            emptied.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            emptied.await;
        }
    }

    /// Ends every open connection.
    pub(super) fn kill_all(&self, reason: KillReason) -> usize {
        let open: Vec<Arc<Control>> = self.lock().open.values().cloned().collect();
        for control in &open {
            control.kill(reason);
        }
        open.len()
    }
}

/// A socket that can be closed abortively: a killed connection is reset, so neither side
/// keeps its unsent data (the kernel would otherwise go on offering it to a client that does
/// not read, and that client would never see the end of the connection).
pub(super) trait Abortive {
    /// Makes closing the socket send a reset and drop unsent data.
    fn reset_on_close(&self);
}

impl Abortive for tokio::net::TcpStream {
    fn reset_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

/// The IO of one connection: the socket, its write deadline and its kill switch. Dropping it
/// (the connection is over) frees its place in the registry and its per-IP count.
pub(super) struct GuardedIo<T: Abortive> {
    inner: T,
    control: Arc<Control>,
    registry: Arc<Registry>,
    write_timeout: Duration,
    /// Running while a write is pending; reset by every write that makes progress.
    stall: Option<Pin<Box<Sleep>>>,
}

impl<T: Abortive> GuardedIo<T> {
    pub(super) fn new(
        inner: T,
        conn: &Conn,
        registry: Arc<Registry>,
        write_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            control: conn.0.clone(),
            registry,
            write_timeout,
            stall: None,
        }
    }

    /// Runs a write or flush of the socket under the kill switch and the write deadline:
    /// progress resets the deadline; pending starts it, or ends the connection once it has
    /// passed.
    fn guarded<R>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>>
    where
        T: Unpin,
    {
        let this = self.get_mut();
        if let Some(e) = this.control.dead() {
            return Poll::Ready(Err(e));
        }
        this.control.write_waker.register(cx.waker());
        match op(Pin::new(&mut this.inner), cx) {
            Poll::Pending => match this.stalled(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => {
                this.stall = None;
                ready
            }
        }
    }

    /// A write is pending: starts the deadline, or ends the connection when it has passed.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let timeout = self.write_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::info!(
                    peer = %self.control.peer,
                    timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    "client does not read: connection cut"
                );
                self.control.kill(KillReason::WriteTimeout);
                Poll::Ready(Err(KillReason::WriteTimeout.error()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Abortive> Drop for GuardedIo<T> {
    fn drop(&mut self) {
        if self.control.reason().is_some() {
            self.inner.reset_on_close();
        }
        self.registry.release(&self.control);
    }
}

impl<T: AsyncRead + Abortive + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.control.dead() {
            return Poll::Ready(Err(e));
        }
        self.control.read_waker.register(cx.waker());
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Abortive + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guarded(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guarded(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guarded(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.control.dead().is_some() {
            // Nothing more goes out on a killed connection; dropping it closes the socket.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    impl Abortive for DuplexStream {
        fn reset_on_close(&self) {}
    }

    fn peer(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 4000))
    }

    #[test]
    fn the_per_ip_limit_counts_open_connections() {
        let registry = Arc::new(Registry::default());
        let a = registry.admit(peer(1), 2).expect("first");
        let _b = registry.admit(peer(1), 2).expect("second");
        assert!(registry.admit(peer(1), 2).is_none(), "third from one IP");
        assert!(registry.admit(peer(2), 2).is_some(), "another IP");
        registry.release(&a.0);
        assert!(registry.admit(peer(1), 2).is_some(), "a slot came free");
        assert!(registry.admit(peer(3), 0).is_some(), "0 means no limit");
    }

    #[tokio::test]
    async fn a_killed_connection_fails_reads_and_writes_and_wakes_a_parked_reader() {
        let registry = Arc::new(Registry::default());
        let conn = registry.admit(peer(1), 0).expect("admitted");
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(ours, &conn, registry.clone(), Duration::from_secs(60));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            io.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        conn.kill();
        let read = reader.await.expect("task");
        assert_eq!(
            read.expect_err("killed").kind(),
            io::ErrorKind::ConnectionAborted
        );
        assert_eq!(registry.open(), 0, "dropping the IO releases it");
    }

    #[tokio::test]
    async fn all_closed_waits_for_the_last_connection() {
        let registry = Arc::new(Registry::default());
        let conn = registry.admit(peer(1), 0).expect("admitted");
        let (ours, _theirs) = tokio::io::duplex(64);
        let io = GuardedIo::new(ours, &conn, registry.clone(), Duration::from_secs(60));
        let waiter = tokio::spawn({
            let registry = registry.clone();
            async move { registry.all_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a connection is still open");
        drop(io);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken when the last connection goes")
            .expect("task");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_ends_the_connection_at_the_deadline() {
        let registry = Arc::new(Registry::default());
        let conn = registry.admit(peer(1), 0).expect("admitted");
        // The other side never reads: the 16-byte pipe fills and the write stays pending.
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut io = GuardedIo::new(ours, &conn, registry, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let err = io
            .write_all(&[0u8; 1024])
            .await
            .expect_err("the client never reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(conn.kill_reason(), Some(KillReason::WriteTimeout));
    }
}
