//! `gru_dev_operator`: the operator's commands against `gru dev` with `--addr` alone (its
//! admin key is the default): `status` with the address as `host:port` or an `http://` URL,
//! `meta` and `cluster` with the address before or after their action, and `drain`, which
//! finds the spear's admin surface in the registry when no config names it. `gru dev` is
//! started with `--http localhost:PORT`, a name to resolve.

use std::time::Duration;

use gru_testkit::ports::free_port;
use gru_testkit::{wait_for, KillOnDrop};

use crate::run_gru;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gru_dev_operator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http = free_port();
    let data = dir.path().join("data");
    let mut cmd = crate::gru().dev(&data, &format!("localhost:{http}"), free_port());
    let log = dir.path().join("dev.log");
    let mut dev = KillOnDrop::spawn("gru dev", &mut cmd, &log).expect("spawn gru dev");
    let bare = format!("127.0.0.1:{http}");
    let url = format!("http://{bare}");

    // The spear registers itself in its first second or so; status waits for it.
    let out = wait_for(
        "gru status to show the spear",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let (ok, out, _) = run_gru(&["status", "--addr", &url]).await;
                (ok && out.contains("spears:\n")).then_some(out)
            }
        },
    )
    .await;
    assert!(out.contains("leader 1;"), "{out}");
    for addr in [bare.clone(), format!("{url}/"), format!("HTTP://{bare}")] {
        let (ok, out, err) = run_gru(&["status", "--addr", &addr]).await;
        assert!(ok, "gru status --addr {addr}:\n{out}\n{err}");
    }

    let (ok, out, err) = run_gru(&["meta", "put", "colour", "blue", "--addr", &url]).await;
    assert!(ok && out.trim() == "ok", "gru meta put:\n{out}\n{err}");
    let (ok, out, err) = run_gru(&["meta", "--addr", &bare, "get", "colour"]).await;
    assert!(ok, "gru meta get:\n{err}");
    assert_eq!(out.trim(), "colour\tblue");

    // Removing a node that is no member is harmless; removing the only voter is refused by
    // the node (the command reached it with its key).
    let (ok, out, err) = run_gru(&["cluster", "remove", "--node", "9", "--addr", &url]).await;
    assert!(ok && out.contains("node 9 removed"), "{out}\n{err}");
    let (ok, _, err) = run_gru(&["cluster", "--addr", &url, "remove", "--node", "1"]).await;
    assert!(!ok && err.contains("only voter"), "{err}");

    // Drain the one spear (no clients: drained at once), then let it take users again.
    let (ok, out, err) = run_gru(&["drain", "--node", "1", "--addr", &url]).await;
    assert!(ok, "gru drain:\n{out}\n{err}");
    assert!(out.contains("spear 1 is drained"), "{out}");
    let (ok, out, err) = run_gru(&["drain", "--stop", "--node", "1", "--addr", &url]).await;
    assert!(ok && out.contains("takes users again"), "{out}\n{err}");
    let (ok, _, err) = run_gru(&["drain", "--node", "7", "--addr", &url]).await;
    assert!(
        !ok && err.contains("node 7 is not a registered spear"),
        "{err}"
    );

    let status = dev.stop(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "gru dev stops cleanly");
}
