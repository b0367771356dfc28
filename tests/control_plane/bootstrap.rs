//! `bootstrap_three`: three core processes from one config form one group, exactly one of
//! them initializes it, and all agree on leader and term within 5 s.

use std::time::{Duration, Instant};

use gru_testkit::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_three() {
    let mut cluster = TestCluster::builder().cores(&[1, 2, 3]).build();
    let started = Instant::now();
    cluster.start_all();
    let (leader, term) = cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(5),
        "agreement took {took:?}, more than 5 s"
    );

    let views = cluster.views(&[1, 2, 3]).await;
    let leaders: Vec<u64> = views[&leader]
        .nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.server_state == "Leader")
        })
        .map(|n| n.id)
        .collect();
    assert_eq!(
        leaders,
        vec![leader],
        "exactly one node is in the Leader state"
    );
    for view in views.values() {
        assert_eq!(view.voters, vec![1, 2, 3]);
        assert_eq!((view.leader_id, view.term), (Some(leader), term));
    }
    let initializers: Vec<u64> = [1, 2, 3]
        .into_iter()
        .filter(|id| cluster.log(*id).contains("initialized the Raft group"))
        .collect();
    assert_eq!(
        initializers,
        vec![1],
        "only the lowest initial voter initializes"
    );

    // A restart of the whole group never re-initializes: the same voters, a higher term.
    for id in [1, 2, 3] {
        assert!(cluster.stop(id), "node {id} exits cleanly on SIGTERM");
    }
    for id in [1, 2, 3] {
        cluster.restart(id);
    }
    let (new_leader, new_term) = cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await;
    // openraft lets a leader whose committed vote survived the restart lead on in its term.
    assert!(
        new_term >= term,
        "the restarted group continues the old one (term {new_term} >= {term})"
    );
    let view = cluster.view(new_leader).await.expect("leader answers");
    assert_eq!(view.voters, vec![1, 2, 3]);
    for id in [1, 2, 3] {
        let count = cluster
            .log(id)
            .matches("initialized the Raft group")
            .count();
        assert_eq!(
            count,
            usize::from(id == 1),
            "node {id} initialized {count} times"
        );
        assert!(
            cluster.log(id).contains("Raft state found on disk"),
            "node {id} reloaded its state"
        );
    }
}
