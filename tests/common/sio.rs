//! A small socket.io client (protocol v5 over WebSocket, engine.io v4) for Rust tests: connect
//! with an optional handshake `auth`, emit with acknowledgements, receive events, see the
//! server close the connection. [`SioOptions`] make it misbehave the way hostile clients and
//! bad networks do: stop reading, keep a tiny receive window, ignore the server's disconnect,
//! connect from another loopback address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// How a test client behaves beyond the protocol.
#[derive(Clone, Debug, Default)]
pub struct SioOptions {
    /// The handshake `auth` payload.
    pub auth: Option<Value>,
    /// `SO_RCVBUF` of the client's socket, so a client that stops reading fills up fast.
    pub recv_buffer: Option<u32>,
    /// Keep the connection open after the server's disconnect packet (a hostile client);
    /// [`SioClient::closed_within`] then only sees the server cut the TCP connection.
    pub ignore_disconnect: bool,
    /// The local address to connect from (a loopback address other than 127.0.0.1 is another
    /// client IP).
    pub local_ip: Option<IpAddr>,
}

/// A connected socket.io client on the default namespace.
pub struct SioClient {
    out: mpsc::UnboundedSender<Message>,
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

/// One socket.io packet of the default namespace.
enum Packet {
    Connect,
    Disconnect,
    Event(Option<u64>, Vec<Value>),
    Ack(u64, Vec<Value>),
    ConnectError(Value),
}

fn parse(text: &str) -> Option<Packet> {
    let mut chars = text.chars();
    let kind = chars.next()?;
    let mut rest = chars.as_str();
    if rest.starts_with('/') {
        rest = rest.split_once(',').map_or("", |(_, r)| r);
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let id = digits.parse().ok();
    let json = &rest[digits.len()..];
    let args = || serde_json::from_str::<Vec<Value>>(json).unwrap_or_default();
    match kind {
        '0' => Some(Packet::Connect),
        '1' => Some(Packet::Disconnect),
        '2' => Some(Packet::Event(id, args())),
        '3' => Some(Packet::Ack(id?, args())),
        '4' => Some(Packet::ConnectError(
            serde_json::from_str(json).unwrap_or(Value::Null),
        )),
        _ => None,
    }
}

impl SioClient {
    /// Connects to `addr` (`host:port`); `Err` carries the server's connect error.
    pub async fn connect(addr: &str, auth: Option<Value>) -> Result<Self, String> {
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
    pub async fn connect_with(addr: &str, options: SioOptions) -> Result<Self, String> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let target: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let socket = match target {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(|e| e.to_string())?;
        if let Some(size) = options.recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .map_err(|e| e.to_string())?;
        }
        if let Some(ip) = options.local_ip {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| e.to_string())?;
        }
        let tcp = socket.connect(target).await.map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async(url, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let auth = options.auth;
        let ignore_disconnect = options.ignore_disconnect;
        let reading = Arc::new(AtomicBool::new(true));
        let reader_reading = reading.clone();
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
        });
        let connect = match auth {
            Some(a) => format!("40{a}"),
            None => "40".to_string(),
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        let (closed_tx, closed) = watch::channel(false);
        let (connected_tx, connected_rx) = oneshot::channel::<Result<(), String>>();
        let (reader_out, reader_acks) = (out.clone(), acks.clone());
        let reader = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            while let Some(Ok(msg)) = stream.next().await {
                if !reader_reading.load(Ordering::Relaxed) {
                    // The client stopped reading: the socket's receive window fills up, and
                    // the server's writes to it stall. Hold the stream until dropped.
                    let _hold = stream;
                    std::future::pending::<()>().await;
                    return;
                }
                let Message::Text(text) = msg else {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                    continue;
                };
                let text = text.as_str();
                match text.chars().next() {
                    Some('0') => {
                        let _ = reader_out.send(Message::text(connect.clone()));
                    }
                    Some('2') => {
                        let _ = reader_out.send(Message::text("3"));
                    }
                    Some('4') => match parse(&text[1..]) {
                        Some(Packet::Connect) => {
                            if let Some(tx) = connected.take() {
                                let _ = tx.send(Ok(()));
                            }
                        }
                        Some(Packet::ConnectError(e)) => {
                            if let Some(tx) = connected.take() {
                                let _ = tx.send(Err(e
                                    .get("message")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string()));
                            }
                        }
                        Some(Packet::Event(_, mut args)) if !args.is_empty() => {
                            let name = args.remove(0).as_str().unwrap_or_default().to_string();
                            let data = args.into_iter().next().unwrap_or(Value::Null);
                            let _ = events_tx.send((name, data));
                        }
                        Some(Packet::Ack(id, args)) => {
                            let waiter = reader_acks.lock().expect("acks").remove(&id);
                            if let Some(tx) = waiter {
                                let _ = tx.send(args.into_iter().next().unwrap_or(Value::Null));
                            }
                        }
                        Some(Packet::Disconnect) if !ignore_disconnect => break,
                        _ => {}
                    },
                    _ => {}
                }
            }
            let _ = closed_tx.send(true);
        });
        match tokio::time::timeout(Duration::from_secs(5), connected_rx).await {
            Ok(Ok(Ok(()))) => Ok(Self {
                out,
                events,
                acks,
                next_ack: AtomicU64::new(1),
                closed,
                reading,
                local,
                tasks: vec![writer.abort_handle(), reader.abort_handle()],
            }),
            Ok(Ok(Err(e))) => {
                writer.abort();
                reader.abort();
                Err(e)
            }
            Ok(Err(_)) => Err("connection closed before connect".into()),
            Err(_) => Err("no connect within 5 s".into()),
        }
    }

    /// Emits `event` with `payload` without asking for an ack.
    pub fn emit(&self, event: &str, payload: &Value) {
        let packet = serde_json::json!([event, payload]);
        let _ = self.out.send(Message::text(format!("42{packet}")));
    }

    /// Emits raw socket.io packet text (for malformed input tests).
    pub fn emit_raw(&self, packet: &str) {
        let _ = self.out.send(Message::text(packet.to_string()));
    }

    /// Sends a binary WebSocket frame (a socket.io binary attachment).
    pub fn send_binary(&self, data: Vec<u8>) {
        let _ = self.out.send(Message::binary(data));
    }

    /// Stops reading from the socket for good (after the message being read, if any): no
    /// more events, acks or pings are processed, and the receive window fills up.
    pub fn stop_reading(&self) {
        self.reading.store(false, Ordering::Relaxed);
    }

    /// Emits `event` and waits (5 s) for its acknowledgement.
    pub async fn call(&self, event: &str, payload: &Value) -> Result<Value, String> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("acks").insert(id, tx);
        let packet = serde_json::json!([event, payload]);
        let _ = self.out.send(Message::text(format!("42{id}{packet}")));
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(v)) => Ok(v),
            _ => Err(format!("no ack for {event} within 5 s")),
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

    /// Emits `event` with no payload at all and waits (5 s) for its acknowledgement.
    pub async fn call_without_payload(&self, event: &str) -> Result<Value, String> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("acks").insert(id, tx);
        let packet = serde_json::json!([event]);
        let _ = self.out.send(Message::text(format!("42{id}{packet}")));
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(v)) => Ok(v),
            _ => Err(format!("no ack for {event} within 5 s")),
        }
    }

    /// The next event named `name` within `within` (other events are dropped).
    pub async fn next_event(&mut self, name: &str, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (event, data) = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            if event == name {
                return Some(data);
            }
        }
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
