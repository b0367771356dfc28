//! `counters`: the report adds up to what the test did. Spear 51 has user 8 and a group
//! member, spear 52 user 7 and a group member; 51 sends 15 messages to user 7 and 10 to the
//! group, 52 sends 5 to the group. Every count is then exact: published, publish errors,
//! received (own echoes included), echoes, dropped, deliveries and channels.

use gru::services::channel::Channel;
use gru::services::relay::RelayReport;

use super::Harness;

const USER_A: u64 = 5_008;
const USER_B: u64 = 5_007;
const GROUP: u64 = 5_010;
const A_TO_USER: u64 = 15;
const A_TO_GROUP: u64 = 10;
const B_TO_GROUP: u64 = 5;

pub async fn check<H: Harness>(h: &mut H) {
    let caps = h.caps();
    let echoes = |n| caps.echoes(n);
    let mut a = h.spear(51).await;
    a.bind(1, USER_A).await;
    a.join(1, GROUP).await;
    let mut b = h.spear(52).await;
    b.bind(1, USER_B).await;
    b.join(1, GROUP).await;

    for seq in 0..A_TO_USER {
        a.publish_ok(Channel::User(USER_B), seq).await;
    }
    for seq in 0..A_TO_GROUP {
        a.publish_ok(Channel::Group(GROUP), seq).await;
    }
    let kind = h.kind();
    let expect = |published, received, echoes, channels| RelayReport {
        kind,
        connected: true,
        outages: 0,
        published,
        publish_errors: 0,
        with_history: 0,
        received,
        echoes,
        dropped: 0,
        slow_clients: 0,
        channels,
        // RocketMQ sends a copy per spear of the route: here every channel has one other.
        copies: (kind == "rocketmq").then_some(published),
    };

    for seq in 0..B_TO_GROUP {
        b.publish_ok(Channel::Group(GROUP), seq).await;
    }
    let to_b = b.receive((A_TO_USER + A_TO_GROUP) as usize).await;
    let to_a = a.receive(B_TO_GROUP as usize).await;
    assert!(to_b.iter().all(|r| r.from == a.id), "{to_b:?}");
    assert!(to_a.iter().all(|r| r.from == b.id), "{to_a:?}");
    a.wait_report("a's echoes", |r| r.echoes == echoes(A_TO_GROUP))
        .await;
    b.wait_report("b's echoes", |r| r.echoes == echoes(B_TO_GROUP))
        .await;
    assert!(
        a.quiet().await.is_empty() && b.ready().is_empty(),
        "nothing more arrives"
    );
    assert_eq!(
        a.report(),
        expect(
            A_TO_USER + A_TO_GROUP,
            B_TO_GROUP + echoes(A_TO_GROUP),
            echoes(A_TO_GROUP),
            2
        )
    );
    assert_eq!(
        b.report(),
        expect(
            B_TO_GROUP,
            A_TO_USER + A_TO_GROUP + echoes(B_TO_GROUP),
            echoes(B_TO_GROUP),
            2
        )
    );
}
