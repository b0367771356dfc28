//! `targeting`: a spear receives only the channels it has recipients for. Spear 22 has user
//! 2, spear 23 user 3 and a member of the group; spear 21 publishes to user 1 (on no spear),
//! user 2 and the group, and receives nothing itself. When the last recipient leaves, its
//! channel stops arriving: a later subscription confirmed on the same spear proves the
//! unsubscribe went out first (one ordered task applies them).

use gru::services::channel::Channel;

use super::Harness;

const NOBODY: u64 = 2_001;
const USER_B: u64 = 2_002;
const USER_C: u64 = 2_003;
const LATER_B: u64 = 2_004;
const LATER_C: u64 = 2_005;
const GROUP: u64 = 2_010;
const ROUNDS: u64 = 25;

pub async fn check<H: Harness>(h: &mut H) {
    let mut a = h.spear(21).await;
    let mut b = h.spear(22).await;
    let mut c = h.spear(23).await;
    b.bind(1, USER_B).await;
    c.bind(1, USER_C).await;
    c.join(1, GROUP).await;

    for seq in 0..ROUNDS {
        a.publish_ok(Channel::User(NOBODY), seq).await;
        a.publish_ok(Channel::User(USER_B), seq).await;
        a.publish_ok(Channel::Group(GROUP), seq).await;
    }
    let got_b = b.receive(ROUNDS as usize).await;
    let got_c = c.receive(ROUNDS as usize).await;
    assert!(
        got_b.iter().all(|r| r.channel == Channel::User(USER_B)),
        "spear b: {got_b:?}"
    );
    assert!(
        got_c.iter().all(|r| r.channel == Channel::Group(GROUP)),
        "spear c: {got_c:?}"
    );
    assert!(b.quiet().await.is_empty(), "spear b gets its user only");
    assert!(c.quiet().await.is_empty(), "spear c gets its group only");
    assert!(a.ready().is_empty(), "the publisher has no recipient");
    assert_eq!(a.report().received, 0, "the publisher received nothing");
    assert_eq!(b.report().received, ROUNDS, "{:?}", b.report());
    assert_eq!(c.report().received, ROUNDS, "{:?}", c.report());
    assert_eq!((b.report().channels, c.report().channels), (1, 2));

    // User 2 disconnects from spear b, the group's member leaves on spear c; then each gets a
    // new recipient, whose confirmed subscription comes after the unsubscribe.
    b.disconnect(1);
    c.leave(1, GROUP);
    b.bind(2, LATER_B).await;
    c.bind(2, LATER_C).await;
    for seq in ROUNDS..2 * ROUNDS {
        a.publish_ok(Channel::User(USER_B), seq).await;
        a.publish_ok(Channel::Group(GROUP), seq).await;
    }
    a.publish_ok(Channel::User(LATER_B), 0).await;
    a.publish_ok(Channel::User(LATER_C), 0).await;
    let late_b = b.receive(1).await;
    let late_c = c.receive(1).await;
    assert_eq!(late_b[0].channel, Channel::User(LATER_B), "{late_b:?}");
    assert_eq!(late_c[0].channel, Channel::User(LATER_C), "{late_c:?}");
    assert!(b.quiet().await.is_empty(), "user 2 left spear b");
    assert!(c.quiet().await.is_empty(), "the group left spear c");
    assert_eq!(b.report().received, ROUNDS + 1, "{:?}", b.report());
    assert_eq!(c.report().received, ROUNDS + 1, "{:?}", c.report());
    assert_eq!((b.report().channels, c.report().channels), (1, 2));
}
