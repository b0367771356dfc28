//! [`SioConn`]: one socket.io connection without tasks, and its halves.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::{SioError, SioOptions};

/// The WebSocket under a connection.
type Ws = WebSocketStream<TcpStream>;
/// The writing half, shared by a writer and its reader (which answers pings).
type Sink = Arc<Mutex<SplitSink<Ws, Message>>>;

/// The WebSocket read buffer: 8 KiB instead of tungstenite's eagerly allocated 128 KiB, or
/// 10,000 connections of one benchmark would hold 1.3 GB.
const READ_BUFFER: usize = 8 * 1024;

/// The text of one socket.io packet as received (no copy).
#[derive(Clone, Debug)]
pub struct PacketText(Utf8Bytes);

impl std::ops::Deref for PacketText {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Display for PacketText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// What the server sent.
#[derive(Debug)]
pub enum Frame {
    /// An engine.io ping, to be answered with a pong ([`SioReader::pong`]) or the server
    /// closes the connection.
    Ping,
    /// A socket.io packet (`40…`, `42…`, `43…`, …).
    Packet(PacketText),
}

/// The reading half of a connection. It answers pings through the writing half it shares.
pub struct SioReader {
    stream: SplitStream<Ws>,
    sink: Sink,
}

impl SioReader {
    /// The next frame, pings included (not answered); binary and WebSocket control frames
    /// are skipped. `Err(SioError::Closed)` once the server closed the connection.
    pub async fn next_frame(&mut self) -> Result<Frame, SioError> {
        loop {
            match self.stream.next().await {
                None | Some(Ok(Message::Close(_))) => return Err(SioError::Closed),
                Some(Err(e)) => return Err(SioError::websocket(e)),
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => return Ok(Frame::Ping),
                Some(Ok(Message::Text(text))) => return Ok(Frame::Packet(PacketText(text))),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next packet that is not a ping; pings are answered (gru's spear pings right after
    /// the handshake, and a ping left unanswered closes the connection 20 s later).
    pub async fn next_text(&mut self) -> Result<PacketText, SioError> {
        loop {
            match self.next_frame().await? {
                Frame::Ping => self.pong().await?,
                Frame::Packet(text) => return Ok(text),
            }
        }
    }

    /// Answers a ping.
    pub async fn pong(&self) -> Result<(), SioError> {
        let mut sink = self.sink.lock().await;
        sink.send(Message::text("3"))
            .await
            .map_err(SioError::websocket)
    }
}

/// The writing half of a connection.
pub struct SioWriter {
    sink: Sink,
}

impl SioWriter {
    /// Sends one packet (raw socket.io packet text, e.g. `42["msg",{…}]`).
    pub async fn send(&self, packet: String) -> Result<(), SioError> {
        self.send_message(Message::text(packet)).await
    }

    /// Sends `packets` in one write: each is queued, then all are flushed together.
    pub async fn send_all(
        &self,
        packets: impl IntoIterator<Item = String>,
    ) -> Result<(), SioError> {
        let mut sink = self.sink.lock().await;
        for packet in packets {
            sink.feed(Message::text(packet))
                .await
                .map_err(SioError::websocket)?;
        }
        sink.flush().await.map_err(SioError::websocket)
    }

    /// Sends a binary WebSocket frame (a socket.io binary attachment).
    pub async fn send_binary(&self, data: Vec<u8>) -> Result<(), SioError> {
        self.send_message(Message::binary(data)).await
    }

    /// Closes the WebSocket.
    pub async fn close(&self) -> Result<(), SioError> {
        self.sink
            .lock()
            .await
            .close()
            .await
            .map_err(SioError::websocket)
    }

    async fn send_message(&self, message: Message) -> Result<(), SioError> {
        let mut sink = self.sink.lock().await;
        sink.send(message).await.map_err(SioError::websocket)
    }
}

/// One socket.io connection on the default namespace, without tasks.
pub struct SioConn {
    reader: SioReader,
    writer: SioWriter,
    /// The client's end of the TCP connection.
    local: SocketAddr,
    /// The acknowledgement id of the next `join`.
    next_ack: u64,
}

impl SioConn {
    /// Opens engine.io only: TCP (with `options`' receive buffer and local address, no
    /// Nagle, so the client adds no delay to the server), the WebSocket and the engine.io
    /// open packet. The namespace is not connected: a client that never connects it.
    pub async fn engine(addr: &str, options: &SioOptions) -> Result<Self, SioError> {
        let connect_err = |source| SioError::Connect {
            addr: addr.to_string(),
            source,
        };
        let target = tokio::net::lookup_host(addr)
            .await
            .and_then(|mut found| {
                found
                    .next()
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
            })
            .map_err(|source| SioError::Resolve {
                addr: addr.to_string(),
                source,
            })?;
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(connect_err)?;
        if let Some(size) = options.recv_buffer {
            socket.set_recv_buffer_size(size).map_err(connect_err)?;
        }
        if let Some(ip) = options.local_ip {
            socket.bind(SocketAddr::new(ip, 0)).map_err(connect_err)?;
        }
        let tcp = socket.connect(target).await.map_err(connect_err)?;
        tcp.set_nodelay(true).map_err(connect_err)?;
        let local = tcp.local_addr().map_err(connect_err)?;
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| SioError::Handshake {
                addr: addr.to_string(),
                source: Box::new(e),
            })?;
        let (sink, stream) = ws.split();
        let sink = Arc::new(Mutex::new(sink));
        let mut conn = Self {
            reader: SioReader {
                stream,
                sink: sink.clone(),
            },
            writer: SioWriter { sink },
            local,
            next_ack: 1,
        };
        let open = conn.next_text().await?;
        if !open.starts_with('0') {
            return Err(SioError::NotEngineIo(open.to_string()));
        }
        Ok(conn)
    }

    /// Opens a connection and connects the default namespace with `options.auth` as the
    /// handshake payload; fails with the server's message when it refuses.
    pub async fn open(addr: &str, options: &SioOptions) -> Result<Self, SioError> {
        let mut conn = Self::engine(addr, options).await?;
        let connect = match &options.auth {
            Some(auth) => format!("40{auth}"),
            None => "40".to_string(),
        };
        conn.send(connect).await?;
        loop {
            let reply = conn.next_text().await?;
            if reply.starts_with("40") {
                return Ok(conn);
            }
            if let Some(error) = reply.strip_prefix("44") {
                let message = serde_json::from_str::<Value>(error)
                    .ok()
                    .and_then(|e| e.get("message")?.as_str().map(str::to_string))
                    .unwrap_or_else(|| error.to_string());
                return Err(SioError::Refused(message));
            }
        }
    }

    /// Joins group `gid` (gru's modern `join`) and waits for a successful acknowledgement.
    pub async fn join(&mut self, gid: u64) -> Result<(), SioError> {
        let ack = self.next_ack;
        self.next_ack += 1;
        self.send(format!(r#"42{ack}["join",{{"groups":[{gid}]}}]"#))
            .await?;
        let expected = format!("43{ack}");
        loop {
            let reply = self.next_text().await?;
            // `431[…]`, not `4310[…]`.
            if reply
                .strip_prefix(&expected)
                .is_some_and(|rest| rest.starts_with('['))
            {
                if reply.contains(r#""success":true"#) {
                    return Ok(());
                }
                return Err(SioError::JoinRefused {
                    group: gid,
                    reply: reply.to_string(),
                });
            }
        }
    }

    /// The next frame, pings included ([`SioReader::next_frame`]).
    pub async fn next_frame(&mut self) -> Result<Frame, SioError> {
        self.reader.next_frame().await
    }

    /// The next packet that is not a ping; pings are answered ([`SioReader::next_text`]).
    pub async fn next_text(&mut self) -> Result<PacketText, SioError> {
        self.reader.next_text().await
    }

    /// Sends one packet ([`SioWriter::send`]).
    pub async fn send(&self, packet: String) -> Result<(), SioError> {
        self.writer.send(packet).await
    }

    /// Closes the WebSocket.
    pub async fn close(&self) -> Result<(), SioError> {
        self.writer.close().await
    }

    /// The client's end of the TCP connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The two halves, for a reading and a writing task. Packets the writer sends carry ack
    /// ids of the caller's choosing.
    pub fn split(self) -> (SioWriter, SioReader) {
        (self.writer, self.reader)
    }
}
