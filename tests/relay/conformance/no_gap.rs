//! `no_gap`: a subscription is in place once the roster change's confirmation resolves, which
//! is when a spear answers the `auth` or `join` that needed it. So a message published from
//! another spear right after that answer is delivered, every time.

use gru::services::channel::Channel;

use super::Harness;

const USERS: u64 = 3_000;
const GROUPS: u64 = 3_500;
const TRIES: u64 = 40;

pub async fn check<H: Harness>(h: &mut H) {
    let mut here = h.spear(31).await;
    let sender = h.spear(32).await;
    for i in 0..TRIES {
        let conn = u32::try_from(i).expect("small");
        let (uid, gid) = (USERS + i, GROUPS + i);
        here.bind(conn, uid).await;
        sender.publish_ok(Channel::User(uid), i).await;
        let got = here.receive(1).await;
        assert_eq!(got[0].channel, Channel::User(uid), "auth #{i}: {got:?}");
        here.join(conn, gid).await;
        sender.publish_ok(Channel::Group(gid), i).await;
        let got = here.receive(1).await;
        assert_eq!(got[0].channel, Channel::Group(gid), "join #{i}: {got:?}");
    }
    assert!(here.quiet().await.is_empty());
    assert_eq!(here.report().channels, 2 * TRIES, "{:?}", here.report());
}
