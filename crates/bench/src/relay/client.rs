//! The benchmark's side of each connection, kept lean so it is not the bottleneck: one task
//! per receiving connection that only answers pings and reads the send timestamp out of `msg`
//! events, and per sending connection a task that reads acknowledgements plus the open-loop
//! send loop, which writes every message that is due in one flush. The connections are the
//! test kit's [`SioConn`]s.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gru_testkit::sio::{SioConn, SioOptions, SioWriter};
use serde_json::Value;

use super::stats::Counters;

/// How long one connection may take to open, authenticate and join.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens a socket.io connection to `addr` with handshake auth `auth` and, with `group`, joins
/// it.
pub(super) async fn open(addr: &str, auth: Value, group: Option<u64>) -> Result<SioConn> {
    let options = SioOptions {
        auth: Some(auth),
        ..SioOptions::default()
    };
    let open = async {
        let mut conn = SioConn::open(addr, &options).await?;
        if let Some(gid) = group {
            conn.join(gid).await?;
        }
        anyhow::Ok(conn)
    };
    tokio::time::timeout(OPEN_TIMEOUT, open)
        .await
        .with_context(|| format!("opening a connection to {addr} took over {OPEN_TIMEOUT:?}"))?
}

/// The send timestamp in a `msg` event (`42["msg",{…,"content":"<ns>",…}]`), found without
/// parsing the whole JSON.
pub(crate) fn sent_ns(packet: &str) -> Option<u64> {
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

/// Reads `conn` until it closes: answers pings, records every `msg` delivery.
pub(super) fn spawn_receiver(
    mut conn: SioConn,
    counters: Arc<Counters>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(text) = conn.next_text().await {
            if let Some(ns) = sent_ns(&text) {
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
    writer: SioWriter,
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
    pub(super) fn new(conn: SioConn, counters: Arc<Counters>) -> Self {
        let (writer, mut reader) = conn.split();
        let reader = tokio::spawn(async move {
            while let Ok(text) = reader.next_text().await {
                if text.starts_with("43") {
                    if text.contains(r#""success":true"#) {
                        counters.acked.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.ack_error(&text);
                    }
                }
            }
        });
        Self {
            writer,
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
                let next_ack = &mut self.next_ack;
                let packets = (n..due).map(|_| {
                    let packet = format!(
                        r#"42{next_ack}["msg",{{"type":{kind},"target":{{"id":{target}}},"content":"{}"}}]"#,
                        counters.now_ns()
                    );
                    *next_ack += 1;
                    packet
                });
                self.writer
                    .send_all(packets)
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
