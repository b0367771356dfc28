//! Logical clients: one user identity across reconnects, each in one group, whose every event
//! goes to one [`DeliveryChecker`] and whose last position per channel is what it presents
//! when it resumes — as an application using gru's resume would.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use gru_testkit::delivery::{ClientKey, DeliveryChecker, Message, PayloadError, Resync};
use gru_testkit::sio::SioClient;

/// The checker every client and sender feeds.
pub type Checker = Arc<Mutex<DeliveryChecker>>;

/// A channel's last `(epoch, position)` as the client saw it.
type Positions = Arc<Mutex<HashMap<String, (u64, u64)>>>;

/// One user across its connections.
pub struct Client {
    /// Its user id.
    pub uid: u64,
    /// Its one group.
    pub gid: u64,
    /// The spear it is on now.
    pub spear: u64,
    conn: Option<Arc<SioClient>>,
    reader: Option<JoinHandle<()>>,
    positions: Positions,
}

/// Reads a connection's events into the checker and the client's positions until it closes;
/// the first `auth_result` (the answer to a handshake authentication) also goes to `answer`.
fn read_events(
    uid: u64,
    mut events: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    (checker, positions): (Checker, Positions),
    mut answer: Option<oneshot::Sender<Value>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((name, data)) = events.recv().await {
            match name.as_str() {
                // Where channels went live, read here in the event stream (every answer also
                // comes as `<event>_result`) so that it is recorded after the replayed
                // messages that precede it, never before them.
                "auth_result" | "join_result" => {
                    went_live(uid, &data["data"]["positions"], &positions, &checker);
                    if name == "auth_result" {
                        if let Some(answer) = answer.take() {
                            let _ = answer.send(data);
                        }
                    }
                }
                "msg" => {
                    let m = match Message::parse(&data) {
                        Ok(m) => m,
                        // Delivered by its sender's spear while the history was down.
                        Err(PayloadError::Unpositioned(id)) => {
                            let mut checker = checker.lock().expect("checker");
                            checker.delivered_bare(ClientKey(uid), id);
                            continue;
                        }
                        Err(e) => panic!("user {uid}: a malformed msg: {e}: {data}"),
                    };
                    positions
                        .lock()
                        .expect("positions")
                        .insert(m.channel.clone(), (m.epoch, m.position));
                    checker
                        .lock()
                        .expect("checker")
                        .delivered(ClientKey(uid), m);
                }
                "resync" => {
                    let r = Resync::parse(&data)
                        .unwrap_or_else(|e| panic!("user {uid}: a malformed resync: {e}: {data}"));
                    positions
                        .lock()
                        .expect("positions")
                        .insert(r.channel.clone(), (r.epoch, r.position));
                    checker.lock().expect("checker").resync(ClientKey(uid), r);
                }
                _ => {}
            }
        }
    })
}

/// Keeps where an answer says channels went live, for channels the client has no position of
/// yet (a message that came before the answer is as new or newer).
fn went_live(uid: u64, answer: &Value, positions: &Positions, checker: &Checker) {
    let Some(map) = answer.as_object() else {
        return;
    };
    let mut mine = positions.lock().expect("positions");
    for (channel, at) in map {
        let epoch = at["epoch"].as_str().and_then(|e| e.parse().ok());
        if let (Some(epoch), Some(position)) = (epoch, at["position"].as_u64()) {
            mine.entry(channel.clone()).or_insert((epoch, position));
            let mut checker = checker.lock().expect("checker");
            checker.went_live(ClientKey(uid), channel, epoch, position);
        }
    }
}

impl Client {
    /// A client of `uid` in group `gid`, not connected yet.
    pub fn new(uid: u64, gid: u64) -> Self {
        Self {
            uid,
            gid,
            spear: 0,
            conn: None,
            reader: None,
            positions: Arc::default(),
        }
    }

    /// The `resume` object of its positions.
    fn resume(&self) -> Value {
        let positions = self.positions.lock().expect("positions");
        let points: serde_json::Map<String, Value> = positions
            .iter()
            .map(|(channel, (epoch, position))| {
                (
                    channel.clone(),
                    json!({"epoch": epoch.to_string(), "position": position}),
                )
            })
            .collect();
        Value::Object(points)
    }

    /// How it authenticates: half of the users (even ids) in the socket.io handshake
    /// (`auth: {token, resume}`), the others with Gru's `auth` event, so that every fault is
    /// met by both ways of resuming.
    pub fn in_handshake(&self) -> bool {
        self.uid % 2 == 0
    }

    /// Connects to `addr` (spear `spear`), authenticates with `token2` presenting its
    /// positions (see [`Self::in_handshake`]), and joins its group; `Err` says what failed
    /// (the spear may be dead).
    pub async fn connect(
        &mut self,
        spear: u64,
        addr: &str,
        token2: &str,
        checker: &Checker,
    ) -> Result<(), String> {
        self.disconnect().await;
        let handshake = self
            .in_handshake()
            .then(|| json!({"token": token2, "resume": self.resume()}));
        let mut conn = SioClient::connect(addr, handshake.clone())
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let events = conn.take_events();
        let (answer, answered) = oneshot::channel();
        let state = (checker.clone(), self.positions.clone());
        self.reader = Some(read_events(self.uid, events, state, Some(answer)));
        if handshake.is_some() {
            // The handshake's answer comes as an event, after the user channel's backlog.
            let reply = tokio::time::timeout(Duration::from_secs(10), answered)
                .await
                .map_err(|_| "no auth_result after the handshake within 10 s".to_string())?
                .map_err(|_| "the connection closed before its auth_result".to_string())?;
            if reply["success"] != true {
                return Err(format!("handshake auth: {reply}"));
            }
        } else {
            let auth = json!({"id": self.uid, "name": format!("u{}", self.uid),
                "appType": "web", "token2": token2, "resume": self.resume()});
            let reply = conn.call("auth", &auth).await?;
            if reply["success"] != true {
                return Err(format!("auth: {reply}"));
            }
        }
        let reply = conn.call("join", &json!({"groups": [self.gid]})).await?;
        if reply["success"] != true {
            return Err(format!("join: {reply}"));
        }
        self.conn = Some(Arc::new(conn));
        self.spear = spear;
        Ok(())
    }

    /// Drops its connection and waits until every event it had received is recorded.
    pub async fn disconnect(&mut self) {
        self.conn = None;
        if let Some(reader) = self.reader.take() {
            let _ = reader.await;
        }
    }

    /// Its last `(epoch, position)` per channel.
    pub fn positions(&self) -> HashMap<String, (u64, u64)> {
        self.positions.lock().expect("positions").clone()
    }

    /// Whether it has a connection the server has not closed.
    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.is_open())
    }

    /// Its connection, while it has one.
    pub fn conn(&self) -> Option<Arc<SioClient>> {
        self.conn.clone()
    }
}

/// Who receives what: group members.
#[derive(Debug, Clone, Default)]
pub struct Membership(BTreeMap<u64, Vec<u64>>);

impl Membership {
    /// The membership of `clients`.
    pub fn of(clients: &[Client]) -> Self {
        let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for c in clients {
            groups.entry(c.gid).or_default().push(c.uid);
        }
        Self(groups)
    }

    /// Who must receive a message of `kind` (0 unicast, 1 group) to `target`.
    pub fn recipients(&self, kind: u8, target: u64) -> Vec<ClientKey> {
        match kind {
            0 => vec![ClientKey(target)],
            _ => self
                .0
                .get(&target)
                .map(|m| m.iter().copied().map(ClientKey).collect())
                .unwrap_or_default(),
        }
    }
}

/// What one send came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Acknowledged (`success: true`), with the message's id.
    Acked(u64),
    /// Refused with an answer (error 1001 and the like).
    Refused,
    /// No answer (the sender's spear died).
    Lost,
}

/// Sends a `msg` from `conn` and records its outcome in `checker`.
pub async fn send(
    conn: &SioClient,
    (kind, target): (u8, u64),
    content: &str,
    members: &Membership,
    checker: &Checker,
) -> Sent {
    let payload = json!({"type": kind, "target": {"id": target, "type": 1}, "content": content});
    let Ok(ack) = conn.call("msg", &Value::String(payload.to_string())).await else {
        checker.lock().expect("checker").refused(None);
        return Sent::Lost;
    };
    if ack["success"] == true {
        let m = Message::parse(&ack["data"])
            .unwrap_or_else(|e| panic!("an ack without position: {e}: {ack}"));
        let id = m.id;
        checker
            .lock()
            .expect("checker")
            .acked(m, members.recipients(kind, target));
        Sent::Acked(id)
    } else {
        checker
            .lock()
            .expect("checker")
            .refused(ack["data"]["id"].as_u64());
        Sent::Refused
    }
}

/// Waits until the checker saw no delivery for `quiet` (or `deadline` passed).
pub async fn settle(checker: &Checker, quiet: Duration, deadline: Duration) {
    let start = Instant::now();
    let mut last = usize::MAX;
    while start.elapsed() < deadline {
        let now = checker.lock().expect("checker").verify().delivered;
        if now == last {
            return;
        }
        last = now;
        // The condition is quiet itself: no delivery for this long.
        tokio::time::sleep(quiet).await;
    }
}
