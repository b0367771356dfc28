//! `order`: many messages to one user and to one group arrive in the order they were published
//! (each publish awaited before the next, as one connection's messages are).

use gru::services::channel::Channel;

use super::Harness;

const USER: u64 = 1_001;
const MEMBER: u64 = 1_002;
const GROUP: u64 = 1_003;
const MESSAGES: u64 = 300;

pub async fn check<H: Harness>(h: &mut H) {
    let publisher = h.spear(11).await;
    let mut receiver = h.spear(12).await;
    receiver.bind(1, USER).await;
    receiver.bind(2, MEMBER).await;
    receiver.join(2, GROUP).await;

    for seq in 0..MESSAGES {
        publisher.publish_ok(Channel::User(USER), seq).await;
        publisher.publish_ok(Channel::Group(GROUP), seq).await;
    }
    let got = receiver.receive(2 * MESSAGES as usize).await;
    for channel in [Channel::User(USER), Channel::Group(GROUP)] {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|r| r.channel == channel)
            .map(|r| r.seq)
            .collect();
        let expected: Vec<u64> = (0..MESSAGES).collect();
        assert_eq!(seqs, expected, "{channel:?}: out of order or missing");
    }
    assert!(got.iter().all(|r| r.from == publisher.id), "{got:?}");
    assert!(receiver.quiet().await.is_empty(), "nothing more arrives");

    let r = receiver.report();
    assert_eq!(
        (r.received, r.echoes, r.dropped),
        (2 * MESSAGES, 0, 0),
        "{r:?}"
    );
    let p = publisher.report();
    assert_eq!((p.published, p.publish_errors), (2 * MESSAGES, 0), "{p:?}");
}
