//! A delivery checker for the fault-injection tests (after Jepsen's set checkers): tests feed
//! it every ack, refusal, `msg` and `resync` they see, and [`DeliveryChecker::verify`] proves
//! that every acked message reached every recipient exactly once, in channel order, and that
//! every `resync` was justified. The rules, as implemented:
//!
//! 1. **Exactly once.** A (client, message id) pair is delivered at most once, whether the
//!    message was acked, refused or never heard of ([`Violation::Duplicate`]).
//! 2. **Completeness.** An acked message reaches each of its recipients
//!    ([`Violation::Missing`]) unless that recipient got a justified resync on the channel to
//!    an epoch newer than the message's: its history was lost, and the recipient was told. A
//!    resync never excuses messages of its own epoch or a newer one.
//! 3. **Channel order.** Per (client, channel), positions strictly increase within an epoch,
//!    also after a resync into it (live messages go on at `position + 1`), and nothing
//!    arrives in an epoch older than the client's current one ([`Violation::OutOfOrder`]).
//!    Gaps are rule 2's business, so positions of refused messages that never came are fine.
//! 4. **Justified resyncs.** An `"epoch"` or `"retention"` resync must move the client to an
//!    epoch newer than the one it had on that channel or, if it had none, newer than that of
//!    some acked message of the channel ([`Violation::UnjustifiedResync`]). A same-epoch
//!    `"retention"` resync is thus flagged: the checker cannot tell what retention dropped, so
//!    a test of this contract keeps retention above its traffic. An `"unavailable"` resync
//!    (the history could not be read) is always taken at its word: the client continues after
//!    its (epoch, position), and what it misses of that channel before the next message it
//!    gets there is excused — the application reloads the channel from its own store.
//! 6. **Announced epochs.** A client that has a place in a channel's epoch gets a message of
//!    another epoch only after a resync that moved it there ([`Violation::UnannouncedEpoch`]);
//!    a client at epoch 0 ("no history yet") may see any epoch begin.
//! 5. **Faithful delivery.** A message arrives at the channel, epoch and position its ack
//!    named ([`Violation::Mismatch`]), and only at its recipients ([`Violation::Unexpected`]).
//!
//! A message that was refused, or whose ack was not recorded (still on its way, or lost with a
//! connection), may arrive once or not at all. Epochs are ordered by value: gru's epoch is the id
//! of the message that started the history, and the suite runs strict ids, which only grow.
//! Epoch 0 in a resync means "the channel has no history left": it is newer than any epoch the
//! client had, and any epoch may begin after it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde_json::Value;

/// How many violations a [`CheckReport`] prints.
const SHOWN: usize = 20;

/// A logical client: one user identity across reconnects, whichever spear serves it. The
/// number is the test's own (usually the user id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(pub u64);

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}", self.0)
    }
}

/// A payload the checker cannot read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// A field is absent.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// A field is not of the promised form.
    #[error("field `{0}` is malformed: {1}")]
    Malformed(&'static str, String),
    /// A `msg` without `channel`, `epoch` and `position`: it has no place in any history.
    #[error("message {0} has no history position")]
    Unpositioned(u64),
}

/// A message at its place in a channel's history: what an ack promised or what arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message id.
    pub id: u64,
    /// `u:<uid>` or `g:<gid>`.
    pub channel: String,
    /// The channel's epoch.
    pub epoch: u64,
    /// The position within that epoch, from 1.
    pub position: u64,
}

impl Message {
    /// A message `id` at `position` of `channel`'s `epoch`.
    pub fn new(id: u64, channel: impl Into<String>, epoch: u64, position: u64) -> Self {
        let channel = channel.into();
        Self {
            id,
            channel,
            epoch,
            position,
        }
    }

    /// Reads a `msg` event payload, or the `data` of a successful `msg` ack.
    pub fn parse(payload: &Value) -> Result<Self, PayloadError> {
        let id = field(payload, "id")?;
        let id = id.as_u64().ok_or_else(|| malformed("id", id))?;
        let has = |name| payload.get(name).is_some();
        if !(has("channel") || has("epoch") || has("position")) {
            return Err(PayloadError::Unpositioned(id));
        }
        let (channel, epoch, position) = place(payload)?;
        Ok(Self::new(id, channel, epoch, position))
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            id,
            channel,
            epoch,
            position,
        } = self;
        write!(
            f,
            "message {id} at {channel} epoch {epoch} position {position}"
        )
    }
}

/// A `resync` event: history before (epoch, position) cannot be replayed; live messages go
/// on from position + 1 in that epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resync {
    /// `u:<uid>` or `g:<gid>`.
    pub channel: String,
    /// The epoch the client continues in.
    pub epoch: u64,
    /// The position it continues after.
    pub position: u64,
    /// `"epoch"` (the history was lost or reset), `"retention"` (it no longer reaches back)
    /// or `"unavailable"` (it could not be read).
    pub reason: String,
}

impl Resync {
    /// Reads a `resync` event payload.
    pub fn parse(payload: &Value) -> Result<Self, PayloadError> {
        let (channel, epoch, position) = place(payload)?;
        let reason = field(payload, "reason")?;
        let reason = match reason.as_str() {
            Some(r @ ("epoch" | "retention" | "unavailable")) => r.to_string(),
            _ => return Err(malformed("reason", reason)),
        };
        Ok(Self {
            channel,
            epoch,
            position,
            reason,
        })
    }
}

fn field<'a>(payload: &'a Value, name: &'static str) -> Result<&'a Value, PayloadError> {
    payload.get(name).ok_or(PayloadError::Missing(name))
}

/// Reads `channel`, `epoch` (a decimal string, as u64 exceeds JSON's safe integers) and
/// `position` (a number).
fn place(payload: &Value) -> Result<(String, u64, u64), PayloadError> {
    let channel = field(payload, "channel")?;
    let channel = match channel.as_str() {
        Some(c) if c.starts_with("u:") || c.starts_with("g:") => c.to_string(),
        _ => return Err(malformed("channel", channel)),
    };
    let epoch = field(payload, "epoch")?;
    let parsed = epoch.as_str().and_then(|s| s.parse().ok());
    let epoch = parsed.ok_or_else(|| malformed("epoch", epoch))?;
    let position = field(payload, "position")?;
    let position = position
        .as_u64()
        .ok_or_else(|| malformed("position", position))?;
    Ok((channel, epoch, position))
}

fn malformed(field: &'static str, value: &Value) -> PayloadError {
    PayloadError::Malformed(field, value.to_string())
}

/// A broken promise, found by [`DeliveryChecker::verify`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// An acked message arrived without its position (only refused ones may).
    #[error("{client} got acked message {id} without its position")]
    Unpositioned {
        /// The recipient.
        client: ClientKey,
        /// The message id.
        id: u64,
    },
    /// An acked message never reached a recipient, and no resync excused it.
    #[error("{client} never got acked {acked}")]
    Missing {
        /// The recipient.
        client: ClientKey,
        /// The message as acked.
        acked: Message,
    },
    /// A message reached a client more than once.
    #[error("{client} got message {id} twice")]
    Duplicate {
        /// The client.
        client: ClientKey,
        /// The message id.
        id: u64,
    },
    /// A message arrived before (not after) what the client already had on that channel.
    #[error("{client} got {delivered} after epoch {} position {}", .after.0, .after.1)]
    OutOfOrder {
        /// The client.
        client: ClientKey,
        /// The late message.
        delivered: Message,
        /// The client's (epoch, position) on that channel before it.
        after: (u64, u64),
    },
    /// A resync that did not move the client to a newer epoch.
    #[error(
        "{client} got an unjustified {} resync on {} to epoch {} position {} (it had epoch \
         {had:?})",
        .resync.reason, .resync.channel, .resync.epoch, .resync.position
    )]
    UnjustifiedResync {
        /// The client.
        client: ClientKey,
        /// The resync.
        resync: Resync,
        /// The client's epoch on that channel before it, if it had one.
        had: Option<u64>,
    },
    /// A message of another epoch than the client's, with no resync announcing the change.
    #[error("{client} got {delivered} in a new epoch without a resync (it had epoch {had})")]
    UnannouncedEpoch {
        /// The client.
        client: ClientKey,
        /// The first message of the new epoch.
        delivered: Message,
        /// The client's epoch on that channel before it.
        had: u64,
    },
    /// An acked message reached a client that was not among its recipients.
    #[error("{client} got message {id} but was not a recipient")]
    Unexpected {
        /// The client.
        client: ClientKey,
        /// The message id.
        id: u64,
    },
    /// A message arrived at another place than its ack named.
    #[error("{client} got {delivered}, but its ack said {acked}")]
    Mismatch {
        /// The client.
        client: ClientKey,
        /// What the ack said.
        acked: Message,
        /// What arrived.
        delivered: Message,
    },
}

/// What [`DeliveryChecker::verify`] found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Messages acked.
    pub acked: usize,
    /// Sends refused (with or without an id).
    pub refused: usize,
    /// (acked message, recipient) pairs: the deliveries owed.
    pub expected: usize,
    /// `msg` events recorded, duplicates included.
    pub delivered: usize,
    /// First deliveries of messages neither acked nor refused, as far as the test recorded.
    pub delivered_unknown: usize,
    /// Owed deliveries excused by a justified resync.
    pub excused: usize,
    /// `resync` events recorded.
    pub resyncs: usize,
    /// Every broken promise, client by client.
    pub violations: Vec<Violation>,
}

impl CheckReport {
    /// No violation was found.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        write!(
            f,
            "{} acked, {} refused; {} deliveries owed, {} delivered ({} of unknown messages), \
             {} excused by {} resyncs; {} violations",
            r.acked,
            r.refused,
            r.expected,
            r.delivered,
            r.delivered_unknown,
            r.excused,
            r.resyncs,
            r.violations.len()
        )?;
        for v in r.violations.iter().take(SHOWN) {
            write!(f, "\n  {v}")?;
        }
        if r.violations.len() > SHOWN {
            write!(f, "\n  … and {} more", r.violations.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// What one client saw, in order.
#[derive(Debug)]
enum Event {
    Delivered(Message),
    /// A message without position (the history did not take it): only a refused one may.
    Bare(u64),
    /// Where a channel went live for the client (the `positions` of an `auth` or `join`
    /// reply), for a channel it has no position of yet.
    Live(String, u64, u64),
    Resync(Resync),
}

/// Collects what the tests saw; [`verify`](Self::verify) checks it against the rules in the
/// module docs. Plain data, so it is `Send` and can live behind a `std::sync::Mutex`.
#[derive(Debug, Default)]
pub struct DeliveryChecker {
    /// Acked messages by id, with their recipients; the first ack of an id counts.
    acked: BTreeMap<u64, (Message, Vec<ClientKey>)>,
    refused: usize,
    refused_ids: HashSet<u64>,
    events: BTreeMap<ClientKey, Vec<Event>>,
}

impl DeliveryChecker {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a successful ack: `msg` must reach each of `recipients` (static membership).
    pub fn acked(&mut self, msg: Message, recipients: Vec<ClientKey>) {
        self.acked.entry(msg.id).or_insert((msg, recipients));
    }

    /// How many messages were acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.len()
    }

    /// Records a refused send, with its message id if the reply carried one: that message may
    /// arrive once, or not at all.
    pub fn refused(&mut self, id: Option<u64>) {
        self.refused += 1;
        self.refused_ids.extend(id);
    }

    /// Records a `msg` event received by `client`.
    pub fn delivered(&mut self, client: ClientKey, msg: Message) {
        self.events
            .entry(client)
            .or_default()
            .push(Event::Delivered(msg));
    }

    /// Records a `msg` event without position (its id) received by `client`.
    pub fn delivered_bare(&mut self, client: ClientKey, id: u64) {
        self.events.entry(client).or_default().push(Event::Bare(id));
    }

    /// Records where `channel` went live for `client` (`epoch`, `position`), as its `auth` or
    /// `join` reply said: it counts only while the client has no position there.
    pub fn went_live(&mut self, client: ClientKey, channel: &str, epoch: u64, position: u64) {
        let live = Event::Live(channel.to_string(), epoch, position);
        self.events.entry(client).or_default().push(live);
    }

    /// Records a `resync` event received by `client`.
    pub fn resync(&mut self, client: ClientKey, resync: Resync) {
        self.events
            .entry(client)
            .or_default()
            .push(Event::Resync(resync));
    }

    /// What `client` saw of `channel`, in order, one line each: for a failure's message.
    pub fn story(&self, client: ClientKey, channel: &str) -> Vec<String> {
        let events = self
            .events
            .get(&client)
            .map(Vec::as_slice)
            .unwrap_or_default();
        events
            .iter()
            .filter_map(|e| match e {
                Event::Delivered(m) if m.channel == channel => {
                    Some(format!("msg {} at {}.{}", m.id, m.epoch, m.position))
                }
                Event::Resync(r) if r.channel == channel => Some(format!(
                    "resync to {}.{} ({})",
                    r.epoch, r.position, r.reason
                )),
                Event::Live(c, epoch, position) if c == channel => {
                    Some(format!("live at {epoch}.{position}"))
                }
                _ => None,
            })
            .collect()
    }

    /// Checks everything recorded so far.
    pub fn verify(&self) -> CheckReport {
        let mut report = CheckReport {
            acked: self.acked.len(),
            refused: self.refused,
            ..CheckReport::default()
        };
        // The oldest epoch of any acked message, per channel (rule 4).
        let mut oldest_acked: HashMap<&str, u64> = HashMap::new();
        for (m, _) in self.acked.values() {
            let r = m.epoch;
            oldest_acked
                .entry(&m.channel)
                .and_modify(|o| *o = r.min(*o))
                .or_insert(r);
        }
        let mut got: HashSet<(ClientKey, u64)> = HashSet::new();
        // The newest epoch a justified resync moved each (client, channel) to (rule 2).
        let mut excused_below: HashMap<(ClientKey, &str), u64> = HashMap::new();
        // After an "unavailable" resync: the place of the next message the client got on that
        // channel; what lies before it is excused (rule 4).
        let mut unavailable_below: HashMap<(ClientKey, &str), (u64, u64)> = HashMap::new();
        let violations = &mut report.violations;
        for (&client, events) in &self.events {
            // The client's (epoch, last position) per channel.
            let mut at: HashMap<&str, (u64, u64)> = HashMap::new();
            // Channels of an "unavailable" resync not followed by a message yet.
            let mut unread: HashSet<&str> = HashSet::new();
            for event in events {
                match event {
                    Event::Delivered(d) => {
                        report.delivered += 1;
                        if !got.insert((client, d.id)) {
                            violations.push(Violation::Duplicate { client, id: d.id });
                            continue;
                        }
                        match self.acked.get(&d.id) {
                            None if self.refused_ids.contains(&d.id) => {}
                            None => report.delivered_unknown += 1,
                            Some((_, to)) if !to.contains(&client) => {
                                violations.push(Violation::Unexpected { client, id: d.id });
                            }
                            Some((acked, _)) if acked != d => {
                                let (acked, delivered) = (acked.clone(), d.clone());
                                violations.push(Violation::Mismatch {
                                    client,
                                    acked,
                                    delivered,
                                });
                            }
                            Some(_) => {}
                        }
                        // After a resync to epoch 0 (no history) any new epoch may begin.
                        let late = |(epoch, last): (u64, u64)| {
                            (epoch == d.epoch && d.position <= last)
                                || (epoch != 0 && d.epoch < epoch)
                        };
                        if unread.remove(d.channel.as_str()) {
                            let below = unavailable_below
                                .entry((client, &d.channel))
                                .or_insert((d.epoch, d.position));
                            *below = (*below).max((d.epoch, d.position));
                        }
                        match at.get(d.channel.as_str()).copied() {
                            Some(after) if late(after) => {
                                let delivered = d.clone();
                                violations.push(Violation::OutOfOrder {
                                    client,
                                    delivered,
                                    after,
                                });
                            }
                            Some((had, _)) if had != 0 && had != d.epoch => {
                                let delivered = d.clone();
                                violations.push(Violation::UnannouncedEpoch {
                                    client,
                                    delivered,
                                    had,
                                });
                                at.insert(&d.channel, (d.epoch, d.position));
                            }
                            _ => drop(at.insert(&d.channel, (d.epoch, d.position))),
                        }
                    }
                    Event::Live(channel, epoch, position) => {
                        at.entry(channel.as_str()).or_insert((*epoch, *position));
                    }
                    Event::Bare(id) => {
                        report.delivered += 1;
                        if !got.insert((client, *id)) {
                            violations.push(Violation::Duplicate { client, id: *id });
                        } else if self.acked.contains_key(id) {
                            violations.push(Violation::Unpositioned { client, id: *id });
                        }
                    }
                    Event::Resync(r) if r.reason == "unavailable" => {
                        report.resyncs += 1;
                        at.insert(&r.channel, (r.epoch, r.position));
                        unread.insert(&r.channel);
                    }
                    Event::Resync(r) => {
                        report.resyncs += 1;
                        let had = at.insert(&r.channel, (r.epoch, r.position)).map(|a| a.0);
                        let older = match had {
                            Some(epoch) => Some(epoch),
                            None => oldest_acked.get(r.channel.as_str()).copied(),
                        };
                        // Epoch 0 ("no history left") is newer than any real epoch before it;
                        // it excuses what was acked in the epochs up to the one the client had.
                        let new = match (r.epoch, older) {
                            (0, Some(older)) if older != 0 => Some(older + 1),
                            (0, _) => None,
                            (epoch, Some(older)) if older < epoch => Some(epoch),
                            _ => None,
                        };
                        if let Some(new) = new {
                            let below = excused_below.entry((client, &r.channel)).or_insert(new);
                            *below = new.max(*below);
                        } else {
                            let resync = r.clone();
                            violations.push(Violation::UnjustifiedResync {
                                client,
                                resync,
                                had,
                            });
                        }
                    }
                }
            }
        }
        for (m, recipients) in self.acked.values() {
            for &client in recipients {
                report.expected += 1;
                if got.contains(&(client, m.id)) {
                    continue;
                }
                let key = (client, m.channel.as_str());
                let below = excused_below.get(&key);
                let unavailable = unavailable_below.get(&key);
                if below.is_some_and(|&below| m.epoch < below)
                    || unavailable.is_some_and(|&below| (m.epoch, m.position) < below)
                {
                    report.excused += 1;
                } else {
                    violations.push(Violation::Missing {
                        client,
                        acked: m.clone(),
                    });
                }
            }
        }
        report
    }

    /// For each missing message of `report`, what its recipient saw of that channel (the
    /// [`story`](Self::story)): one block per violation, for a failure's message.
    pub fn stories(&self, report: &CheckReport) -> String {
        let mut out = String::new();
        for v in &report.violations {
            if let Violation::Missing { client, acked } = v {
                let story = self.story(*client, &acked.channel);
                out.push_str(&format!(
                    "  {client} on {} (missing {}.{}): {}\n",
                    acked.channel,
                    acked.epoch,
                    acked.position,
                    if story.is_empty() {
                        "saw nothing of it".to_string()
                    } else {
                        story.join(", ")
                    }
                ));
            }
        }
        out
    }

    /// Panics with the report unless [`verify`](Self::verify) finds nothing.
    pub fn assert_clean(&self) {
        let report = self.verify();
        assert!(report.is_clean(), "delivery check failed: {report}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: ClientKey = ClientKey(1);
    const B: ClientKey = ClientKey(2);

    fn m(id: u64, epoch: u64, position: u64) -> Message {
        Message::new(id, "g:10", epoch, position)
    }

    fn resync(epoch: u64, position: u64, reason: &str) -> Resync {
        let (channel, reason) = ("g:10".to_string(), reason.to_string());
        Resync {
            channel,
            epoch,
            position,
            reason,
        }
    }

    /// Acks messages 1..=n in epoch 7 at positions 1..=n, each delivered to A and B.
    fn clean(n: u64) -> DeliveryChecker {
        let mut c = DeliveryChecker::new();
        for i in 1..=n {
            c.acked(m(i, 7, i), vec![A, B]);
            c.delivered(A, m(i, 7, i));
            c.delivered(B, m(i, 7, i));
        }
        c
    }

    #[test]
    fn a_clean_run_is_clean_and_the_checker_is_send() {
        fn send<T: Send>(_: &T) {}
        let c = clean(3);
        send(&c);
        let report = c.verify();
        assert_eq!((report.acked, report.expected, report.delivered), (3, 6, 6));
        c.assert_clean();
    }

    #[test]
    fn duplicates_and_missing_messages_are_found() {
        let mut c = clean(2);
        c.delivered(B, m(1, 7, 1));
        c.acked(m(3, 7, 3), vec![A, B]);
        c.delivered(A, m(3, 7, 3));
        let v = c.verify().violations;
        let duplicate = Violation::Duplicate { client: B, id: 1 };
        assert_eq!(
            v,
            [
                duplicate,
                Violation::Missing {
                    client: B,
                    acked: m(3, 7, 3)
                }
            ]
        );
    }

    #[test]
    fn positions_must_grow_within_an_epoch() {
        let mut c = DeliveryChecker::new();
        c.acked(m(1, 7, 1), vec![A]);
        c.acked(m(2, 7, 2), vec![A]);
        c.delivered(A, m(2, 7, 2));
        c.delivered(A, m(1, 7, 1));
        let late = Violation::OutOfOrder {
            client: A,
            delivered: m(1, 7, 1),
            after: (7, 2),
        };
        assert_eq!(c.verify().violations, [late]);
    }

    #[test]
    fn a_justified_resync_excuses_the_old_epoch_only() {
        let mut c = clean(2);
        c.acked(m(3, 7, 3), vec![A, B]); // Lost with epoch 7's history before B got it.
        c.delivered(A, m(3, 7, 3));
        c.resync(B, resync(8, 0, "epoch"));
        c.acked(m(4, 8, 1), vec![A, B]);
        c.resync(A, resync(8, 0, "epoch")); // A, connected, is told of the new epoch too.
        c.delivered(A, m(4, 8, 1));
        c.delivered(B, m(4, 8, 1));
        let report = c.verify();
        assert!(report.is_clean(), "{report}");
        assert_eq!((report.expected, report.excused, report.resyncs), (8, 1, 2));

        // A message acked in the new epoch is owed all the same.
        c.acked(m(5, 8, 2), vec![A, B]);
        c.delivered(A, m(5, 8, 2));
        let v = c.verify().violations;
        assert_eq!(
            v,
            [Violation::Missing {
                client: B,
                acked: m(5, 8, 2)
            }]
        );
    }

    #[test]
    fn a_resync_to_no_history_excuses_the_old_epoch_and_lets_any_new_one_begin() {
        let mut c = clean(2);
        c.acked(m(3, 7, 3), vec![A, B]);
        c.delivered(A, m(3, 7, 3));
        // The history is gone and nothing new was sent yet: epoch 0.
        c.resync(B, resync(0, 0, "epoch"));
        c.acked(m(4, 9, 1), vec![A, B]);
        c.resync(A, resync(9, 0, "epoch"));
        c.delivered(A, m(4, 9, 1));
        c.delivered(B, m(4, 9, 1));
        let report = c.verify();
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.excused, 1);
        // Epoch 0 for a client that knew no epoch of the channel proves nothing.
        let mut c = DeliveryChecker::new();
        c.resync(A, resync(0, 0, "epoch"));
        assert!(!c.verify().is_clean());
    }

    #[test]
    fn a_new_epoch_must_be_announced_to_a_client_in_the_old_one() {
        let mut c = clean(2);
        c.acked(m(3, 8, 1), vec![A, B]);
        c.resync(A, resync(8, 0, "epoch"));
        c.delivered(A, m(3, 8, 1));
        c.delivered(B, m(3, 8, 1)); // B was at epoch 7 and was not told.
        let unannounced = Violation::UnannouncedEpoch {
            client: B,
            delivered: m(3, 8, 1),
            had: 7,
        };
        assert_eq!(c.verify().violations, [unannounced]);
        // A client at epoch 0 (no history yet) sees any epoch begin.
        let mut c = DeliveryChecker::new();
        c.went_live(A, "g:10", 0, 0);
        c.acked(m(1, 9, 1), vec![A]);
        c.delivered(A, m(1, 9, 1));
        c.assert_clean();
    }

    #[test]
    fn an_unavailable_resync_excuses_only_what_comes_before_the_next_message() {
        let mut c = clean(2);
        // B resumed at 7.2 while the history could not be read: 3 and 4 were not replayed.
        for i in 3..=6 {
            c.acked(m(i, 7, i), vec![A, B]);
            c.delivered(A, m(i, 7, i));
        }
        c.resync(B, resync(7, 2, "unavailable"));
        c.delivered(B, m(5, 7, 5));
        // 6 is owed: it came after the first message B got once live.
        let report = c.verify();
        assert_eq!(report.excused, 2);
        assert_eq!(
            report.violations,
            [Violation::Missing {
                client: B,
                acked: m(6, 7, 6)
            }]
        );
        // It also announces the epoch it names.
        let mut c = clean(1);
        c.resync(B, resync(9, 0, "unavailable"));
        c.acked(m(2, 9, 1), vec![A, B]);
        c.resync(A, resync(9, 0, "epoch"));
        c.delivered(A, m(2, 9, 1));
        c.delivered(B, m(2, 9, 1));
        c.assert_clean();
    }

    #[test]
    fn only_a_refused_message_may_arrive_without_position() {
        let mut c = clean(1);
        c.refused(Some(40));
        c.delivered_bare(A, 40);
        assert!(c.verify().is_clean());
        c.delivered_bare(A, 40);
        c.acked(m(41, 7, 9), vec![A]);
        c.delivered_bare(A, 41);
        let v = c.verify().violations;
        assert_eq!(
            v,
            [
                Violation::Duplicate { client: A, id: 40 },
                Violation::Unpositioned { client: A, id: 41 }
            ]
        );
    }

    #[test]
    fn after_a_resync_the_old_epoch_and_the_skipped_positions_are_late() {
        let mut c = clean(1);
        c.acked(m(2, 7, 2), vec![A, B]);
        c.acked(m(3, 8, 1), vec![A, B]);
        c.acked(m(4, 8, 2), vec![A, B]);
        c.resync(B, resync(8, 1, "epoch"));
        for d in [m(2, 7, 2), m(3, 8, 1), m(4, 8, 2)] {
            if d.epoch == 8 && d.position == 1 {
                c.resync(A, resync(8, 0, "epoch"));
            }
            c.delivered(A, d.clone());
            c.delivered(B, d);
        }
        let late = |delivered| Violation::OutOfOrder {
            client: B,
            delivered,
            after: (8, 1),
        };
        assert_eq!(c.verify().violations, [late(m(2, 7, 2)), late(m(3, 8, 1))]);
    }

    #[test]
    fn a_resync_without_a_newer_epoch_is_unjustified() {
        let mut c = clean(2);
        c.acked(m(3, 7, 3), vec![A, B]);
        c.delivered(A, m(3, 7, 3));
        c.resync(B, resync(7, 3, "retention"));
        let v = c.verify().violations;
        let resync = resync(7, 3, "retention");
        let unjustified = Violation::UnjustifiedResync {
            client: B,
            resync,
            had: Some(7),
        };
        // It excuses nothing either.
        assert_eq!(
            v,
            [
                unjustified,
                Violation::Missing {
                    client: B,
                    acked: m(3, 7, 3)
                }
            ]
        );

        // A client new to the channel is justified only by an acked message of an older epoch.
        let mut c = DeliveryChecker::new();
        c.resync(A, super::tests::resync(7, 0, "epoch"));
        assert!(matches!(
            c.verify().violations[..],
            [Violation::UnjustifiedResync { .. }]
        ));
        let mut c = clean(1);
        c.resync(ClientKey(3), super::tests::resync(8, 0, "epoch"));
        c.assert_clean();
    }

    #[test]
    fn refused_or_unrecorded_messages_may_arrive_once() {
        let mut c = clean(1);
        c.refused(Some(2));
        c.refused(None);
        c.delivered(A, m(2, 7, 2));
        c.delivered(A, m(9, 7, 3)); // Its ack was never recorded.
        c.acked(m(3, 7, 5), vec![A, B]); // B never got refused 2 or 9 (position 4): no gap.
        c.delivered(A, m(3, 7, 5));
        c.delivered(B, m(3, 7, 5));
        let report = c.verify();
        assert!(report.is_clean(), "{report}");
        assert_eq!((report.refused, report.delivered_unknown), (2, 1));

        c.delivered(A, m(2, 7, 2));
        assert_eq!(
            c.verify().violations,
            [Violation::Duplicate { client: A, id: 2 }]
        );
    }

    #[test]
    fn a_delivery_must_match_its_ack_and_its_recipients() {
        let mut c = clean(1);
        c.acked(m(2, 7, 2), vec![A]);
        c.delivered(A, m(2, 7, 5));
        c.delivered(B, m(2, 7, 2));
        let mismatch = Violation::Mismatch {
            client: A,
            acked: m(2, 7, 2),
            delivered: m(2, 7, 5),
        };
        let unexpected = Violation::Unexpected { client: B, id: 2 };
        assert_eq!(c.verify().violations, [mismatch, unexpected]);
    }

    #[test]
    fn payloads_are_parsed_strictly() {
        let msg = json!({"id": 5, "fromId": 3, "msgType": 1, "target": {"id": "10", "type": 1},
            "content": "hi", "createTime": 1, "channel": "g:10", "epoch": "7", "position": 2});
        assert_eq!(Message::parse(&msg), Ok(m(5, 7, 2)));
        let bare = json!({"id": 5, "content": "hi"});
        assert_eq!(Message::parse(&bare), Err(PayloadError::Unpositioned(5)));
        let mut bad = msg.clone();
        bad["epoch"] = json!(7);
        let err = PayloadError::Malformed("epoch", "7".into());
        assert_eq!(Message::parse(&bad), Err(err));
        bad["epoch"] = json!("7x");
        assert!(Message::parse(&bad).is_err());
        let no_position = json!({"id": 5, "channel": "g:10", "epoch": "7"});
        assert_eq!(
            Message::parse(&no_position),
            Err(PayloadError::Missing("position"))
        );

        let r = json!({"channel": "g:10", "epoch": "8", "position": 0, "reason": "epoch"});
        assert_eq!(Resync::parse(&r), Ok(resync(8, 0, "epoch")));
        let r = json!({"channel": "g:10", "epoch": "8", "position": 0, "reason": "why"});
        assert!(Resync::parse(&r).is_err());
    }

    #[test]
    fn the_report_reads_well() {
        let mut c = clean(1);
        for _ in 0..25 {
            c.delivered(A, m(1, 7, 1));
        }
        let text = c.verify().to_string();
        assert!(
            text.contains("25 violations\n  client 1 got message 1 twice"),
            "{text}"
        );
        assert!(text.ends_with("… and 5 more"), "{text}");
    }
}
