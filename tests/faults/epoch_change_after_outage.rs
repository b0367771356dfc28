//! `epoch_change_after_outage_resync`: a client that resumes while Redis (the history) is down
//! is told `resync` `unavailable` at the place it presented and goes live; when Redis comes
//! back empty, its channel's messages start a new epoch, and the client must hear of it — a
//! `resync` `epoch` before the first message of the new epoch — never see the epoch change
//! silently. One client resumes through Gru's `auth` event, one in the handshake.

use std::time::{Duration, Instant};

use crate::fleet::{self, Client, Membership, Sent};
use crate::scenario::three_spears;
use gru_testkit::delivery::{ClientKey, DeliveryChecker};
use gru_testkit::tokens::spear_token;
use gru_testkit::{wait_for, ClusterOptions};

/// User 1 resumes with the `auth` event, user 2 in the handshake (see `Client::in_handshake`);
/// user 3 sends to both from another spear.
const RESUMING: [u64; 2] = [1, 2];
const SENDER: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_change_after_outage_resync() {
    let mut cluster = three_spears(ClusterOptions::default()).await;
    let checker = fleet::Checker::default();
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = |uid| spear_token(uid, vec![1, 2, 3], exp);
    let mut clients: Vec<Client> = Vec::new();
    for (uid, spear) in [(1, 1), (2, 1), (SENDER, 2)] {
        let mut c = Client::new(uid, 3000 + uid);
        c.connect(spear, &cluster.sio_addr(spear), &token(uid), &checker)
            .await
            .unwrap_or_else(|e| panic!("user {uid}: {e}"));
        clients.push(c);
    }
    assert!(!clients[0].in_handshake() && clients[1].in_handshake());
    let members = Membership::of(&clients);
    let sender = clients[2].conn().expect("the sender is connected");
    for round in 1..=3 {
        for uid in RESUMING {
            let sent = fleet::send(
                &sender,
                (0, uid),
                &format!("before-{round}"),
                &members,
                &checker,
            )
            .await;
            assert!(
                matches!(sent, Sent::Acked(_)),
                "before the outage: {sent:?}"
            );
        }
    }
    fleet::settle(
        &checker,
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .await;
    for c in &mut clients[..2] {
        assert_eq!(
            c.positions().len(),
            2,
            "user {}: {:?}",
            c.uid,
            c.positions()
        );
        c.disconnect().await;
    }

    // Redis dies; both come back to spear 1 presenting their positions.
    cluster.redis().expect("the cluster's Redis").kill();
    for c in &mut clients[..2] {
        let uid = c.uid;
        c.connect(1, &cluster.sio_addr(1), &token(uid), &checker)
            .await
            .unwrap_or_else(|e| panic!("user {uid} resuming while Redis is down: {e}"));
    }
    for uid in RESUMING {
        let story = checker
            .lock()
            .expect("checker")
            .story(ClientKey(uid), &format!("u:{uid}"));
        assert!(
            story.iter().any(|line| line.contains("(unavailable)")),
            "user {uid} was not told that its backlog could not be read: {story:?}"
        );
    }

    // Redis comes back empty: the next message of each channel starts a new epoch.
    cluster.redis().expect("the cluster's Redis").restart();
    let back = Instant::now();
    for uid in RESUMING {
        wait_for(
            &format!("a message to user {uid} acknowledged after Redis came back"),
            Duration::from_secs(30).saturating_sub(back.elapsed()),
            || async {
                let sent = fleet::send(&sender, (0, uid), "after", &members, &checker).await;
                matches!(sent, Sent::Acked(_)).then_some(())
            },
        )
        .await;
    }
    fleet::settle(
        &checker,
        Duration::from_millis(500),
        Duration::from_secs(10),
    )
    .await;

    let checker = checker.lock().expect("checker");
    for uid in RESUMING {
        let story = checker.story(ClientKey(uid), &format!("u:{uid}"));
        let told = story.iter().position(|l| l.contains("(epoch)"));
        let last = story.len().saturating_sub(1);
        assert!(
            told.is_some_and(|t| t < last),
            "user {uid} got its channel's new epoch without a resync before it: {story:?}"
        );
    }
    let report: gru_testkit::delivery::CheckReport = DeliveryChecker::verify(&checker);
    eprintln!("epoch_change_after_outage_resync: {report}");
    assert!(report.is_clean(), "{report}\n{}", checker.stories(&report));
}
