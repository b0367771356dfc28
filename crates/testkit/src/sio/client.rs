//! [`SioClient`]: a [`SioConn`] with a reader and a writer task, for tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::{Frame, SioConn, SioReader, SioWriter};
use super::{SioError, SioOptions};

/// How long a connection may take to open, and a call to be acknowledged.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Who waits for which acknowledgement.
type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// What the writer task sends.
enum Outgoing {
    /// A socket.io packet.
    Text(String),
    /// A binary attachment.
    Binary(Vec<u8>),
}

/// A connected socket.io client on the default namespace.
pub struct SioClient {
    out: mpsc::UnboundedSender<Outgoing>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    acks: Acks,
    next_ack: AtomicU64,
    closed: watch::Receiver<bool>,
    reading: Arc<AtomicBool>,
    local: SocketAddr,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for SioClient {
    /// Closes the connection: both halves of the WebSocket go with their tasks.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A socket.io packet of the default namespace after the connect.
enum Packet {
    Disconnect,
    Event(Vec<Value>),
    Ack(u64, Vec<Value>),
}

/// Parses a socket.io packet without its engine.io type (`2["ev",…]`, `31[…]`, `1`).
fn parse(text: &str) -> Option<Packet> {
    let mut chars = text.chars();
    let kind = chars.next()?;
    let mut rest = chars.as_str();
    if rest.starts_with('/') {
        rest = rest.split_once(',').map_or("", |(_, r)| r);
    }
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let id = rest[..digits].parse().ok();
    let args = || serde_json::from_str::<Vec<Value>>(&rest[digits..]).unwrap_or_default();
    match kind {
        '1' => Some(Packet::Disconnect),
        '2' => Some(Packet::Event(args())),
        '3' => Some(Packet::Ack(id?, args())),
        _ => None,
    }
}

/// What the reader task hands on.
struct Inbox {
    events: mpsc::UnboundedSender<(String, Value)>,
    acks: Acks,
    out: mpsc::UnboundedSender<Outgoing>,
    reading: Arc<AtomicBool>,
    ignore_disconnect: bool,
    closed: watch::Sender<bool>,
}

impl Inbox {
    /// Reads until the connection closes (or the server's disconnect, unless ignored), then
    /// marks it closed. Once told to stop reading it holds the stream and reads no more.
    async fn run(self, mut reader: SioReader) {
        while let Ok(frame) = reader.next_frame().await {
            if !self.reading.load(Ordering::Relaxed) {
                // The client stopped reading: the socket's receive window fills up, and the
                // server's writes to it stall. Hold the stream until dropped.
                let _hold = reader;
                std::future::pending::<()>().await;
                return;
            }
            let text = match frame {
                Frame::Ping => {
                    let _ = self.out.send(Outgoing::Text("3".into()));
                    continue;
                }
                Frame::Packet(text) => text,
            };
            match text.strip_prefix('4').and_then(parse) {
                Some(Packet::Event(mut args)) if !args.is_empty() => {
                    let name = args.remove(0).as_str().unwrap_or_default().to_string();
                    let data = args.into_iter().next().unwrap_or(Value::Null);
                    let _ = self.events.send((name, data));
                }
                Some(Packet::Ack(id, args)) => {
                    let waiter = self.acks.lock().expect("acks").remove(&id);
                    if let Some(tx) = waiter {
                        let _ = tx.send(args.into_iter().next().unwrap_or(Value::Null));
                    }
                }
                Some(Packet::Disconnect) if !self.ignore_disconnect => break,
                _ => {}
            }
        }
        let _ = self.closed.send(true);
    }
}

/// Sends what the client queues until the client goes or the connection fails.
async fn write(writer: SioWriter, mut queue: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = queue.recv().await {
        let sent = match out {
            Outgoing::Text(text) => writer.send(text).await,
            Outgoing::Binary(data) => writer.send_binary(data).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

impl SioClient {
    /// Connects to `addr` (`host:port`); `Err` carries the server's connect error.
    pub async fn connect(addr: &str, auth: Option<Value>) -> Result<Self, SioError> {
        Self::connect_with(
            addr,
            SioOptions {
                auth,
                ..SioOptions::default()
            },
        )
        .await
    }

    /// Connects to `addr` behaving as `options` say.
    pub async fn connect_with(addr: &str, options: SioOptions) -> Result<Self, SioError> {
        let conn = tokio::time::timeout(TIMEOUT, SioConn::open(addr, &options))
            .await
            .map_err(|_| SioError::Timeout(TIMEOUT))??;
        let local = conn.local_addr();
        let (writer, reader) = conn.split();
        let (out, queue) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        let (closed_tx, closed) = watch::channel(false);
        let reading = Arc::new(AtomicBool::new(true));
        let inbox = Inbox {
            events: events_tx,
            acks: acks.clone(),
            out: out.clone(),
            reading: reading.clone(),
            ignore_disconnect: options.ignore_disconnect,
            closed: closed_tx,
        };
        let writer = tokio::spawn(write(writer, queue));
        let reader = tokio::spawn(inbox.run(reader));
        Ok(Self {
            out,
            events,
            acks,
            next_ack: AtomicU64::new(1),
            closed,
            reading,
            local,
            tasks: vec![writer.abort_handle(), reader.abort_handle()],
        })
    }

    /// Emits `event` with `payload` without asking for an ack.
    pub fn emit(&self, event: &str, payload: &Value) {
        let packet = serde_json::json!([event, payload]);
        self.emit_raw(&format!("42{packet}"));
    }

    /// Emits raw socket.io packet text (for malformed input tests).
    pub fn emit_raw(&self, packet: &str) {
        let _ = self.out.send(Outgoing::Text(packet.to_string()));
    }

    /// Sends a binary WebSocket frame (a socket.io binary attachment).
    pub fn send_binary(&self, data: Vec<u8>) {
        let _ = self.out.send(Outgoing::Binary(data));
    }

    /// Stops reading from the socket for good (after the frame being read, if any): no more
    /// events, acks or pings are processed, and the receive window fills up.
    pub fn stop_reading(&self) {
        self.reading.store(false, Ordering::Relaxed);
    }

    /// Emits `event` and waits (5 s) for its acknowledgement.
    pub async fn call(&self, event: &str, payload: &Value) -> Result<Value, String> {
        self.call_within(event, payload, TIMEOUT).await
    }

    /// Emits `event` and waits up to `within` for its acknowledgement.
    pub async fn call_within(
        &self,
        event: &str,
        payload: &Value,
        within: Duration,
    ) -> Result<Value, String> {
        self.request(event, serde_json::json!([event, payload]), within)
            .await
    }

    /// Emits `event` with no payload at all and waits (5 s) for its acknowledgement.
    pub async fn call_without_payload(&self, event: &str) -> Result<Value, String> {
        self.request(event, serde_json::json!([event]), TIMEOUT)
            .await
    }

    /// Sends the event packet with arguments `args` asking for an ack, and waits for it; gives
    /// up at once when the connection is (or becomes) closed, as no ack can come then.
    async fn request(&self, event: &str, args: Value, within: Duration) -> Result<Value, String> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("acks").insert(id, tx);
        self.emit_raw(&format!("42{id}{args}"));
        let mut closed = self.closed.clone();
        let answer = tokio::time::timeout(within, async {
            tokio::select! {
                // An ack read before the connection closed wins over the close.
                biased;
                v = rx => v.ok(),
                _ = closed.wait_for(|c| *c) => None,
            }
        })
        .await;
        match answer {
            Ok(Some(v)) => Ok(v),
            Ok(None) => {
                self.acks.lock().expect("acks").remove(&id);
                Err(format!("no ack for {event}: the connection closed"))
            }
            Err(_) => Err(format!("no ack for {event} within {within:?}")),
        }
    }

    /// Joins group `gid` (the modern `join`) and checks that it succeeded.
    pub async fn join(&self, gid: u64) {
        let reply = self
            .call("join", &serde_json::json!({"groups": [gid]}))
            .await
            .expect("join ack");
        assert_eq!(reply["success"], true, "join {gid}: {reply}");
    }

    /// Every event from now on, `(name, payload)` in arrival order, for a task of its own; the
    /// client's own [`Self::next_event`] sees none after this.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<(String, Value)> {
        let (_, closed) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.events, closed)
    }

    /// The next event named `name` within `within` (other events are dropped).
    pub async fn next_event(&mut self, name: &str, within: Duration) -> Option<Value> {
        self.next_of(&[name], within).await.map(|(_, data)| data)
    }

    /// The next event named one of `names` within `within`, with its name (other events are
    /// dropped): for a test of the order of different events.
    pub async fn next_of(&mut self, names: &[&str], within: Duration) -> Option<(String, Value)> {
        next_named(&mut self.events, names, within).await
    }

    /// Whether the server closes the connection within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut closed = self.closed.clone();
        let result = tokio::time::timeout(within, closed.wait_for(|c| *c)).await;
        result.is_ok()
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        !*self.closed.borrow()
    }

    /// Whether the kernel still sees this client's TCP connection as established; false once
    /// the server closed or reset it. Works while the client does not read (when
    /// [`Self::closed_within`] cannot see anything).
    pub fn tcp_established(&self) -> bool {
        tcp_established(self.local)
    }
}

/// Whether the IPv4 TCP connection from `local` is in state ESTABLISHED (`/proc/net/tcp`).
pub fn tcp_established(local: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = local else {
        return false;
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (_, local, _, state) = (fields.next(), fields.next(), fields.next(), fields.next());
        local == Some(want.as_str()) && state == Some("01")
    })
}

/// The next event named one of `names` within `within` from `events` (what
/// [`SioClient::take_events`] gave), with its name; other events are dropped.
pub async fn next_named(
    events: &mut mpsc::UnboundedReceiver<(String, Value)>,
    names: &[&str],
    within: Duration,
) -> Option<(String, Value)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (event, data) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .ok()??;
        if names.contains(&event.as_str()) {
            return Some((event, data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_read_with_their_ack_ids() {
        assert!(matches!(
            parse(r#"2["msg",{"a":1}]"#),
            Some(Packet::Event(args)) if args.len() == 2
        ));
        assert!(matches!(
            parse(r#"312[{"success":true}]"#),
            Some(Packet::Ack(12, args)) if args[0]["success"] == true
        ));
        assert!(matches!(parse("1"), Some(Packet::Disconnect)));
        assert!(parse("0").is_none());
    }
}
