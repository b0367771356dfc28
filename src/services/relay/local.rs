//! `relay.kind = "local"`: the relay of spears in one process.
//!
//! A deployment runs one spear ([`LocalRelay::start`]): every recipient is on the spear that
//! received the message and delivers it itself, so nothing is carried, nothing arrives, and the
//! transport never fails.
//!
//! Several spears in one process share a [`LocalBus`] ([`LocalRelay::on_bus`]), an in-memory
//! pub/sub transport: each spear subscribes to the channels its roster needs (through the same
//! ordered subscription task as Redis, `wanted.rs`), a publish reaches every spear subscribed
//! to its channel — the publisher's own included, which counts and skips its echo — and the bus
//! can be cut and restored to play an outage. The conformance suite runs the whole relay
//! contract against it (`tests/relay/conformance/`), as chitchat tests its protocol over an
//! in-memory transport.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::BoxFuture;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::wanted::{Apply, Wanted};
use super::{
    hand_on, wire, Backend, Envelope, Inbound, Relay, RelayError, RelayStats, TransportStatus,
};
use crate::config::NodeId;
use crate::services::spear::roster::{Change, ChangeSink};

/// How the bus is named in errors.
const TRANSPORT: &str = "the in-process bus";

/// The relay of the one spear of a deployment.
#[derive(Debug, Default)]
pub struct LocalRelay;

impl LocalRelay {
    /// The relay handle of a spear alone in its deployment.
    pub fn start() -> Relay {
        Relay::new(Arc::new(Self), Arc::default())
    }

    /// The relay of spear `me`, one of several on `bus`: what arrives for its channels goes
    /// to `inbound`. Its tasks (subscriptions, arrivals) run until `cancel`; when they end,
    /// the spear leaves the bus.
    pub fn on_bus<I: Inbound>(
        bus: &LocalBus,
        me: NodeId,
        inbound: I,
        cancel: CancellationToken,
    ) -> (Relay, Vec<JoinHandle<()>>) {
        let stats = Arc::new(RelayStats::default());
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let membership = bus.join(arrivals_tx);
        let subscribe = Subscribe {
            bus: bus.clone(),
            member: membership.member,
        };
        let (subscriptions, subscribing) = Wanted::start(subscribe, cancel.clone());
        let backend = Arc::new(BusRelay {
            bus: bus.clone(),
            me,
            outages_before: bus.outages(),
            subscriptions,
        });
        let receiving = tokio::spawn(receive(
            me,
            stats.clone(),
            inbound,
            arrivals,
            membership,
            cancel,
        ));
        (Relay::new(backend, stats), vec![subscribing, receiving])
    }
}

impl ChangeSink for LocalRelay {
    fn changed(&self, _: Change) -> Option<oneshot::Receiver<()>> {
        // Every recipient is here: there is nothing to subscribe to.
        None
    }
}

impl Backend for LocalRelay {
    fn publish<'a>(&'a self, _: &'a Envelope) -> BoxFuture<'a, Result<(), RelayError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn status(&self) -> TransportStatus {
        TransportStatus {
            kind: "local",
            connected: true,
            outages: 0,
            channels: 0,
            copies: None,
        }
    }
}

/// An in-memory pub/sub transport shared by the [`LocalRelay`]s of several spears in one
/// process. Cheap to clone: clones are the same bus.
#[derive(Clone, Default)]
pub struct LocalBus {
    inner: Arc<Mutex<Bus>>,
}

#[derive(Default)]
struct Bus {
    /// Whether the bus is cut: it refuses every publish and subscription change until
    /// restored. What it held (subscriptions, messages already taken) it keeps.
    cut: bool,
    /// Times it was cut.
    outages: u64,
    next_member: u64,
    members: HashMap<u64, Member>,
}

/// A spear on the bus.
struct Member {
    /// The channels it is subscribed to, by their names on the wire.
    channels: HashSet<String>,
    /// Where what is published on them goes: the channel and the wire payload.
    arrivals: UnboundedSender<(String, Vec<u8>)>,
}

impl LocalBus {
    /// A bus with nobody on it, up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts the bus: every publish and subscription change fails until [`Self::restore`].
    pub fn cut(&self) {
        let mut bus = self.lock();
        if !bus.cut {
            bus.cut = true;
            bus.outages += 1;
        }
    }

    /// Mends the bus after [`Self::cut`].
    pub fn restore(&self) {
        self.lock().cut = false;
    }

    fn lock(&self) -> MutexGuard<'_, Bus> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn outages(&self) -> u64 {
        self.lock().outages
    }

    /// A new member whose arrivals go to `arrivals`; it leaves when the membership is
    /// dropped.
    fn join(&self, arrivals: UnboundedSender<(String, Vec<u8>)>) -> Membership {
        let mut bus = self.lock();
        let member = bus.next_member;
        bus.next_member += 1;
        bus.members.insert(
            member,
            Member {
                channels: HashSet::new(),
                arrivals,
            },
        );
        Membership {
            bus: self.clone(),
            member,
        }
    }

    /// Subscribes `member` to `channels` (or unsubscribes it); false while the bus is cut.
    fn subscribe(&self, member: u64, channels: &[String], on: bool) -> bool {
        let mut bus = self.lock();
        if bus.cut {
            return false;
        }
        let Some(m) = bus.members.get_mut(&member) else {
            return false;
        };
        for channel in channels {
            if on {
                m.channels.insert(channel.clone());
            } else {
                m.channels.remove(channel);
            }
        }
        true
    }

    /// Hands `wire` to every member subscribed to `channel`, in the order of the calls.
    fn publish(&self, channel: &str, wire: &[u8]) -> Result<(), RelayError> {
        let bus = self.lock();
        if bus.cut {
            return Err(RelayError::Unavailable {
                transport: TRANSPORT,
            });
        }
        for m in bus.members.values() {
            if m.channels.contains(channel) {
                // A member whose arrivals task ended is leaving: nothing to deliver to.
                let _ = m.arrivals.send((channel.to_owned(), wire.to_vec()));
            }
        }
        Ok(())
    }
}

/// A spear's place on the bus, given up when dropped (its arrivals task ended or was aborted).
struct Membership {
    bus: LocalBus,
    member: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.bus.lock().members.remove(&self.member);
    }
}

/// The relay of one spear on a [`LocalBus`].
struct BusRelay {
    bus: LocalBus,
    me: NodeId,
    /// The bus's outages before this spear joined: its report counts its own.
    outages_before: u64,
    subscriptions: Arc<Wanted>,
}

impl Backend for BusRelay {
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), RelayError>> {
        let wire = wire::encode(self.me, envelope.position, envelope.payload.get());
        Box::pin(std::future::ready(
            self.bus.publish(&envelope.channel.to_string(), &wire),
        ))
    }

    fn status(&self) -> TransportStatus {
        let bus = self.bus.lock();
        TransportStatus {
            kind: "local",
            connected: !bus.cut,
            outages: bus.outages - self.outages_before,
            channels: self.subscriptions.count(),
            copies: None,
        }
    }
}

impl ChangeSink for BusRelay {
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
        self.subscriptions.follow(change, |c| c.to_string())
    }
}

/// A spear's subscriptions on the bus, as the relay's [`Wanted`] set.
struct Subscribe {
    bus: LocalBus,
    member: u64,
}

impl Apply for Subscribe {
    const WHAT: &'static str = "subscriptions";

    async fn add(&self, channels: &[String]) -> bool {
        self.bus.subscribe(self.member, channels, true)
    }

    async fn remove(&self, channels: &[String]) -> bool {
        self.bus.subscribe(self.member, channels, false)
    }

    fn reconnections(&self) -> u64 {
        self.bus.outages()
    }
}

/// Hands what arrives for spear `me` to `inbound`, one message at a time, until `cancel`; the
/// spear then leaves the bus (also when the task is aborted, which drops `membership`).
async fn receive<I: Inbound>(
    me: NodeId,
    stats: Arc<RelayStats>,
    inbound: I,
    mut arrivals: UnboundedReceiver<(String, Vec<u8>)>,
    membership: Membership,
    cancel: CancellationToken,
) {
    let _membership = membership;
    loop {
        let (channel, wire) = tokio::select! {
            () = cancel.cancelled() => return,
            arrival = arrivals.recv() => match arrival {
                Some(arrival) => arrival,
                None => return,
            },
        };
        hand_on(me, &stats, &inbound, channel.parse().ok(), wire).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::channel::Channel;
    use crate::services::relay::Delivery;

    fn message(channel: Channel) -> Envelope {
        Envelope {
            channel,
            position: None,
            payload: serde_json::value::to_raw_value(&serde_json::json!({"m": 1})).expect("JSON"),
        }
    }

    #[tokio::test]
    async fn a_spear_alone_takes_every_message_and_subscribes_to_nothing() {
        let relay = LocalRelay::start();
        assert!(relay.changed(Change::UserOnline(1)).is_none());
        relay
            .publish(&message(Channel::User(1)))
            .await
            .expect("taken");
        let r = relay.report();
        assert_eq!(
            (r.kind, r.connected, r.published, r.received, r.channels),
            ("local", true, 1, 0, 0)
        );
    }

    struct Sink(UnboundedSender<Envelope>);

    impl Inbound for Sink {
        async fn deliver(&self, envelope: Envelope) -> Delivery {
            let _ = self.0.send(envelope);
            Delivery::Done
        }
    }

    #[tokio::test]
    async fn a_spear_leaves_the_bus_when_its_tasks_end() {
        let bus = LocalBus::new();
        let cancel = CancellationToken::new();
        let (tx, _rx) = mpsc::unbounded_channel();
        let (_relay, tasks) = LocalRelay::on_bus(&bus, 1, Sink(tx), cancel.clone());
        assert_eq!(bus.lock().members.len(), 1);
        cancel.cancel();
        for task in tasks {
            task.await.expect("the task ends");
        }
        assert!(bus.lock().members.is_empty());
    }
}
