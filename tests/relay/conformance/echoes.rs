//! `echoes`: a spear delivers its own messages itself, so the relay must never hand them to it
//! again. Spear 41 has user 4 and a member of the group, spear 42 has user 4 too. What 41
//! publishes reaches 42 once and comes back to 41 only as counted, skipped echoes; the same
//! holds the other way round.

use gru::services::channel::Channel;

use super::Harness;

const USER: u64 = 4_001;
const GROUP: u64 = 4_010;
const MESSAGES: u64 = 20;

pub async fn check<H: Harness>(h: &mut H) {
    let caps = h.caps();
    let echoes = |n| caps.echoes(n);
    let mut a = h.spear(41).await;
    a.bind(1, USER).await;
    a.join(1, GROUP).await;
    let mut b = h.spear(42).await;
    b.bind(1, USER).await;

    for seq in 0..MESSAGES {
        a.publish_ok(Channel::User(USER), seq).await;
        a.publish_ok(Channel::Group(GROUP), seq).await;
    }
    let got = b.receive(MESSAGES as usize).await;
    assert!(
        got.iter()
            .all(|r| r.channel == Channel::User(USER) && r.from == a.id),
        "{got:?}"
    );
    // A backend that broadcasts on a channel hears its own messages there.
    a.wait_report("every echo counted", |r| r.echoes == echoes(2 * MESSAGES))
        .await;
    let own = a.ready();
    assert!(own.is_empty(), "spear a got its own messages back: {own:?}");
    assert!(a.quiet().await.is_empty(), "nor later");
    let r = a.report();
    assert_eq!(
        r.received, r.echoes,
        "everything a received was an echo: {r:?}"
    );
    assert_eq!(r.dropped, 0, "{r:?}");

    // The other way: b's messages reach a, b skips its echoes.
    for seq in 0..MESSAGES {
        b.publish_ok(Channel::User(USER), seq).await;
    }
    let got = a.receive(MESSAGES as usize).await;
    assert!(got.iter().all(|r| r.from == b.id), "{got:?}");
    b.wait_report("b's echoes counted", |r| r.echoes == echoes(MESSAGES))
        .await;
    assert!(b.quiet().await.is_empty(), "b got its own messages back");
    assert_eq!(
        b.report().received,
        MESSAGES + echoes(MESSAGES),
        "{:?}",
        b.report()
    );
    assert_eq!(a.report().echoes, echoes(2 * MESSAGES), "{:?}", a.report());
}
