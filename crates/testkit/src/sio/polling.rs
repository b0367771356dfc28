//! [`Polling`]: an engine.io long-polling session over plain HTTP, the way a default
//! socket.io client (`io(url)`) opens every session before it upgrades, or keeps it when
//! WebSocket is blocked: engine.io v4 (socket.io-client 3/4) or v3 (socket.io-client 2), with
//! the socket.io packets on top as text. Every request is its own HTTP request, as a browser's
//! would be; a test can present any session id from any loopback address.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

/// The engine.io protocol a session speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eio {
    /// engine.io v4 (socket.io-client 3 and 4): packets separated by `\x1e`, server pings.
    V4,
    /// engine.io v3 (socket.io-client 2): packets framed as `<length>:<packet>`, client
    /// pings, and the default namespace connected without asking.
    V3,
}

impl Eio {
    fn query(self) -> &'static str {
        match self {
            Eio::V4 => "EIO=4",
            Eio::V3 => "EIO=3",
        }
    }

    /// One payload of `packets`.
    pub fn encode(self, packets: &[&str]) -> String {
        match self {
            Eio::V4 => packets.join("\u{1e}"),
            Eio::V3 => packets
                .iter()
                .map(|p| format!("{}:{p}", p.chars().count()))
                .collect(),
        }
    }

    /// The packets of one payload.
    pub fn decode(self, payload: &str) -> Vec<String> {
        match self {
            Eio::V4 if payload.is_empty() => Vec::new(),
            Eio::V4 => payload.split('\u{1e}').map(str::to_string).collect(),
            Eio::V3 => {
                let mut packets = Vec::new();
                let mut rest = payload;
                while let Some((len, tail)) = rest.split_once(':') {
                    let Ok(len) = len.parse::<usize>() else {
                        break;
                    };
                    let end = tail.char_indices().nth(len).map_or(tail.len(), |(i, _)| i);
                    packets.push(tail[..end].to_string());
                    rest = &tail[end..];
                }
                packets
            }
        }
    }
}

/// One long-polling session (or a stranger presenting its id).
pub struct Polling {
    http: reqwest::Client,
    url: String,
    eio: Eio,
    sid: String,
    /// socket.io packets read but not taken yet (without their engine.io `4`).
    inbox: Vec<String>,
    next_ack: u64,
}

/// What an HTTP request of the session got: its status and body.
pub type Answer = (u16, String);

fn client(local_ip: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local_ip)
        // A long-poll waits for the server's ping interval at most; tests stay far below.
        .timeout(Duration::from_secs(40))
        .build()
        .expect("an HTTP client")
}

impl Polling {
    /// Opens a session at `addr` (`host:port`) from `local_ip` (127.0.0.1 if `None`); returns
    /// it with the open packet's JSON.
    pub async fn open(
        addr: &str,
        eio: Eio,
        local_ip: Option<IpAddr>,
    ) -> Result<(Self, Value), String> {
        let http = client(local_ip);
        let base = format!("http://{addr}/socket.io/?{}&transport=polling", eio.query());
        let resp = http
            .get(&base)
            .send()
            .await
            .map_err(|e| format!("open: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| format!("open body: {e}"))?;
        if status != 200 {
            return Err(format!("open: {status} {body}"));
        }
        let packets = eio.decode(&body);
        let open = packets
            .first()
            .and_then(|p| p.strip_prefix('0'))
            .ok_or_else(|| format!("no open packet in {body:?}"))?;
        let open: Value = serde_json::from_str(open).map_err(|e| format!("open packet: {e}"))?;
        let sid = open["sid"].as_str().ok_or("no sid")?.to_string();
        let mut session = Self {
            http,
            url: format!("{base}&sid={sid}"),
            eio,
            sid,
            inbox: Vec::new(),
            next_ack: 1,
        };
        session.keep(&packets[1..]);
        Ok((session, open))
    }

    /// Someone presenting session id `sid` at `addr`, from `local_ip`.
    pub fn with_sid(addr: &str, eio: Eio, sid: &str, local_ip: Option<IpAddr>) -> Self {
        Self {
            http: client(local_ip),
            url: format!(
                "http://{addr}/socket.io/?{}&transport=polling&sid={sid}",
                eio.query()
            ),
            eio,
            sid: sid.to_string(),
            inbox: Vec::new(),
            next_ack: 1,
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// POSTs `body` as it is.
    pub async fn post_raw(&self, body: Vec<u8>) -> Result<Answer, String> {
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("post: {e}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    /// POSTs engine.io `packets` in one payload.
    pub async fn post(&self, packets: &[&str]) -> Result<Answer, String> {
        self.post_raw(self.eio.encode(packets).into_bytes()).await
    }

    /// One long-poll: its status and body.
    pub async fn get(&self) -> Result<Answer, String> {
        let resp = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("poll: {e}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    /// Keeps the socket.io packets of `packets` and answers an engine.io v4 ping.
    fn keep(&mut self, packets: &[String]) -> bool {
        let mut pinged = false;
        for p in packets {
            match p.strip_prefix('4') {
                Some(sio) => self.inbox.push(sio.to_string()),
                None => pinged |= p == "2",
            }
        }
        pinged
    }

    /// Polls until a socket.io packet satisfies `want` (then removes and returns it; others
    /// stay in the inbox), within `within`.
    pub async fn until(
        &mut self,
        within: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(i) = self.inbox.iter().position(|p| want(p)) {
                return Ok(self.inbox.remove(i));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(format!("not within {within:?}; inbox {:?}", self.inbox));
            }
            let (status, body) = tokio::time::timeout(left, self.get())
                .await
                .map_err(|_| format!("not within {within:?}; inbox {:?}", self.inbox))??;
            if status != 200 {
                return Err(format!("poll: {status} {body}"));
            }
            let packets = self.eio.decode(&body);
            if self.keep(&packets) && self.eio == Eio::V4 {
                self.post(&["3"]).await?;
            }
        }
    }

    /// Connects the default namespace (engine.io v3 connects it without asking), with a
    /// handshake `auth` payload if given (v4 only); returns the server's connect packet.
    pub async fn connect(&mut self, auth: Option<&Value>) -> Result<String, String> {
        if self.eio == Eio::V4 {
            let packet = match auth {
                Some(auth) => format!("40{auth}"),
                None => "40".to_string(),
            };
            let (status, body) = self.post(&[&packet]).await?;
            if status != 200 {
                return Err(format!("connect: {status} {body}"));
            }
        }
        self.until(Duration::from_secs(10), |p| {
            p.starts_with('0') || p.starts_with('4')
        })
        .await
    }

    /// Emits `event` with `payload` asking for an ack, and polls (10 s at most) until the ack
    /// comes; returns its first argument.
    pub async fn call(&mut self, event: &str, payload: &Value) -> Result<Value, String> {
        let id = self.next_ack;
        self.next_ack += 1;
        let packet = format!("2{id}{}", serde_json::json!([event, payload]));
        let (status, body) = self.post(&[&format!("4{packet}")]).await?;
        if status != 200 {
            return Err(format!("emit {event}: {status} {body}"));
        }
        let prefix = format!("3{id}[");
        let ack = self
            .until(Duration::from_secs(10), |p| p.starts_with(&prefix))
            .await?;
        let args: Vec<Value> = serde_json::from_str(&ack[prefix.len() - 1..])
            .map_err(|e| format!("ack of {event}: {e}: {ack}"))?;
        Ok(args.into_iter().next().unwrap_or(Value::Null))
    }

    /// Polls (within `within`) until event `name` comes; returns its first argument.
    pub async fn event(&mut self, name: &str, within: Duration) -> Result<Value, String> {
        let prefix = format!("2[\"{name}\",");
        let packet = self.until(within, |p| p.starts_with(&prefix)).await?;
        let args: Vec<Value> =
            serde_json::from_str(&packet[1..]).map_err(|e| format!("{name}: {e}: {packet}"))?;
        Ok(args.into_iter().nth(1).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_framed_as_each_protocol_frames_them() {
        assert_eq!(Eio::V4.encode(&["40", "42[\"a\"]"]), "40\u{1e}42[\"a\"]");
        assert_eq!(Eio::V3.encode(&["40", "42[\"é\"]"]), "2:407:42[\"é\"]");
        assert_eq!(Eio::V3.decode("2:407:42[\"é\"]"), ["40", "42[\"é\"]"]);
        assert_eq!(Eio::V4.decode("2\u{1e}40"), ["2", "40"]);
        assert!(Eio::V4.decode("").is_empty());
    }
}
