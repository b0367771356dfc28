//! `relay_redis_cluster`: the cross-node journey against a 3-master Redis Cluster, where the
//! relay uses sharded pub/sub (`SPUBLISH` / `SSUBSCRIBE`) and presence keys spread over the
//! shards by hash tag.

use crate::cross_node::journey;
use crate::harness::{connect, spear_cluster};
use gru_testkit::redis::RedisCluster;
use gru_testkit::{ClusterOptions, RedisTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_redis_cluster() {
    let redis = RedisCluster::start(3);
    let options = ClusterOptions {
        redis: Some(RedisTarget::Cluster(redis.seed_url())),
        ..ClusterOptions::default()
    };
    let cluster = spear_cluster(&[1, 2], options).await;
    journey(&cluster).await;
    // The history's script published the journey's messages itself (SPUBLISH in the slot of
    // the channel's keys): one round trip each.
    let mut with_history = 0;
    for spear in [1, 2] {
        let relay: serde_json::Value = cluster
            .get(spear, "/api/v1/relay")
            .await
            .expect("the spear answers")
            .json()
            .await
            .expect("JSON");
        with_history += relay["with_history"].as_u64().unwrap_or(0);
    }
    assert!(
        with_history > 0,
        "no message published by the history's script"
    );
    // The spears hold sharded subscriptions on the cluster's masters: a user's channel and a
    // group's, confirmed before the join is acknowledged.
    let client = connect(&cluster, 2, 999).await;
    client.join(77).await;
    let shard_channels: usize = redis
        .ports()
        .iter()
        .filter_map(|p| {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &p.to_string(), "PUBSUB", "SHARDCHANNELS", "gru:*"])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            Some(text.lines().filter(|l| !l.is_empty()).count())
        })
        .sum();
    assert!(
        shard_channels >= 2,
        "{shard_channels} sharded channels subscribed"
    );
    let spread = redis
        .ports()
        .iter()
        .filter(|p| {
            std::process::Command::new("redis-cli")
                .args(["-p", &p.to_string(), "DBSIZE"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
                .unwrap_or(false)
        })
        .count();
    assert!(spread >= 2, "presence keys live on {spread} of 3 shards");
}
