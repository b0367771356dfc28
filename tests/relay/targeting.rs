//! `relay_targeting`: a message costs only the spears that have recipients for it. Three
//! spears; group 20 has members on spear 1 only. Group messages from spear 1 and from spear 3
//! (which has no member) and unicasts to a user on spear 1 reach spear 1 alone: the relayed
//! message counters of spears 2 and 3 stay at zero. Then a member joins on spear 2, which from
//! then on receives each group message once.

use std::time::Duration;

use crate::harness::{connect, drain, relay_counter, send, spear_cluster};
use gru_testkit::ClusterOptions;

const ROUNDS: usize = 25;
const QUIET: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_targeting() {
    let cluster = spear_cluster(&[1, 2, 3], ClusterOptions::default()).await;
    let mut m1 = connect(&cluster, 1, 201).await;
    let mut m2 = connect(&cluster, 1, 202).await;
    m1.join(20).await;
    m2.join(20).await;
    let outsider2 = connect(&cluster, 2, 203).await;
    let outsider3 = connect(&cluster, 3, 204).await;

    for i in 0..ROUNDS {
        for (sender, kind, target) in [(&m1, 1, 20), (&outsider3, 1, 20), (&outsider2, 0, 202)] {
            let ack = send(sender, kind, target, &format!("m{i}")).await;
            assert_eq!(ack["success"], true, "{ack}");
        }
    }
    let got1 = drain(&mut m1, QUIET).await;
    let got2 = drain(&mut m2, QUIET).await;
    assert_eq!(
        got1.len(),
        2 * ROUNDS,
        "member 201: two group messages a round"
    );
    assert_eq!(
        got2.len(),
        3 * ROUNDS,
        "member 202: two group messages and a unicast a round"
    );

    let received = |node| relay_counter(&cluster, node, "received");
    let echoes = |node| relay_counter(&cluster, node, "echoes");
    let r = [received(1).await, received(2).await, received(3).await];
    eprintln!("relayed messages received per spear: {r:?}");
    // Spear 1: the group messages of spear 3 and the unicasts of spear 2, plus the echoes of
    // its own group messages (it is subscribed to the group it published on).
    assert_eq!(r[0], 3 * ROUNDS as u64, "spear 1");
    assert_eq!(
        echoes(1).await,
        ROUNDS as u64,
        "spear 1 skips its own echoes"
    );
    assert_eq!(r[1], 0, "spear 2 has no recipient: it received nothing");
    assert_eq!(r[2], 0, "spear 3 has no recipient: it received nothing");

    // A member on spear 2 makes spear 2 a recipient of the group, once per message.
    let mut m3 = connect(&cluster, 2, 205).await;
    m3.join(20).await;
    for i in 0..ROUNDS {
        let ack = send(&m1, 1, 20, &format!("late{i}")).await;
        assert_eq!(ack["success"], true, "{ack}");
    }
    assert_eq!(
        drain(&mut m3, QUIET).await.len(),
        ROUNDS,
        "the new member gets each message once"
    );
    assert_eq!(
        received(2).await,
        ROUNDS as u64,
        "spear 2 now receives the group"
    );
    assert_eq!(received(3).await, 0, "spear 3 still receives nothing");
    drop(outsider2);
}
