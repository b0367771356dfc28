//! `config_errors`: a bad config is refused before anything starts, with a non-zero exit and
//! an error naming the field.

use std::process::Command;

const GOOD_NODE: &str = r#"
[[nodes]]
id = 1
roles = ["core"]
data_dir = "data1"
[nodes.listen]
grpc = "127.0.0.1:17101"
http = "127.0.0.1:18101"
gossip = "127.0.0.1:17201"
"#;

fn second_node(id: u64, http_port: u16) -> String {
    format!(
        r#"
[[nodes]]
id = {id}
roles = ["core"]
data_dir = "data2"
[nodes.listen]
grpc = "127.0.0.1:17102"
http = "127.0.0.1:{http_port}"
gossip = "127.0.0.1:17202"
"#
    )
}

const AUTH: &str = r#"
[auth]
business_secret = "test-business-secret-0123456789"
spear_secret = "test-spear-secret-abcdefghijkl"
"#;

fn refuse(name: &str, config: &str, must_mention: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_gru"))
        .args(["run", "--config"])
        .arg(&path)
        .args(["--node", "1"])
        .output()
        .expect("run gru");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name}: the config was accepted");
    for needle in must_mention {
        assert!(
            stderr.contains(needle),
            "{name}: error does not mention {needle:?}:\n{stderr}"
        );
    }
    assert!(
        !dir.path().join("data1").exists(),
        "{name}: nothing may start before validation"
    );
}

#[test]
fn config_errors() {
    refuse(
        "duplicate ids",
        &format!("{AUTH}{GOOD_NODE}{}", second_node(1, 18102)),
        &["nodes[1].id"],
    );
    refuse(
        "two nodes on one port",
        &format!("{AUTH}{GOOD_NODE}{}", second_node(2, 18101)),
        &["nodes[1].listen.http", "nodes[0].listen.http"],
    );
    refuse(
        "no core node",
        &format!("{AUTH}{}", GOOD_NODE.replace("\"core\"", "\"ticket\"")),
        &["nodes", "core"],
    );
    refuse(
        "unknown role",
        &format!(
            "{AUTH}{}",
            GOOD_NODE.replace("\"core\"", "\"core\", \"spearr\"")
        ),
        &["roles", "spearr"],
    );
    refuse(
        "malformed file",
        &format!("{AUTH}{GOOD_NODE}\n[[nodes]\nid = "),
        &["line"],
    );
    if cfg!(feature = "rocketmq") {
        refuse(
            "a RocketMQ name server that is not host:port",
            &format!(
                "{AUTH}{GOOD_NODE}\n[relay]\nkind = \"rocketmq\"\n\
                 [rocketmq]\nname_server = \"127.0.0.1:9876;nameserver\"\n"
            ),
            &["rocketmq.name_server", "\"nameserver\"", "host:port"],
        );
    } else {
        refuse(
            "a relay this build does not have",
            &format!("{AUTH}{GOOD_NODE}\n[relay]\nkind = \"rocketmq\"\n"),
            &["relay.kind", "rocketmq", "not built", "--features rocketmq"],
        );
    }
    refuse(
        "unknown node id",
        &format!("{AUTH}{}", GOOD_NODE.replace("id = 1", "id = 7")),
        &["node 1"],
    );
}
