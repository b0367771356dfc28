//! A WebSocket client written at the byte level, so a case can do what no client library
//! lets it: send half a frame, announce a binary attachment, stop reading, read the exact
//! close code. Frames are masked as a browser masks them; the upgrade is a plain HTTP/1.1
//! request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the server sent next, as this client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary,
    /// A ping (answered by the caller if it likes).
    Ping,
    /// A close frame with its code.
    Close(Option<u16>),
    /// The TCP connection ended (or was reset) without a close frame.
    Eof,
    /// Nothing within the wait.
    Quiet,
}

/// One raw WebSocket connection.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A client frame of `opcode`: masked, final or not.
pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// The status line and headers of an HTTP answer, and whatever came after them.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            return (head, buf[end + 4..].to_vec());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .expect("the upgrade is answered");
        assert!(n > 0, "the server closed before answering the upgrade");
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl Raw {
    /// Upgrades `GET /socket.io/?{query}` on `addr`: the status line and headers of the
    /// answer, and the connection when it is `101`.
    pub async fn upgrade(addr: &str, query: &str) -> (String, Option<Raw>) {
        let mut stream = TcpStream::connect(addr).await.expect("TCP connects");
        stream.set_nodelay(true).expect("no Nagle");
        let request = format!(
            "GET /socket.io/?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("the upgrade is sent");
        let (head, rest) = read_head(&mut stream).await;
        let upgraded = head.starts_with("HTTP/1.1 101");
        (head, upgraded.then_some(Raw { stream, buf: rest }))
    }

    /// An engine.io session of protocol `eio` over WebSocket, past its open packet (returned).
    pub async fn open(addr: &str, eio: u8) -> (Raw, String) {
        let (head, raw) = Self::upgrade(addr, &format!("EIO={eio}&transport=websocket")).await;
        let mut raw = raw.unwrap_or_else(|| panic!("not upgraded: {head}"));
        match raw.next(Duration::from_secs(5)).await {
            Next::Text(open) if open.starts_with('0') => (raw, open),
            other => panic!("expected the open packet, got {other:?}"),
        }
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The server may have closed already: a failed write shows in what is read next.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.send_raw(&frame(0x1, true, text.as_bytes())).await;
    }

    /// The next message or close, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(next) = self.parse() {
                return next;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Next::Quiet,
                Ok(Ok(0)) | Ok(Err(_)) => return Next::Eof,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next text message, skipping pings; `Err` with what came instead.
    pub async fn next_text(&mut self, within: Duration) -> Result<String, Next> {
        loop {
            match self.next(within).await {
                Next::Text(text) => return Ok(text),
                Next::Ping => {}
                other => return Err(other),
            }
        }
    }

    /// The next text that is not an engine.io 4 ping, answering the pings on the way; `Err`
    /// with what came instead.
    pub async fn packet(&mut self, within: Duration) -> Result<String, Next> {
        loop {
            let text = self.next_text(within).await?;
            if text == "2" {
                self.send_text("3").await;
                continue;
            }
            return Ok(text);
        }
    }

    /// How the connection ends within `within`, reading (and dropping) whatever comes first:
    /// `Close(code)` or `Eof`; `Quiet` when it is still open.
    pub async fn end(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Text(_) | Next::Binary | Next::Ping => {}
                end => return end,
            }
        }
    }

    /// One whole server frame out of the buffer, if there is one.
    fn parse(&mut self) -> Option<Next> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (usize::try_from(u64::from_be_bytes(n)).ok()?, 10)
            }
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < at + len {
            return None;
        }
        let payload: Vec<u8> = b[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Some(match opcode {
            0x1 => Next::Text(String::from_utf8_lossy(&payload).to_string()),
            0x2 => Next::Binary,
            0x8 => Next::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            ),
            0x9 => Next::Ping,
            _ => return self.parse(),
        })
    }
}
