//! A spear as the suite sees it: a relay, the roster it follows, and a channel for what
//! arrives. The suite plays the socket.io server's part: it binds users and joins groups, waits
//! for the confirmations as `auth` and `join` do, and publishes envelopes.

use std::sync::Arc;
use std::time::Duration;

use gru::config::NodeId;
use gru::services::channel::Channel;
use gru::services::relay::{Delivery, Envelope, Inbound, Relay, RelayError, RelayReport};
use gru::services::spear::roster::{ChangeSink, Pending, Roster};
use serde_json::json;
use tokio::sync::mpsc::{error::TryRecvError, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use gru_testkit::wait_for;

/// How long a subscription may take to be confirmed.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(5);
/// How long expected messages may take to arrive.
pub const ARRIVE_DEADLINE: Duration = Duration::from_secs(10);
/// How long the suite watches for messages that must not come.
pub const QUIET: Duration = Duration::from_millis(300);

/// The test's inbound sink: every delivery goes into a channel.
pub struct ToChannel(pub UnboundedSender<Envelope>);

impl Inbound for ToChannel {
    async fn deliver(&self, envelope: Envelope) -> Delivery {
        let _ = self.0.send(envelope);
        Delivery::Done
    }
}

/// One spear's relay under test. Dropping it stops its tasks.
pub struct TestSpear {
    /// The spear's id.
    pub id: NodeId,
    relay: Relay,
    roster: Roster<u32>,
    inbound: UnboundedReceiver<Envelope>,
    /// Kept so that a backend that delivers nothing leaves the channel open (empty, not closed).
    _sink: UnboundedSender<Envelope>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl TestSpear {
    /// The spear `id` of `relay`, which delivers into the other end of `sink`/`inbound`;
    /// `tasks` run until the spear is dropped (they watch `cancel`).
    pub fn new(
        id: NodeId,
        relay: Relay,
        (sink, inbound): (UnboundedSender<Envelope>, UnboundedReceiver<Envelope>),
        cancel: CancellationToken,
        tasks: Vec<JoinHandle<()>>,
    ) -> Self {
        let roster = Roster::new(vec![Arc::new(relay.clone()) as Arc<dyn ChangeSink>]);
        Self {
            id,
            relay,
            roster,
            inbound,
            _sink: sink,
            cancel,
            tasks,
        }
    }

    /// Connection `conn` authenticates as user `uid`; returns once its subscription is
    /// confirmed, as `auth` does before it answers.
    pub async fn bind(&self, conn: u32, uid: u64) {
        confirmed(self.id, self.roster.bind(conn, uid)).await;
    }

    /// Waits, up to `deadline`, until the relay confirms a subscription (a backend may set
    /// itself up in the background first), with a connection and a user of its own that it
    /// then lets go.
    #[cfg_attr(not(feature = "rocketmq"), allow(dead_code))]
    pub async fn ready_within(&self, deadline: Duration) {
        let (conn, uid) = (u32::MAX, u64::MAX - self.id);
        let pending = self.roster.bind(conn, uid);
        let all = tokio::time::timeout(deadline, futures_util::future::join_all(pending))
            .await
            .unwrap_or_else(|_| panic!("spear {}: not ready within {deadline:?}", self.id));
        assert!(all.iter().all(Result::is_ok), "spear {}: {all:?}", self.id);
        self.roster.remove(conn);
    }

    /// Connection `conn` joins group `gid`; returns once confirmed, as `join` does.
    pub async fn join(&self, conn: u32, gid: u64) {
        confirmed(self.id, self.roster.join(conn, &[gid])).await;
    }

    /// Connection `conn` leaves group `gid`.
    pub fn leave(&self, conn: u32, gid: u64) {
        self.roster.leave(conn, &[gid]);
    }

    /// Connection `conn` disconnects.
    pub fn disconnect(&self, conn: u32) {
        self.roster.remove(conn);
    }

    /// Publishes message `seq` of this spear to `channel`.
    pub async fn publish(&self, channel: Channel, seq: u64) -> Result<(), RelayError> {
        self.relay.publish(&message(self.id, channel, seq)).await
    }

    /// Publishes and insists that the relay took it.
    pub async fn publish_ok(&self, channel: Channel, seq: u64) {
        if let Err(e) = self.publish(channel, seq).await {
            panic!("spear {}: publish {seq} to {channel:?}: {e}", self.id);
        }
    }

    /// The next `n` deliveries; panics if they do not come within [`ARRIVE_DEADLINE`].
    pub async fn receive(&mut self, n: usize) -> Vec<Received> {
        let mut out = Vec::with_capacity(n);
        let deadline = tokio::time::Instant::now() + ARRIVE_DEADLINE;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.inbound.recv()).await {
                Ok(Some(e)) => out.push(Received::from(e)),
                Ok(None) => panic!("spear {}: inbound closed", self.id),
                Err(_) => panic!(
                    "spear {}: {} of {n} deliveries within {ARRIVE_DEADLINE:?}; got {out:?}",
                    self.id,
                    out.len()
                ),
            }
        }
        out
    }

    /// Whatever is delivered within [`QUIET`] (for what must not come).
    pub async fn quiet(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.inbound.recv()).await {
            out.push(Received::from(e));
        }
        out
    }

    /// What was delivered and is waiting, without waiting for more.
    pub fn ready(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        loop {
            match self.inbound.try_recv() {
                Ok(e) => out.push(Received::from(e)),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
            }
        }
    }

    /// The relay's counters.
    pub fn report(&self) -> RelayReport {
        self.relay.report()
    }

    /// Waits until the counters satisfy `ok`; panics naming `what` with the last report.
    pub async fn wait_report(&self, what: &str, ok: impl Fn(&RelayReport) -> bool) -> RelayReport {
        let what = format!("spear {}: {what} (now {:?})", self.id, self.report());
        wait_for(&what, ARRIVE_DEADLINE, || async {
            let r = self.report();
            ok(&r).then_some(r)
        })
        .await
    }
}

impl Drop for TestSpear {
    fn drop(&mut self) {
        self.cancel.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Waits for every confirmation of `pending`; each must come with a value (subscribed).
async fn confirmed(spear: NodeId, pending: Pending) {
    let n = pending.len();
    let all = tokio::time::timeout(CONFIRM_DEADLINE, futures_util::future::join_all(pending))
        .await
        .unwrap_or_else(|_| panic!("spear {spear}: {n} subscriptions not confirmed in time"));
    assert!(
        all.iter().all(Result::is_ok),
        "spear {spear}: a subscription was given up while the backend is up: {all:?}"
    );
}

/// Message `seq` from spear `from` to `channel`.
fn message(from: NodeId, channel: Channel, seq: u64) -> Envelope {
    Envelope {
        channel,
        position: None,
        payload: serde_json::value::to_raw_value(&json!({"from": from, "seq": seq})).expect("JSON"),
    }
}

/// A delivery, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Who it was for.
    pub channel: Channel,
    /// The spear that published it.
    pub from: NodeId,
    /// Its number.
    pub seq: u64,
}

impl From<Envelope> for Received {
    fn from(e: Envelope) -> Self {
        let v: serde_json::Value = serde_json::from_str(e.payload.get()).expect("JSON payload");
        Self {
            channel: e.channel,
            from: v["from"].as_u64().expect("from"),
            seq: v["seq"].as_u64().expect("seq"),
        }
    }
}
