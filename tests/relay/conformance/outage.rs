//! `outage`: the transport dies and comes back, and nobody calls the relay to help. While it is
//! down a publish fails with [`RelayError::Unavailable`] (what the socket.io sender answers
//! with code 1001); once it is back, publishing resumes after the settle time and both spears'
//! subscriptions are in place again. Every message the relay took is delivered exactly once;
//! the publish errors counted are the ones the test saw.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gru::services::channel::Channel;

use super::spear::Received;
use super::{Harness, RelayError, TestSpear};

const USER_A: u64 = 6_001;
const USER_B: u64 = 6_002;
const GROUP: u64 = 6_010;
/// How long the transport may take to be noticed down, and to be usable again.
const DOWN_DEADLINE: Duration = Duration::from_secs(10);
const BACK_DEADLINE: Duration = Duration::from_secs(30);
const AFTER: u64 = 20;
const WARMUP: u64 = 5;

/// What one spear's publishes came to.
#[derive(Default)]
struct Tally {
    next: u64,
    /// Sequence numbers the relay took.
    taken: BTreeSet<u64>,
    /// Ones that timed out (may have been relayed all the same).
    unsure: BTreeSet<u64>,
    errors: u64,
}

impl Tally {
    async fn publish(&mut self, spear: &TestSpear, channel: Channel) -> Result<(), RelayError> {
        let seq = self.next;
        self.next += 1;
        let outcome = spear.publish(channel, seq).await;
        match &outcome {
            Ok(()) => {
                self.taken.insert(seq);
            }
            Err(e) => {
                self.errors += 1;
                if matches!(e, RelayError::Timeout { .. }) {
                    self.unsure.insert(seq);
                }
            }
        }
        outcome
    }

    /// Publishes until the relay takes one again (the transport is back and settled); returns
    /// the refusals, which must say the transport is down or settling.
    async fn until_taken(&mut self, spear: &TestSpear, channel: Channel) -> Vec<RelayError> {
        let start = Instant::now();
        let mut refusals = Vec::new();
        while let Err(e) = self.publish(spear, channel).await {
            assert!(
                matches!(
                    e,
                    RelayError::Unavailable { .. }
                        | RelayError::Settling { .. }
                        | RelayError::Timeout { .. }
                ),
                "spear {}, coming back: {e}",
                spear.id
            );
            refusals.push(e);
            assert!(
                start.elapsed() < BACK_DEADLINE,
                "spear {}: never taken again: {refusals:?}",
                spear.id
            );
            // Pace of the publishes within the deadline (each one is tallied: no closure).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        refusals
    }
}

pub async fn check<H: Harness>(h: &mut H) {
    let mut a = h.spear(61).await;
    let mut b = h.spear(62).await;
    a.bind(1, USER_A).await;
    b.bind(1, USER_B).await;
    b.join(1, GROUP).await;
    for seq in 0..WARMUP {
        a.publish_ok(Channel::User(USER_B), seq).await;
    }
    b.receive(WARMUP as usize).await;
    let mut to_b = Tally {
        next: WARMUP,
        ..Tally::default()
    };

    h.kill();
    let down = Instant::now();
    loop {
        match to_b.publish(&a, Channel::User(USER_B)).await {
            Err(RelayError::Unavailable { .. }) => break,
            // The publish that meets the dead connection may wait for it instead.
            Ok(()) | Err(RelayError::Timeout { .. }) => {}
            Err(e) => panic!("while the transport is down: {e}"),
        }
        assert!(down.elapsed() < DOWN_DEADLINE, "no error while down");
        // Pace of the publishes within the deadline (each one is tallied: no closure).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        let e = to_b.publish(&a, Channel::User(USER_B)).await;
        assert!(
            matches!(e, Err(RelayError::Unavailable { .. })),
            "still down: {e:?}"
        );
    }
    assert!(!a.report().connected, "{:?}", a.report());

    h.restart();
    let back = Instant::now();
    let mut to_a = Tally::default();
    let refusals_a = to_b.until_taken(&a, Channel::User(USER_B)).await;
    let refusals_b = to_a.until_taken(&b, Channel::User(USER_A)).await;
    eprintln!(
        "publishing resumed {:?} after the restart; refusals meanwhile: {} and {} ({})",
        back.elapsed(),
        refusals_a.len(),
        refusals_b.len(),
        refusals_a
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
    );

    // Both spears' subscriptions came back by themselves: a user's and a group's on b, a
    // user's on a.
    let mut group = Tally::default();
    for _ in 0..AFTER {
        to_b.publish(&a, Channel::User(USER_B)).await.expect("back");
        group
            .publish(&a, Channel::Group(GROUP))
            .await
            .expect("back");
        to_a.publish(&b, Channel::User(USER_A)).await.expect("back");
    }
    let on_b = [
        (Channel::User(USER_B), &to_b),
        (Channel::Group(GROUP), &group),
    ];
    delivered_once(&mut b, &on_b).await;
    delivered_once(&mut a, &[(Channel::User(USER_A), &to_a)]).await;
    assert!(b.quiet().await.is_empty() && a.ready().is_empty());

    let ra = a.report();
    assert_eq!(ra.publish_errors, to_b.errors + group.errors, "{ra:?}");
    assert_eq!(
        ra.published,
        WARMUP + (to_b.taken.len() + group.taken.len()) as u64,
        "{ra:?}"
    );
    let rb = b.report();
    assert_eq!(rb.publish_errors, to_a.errors, "{rb:?}");
    assert_eq!(rb.published, to_a.taken.len() as u64, "{rb:?}");
    for r in [&ra, &rb] {
        assert!(r.connected && r.outages >= 1, "{r:?}");
    }
}

/// Collects `spear`'s deliveries until every message each tally saw taken arrived for its
/// channel; none may arrive twice, nor one the relay refused.
async fn delivered_once(spear: &mut TestSpear, expected: &[(Channel, &Tally)]) {
    let mut seen: Vec<Received> = Vec::new();
    let complete = |seen: &[Received]| {
        expected.iter().all(|(channel, tally)| {
            tally
                .taken
                .iter()
                .all(|s| seen.iter().any(|r| r.channel == *channel && r.seq == *s))
        })
    };
    while !complete(&seen) {
        // `receive` fails the test if the next delivery does not come in time.
        seen.extend(spear.receive(1).await);
    }
    for (channel, tally) in expected {
        let seqs: Vec<u64> = seen
            .iter()
            .filter(|r| r.channel == *channel)
            .map(|r| r.seq)
            .collect();
        let unique: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seqs.len(),
            "{channel:?}: delivered twice: {seqs:?}"
        );
        let refused: Vec<&u64> = unique
            .iter()
            .filter(|s| !tally.taken.contains(s) && !tally.unsure.contains(s))
            .collect();
        assert!(
            refused.is_empty(),
            "{channel:?}: refused but delivered: {refused:?}"
        );
    }
    let others: Vec<&Received> = seen
        .iter()
        .filter(|r| expected.iter().all(|(a, _)| *a != r.channel))
        .collect();
    assert!(others.is_empty(), "deliveries for nobody here: {others:?}");
}
