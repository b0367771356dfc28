//! The benchmark's socket.io v5 client, kept lean so it is not the bottleneck: one task per
//! receiving connection that only answers pings and reads the send timestamp out of `msg`
//! events, and per sending connection a task that reads acknowledgements plus the open-loop
//! send loop, which writes every message that is due in one flush.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::stats::Counters;

/// One client WebSocket.
pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The writing half of a sender's WebSocket, shared by its send loop and its reader (pongs).
type Sink = Arc<Mutex<SplitSink<Ws, Message>>>;

/// How long one connection may take to open, authenticate and join.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// The next text packet that is not an engine.io ping; pings are answered (gru's spear pings
/// right after the handshake, and a ping left unanswered closes the connection 20 s later);
/// binary and control frames are skipped.
async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Text(t) if t.as_str() == "2" => ws.send(Message::text("3")).await?,
            Message::Text(t) => return Ok(t.as_str().to_string()),
            Message::Close(_) => bail!("connection closed by the server"),
            _ => {}
        }
    }
}

/// Opens a socket.io connection to `addr` with handshake auth `auth` (a JSON object) and,
/// with `group`, joins it and waits for the acknowledgement.
pub(super) async fn open(addr: &str, auth: &str, group: Option<u64>) -> Result<Ws> {
    tokio::time::timeout(OPEN_TIMEOUT, open_inner(addr, auth, group))
        .await
        .with_context(|| format!("opening a connection to {addr} took over {OPEN_TIMEOUT:?}"))?
}

/// [`open`] without its time limit.
async fn open_inner(addr: &str, auth: &str, group: Option<u64>) -> Result<Ws> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    // 8 KiB instead of the eagerly allocated 128 KiB read buffer: 10,000 fan-out members would
    // hold 1.3 GB otherwise. No Nagle: the client must not add delay to either server.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let first = next_text(&mut ws).await?;
    if !first.starts_with('0') {
        bail!("expected the engine.io open packet, got {first:?}");
    }
    ws.send(Message::text(format!("40{auth}"))).await?;
    loop {
        let reply = next_text(&mut ws).await?;
        if reply.starts_with("40") {
            break;
        }
        if reply.starts_with("44") {
            bail!("connect refused: {reply}");
        }
    }
    if let Some(gid) = group {
        ws.send(Message::text(format!(
            r#"421["join",{{"groups":[{gid}]}}]"#
        )))
        .await?;
        loop {
            let reply = next_text(&mut ws).await?;
            if reply.starts_with("431") {
                if !reply.contains(r#""success":true"#) {
                    bail!("join refused: {reply}");
                }
                break;
            }
        }
    }
    Ok(ws)
}

/// The send timestamp in a `msg` event (`42["msg",{…,"content":"<ns>",…}]`), found without
/// parsing the whole JSON.
fn sent_ns(packet: &str) -> Option<u64> {
    if !packet.starts_with(r#"42["msg","#) {
        return None;
    }
    /// What precedes the timestamp.
    const KEY: &str = r#""content":""#;
    let at = packet.find(KEY)? + KEY.len();
    let digits = &packet[at..];
    let end = digits.find('"')?;
    digits[..end].parse().ok()
}

/// Reads `ws` until it closes: answers pings, records every `msg` delivery.
pub(super) fn spawn_receiver(mut ws: Ws, counters: Arc<Counters>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let text = text.as_str();
            if text == "2" {
                if ws.send(Message::text("3")).await.is_err() {
                    return;
                }
            } else if let Some(ns) = sent_ns(text) {
                counters.delivery(ns);
            }
        }
    })
}

/// What a sender sends: unicast to a user or broadcast to a group.
#[derive(Debug, Clone, Copy)]
pub(super) enum To {
    /// `type: 0` to a user id.
    User(u64),
    /// `type: 1` to a group id.
    Group(u64),
}

/// A sending connection: its reader task counts acknowledgements.
pub(super) struct Sender {
    /// The writing half.
    sink: Sink,
    /// The ack id of the next message.
    next_ack: u64,
    /// Reads acknowledgements and answers pings.
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Sender {
    /// Stops the reader; the connection closes with its last half.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Sender {
    /// Takes over an open connection.
    pub(super) fn new(ws: Ws, counters: Arc<Counters>) -> Self {
        let (sink, mut stream) = ws.split();
        let sink: Sink = Arc::new(Mutex::new(sink));
        let pong = sink.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let text = text.as_str();
                if text == "2" {
                    if pong.lock().await.send(Message::text("3")).await.is_err() {
                        return;
                    }
                } else if text.starts_with("43") {
                    if text.contains(r#""success":true"#) {
                        counters.acked.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.ack_error(text);
                    }
                }
            }
        });
        Self {
            sink,
            next_ack: 1,
            reader,
        }
    }

    /// Sends `total` messages to `to` at `rate` per second from `start` on (open loop: the
    /// acknowledgements are counted by the reader, never waited for). Each message's content
    /// is its send time in ns since the counters' epoch.
    pub(super) async fn run(
        &mut self,
        to: To,
        rate: f64,
        total: u64,
        start: Instant,
        counters: &Counters,
    ) -> Result<()> {
        let (kind, target) = match to {
            To::User(uid) => (0, uid),
            To::Group(gid) => (1, gid),
        };
        tokio::time::sleep_until(start.into()).await;
        let mut n = 0u64;
        while n < total {
            // Everything due by now goes out in one write, so a late wake-up does not lower
            // the offered rate.
            let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
            if due > n {
                let mut sink = self.sink.lock().await;
                for _ in n..due {
                    let packet = format!(
                        r#"42{}["msg",{{"type":{kind},"target":{{"id":{target}}},"content":"{}"}}]"#,
                        self.next_ack,
                        counters.now_ns()
                    );
                    self.next_ack += 1;
                    sink.feed(Message::text(packet))
                        .await
                        .context("the sender's connection closed")?;
                }
                sink.flush()
                    .await
                    .context("the sender's connection closed")?;
                counters.sent.fetch_add(due - n, Ordering::Relaxed);
                n = due;
            }
            if n < total {
                let next = start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(next.into()).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::sent_ns;

    #[test]
    fn the_timestamp_is_read_from_msg_events_only() {
        let gru = r#"42["msg",{"id":245444700438528,"createTime":1764071173123,"fromId":100001,"msgType":0,"target":{"id":"200001","type":-1},"content":"123456789","expireTime":0}]"#;
        assert_eq!(sent_ns(gru), Some(123_456_789));
        assert_eq!(sent_ns(r#"42["msg_result",{"content":"1"}]"#), None);
        assert_eq!(sent_ns(r#"42["msg",{"content":"x"}]"#), None);
    }
}
