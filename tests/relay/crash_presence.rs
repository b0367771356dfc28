//! `spear_crash_presence`: kill -9 a spear. Its users vanish from `online` and `/getGroupStat`
//! within the presence TTL (10 s by default: readers ignore a spear whose heartbeat key
//! expired), and a surviving spear then removes its entries through its index.

use std::time::{Duration, Instant};

use crate::harness::{connect, get_json, online_event, spear_cluster, wait_group_stat, STAT};
use gru_testkit::{wait_for, ClusterOptions};

/// `stat.presence_ttl_ms`'s default.
const TTL: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_crash_presence() {
    let mut cluster = spear_cluster(&[1, 3], ClusterOptions::default()).await;
    let survivor = connect(&cluster, 1, 301).await;
    let doomed = connect(&cluster, 3, 303).await;
    survivor.join(40).await;
    doomed.join(40).await;
    wait_group_stat(&cluster, 40, &[301, 303], Duration::from_secs(10)).await;

    cluster.kill(3);
    let killed = Instant::now();
    drop(doomed);
    wait_group_stat(&cluster, 40, &[301], TTL + Duration::from_secs(5)).await;
    let gone_after = killed.elapsed();
    eprintln!("the killed spear's users left /getGroupStat after {gone_after:?}");
    assert!(
        gone_after <= TTL + Duration::from_secs(1),
        "gone after {gone_after:?}, TTL {TTL:?}"
    );
    assert_eq!(online_event(&survivor, 40).await, [301]);
    let (_, user) = get_json(&cluster, STAT, "/api/v1/users/303")
        .await
        .expect("api");
    assert_eq!(user["online"], false, "{user}");

    // The entries themselves are removed (targeted, through the dead spear's index).
    let redis = cluster.redis().expect("the harness's Redis");
    wait_for(
        "the dead spear's keys to be removed",
        Duration::from_secs(15),
        || async {
            let left = redis.cmd(&[
                "EXISTS",
                "gru:gru-test:{s:3}:users",
                "gru:gru-test:{u:303}",
                "gru:gru-test:{g:40}:3",
            ])?;
            (left.trim() == "0").then_some(())
        },
    )
    .await;
    let members = redis
        .cmd(&["SMEMBERS", "gru:gru-test:{g:40}"])
        .unwrap_or_default();
    assert_eq!(
        members.trim(),
        "1",
        "only spear 1 is left in group 40's spears"
    );
}
